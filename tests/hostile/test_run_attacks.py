"""Failing runs submitted as a hostile user would, against a real ``nodeforge serve``: nothing a client can read
back (the answer, the run and its list, its events as streamed, the model list, health, and what the run store
keeps for those routes) names a folder of the server, its install or its Python."""

from __future__ import annotations

import errno
import os
import site
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.support import HostileServer, hostile_server
from tests.server.support import FINISHED, PLUGINS, ROOT, parse_sse, wait_for


def server_paths(data_dir: Path) -> list[str]:
    folders = {data_dir, ROOT, Path(sys.prefix), Path(sys.base_prefix), Path.home(),
               *map(Path, site.getsitepackages())}
    return sorted({text for folder in folders for text in (str(folder), os.path.realpath(folder)) if len(text) > 1})


def leaks(text: str, data_dir: Path) -> list[str]:
    return [path for path in server_paths(data_dir) if path in text]


def generate(model: str) -> dict[str, Any]:
    return {"nodes": {"draw": {"type": "image.generate", "inputs": {
        "prompt": "x", "model": model, "steps": 1, "width": 64, "height": 64}}}}


def finished(server: HostileServer, run_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        record: dict[str, Any] = server.request("GET", f"/api/runs/{run_id}", timeout=10).json()
        return record if record["status"] in FINISHED else None

    return wait_for(done, timeout=120, what=f"run {run_id} to finish")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def junk_model(server: HostileServer) -> str:
    """A file in the server's models folder that is no checkpoint: loading it fails inside the libraries."""
    path = server.data_dir / "models" / "junk.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}" + b"\x00" * 4096)
    return path.name


@pytest.mark.parametrize("model", ["junk", "absolute path into the data dir", "hub id offline"])
def test_a_failing_model_run_names_no_server_path(server: HostileServer, junk_model: str, model: str) -> None:
    name = {"junk": junk_model, "absolute path into the data dir": str(server.data_dir / "models" / junk_model),
            "hub id offline": "someorg/no-such-model"}[model]
    with server.measure(f"failing run: model {model}") as row:
        answer = server.request("POST", "/api/runs", json={"graph": generate(name)})
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["id"]
        record = finished(server, run_id)
        row.answer = f"{record['status']}: {record['error'][:60]}"
    assert record["status"] == "failed" and record["nodes"]["draw"]["traceback"]
    assert "node 'draw' (image.generate), input 'model'" in record["error"]
    read = [answer.text, server.request("GET", f"/api/runs/{run_id}").text,
            server.request("GET", f"/api/runs/{run_id}/events").text]
    read += [server.request("GET", path).text for path in ("/api/runs?limit=500", "/api/models", "/api/health")]
    for text in read:
        assert not leaks(text, server.data_dir), f"{leaks(text, server.data_dir)} in {text[:3000]}"
    db = sqlite3.connect(f"file:{server.data_dir / 'runs.sqlite'}?mode=ro", uri=True)
    try:
        stored = [value for query, args in (("SELECT error FROM runs WHERE id = ?", (run_id,)),
                                            ("SELECT error, traceback FROM nodes WHERE run = ?", (run_id,)),
                                            ("SELECT data FROM events WHERE run = ?", (run_id,)))
                  for row_ in db.execute(query, args) for value in row_ if value]
    finally:
        db.close()
    assert any("Traceback" in value for value in stored)
    for text in stored:
        assert not leaks(text, server.data_dir), f"{leaks(text, server.data_dir)} in {text[:3000]}"


def test_a_model_path_outside_the_allowed_folders_is_refused_without_server_paths(server: HostileServer) -> None:
    for path in ("/nonexistent/models/x.safetensors", str(server.data_dir / "runs.sqlite")):
        response = server.attack(f"model path {path[:30]}", "POST", "/api/runs", json={"graph": generate(path)})
        assert response.status_code == 422
        assert not leaks(response.text, server.data_dir), response.text


@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder``. Mounting needs root: a developer's unprivileged run skips the
    test for that reason; as root (CI runs as root) a mount that fails is a failure, never a skip."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a real tmpfs, which only root can mount (CI runs as root)")
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, check=False)
    assert mounted.returncode == 0, f"cannot mount a small tmpfs as root: {mounted.stderr.decode().strip()}"
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(disk: Path, name: str, leave: int = 0) -> Path:
    """Write a file that takes all the free space of ``disk`` but ``leave`` bytes."""
    path = disk / name
    with path.open("wb") as out:
        try:
            while os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize > leave + (1 << 16):
                out.write(b"\0" * (1 << 16))
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return path


def test_a_disk_that_fills_during_a_run(tmp_path: Path) -> None:
    """A real small file system: the run whose result the disk cannot take fails with the reason and its event
    stream ends; while the disk is full a submission is refused with 507 or runs to an end, never a 500; once
    there is space again runs succeed."""
    with small_disk(tmp_path / "small", "16m") as disk, \
            hostile_server(disk / "data", "--plugins", str(PLUGINS)) as server:
        picture = {"nodes": {"draw": {"type": "test.picture", "inputs": {"size": 256, "seed": 1}}}}
        filler = fill(disk, "filler", leave=300_000)  # less than the picture's cache entry (786 KB)
        answer = server.request("POST", "/api/runs", json={"graph": picture})
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["id"]
        record = finished(server, run_id)
        assert record["status"] == "failed" and "the disk is full" in record["error"], record
        assert record["error"].startswith("node 'draw' (test.picture): ")
        events = [event["data"] for event in parse_sse(server.request("GET", f"/api/runs/{run_id}/events").text)]
        assert events[-1]["kind"] == "run.finished" and events[-1]["status"] == "failed"
        rest = fill(disk, "rest")
        for seed in range(3):
            picture["nodes"]["draw"]["inputs"]["seed"] = 10 + seed
            refused = server.request("POST", "/api/runs", json={"graph": picture})
            assert refused.status_code in (202, 507), refused.text
            if refused.status_code == 202:
                assert finished(server, refused.json()["id"])["status"] == "failed"
            else:
                assert "disk is full" in refused.json()["detail"] and refused.headers["Retry-After"]
        filler.unlink()
        rest.unlink()
        picture["nodes"]["draw"]["inputs"]["seed"] = 2
        answer = server.request("POST", "/api/runs", json={"graph": picture})
        assert answer.status_code == 202, answer.text
        assert finished(server, answer.json()["id"])["status"] == "succeeded"
