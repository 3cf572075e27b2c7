"""The Ray backend on a local two-GPU (logical) cluster: concurrency proven by a barrier actor, placement by resident
model proven by load counts, outputs identical to the local backend, the shared disk tier, errors, nested graphs,
cancellation of running actor calls and tasks, and a worker killed under a node."""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="the Ray backend tests need Ray: pip install -e '.[ray]'")

from nodeforge.engine.cache import ResultCache  # noqa: E402
from nodeforge.engine.cli import main as cli_main  # noqa: E402
from nodeforge.engine.compiler import GraphEnv  # noqa: E402
from nodeforge.engine.document import parse_document  # noqa: E402
from nodeforge.engine.events import Event  # noqa: E402
from nodeforge.engine.ray.driver import RayBackend  # noqa: E402
from nodeforge.engine.session import RunResult, Session  # noqa: E402
from nodeforge.engine.values import Image  # noqa: E402
from tests.ray.raynodes import NAMESPACE, Barrier, Counter  # noqa: E402

pytestmark = pytest.mark.timeout(180)


def ray_executor(env: GraphEnv, backend: RayBackend, cache: ResultCache | None = None) -> Session:
    return Session(env, cache or ResultCache(None), workers=4, backend=backend)


def run(session: Session, document: dict[str, Any], events: list[Event] | None = None, **kwargs: Any) -> RunResult:
    return session.run(parse_document(document), listener=events.append if events is not None else None, **kwargs)


def succeeded(result: RunResult) -> RunResult:
    assert result.record.status == "succeeded", result.record.error
    return result


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def barrier(parties: int = 2) -> tuple[str, Any]:
    """A named barrier actor; the caller keeps the handle (an actor without references is gone)."""
    name = unique("barrier")
    return name, Barrier.options(name=name, namespace=NAMESPACE).remote(parties)


def total_loads(backend: RayBackend) -> int:
    return sum(info["loads"] for info in backend.snapshot().values())


def test_two_branches_run_at_the_same_time_on_two_device_actors(ray_backend: RayBackend, ray_env: GraphEnv) -> None:
    name, meeting = barrier()
    nodes = {node: {"type": "raytest.meet", "inputs": {"model": unique(node), "barrier": name}}
             for node in ("left", "right")}
    result = succeeded(run(ray_executor(ray_env, ray_backend), {"nodes": nodes}))
    assert ray.get(meeting.count.remote()) == 2
    devices = {result.record.nodes[name].device for name in ("left", "right")}
    assert devices == set(ray_backend.devices) and len(devices) == 2
    pids = {result.values["left.pid"], result.values["right.pid"]}
    assert len(pids) == 2 and os.getpid() not in pids
    assert pids == {info["pid"] for info in ray_backend.snapshot().values()}


def test_a_node_goes_to_the_actor_that_holds_its_model(ray_backend: RayBackend, ray_env: GraphEnv) -> None:
    session = ray_executor(ray_env, ray_backend)
    (name, meeting), alpha, beta = barrier(), unique("alpha"), unique("beta")
    warm = succeeded(run(session, {"nodes": {
        "a": {"type": "raytest.meet", "inputs": {"model": alpha, "barrier": name}},
        "b": {"type": "raytest.meet", "inputs": {"model": beta, "barrier": name}}}}))
    assert ray.get(meeting.count.remote()) == 2
    alpha_on, beta_on = warm.record.nodes["a"].device, warm.record.nodes["b"].device
    assert alpha_on != beta_on
    assert ray_backend.resident_on(beta) == [beta_on]
    loads = total_loads(ray_backend)
    events: list[Event] = []
    chain = {"n1": {"type": "raytest.meet", "inputs": {"model": beta}},
             "n2": {"type": "raytest.meet", "inputs": {"model": alpha, "x": {"from": "n1.value"}}},
             "n3": {"type": "raytest.meet", "inputs": {"model": beta, "x": {"from": "n2.value"}}},
             "n4": {"type": "raytest.meet", "inputs": {"model": alpha, "x": {"from": "n3.value"}}}}
    again = succeeded(run(session, {"nodes": chain}, events))
    assert [again.record.nodes[n].device for n in chain] == [beta_on, alpha_on, beta_on, alpha_on]
    assert again.values["n4.value"] == 4
    assert total_loads(ray_backend) == loads
    assert not [event for event in events if event.kind == "model.loaded"]


