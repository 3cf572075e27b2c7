"""Browser end-to-end fixtures: a real ``nodeforge serve`` on loopback with a temporary data dir, and Debian's
Chromium driven headless by Playwright (the system binary; never a downloaded browser).

Without Chromium the tests are skipped with that reason; with ``NODEFORGE_E2E_REQUIRED=1`` (CI) they fail instead.
``NODEFORGE_CHROMIUM`` names another Chromium binary.
Screenshots of each step go to ``test-output/e2e/<test>/``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "e2e"
LIBRARY = ROOT / "server" / "static" / "node_modules" / "@comfyorg" / "litegraph" / "dist" / "litegraph.es.js"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
READY_TIMEOUT_MS = 20_000


def _unavailable(reason: str) -> None:
    """Skip, or fail where the browser tests are required (CI sets NODEFORGE_E2E_REQUIRED=1)."""
    if os.environ.get("NODEFORGE_E2E_REQUIRED") == "1":
        pytest.fail(f"browser tests are required here, but {reason}", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    """Debian's Chromium (or the binary NODEFORGE_CHROMIUM names), when it is installed."""
    chosen = os.environ.get("NODEFORGE_CHROMIUM")
    candidates = (chosen,) if chosen else ("/usr/bin/chromium", shutil.which("chromium"),
                                           shutil.which("chromium-browser"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(data_dir: Path, log: Path, env: dict[str, str] | None = None) -> Server:
    """``nodeforge serve`` as a subprocess on a free loopback port; returns once /api/health answers."""
    port = _free_port()
    command = [str(Path(sys.executable).parent / "nodeforge"), "serve", "--port", str(port), "--data-dir",
               str(data_dir), "--devices", "cpu", "--no-watch", "--log-level", "warning"]
    handle = log.open("wb")
    process = subprocess.Popen(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                               env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nodeforge serve exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            request = urllib.request.Request(f"{url}/api/health",
                                             headers={"Authorization": f"Bearer {(env or {}).get('NODEFORGE_TOKEN')}"})
            with urllib.request.urlopen(request, timeout=2):
                return Server(url, data_dir, process, log)
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"nodeforge serve did not answer within 60 s: {log.read_text()[-2000:]}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def browser_binary() -> str:
    path = chromium_path()
    if path is None:
        _unavailable("Chromium is not installed (Debian: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    if not LIBRARY.is_file():
        _unavailable("the editor's canvas library is not installed (make setup runs npm ci in server/static)")
    return path


@pytest.fixture(scope="session")
def server(browser_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("e2e-data")
    (data_dir / "inputs").mkdir()
    make_picture(data_dir / "inputs" / "dot.png")
    running = start_server(data_dir, data_dir.parent / "serve.log")
    yield running
    stop_server(running)


def make_picture(path: Path) -> None:
    """A small picture for image.load (no model needed)."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (48, 32), "#203040")
    ImageDraw.Draw(picture).ellipse((8, 4, 36, 28), fill="#f6b26b")
    picture.save(path)


@pytest.fixture(scope="session")
def browser(browser_binary: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_binary, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@dataclass
class Shots:
    """Numbered screenshots of a test's steps."""

    folder: Path
    count: int = 0
    taken: list[Path] = field(default_factory=list)

    def __call__(self, page: Any, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{re.sub(r'[^a-z0-9]+', '-', step.lower()).strip('-')}.png"
        page.screenshot(path=str(path))
        self.taken.append(path)
        return path


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shots:
    folder = SHOTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return Shots(folder)


@pytest.fixture
def open_editor(browser: Any, shot: Shots) -> Iterator[Callable[[str], Any]]:
    """Open the editor at a server's URL in a fresh browser context; fails the test on page errors."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_page(url: str, wait_ready: bool = True) -> Any:
        context = browser.new_context(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        if wait_ready:
            wait_ready_page(page)
        return page

    yield open_page
    for context in contexts:
        if not context.pages or context.pages[0].is_closed():
            continue
        shot(context.pages[0], "final")
    for context in contexts:
        context.close()
    assert not errors, f"errors in the page: {errors}"


def wait_ready_page(page: Any) -> None:
    page.wait_for_selector("body[data-ready]", state="attached", timeout=READY_TIMEOUT_MS)
    assert page.evaluate("document.body.dataset.ready") == "true", "the editor did not start"


@pytest.fixture
def editor(server: Server, open_editor: Callable[[str], Any]) -> Any:
    return open_editor(server.url)
