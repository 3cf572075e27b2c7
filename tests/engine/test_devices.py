"""Multi-device scheduling on virtual devices: concurrency, placement by residency, eviction, retry, cancellation.

Concurrency is proven with barriers and affinity with load counts and event order; nothing depends on timing.
"""

import threading
from typing import Any

import pytest

from nodeforge.engine.cache import ResultCache
from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.devices import parse_devices
from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import EngineError
from nodeforge.engine.events import (
    Event,
    ModelLoaded,
    ModelOffloaded,
    NodeFinished,
    NodeProgress,
    NodeStarted,
    NodeWarning,
)
from nodeforge.engine.models import ModelManager
from nodeforge.engine.scheduler import DeviceSlot, place
from nodeforge.engine.session import Session
from tests.support.testnodes import coordination

MB = 1 << 20


def session_on(env: GraphEnv, devices: list[str], budget: int = 64 * MB, cache: ResultCache | None = None,
                workers: int = 4) -> Session:
    return Session(env, cache or ResultCache(None), devices=devices, workers=workers,
                    models=ModelManager({device: budget for device in devices}))


def doc(nodes: dict[str, Any]) -> Any:
    return parse_document({"nodes": nodes})


def test_two_branches_run_at_once_on_two_devices(env: GraphEnv, request) -> None:
    coord = coordination(request.node.name)
    coord.barriers["b"] = threading.Barrier(2)
    session = session_on(env, ["cpu:0", "cpu:1"])
    nodes = {name: {"type": "test.use_model", "inputs": {"model": f"m-{name}", "channel": request.node.name,
                                                         "barrier": "b"}} for name in ("left", "right")}
    result = session.run(doc(nodes))
    assert result.record.status == "succeeded", result.record.error
    devices = {result.record.nodes[name].device for name in ("left", "right")}
    assert devices == {"cpu:0", "cpu:1"}


def test_one_device_runs_accelerator_nodes_one_at_a_time(env: GraphEnv) -> None:
    session = session_on(env, ["cpu:0"])
    events: list[Event] = []
    nodes = {name: {"type": "test.use_model", "inputs": {"model": f"m{name}", "x": i}}
             for i, name in enumerate(("a", "b", "c"))}
    result = session.run(doc(nodes), listener=events.append)
    order = [(e.kind, e.data.node) for e in events if isinstance(e.data, NodeStarted | NodeFinished)]
    assert result.record.status == "succeeded"
    assert [kind for kind, _ in order] == ["node.started", "node.finished"] * 3
    assert all(order[i][1] == order[i + 1][1] for i in range(0, 6, 2))


def test_node_goes_where_its_model_is_resident(env: GraphEnv, request, tmp_path) -> None:
    coord = coordination(request.node.name)
    coord.barriers["b"] = threading.Barrier(2)
    session = session_on(env, ["cpu:0", "cpu:1"])
    alpha, beta = tmp_path / "alpha.safetensors", tmp_path / "beta.safetensors"
    alpha.write_bytes(b"a" * 100)
    beta.write_bytes(b"b" * 100)
    warm = {"first": {"type": "test.load_weights", "inputs": {"model": str(alpha), "channel": request.node.name,
                                                              "barrier": "b"}},
            "second": {"type": "test.load_weights", "inputs": {"model": str(beta), "channel": request.node.name,
                                                               "barrier": "b"}}}
    events: list[Event] = []
    warmed = session.run(doc(warm), listener=events.append)
    beta_device = warmed.record.nodes["second"].device
    loaded = sorted(e.data.model for e in events if isinstance(e.data, ModelLoaded))
    assert loaded == [f"weights:path:{alpha}", f"weights:path:{beta}"]
    assert session.models.resident_on(str(beta)) == [beta_device]
    loads = session.models.loads
    events.clear()
    again = session.run(doc({"later": {"type": "test.load_weights", "inputs": {"model": str(beta), "x": 5}}}),
                         listener=events.append)
    assert again.record.nodes["later"].device == beta_device
    assert session.models.loads == loads
    assert not [e for e in events if e.kind == "model.loaded"]