GRAPH = {
    "inputs": {"seed": {"type": "int", "default": 7}, "subject": {"type": "text", "default": "a red fox"}},
    "nodes": {
        "subject": {"type": "text.value", "inputs": {"value": {"input": "subject"}}},
        "prompt": {"type": "text.template", "inputs": {"template": "a photo of {subject}, {style}",
                                                       "subject": {"from": "subject.text"}, "style": "oil"}},
        "both": {"type": "text.join", "inputs": {"texts": [{"from": "prompt.text"}, "in the snow"]}},
        "image": {"type": "image.generate", "inputs": {"prompt": {"from": "both.text"}, "model": "tiny/sd",
                                                       "width": 64, "height": 64, "steps": 2,
                                                       "seed": {"input": "seed"}}},
        "noise": {"type": "test.noise", "inputs": {"size": 16, "seed": {"input": "seed"}}},
        "bright": {"type": "test.brightness", "inputs": {"image": {"from": "noise.image"}}},
        "render": {"type": "test.render", "inputs": {"size": 8, "x": 40}},
    },
    "outputs": {"image": {"from": "image.image"}, "text": {"from": "both.text"}, "bright": {"from": "bright.value"},
                "noise": {"from": "noise.image"}, "render": {"from": "render.image"}},
}


def same(left: dict[str, Any], right: dict[str, Any]) -> None:
    assert left.keys() == right.keys()
    for name, value in left.items():
        if isinstance(value, Image):
            assert value.tensor.equal(right[name].tensor), name
        else:
            assert value == right[name], name


