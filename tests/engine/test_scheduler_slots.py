"""Device slots: a node holds one only when it needs a device with the inputs it was given, and the session's
``DeviceSlots`` is the one place that leases, releases and places.

A node whose model inputs all name remote models (``openai:...``) holds no slot, so it runs beside a local
accelerator node on the one device; two local accelerator nodes there still take turns. Concurrency is proven with
a barrier both nodes must reach and with event order; nothing depends on timing.
"""

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nodeforge.engine.cache import ResultCache
from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import ModelInput, ModelKind
from nodeforge.engine.document import parse_document
from nodeforge.engine.events import Event
from nodeforge.engine.model_source import ModelEntry, ResolvedModel
from nodeforge.engine.models import ModelManager
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.registry import Registry
from nodeforge.engine.session import Session
from nodeforge.engine.slots import DeviceSlots
from tests.support.testnodes import CHANNELS, coordination

MB = 1 << 20
ASKS = ModelKind("x", remote=True)


class RemoteShelf:
    """A catalogue where ``openai:<name>`` names a model at a remote server and any other name a local file."""

    installed = True

    def resolve(self, name: str, data_dir: Path | None, *, families: Iterable[str] = (),
                relative_paths: bool = True) -> ResolvedModel:
        return ResolvedModel(name, "path", Path(name), family="x")

    def problem(self, name: str, data_dir: Path | None = None, *, families: Iterable[str] = ()) -> str | None:
        return None

    def family_of(self, name: str, data_dir: Path | None = None) -> str | None:
        return "x"

    def remote_name(self, name: str) -> str | None:
        return name.removeprefix("openai:") if name.startswith("openai:") else None

    def known_files(self, name: str) -> Path | None:
        return None

    def entries(self, data_dir: Path | None) -> list[ModelEntry]:
        return []

    def local_problem(self, name: str, data_dir: Path | None) -> str | None:
        return None

    def offline_problem(self, name: str, data_dir: Path | None) -> str | None:
        return None


class Answer(NodeOutputs):
    text: str


class Ask(Node):
    """An accelerator node whose model may be a remote one: records that it is inside, meets at its channel's
    barrier when one is named, and records that it leaves."""

    type_id = "test.ask"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        model: str = ModelInput("local", kind=ASKS)
        channel: str = ""
        barrier: str = ""

    Outputs = Answer

    def run(self, inputs: Inputs, ctx: NodeContext) -> Answer:
        coord = CHANNELS[inputs.channel]
        coord.record(f"in {ctx.node_id} {ctx.device}")
        if inputs.barrier:
            coord.barriers[inputs.barrier].wait(timeout=30)
        coord.record(f"out {ctx.node_id}")
        return Answer(text=f"{inputs.model} answered")


def session_on_one_device() -> Session:
    registry = Registry(model_source=RemoteShelf())
    registry.add(Ask)
    return Session(GraphEnv(registry), ResultCache(None), devices=["cpu:0"], workers=4,
                   models=ModelManager({"cpu:0": 64 * MB}))


def test_a_remote_model_node_runs_beside_a_local_one_on_one_device(request: Any) -> None:
    coord = coordination(request.node.name)
    coord.barriers["both"] = threading.Barrier(2)
    events: list[Event] = []
    nodes = {"remote": {"type": "test.ask", "inputs": {"model": "openai:gpt-4o", "channel": request.node.name,
                                                       "barrier": "both"}},
             "local": {"type": "test.ask", "inputs": {"model": "tiny/x", "channel": request.node.name,
                                                      "barrier": "both"}}}
    result = session_on_one_device().run(parse_document({"nodes": nodes}), listener=events.append)
    assert result.record.status == "succeeded", result.record.error
    order = [e.kind for e in events if e.kind in ("node.started", "node.finished")]
    assert order == ["node.started", "node.started", "node.finished", "node.finished"]
    assert {result.record.nodes[name].device for name in ("remote", "local")} == {"cpu", "cpu:0"}
    assert result.record.nodes["remote"].device == "cpu"
    assert sorted(coord.calls[:2]) == ["in local cpu:0", "in remote cpu"]


def test_two_local_model_nodes_on_one_device_never_overlap(request: Any) -> None:
    coord = coordination(request.node.name)
    events: list[Event] = []
    nodes = {name: {"type": "test.ask", "inputs": {"model": f"local-{name}", "channel": request.node.name}}
             for name in ("a", "b", "c")}
    result = session_on_one_device().run(parse_document({"nodes": nodes}), listener=events.append)
    assert result.record.status == "succeeded", result.record.error
    order = [e.kind for e in events if e.kind in ("node.started", "node.finished")]
    assert order == ["node.started", "node.finished"] * 3
    inside = [call.split()[:2] for call in coord.calls]
    assert [step for step, _ in inside] == ["in", "out"] * 3
    assert all(inside[i][1] == inside[i + 1][1] for i in range(0, 6, 2))
    assert {result.record.nodes[name].device for name in nodes} == {"cpu:0"}


class Cluster:
    """What the slots ask of a backend: residency, load times and the devices that are down."""

    def __init__(self) -> None:
        self.down: frozenset[str] = frozenset()
        self.load_times = {"big": 50.0}
        self.where: dict[str, list[str]] = {}

    def resident_on(self, model: str) -> list[str]:
        return self.where.get(model, [])


def test_a_leased_device_waits_for_its_release_and_the_release_teaches_the_estimate() -> None:
    cluster = Cluster()
    cluster.where["big"] = ["cuda:1"]
    slots = DeviceSlots(["cuda:0", "cuda:1"], cluster)  # type: ignore[arg-type]
    with slots:
        assert slots.any_free() and slots.place(["big"], "t") == "cuda:1"
        slots.lease("cuda:1", ["big"], "t")
        assert slots.place(["big"], "t") is None  # waiting for the resident copy beats loading a second one
        assert slots.place([], "t") == "cuda:0"
        slots.lease("cuda:0", [], "t")
        assert not slots.any_free()
        slots.release("cuda:1", "t", 2.0)
        assert slots.place(["big"], "t") == "cuda:1"
        assert slots.place(["big"], "t", frozenset({"cuda:1"})) is None


def test_devices_that_stay_keep_their_lease_and_a_retry_needs_another_device_up() -> None:
    cluster = Cluster()
    slots = DeviceSlots(["a", "b"], cluster)  # type: ignore[arg-type]
    with slots:
        slots.lease("a", [], "t")
        assert slots.can_retry("a")
        cluster.down = frozenset({"b"})
        assert not slots.can_retry("a")
        assert slots.place([], "t") is None
    slots.resize(["a", "c"])
    assert slots.devices == ["a", "c"]
    with slots:
        assert slots.place([], "t") == "c"
        slots.release("a", "t", None)
        assert slots.any_free() and slots.can_retry("c")