def test_budget_too_small_for_two_models_evicts_least_recently_used(env: GraphEnv) -> None:
    session = session_on(env, ["cpu:0"], budget=int(2.5 * MB))
    events: list[Event] = []
    chain: dict[str, Any] = {}
    previous = None
    for index, model in enumerate(["a", "b", "a", "c"]):
        inputs: dict[str, Any] = {"model": model, "size": MB}
        if previous:
            inputs["x"] = {"from": f"{previous}.value"}
        chain[f"n{index}"] = {"type": "test.use_model", "inputs": inputs}
        previous = f"n{index}"
    result = session.run(doc(chain), listener=events.append)
    assert result.record.status == "succeeded", result.record.error
    model_events = [(e.kind, e.data.model) for e in events if isinstance(e.data, ModelLoaded | ModelOffloaded)]
    assert model_events == [("model.loaded", "a"), ("model.loaded", "b"), ("model.offloaded", "b"),
                            ("model.loaded", "c")]
    assert session.models.snapshot()["cpu:0"]["models"] == ["a", "c"]


def test_model_larger_than_the_budget_fails_the_node_clearly(env: GraphEnv) -> None:
    session = session_on(env, ["cpu:0"], budget=MB)
    result = session.run(doc({"big": {"type": "test.use_model", "inputs": {"model": "huge", "size": 4 * MB}}}))
    error = result.record.nodes["big"].error
    assert result.record.status == "failed"
    assert "model 'huge' needs 4 MiB; the budget of cpu:0 is 1 MiB" in error
    assert session.models.resident_on("huge") == []


def test_failing_device_retries_once_elsewhere(env: GraphEnv) -> None:
    session = session_on(env, ["cpu:0", "cpu:1"])
    events: list[Event] = []
    result = session.run(doc({"f": {"type": "test.flaky_device", "inputs": {"bad_device": "cpu:0"}}}),
                          listener=events.append)
    assert result.record.status == "succeeded"
    assert result.record.nodes["f"].device == "cpu:1"
    started = [e.data.device for e in events if isinstance(e.data, NodeStarted)]
    assert started == ["cpu:0", "cpu:1"]
    warnings = [e.data.text for e in events if isinstance(e.data, NodeWarning)]
    assert len(warnings) == 1 and "device cpu:0 failed" in warnings[0]


def test_device_failure_with_no_other_device_fails_without_hanging(env: GraphEnv) -> None:
    session = session_on(env, ["cpu:0"])
    result = session.run(doc({"f": {"type": "test.flaky_device", "inputs": {"bad_device": "cpu:0"}}}))
    assert result.record.status == "failed"
    assert "simulated driver failure" in result.record.nodes["f"].error


def test_cancellation_stops_work_on_both_devices(env: GraphEnv, request) -> None:
    coord = coordination(request.node.name)
    coord.events["go"] = threading.Event()
    session = session_on(env, ["cpu:0", "cpu:1"])
    cancel = threading.Event()
    started: set[str] = set()
    lock = threading.Lock()

    def listen(event: Event) -> None:
        if isinstance(event.data, NodeProgress):
            with lock:
                started.add(event.data.node)
                if len(started) == 2:
                    cancel.set()

    nodes = {name: {"type": "test.device_wait", "inputs": {"channel": request.node.name, "x": i}}
             for i, name in enumerate(("a", "b"))}
    nodes["after"] = {"type": "test.add", "inputs": {"x": {"from": "a.value"}}}
    result = session.run(doc(nodes), listener=listen, cancel=cancel)
    assert result.record.status == "cancelled"
    assert {name: node.status for name, node in result.record.nodes.items()} == {
        "a": "cancelled", "b": "cancelled", "after": "cancelled"}
    assert {result.record.nodes["a"].device, result.record.nodes["b"].device} == {"cpu:0", "cpu:1"}