def test_outputs_are_identical_to_the_local_backend_and_land_in_the_shared_disk_tier(
        ray_backend: RayBackend, ray_env: GraphEnv, shared_models_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    local = succeeded(run(Session(ray_env, ResultCache(None), workers=4), GRAPH))
    cache = ResultCache(tmp_path / "cache")
    events: list[Event] = []
    try:
        remote = succeeded(run(ray_executor(ray_env, ray_backend, cache), GRAPH, events))
    finally:
        cache.close()
    same(local.values, remote.values)
    assert remote.values["text"] == "a photo of a red fox, oil in the snow"
    devices = {remote.record.nodes[name].device for name in ("image", "render")}
    assert devices <= set(ray_backend.devices)
    assert remote.record.nodes["both"].device == "cpu"
    steps = [(event.data.step, event.data.total) for event in events
             if event.kind == "node.progress" and event.data.node == "image"]
    assert steps == [(1, 2), (2, 2)]
    finished = [event.seq for event in events if event.kind == "node.finished" and event.data.node == "image"]
    assert all(event.seq < finished[0] for event in events if event.kind == "node.progress")
    reopened = ResultCache(tmp_path / "cache")
    try:
        again = succeeded(run(Session(ray_env, reopened, workers=4), GRAPH))
    finally:
        reopened.close()
    assert {node.status for node in again.record.nodes.values()} == {"cached"}
    same(local.values, again.values)


def test_a_failing_node_reads_as_it_does_locally(ray_backend: RayBackend, ray_env: GraphEnv) -> None:
    graph = {"nodes": {"bad": {"type": "test.fail", "inputs": {"reason": "no fox today"}},
                       "after": {"type": "test.add", "inputs": {"x": {"from": "bad.value"}}},
                       "crash": {"type": "test.crash", "inputs": {"x": 0}},
                       "fine": {"type": "test.add", "inputs": {"x": 1}}}}
    local = run(Session(ray_env, ResultCache(None)), graph)
    remote = run(ray_executor(ray_env, ray_backend), graph)
    assert remote.record.status == "failed"
    for name in graph["nodes"]:
        assert (remote.record.nodes[name].status, remote.record.nodes[name].error) == \
               (local.record.nodes[name].status, local.record.nodes[name].error)
    assert remote.record.nodes["bad"].error == "node 'bad' (test.fail), input 'reason': no fox today"
    trace = remote.record.nodes["crash"].traceback or ""
    assert "RemoteTraceback" in trace and "testnodes.py" in trace
    assert remote.values["fine.value"] == 2


def test_a_saved_graph_called_as_a_node_runs_its_inner_nodes_on_the_workers(ray_backend: RayBackend,
                                                                            ray_env: GraphEnv) -> None:
    inner = {"name": "inner", "inputs": {"x": {"type": "int", "default": 1}},
             "nodes": {"add": {"type": "test.add", "inputs": {"x": {"input": "x"}, "delta": 10}},
                       "meet": {"type": "raytest.meet", "inputs": {"model": unique("inner"),
                                                                   "x": {"from": "add.value"}}}},
             "outputs": {"value": {"from": "meet.value"}, "pid": {"from": "meet.pid"}}}
    (ray_env.library.folders[0] / "inner.json").write_text(json.dumps(inner))
    graph = {"nodes": {"start": {"type": "test.add", "inputs": {"x": 4}},
                       "call": {"type": "graph.call", "inputs": {"graph": "inner", "x": {"from": "start.value"}}},
                       "end": {"type": "test.add", "inputs": {"x": {"from": "call.value"}}}},
             "outputs": {"end": {"from": "end.value"}, "pid": {"from": "call.pid"}}}
    result = succeeded(run(ray_executor(ray_env, ray_backend), graph))
    assert result.values["end"] == 4 + 1 + 10 + 1 + 1
    assert result.values["pid"] in {info["pid"] for info in ray_backend.snapshot().values()}
    assert result.record.nodes["call"].device == "cpu"


def test_cancelling_stops_a_running_actor_call_and_a_running_task(ray_backend: RayBackend, ray_env: GraphEnv) -> None:
    cancel = threading.Event()
    spinning: set[str] = set()

    def listen(event: Event) -> None:
        if event.kind == "node.progress":
            spinning.add(event.data.node or "")
            if spinning == {"gpu", "cpu"}:
                cancel.set()

    graph = {"nodes": {"gpu": {"type": "raytest.spin", "inputs": {}},
                       "cpu": {"type": "raytest.spin_cpu", "inputs": {}},
                       "after": {"type": "test.add", "inputs": {"x": {"from": "gpu.value"}}}}}
    session = ray_executor(ray_env, ray_backend)
    result = session.run(parse_document(graph), listener=listen, cancel=cancel)
    assert result.record.status == "cancelled"
    assert {name: node.status for name, node in result.record.nodes.items()} == \
           {"gpu": "cancelled", "cpu": "cancelled", "after": "cancelled"}
    device = result.record.nodes["gpu"].device
    after = succeeded(run(session, {"nodes": {"next": {"type": "raytest.meet", "inputs": {"model": unique("m")}}}}))
    assert after.record.nodes["next"].status == "succeeded" and device in ray_backend.devices


def test_cli_runs_a_graph_on_the_cluster(ray_backend: RayBackend, tmp_path: Path, shared_models_dir: Path,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    graph = tmp_path / "fox.json"
    nodes = {name: GRAPH["nodes"][name] for name in ("subject", "prompt", "both", "image")}
    graph.write_text(json.dumps({"inputs": GRAPH["inputs"], "nodes": nodes,
                                 "outputs": {"image": {"from": "image.image"}, "text": {"from": "both.text"}}}))
    code = cli_main(["run", str(graph), "--backend", "ray", "--json", "--data-dir", str(tmp_path / "data"),
                     "--out", str(tmp_path / "out")])
    record = json.loads(capsys.readouterr().out)
    assert code == 0, record["error"]
    assert set(record["devices"]) == set(ray_backend.devices)
    assert record["nodes"]["image"]["device"] in ray_backend.devices
    assert Path(record["outputs"]["image"]["path"]).is_file()


def test_a_cluster_started_from_a_passing_thread_is_owned_by_a_thread_that_stays(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's local processes die with the thread that started them: a server starts its backend from a short-lived
    thread, so the backend starts Ray from a thread that lives until the backend closes."""
    from nodeforge.engine.ray import cluster as ray_cluster

    starters: list[threading.Thread] = []
    monkeypatch.setattr(ray_cluster, "_connect", lambda *args: starters.append(threading.current_thread()))
    release = threading.Event()
    caller = threading.Thread(target=ray_cluster.start_ray, args=(ray, None, "ns", {}, release))
    caller.start()
    caller.join()
    assert len(starters) == 1 and starters[0] is not caller and starters[0].is_alive()
    release.set()
    starters[0].join(timeout=5)
    assert not starters[0].is_alive()


def test_cli_refuses_ray_options_without_the_ray_backend(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps({"nodes": {"v": {"type": "text.value", "inputs": {"value": "x"}}}}))
    assert cli_main(["run", str(graph), "--address", "auto"]) == 2
    assert "--address needs --backend ray" in capsys.readouterr().err
    assert cli_main(["run", str(graph), "--backend", "ray", "--devices", "cuda:0"]) == 2
    assert "--devices" in capsys.readouterr().err


def test_serve_runs_submitted_graphs_on_the_cluster_and_streams_their_progress(
        ray_backend: RayBackend, tmp_path: Path, shared_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.testclient import TestClient

    from nodeforge.server.app import create_app
    from nodeforge.server.settings import Settings
    from tests.server.support import PLUGINS, parse_sse, wait_finished

    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    settings = Settings(data_dir=tmp_path / "data", backend="ray", plugins=(PLUGINS,), watch=False)
    graph = {"nodes": {"picture": {"type": "test.picture", "inputs": {"size": 12, "seed": 3}},
                       "size": {"type": "test.measure", "inputs": {"image": {"from": "picture.image"}}},
                       "image": {"type": "image.generate", "inputs": {"prompt": "an owl", "model": "tiny/sd",
                                                                      "width": 64, "height": 64, "steps": 2,
                                                                      "seed": 5}}},
             "outputs": {"size": {"from": "size.text"}, "image": {"from": "image.image"}}}
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8188") as client:
        run_id = client.post("/api/runs", json={"graph": graph}).json()["id"]
        record = wait_finished(client, run_id, timeout=120)
        assert record["status"] == "succeeded", record["error"]
        assert record["outputs"]["size"] == "12x12"
        assert record["nodes"]["image"]["device"] in ray_backend.devices
        assert client.get("/api/health").json()["devices"] == ray_backend.devices
        events = [event["data"] for event in parse_sse(client.get(f"/api/runs/{run_id}/events").text)]
    steps = [(event["step"], event["total"]) for event in events
             if event["kind"] == "node.progress" and event["node"] == "image"]
    assert steps == [(1, 2), (2, 2)]


def test_killing_a_worker_mid_node_retries_on_the_other_and_completes(ray_backend: RayBackend,
                                                                     ray_env: GraphEnv) -> None:
    counter = unique("counter")
    attempts = Counter.options(name=counter, namespace=NAMESPACE).remote()
    started: dict[str, str] = {}
    killed: list[str] = []

    def listen(event: Event) -> None:
        if event.kind == "node.started" and event.data.node == "fragile":
            started.setdefault("device", event.data.device or "")
        if event.kind == "node.progress" and not killed:
            killed.append(started["device"])
            ray.kill(ray_backend.actor(started["device"]))

    events: list[Event] = []
    graph = {"nodes": {"fragile": {"type": "raytest.fragile", "inputs": {"counter": counter}},
                       "after": {"type": "test.add", "inputs": {"x": {"from": "fragile.value"}}}}}
    result = ray_executor(ray_env, ray_backend).run(parse_document(graph),
                                                    listener=lambda event: (events.append(event), listen(event)))
    succeeded(result)
    assert result.values["after.value"] == 3
    assert result.record.nodes["fragile"].device not in killed
    warnings = [event.data.text or "" for event in events if event.kind == "node.warning"]
    assert len(warnings) == 1 and f"device {killed[0]} failed" in warnings[0] and "died" in warnings[0]
    # The next run starts a worker for the GPU that lost its own.
    session = ray_executor(ray_env, ray_backend)
    assert len(session.devices) == 2
    name, meeting = barrier()
    nodes = {node: {"type": "raytest.meet", "inputs": {"model": unique(node), "barrier": name}}
             for node in ("left", "right")}
    succeeded(run(session, {"nodes": nodes}))
    assert ray.get(meeting.count.remote()) == 2
    assert ray.get(attempts.value.remote()) == 2
