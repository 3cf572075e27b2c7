"""A real ``nodeforge serve`` in its own process, attacked over loopback, with its memory read from ``/proc``.

Each attack is measured the same way: the server's resident memory before it, the peak after it (the kernel's
high-water mark, reset before each attack through ``/proc/PID/clear_refs``), the answer and how long it took.
The rows gathered here are printed as one table at the end of the session (``tests/hostile/conftest.py``).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from tests.server.support import ROOT, free_port, serving

MEMORY_BUDGET_MB = 100.0
"""How much an attack may add to the idle server's resident memory (the issue's figure)."""
ANSWER_SECONDS = 10.0
"""A ceiling, not a speed figure: an answer slower than this is a server frozen by its input."""


@dataclass
class Measure:
    """One attack: what was sent, what came back, how long it took and how much memory the server grew by."""

    name: str
    answer: str = ""
    seconds: float = 0.0
    grown_mb: float = 0.0


@dataclass
class HostileServer:
    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    rows: list[Measure] = field(default_factory=list)

    def _status_mb(self, key: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        raise AssertionError(f"no {key} in the server's /proc status")

    def rss_mb(self) -> float:
        return self._status_mb("VmRSS")

    def peak_mb(self) -> float:
        return self._status_mb("VmHWM")

    def reset_peak(self) -> None:
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def alive(self) -> bool:
        return self.process.poll() is None

    @contextmanager
    def measure(self, name: str) -> Iterator[Measure]:
        """Measure the requests made inside the block as one attack; the block sets ``answer``."""
        assert self.alive(), "the server died before this attack"
        row = Measure(name)
        idle = self.rss_mb()
        self.reset_peak()
        started = time.perf_counter()
        yield row
        row.seconds = time.perf_counter() - started
        row.grown_mb = max(0.0, self.peak_mb() - idle)
        self.rows.append(row)
        assert self.alive(), f"{name}: the server died"

    def request(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        return httpx2.request(method, self.url + path, timeout=kwargs.pop("timeout", 120), **kwargs)

    def attack(self, name: str, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        """One request as one attack; asserts the answer is a client error, in time, within the memory budget,
        in the route's error shape (OpenAI's under /v1), and that the server still answers afterwards."""
        with self.measure(name) as row:
            response = self.request(method, path, **kwargs)
            row.answer = f"{response.status_code} {short_message(response)}"
        assert 400 <= response.status_code < 500, f"{name}: {response.status_code} {response.text[:500]}"
        assert_error_shape(path, response)
        assert_contained(row)
        assert self.request("GET", "/api/health", timeout=10).status_code == 200, f"{name}: no health after it"
        return response


def short_message(response: httpx2.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:80]
    message = body.get("detail") or body.get("error", {}).get("message") if isinstance(body, dict) else None
    return str(message or "")[:80]


def assert_error_shape(path: str, response: httpx2.Response) -> None:
    body = response.json()
    if path.startswith("/v1/"):
        assert isinstance(body.get("error", {}).get("message"), str), body
    else:
        assert isinstance(body.get("detail"), str), body


def assert_contained(row: Measure) -> None:
    assert row.seconds < ANSWER_SECONDS, f"{row.name}: answered after {row.seconds:.1f} s"
    assert row.grown_mb < MEMORY_BUDGET_MB, f"{row.name}: the server grew by {row.grown_mb:.0f} MB"


@contextmanager
def hostile_server(data_dir: Path, *extra: str) -> Iterator[HostileServer]:
    """``nodeforge serve`` on a fresh data dir, a free loopback port and the CPU, in its own process."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with (data_dir.parent / "server.log").open("wb") as log, \
            serving(port, ["--data-dir", str(data_dir), "--devices", "cpu", "--no-watch", "--log-level", "warning",
                           *extra], env, log=log) as process:
        yield HostileServer(process, f"http://127.0.0.1:{port}", data_dir)
