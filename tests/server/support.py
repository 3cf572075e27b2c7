"""Helpers for the server's tests: an in-thread uvicorn server, ``nodeforge serve`` in a subprocess, SSE parsing,
waiting for runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx2
import uvicorn

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).resolve().parents[1] / "support"
PLUGINS = SUPPORT / "plugins_server"
FINISHED = {"succeeded", "failed", "cancelled", "interrupted"}


def parse_sse(text: str) -> list[dict[str, Any]]:
    """The events of an SSE body: ``{"id": ..., "data": {...}}`` per event (comments left out)."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if "data" in fields:
            events.append({"id": int(fields["id"]) if "id" in fields else None, "data": json.loads(fields["data"])})
    return events


def wait_finished(client: Any, run_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll a run until it has finished; its record."""
    deadline = time.monotonic() + timeout
    while True:
        record = client.get(f"/api/runs/{run_id}").json()
        if record["status"] in FINISHED:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} did not finish: {record['status']}")
        time.sleep(0.02)


def wait_for(predicate: Any, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class LiveServer:
    """A real uvicorn server for an app, on a free loopback port, in a thread of the test process."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_for(lambda: self.server.started, what="uvicorn to start")
        return self

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_process(data_dir: Path, gates: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``nodeforge serve`` with the test plugins in a subprocess, answering on ``port``."""
    env = {**os.environ, "NODEFORGE_TEST_GATES": str(gates), "PYTHONPATH": str(ROOT)}
    with serving(port, ["--data-dir", str(data_dir), "--plugins", str(PLUGINS), "--devices", "cpu", "--no-watch",
                        "--log-level", "warning"], env) as process:
        yield process


@contextmanager
def serving(port: int, args: list[str], env: Mapping[str, str], *, cwd: Path = ROOT,
            log: IO[bytes] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``nodeforge serve --port PORT ARGS`` in a subprocess until it answers ``/api/health``, its stderr piped (or
    written to ``log``); stopped with SIGTERM afterwards, which must end it within 30 s."""
    process = subprocess.Popen([sys.executable, "-m", "nodeforge.engine.cli", "serve", "--port", str(port), *args],
                               cwd=cwd, env=dict(env), stdout=subprocess.DEVNULL,
                               stderr=log if log is not None else subprocess.PIPE)
    try:
        def up() -> bool:
            if process.poll() is not None:
                said = process.stderr.read().decode() if process.stderr else Path(getattr(log, "name", "")).read_text()
                raise AssertionError(f"the server exited: {said[-2000:]}")
            try:
                return httpx2.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200
            except httpx2.TransportError:
                return False

        wait_for(up, timeout=90, what="the server to answer")
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                raise AssertionError("the server ignored SIGTERM for 30 s") from None


def text_graph(name: str = "greet", template: str = "Hello, {who}!") -> dict[str, Any]:
    """A small text graph with one input."""
    return {"name": name, "inputs": {"who": {"type": "text", "default": "Ada"}},
            "nodes": {"greet": {"type": "text.template", "inputs": {"template": template, "who": {"input": "who"}}}},
            "outputs": {"text": {"from": "greet.text"}}}


def gate_graph(gate: str, x: int = 1) -> dict[str, Any]:
    """A graph whose one node waits for ``gate`` (see tests/support/plugins_server)."""
    return {"name": f"gate-{gate}", "nodes": {"wait": {"type": "test.gate", "inputs": {"gate": gate, "x": x}}},
            "outputs": {"value": {"from": "wait.value"}}}
