"""A request that waits on its run (a picture, speech, a transcript, a chat completion) notices when its client goes
away and cancels the run: nobody would read the answer, and the device would otherwise be held for it until the
end."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from nodeforge.server.error_responses import ApiError

T = TypeVar("T")
POLL_SECONDS = 0.25
"""How often the client's connection is looked at while the work goes on."""

Disconnected = Callable[[], Awaitable[bool]]
"""``Request.is_disconnected`` or the equivalent: whether the client has closed its connection."""


class ClientGone(ApiError):
    """The client closed its connection before the answer was ready (nginx's 499: nobody reads this answer)."""

    def __init__(self) -> None:
        super().__init__(499, "the client closed the connection; the work was cancelled")


async def unless_gone(work: Awaitable[T], disconnected: Disconnected | None, stop: Callable[[], object]) -> T:
    """The result of ``work``; when the client goes away first (or this request is cancelled), ``stop`` is called
    and the waiting ends (ClientGone, or the cancellation)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_SECONDS)
            if done:
                return task.result()
            if disconnected is not None and await disconnected():
                raise ClientGone()
    except BaseException:
        if not task.done():
            stop()
            task.cancel()
            task.add_done_callback(_retrieve)
        raise


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Read a dropped task's outcome, so asyncio does not report it as never retrieved."""
    if not task.cancelled():
        task.exception()
