"""uvicorn for ``nodeforge serve``, ending the server's event streams as soon as shutdown begins.

uvicorn waits for open responses (up to its graceful-shutdown timeout) before the app's lifespan shutdown runs, and an
event stream only ends when its run does: left alone, the wait runs out and the cancelled streams log tracebacks.
"""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI


class Server(uvicorn.Server):
    """A uvicorn server for the app of ``create_app``: closing the event hub first lets every stream end cleanly."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        runtime = getattr(self.app.state, "runtime", None)
        if runtime is not None:
            runtime.hub.close()
        await super().shutdown(sockets)