def test_one_device_gives_the_same_outputs_as_two(env: GraphEnv, request) -> None:
    def graph(barrier: str) -> Any:
        nodes: dict[str, Any] = {f"r{i}": {"type": "test.render", "inputs": {"x": i, "size": 4}} for i in range(4)}
        nodes.update({f"m{i}": {"type": "test.brightness", "inputs": {"image": {"from": f"r{i}.image"}}}
                      for i in range(4)})
        nodes.update({f"u{i}": {"type": "test.use_model", "inputs": {
            "model": f"m{i}", "x": i, "channel": request.node.name, "barrier": barrier}} for i in range(2)})
        return doc(nodes)

    coord = coordination(request.node.name)
    coord.barriers["two"] = threading.Barrier(2)
    one = session_on(env, ["cpu:0"]).run(graph(""))
    two = session_on(env, ["cpu:0", "cpu:1"]).run(graph("two"))
    assert one.record.status == two.record.status == "succeeded"
    assert one.values == two.values and len(one.values) == 6
    assert {two.record.nodes["u0"].device, two.record.nodes["u1"].device} == {"cpu:0", "cpu:1"}


def test_cached_results_on_a_device_share_its_budget_with_models(env: GraphEnv) -> None:
    image_bytes = 3 * 64 * 64 * 4
    session = session_on(env, ["cpu:0"], budget=3 * image_bytes)
    nodes = {f"r{i}": {"type": "test.render", "inputs": {"x": i, "size": 64}} for i in range(8)}
    result = session.run(doc(nodes))
    assert result.record.status == "succeeded"
    ledger = session.models.snapshot()["cpu:0"]
    assert ledger["results"] == 3 and ledger["results_bytes"] == 3 * image_bytes
    loaded = session.run(doc({"u": {"type": "test.use_model", "inputs": {"model": "w", "size": 2 * image_bytes}}}))
    assert loaded.record.status == "succeeded"
    ledger = session.models.snapshot()["cpu:0"]
    assert ledger["models"] == ["w"] and ledger["results"] == 1
    assert ledger["used"] <= ledger["budget"]


def test_place_prefers_resident_device_and_waits_for_it_when_busy() -> None:
    slots = [DeviceSlot("cuda:0"), DeviceSlot("cuda:1")]
    resident = {"sdxl": ["cuda:1"]}.get

    def where(model: str) -> list[str]:
        return resident(model, [])

    assert place(["sdxl"], 1.0, slots, where, lambda m: 5.0, now=0.0) == "cuda:1"
    slots[1].busy_until = 2.0
    assert place(["sdxl"], 1.0, slots, where, lambda m: 5.0, now=0.0) is None
    slots[1].busy_until = 9.0
    assert place(["sdxl"], 1.0, slots, where, lambda m: 5.0, now=0.0) == "cuda:0"
    assert place(["sdxl"], 1.0, slots, where, lambda m: 5.0, now=0.0, exclude=frozenset({"cuda:0"})) is None
    assert place([], 1.0, [DeviceSlot("cuda:0"), DeviceSlot("cuda:1")], where, lambda m: 5.0, now=0.0) == "cuda:0"


def test_device_lists_parse_and_reject_bad_names() -> None:
    assert parse_devices("cpu:0,cpu:1") == ["cpu:0", "cpu:1"]
    assert parse_devices("auto") in (["cpu"], ["mps"]) or parse_devices("auto")[0].startswith("cuda")
    with pytest.raises(EngineError, match="unknown device 'gpu0'"):
        parse_devices("gpu0")
    with pytest.raises(EngineError, match="lists a device twice"):
        parse_devices("cpu:0,cpu:0")


def test_node_can_evict_a_model_it_broke(env: GraphEnv) -> None:
    session = session_on(env, ["cpu:0"])
    session.run(doc({"u": {"type": "test.use_model", "inputs": {"model": "fragile"}}}))
    assert session.models.resident_on("fragile") == ["cpu:0"]
    from nodeforge.engine.context import NodeModels
    from nodeforge.engine.events import EventEmitter
    from nodeforge.engine.files import FileAccess
    from nodeforge.engine.model_source import NoModels

    events: list[Event] = []
    view = NodeModels(session.models, "cpu:0", EventEmitter("r", events.append), "n", source=NoModels(),
                      kinds={}, files=FileAccess(None), data_dir=None)
    view.hold("fragile", lambda device: None)
    view.evict("fragile")
    view.release_all()
    assert session.models.resident_on("fragile") == []
    assert [e.data for e in events] == [ModelOffloaded(device="cpu:0", text="dropped", model="fragile")]
