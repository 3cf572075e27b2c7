"""The app factory: ``create_app(settings)`` builds the FastAPI app; its lifespan opens the server's state (stores,
registry, run queue workers, file watcher) and closes it again. Tests use it in-process; ``nodeforge serve`` runs
it on uvicorn."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from nodeforge.engine import __version__
from nodeforge.server.error_responses import install_error_handlers
from nodeforge.server.guard import Guard
from nodeforge.server.openapi import install_openapi
from nodeforge.server.routes import artifacts, graphs, imports, openai, openai_media, runs, system
from nodeforge.server.runtime import Runtime
from nodeforge.server.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
DESCRIPTION = """Save, validate and run nodeforge graphs; follow runs live; fetch their outputs.

With a token (`nodeforge serve --token`), every route except the static editor files and this description needs
`Authorization: Bearer <token>` (use *Authorize* above)."""


def create_app(settings: Settings) -> FastAPI:
    """A new app; nothing is opened until its lifespan starts (``with TestClient(app)``, or uvicorn). On a
    loopback bind it answers loopback Host names only: give in-process clients a base URL such as
    ``http://127.0.0.1``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await run_in_threadpool(Runtime, settings)
        runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            await run_in_threadpool(runtime.close)

    app = FastAPI(title="nodeforge", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app)
    for module in (system, graphs, runs, artifacts, imports, openai, openai_media):
        app.include_router(module.router)
    install_openapi(app)
    _add_static(app)

    app.add_middleware(Guard, settings=settings)
    return app


def _add_static(app: FastAPI) -> None:
    """The editor's files when they exist (``server/static``); otherwise ``/`` leads to the API description."""
    index = STATIC / "index.html"

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        if index.is_file():
            return FileResponse(index, media_type="text/html")
        return RedirectResponse("/docs")

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
