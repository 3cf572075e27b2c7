"""What every route needs: the running server's state."""

from typing import Annotated

from fastapi import Depends, Request

from nodeforge.server.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:  # async: no thread hand-off per request
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
