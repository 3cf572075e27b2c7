"""One front door: ``nodeforge run``, ``serve`` and ``watch`` turn the same engine options into the same
``EngineConfig``, and what ``watch`` is given (devices, budgets, memory modes, workers, the Ray backend) reaches
the session it runs in."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest

from nodeforge.engine.backend import LocalBackend
from nodeforge.engine.cli import build_parser, engine_config, main
from nodeforge.engine.config import EngineConfig, device_models
from nodeforge.engine.limits import MediaLimits
from nodeforge.engine.memory_modes import MemorySetting
from nodeforge.engine.previews import FolderSink
from nodeforge.server.cli import settings_from_args
from nodeforge.server.watch import WatchSession

GIB = 1 << 30
GRAPH = {"nodes": {"v": {"type": "text.value", "inputs": {"value": "hi"}}}, "outputs": {"text": {"from": "v.text"}}}
OPTIONS = ["--devices", "cpu:0,cpu:1", "--vram-budget", "cpu:1=1G", "--memory-mode", "cpu:0=offload+fp8",
           "--workers", "3"]


@pytest.fixture
def graph(tmp_path: Path) -> Path:
    path = tmp_path / "g.json"
    path.write_text(json.dumps(GRAPH))
    return path


class FakeCluster(LocalBackend):
    """Stands in for a Ray cluster (none can start here): runs nodes in this process on one remote-looking
    device, and remembers the config that opened it."""

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(device_models(["cpu"]))
        self.config = config
        self.closed = False

    def refresh(self) -> list[str] | None:
        return ["cpu:7"]

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def clusters(monkeypatch: pytest.MonkeyPatch) -> list[FakeCluster]:
    opened: list[FakeCluster] = []

    def start(config: EngineConfig) -> FakeCluster:
        opened.append(FakeCluster(config))
        return opened[-1]

    monkeypatch.setattr("nodeforge.engine.session.ray_backend", start)
    return opened


def test_run_serve_and_watch_read_the_engine_options_alike(graph: Path, tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    parser = build_parser()
    run = parser.parse_args(["run", str(graph), *OPTIONS, *data])
    watch = parser.parse_args(["watch", str(graph), *OPTIONS, *data])
    serve = parser.parse_args(["serve", *OPTIONS, *data])
    from_run = engine_config(run, tmp_path / "data")
    watching = WatchSession(watch)
    watching.close()
    served = settings_from_args(serve).engine_config()
    assert watching.config == from_run
    assert dataclasses.replace(served, policy=None, limits=MediaLimits()) == from_run
    assert (from_run.devices, from_run.vram_budget, from_run.memory_mode, from_run.workers) == (
        "cpu:0,cpu:1", "cpu:1=1G", "cpu:0=offload+fp8", 3)


def test_watch_keeps_step_previews_where_run_does(graph: Path, tmp_path: Path) -> None:
    folder = tmp_path / "previews"
    args = build_parser().parse_args(["watch", str(graph), "--previews", str(folder), "--preview-method", "taesd",
                                      "--data-dir", str(tmp_path / "d")])
    watching = WatchSession(args)
    watching.close()
    assert watching.previews is not None and watching.previews.method == "taesd"
    assert isinstance(watching.previews.sink, FolderSink) and watching.previews.sink.folder == folder
    assert folder.is_dir()


def test_watch_runs_in_a_session_with_its_budgets_memory_modes_and_workers(
        graph: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["watch", str(graph), "--json", *OPTIONS, "--data-dir", str(tmp_path / "d")])
    watching = WatchSession(args)
    try:
        record = watching.run_once(threading.Event())
        assert record is not None and record.status == "succeeded"
        (session,) = watching.sessions.values()
        ledger = session.models.snapshot()
        assert session.devices == ["cpu:0", "cpu:1"] and session.workers == 3
        assert ledger["cpu:1"]["budget"] == GIB
        assert {name: info["memory_mode"] for name, info in ledger.items()} == {"cpu:0": "offload+fp8",
                                                                               "cpu:1": "auto"}
    finally:
        watching.close()
    assert json.loads(capsys.readouterr().out)["outputs"] == {"text": "hi"}


def test_watch_and_run_reach_the_ray_backend_with_the_cluster_options(
        graph: Path, tmp_path: Path, clusters: list[FakeCluster], capsys: pytest.CaptureFixture[str]) -> None:
    ray = ["--backend", "ray", "--address", "auto", "--vram-budget", "2G", "--memory-mode", "sequential",
           "--data-dir", str(tmp_path / "d")]
    watching = WatchSession(build_parser().parse_args(["watch", str(graph), "--json", *ray]))
    try:
        record = watching.run_once(threading.Event())
        assert record is not None and record.status == "succeeded"
        assert record.to_json()["devices"] == ["cpu:7"]  # the cluster's devices, not this machine's
    finally:
        watching.close()
    assert main(["run", str(graph), "--json", *ray]) == 0
    watched, ran = clusters
    assert watched.closed and ran.closed
    assert watched.config == ran.config
    assert (ran.config.address, ran.config.cluster_budget(), ran.config.cluster_memory()) == (
        "auto", 2 * GIB, MemorySetting("sequential"))
    assert "connecting to Ray (auto)" in capsys.readouterr().err


def test_watch_refuses_what_run_refuses(graph: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for options, message in ((["--address", "auto"], "--address needs --backend ray"),
                             (["--backend", "ray", "--devices", "cuda:0"], "--devices does not apply"),
                             (["--devices", "cpu:0", "--memory-mode", "cpu:3=gpu"], "--memory-mode names 'cpu:3'"),
                             (["--workers", "0"], "--workers must be at least 1"),
                             (["--preview-method", "taesd"], "--preview-method needs --previews DIR")):
        for command in ("run", "watch"):
            assert main([command, str(graph), *options]) == 2
            assert message in capsys.readouterr().err
