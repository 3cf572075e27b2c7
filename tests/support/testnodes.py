"""Nodes that exist to test the engine: counting executions, failing on purpose, meeting at barriers, waiting.

Coordination objects (barriers, events) are handed to nodes through ``Coordination``, a per-test instance looked up
by name from the ``channel`` input, so no state is shared between tests.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import ModelInput, ModelKind, SeedInput
from nodeforge.engine.errors import DeviceError, NodeError
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Image

WEIGHTS = ModelKind("weights")
"""What the test nodes load: a tensor of a given size."""


@dataclass
class Coordination:
    """Per-test objects that test nodes wait on or record into, keyed by the node's ``channel`` input."""

    barriers: dict[str, threading.Barrier] = field(default_factory=dict)
    events: dict[str, threading.Event] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, name: str) -> None:
        with self.lock:
            self.calls.append(name)


CHANNELS: dict[str, Coordination] = {}


def coordination(test_id: str) -> Coordination:
    """A fresh Coordination for one test, found by nodes through their ``channel`` input."""
    CHANNELS[test_id] = Coordination()
    return CHANNELS[test_id]


class IntOut(NodeOutputs):
    value: int


class Add(Node):
    """x + delta, recording each execution in its channel."""

    type_id = "test.add"
    version = "1.0.0"

    class Inputs(NodeInputs):
        x: int = 0
        delta: int = 1
        channel: str = ""

    Outputs = IntOut

    def run(self, inputs: Inputs, ctx: NodeContext) -> IntOut:
        if inputs.channel:
            CHANNELS[inputs.channel].record(ctx.node_id)
        return IntOut(value=inputs.x + inputs.delta)


class Fail(Node):
    """Always fails with a user-facing reason."""

    type_id = "test.fail"
    version = "1.0.0"

    class Inputs(NodeInputs):
        x: int = 0
        reason: str = "it broke"

    Outputs = IntOut

    def run(self, inputs: Inputs, ctx: NodeContext) -> IntOut:
        raise NodeError(inputs.reason, input="reason")


class Crash(Node):
    """Raises a plain Python exception, as a buggy node would."""

    type_id = "test.crash"
    version = "1.0.0"

    class Inputs(NodeInputs):
        x: int = 0

    Outputs = IntOut

    def run(self, inputs: Inputs, ctx: NodeContext) -> IntOut:
        return IntOut(value=1 // inputs.x)


class Meet(Node):
    """Waits at its channel's barrier: two of these finish only if they run at the same time."""

    type_id = "test.meet"
    version = "1.0.0"

    class Inputs(NodeInputs):
        channel: str
        barrier: str = "b"
        x: int = 0

    Outputs = IntOut

    def run(self, inputs: Inputs, ctx: NodeContext) -> IntOut:
        coord = CHANNELS[inputs.channel]
        coord.record(f"{ctx.node_id}:arrive")
        coord.barriers[inputs.barrier].wait(timeout=30)
        coord.record(f"{ctx.node_id}:leave")
        return IntOut(value=inputs.x)


class Wait(Node):
    """Reports progress every few milliseconds until its channel's event is set; cancellation stops it."""

    type_id = "test.wait"
    version = "1.0.0"

    class Inputs(NodeInputs):
        channel: str
        event: str = "go"
        x: int = 0

    Outputs = IntOut

    def run(self, inputs: Inputs, ctx: NodeContext) -> IntOut:
        coord = CHANNELS[inputs.channel]
        coord.record(f"{ctx.node_id}:start")
        step = 0
        while not coord.events[inputs.event].wait(0.005):
            step += 1
            ctx.progress(step)
        return IntOut(value=inputs.x)


class Noise(Node):
    """A seeded random image, for seed and tensor-cache tests."""

    type_id = "test.noise"
    version = "1.0.0"

    class Inputs(NodeInputs):
        size: int = Field(8, ge=1, le=512)
        seed: int = SeedInput(-1)

    class Outputs(NodeOutputs):
        image: Image

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import torch

        generator = torch.Generator().manual_seed(inputs.seed)
        return self.Outputs(image=Image(torch.rand(1, 3, inputs.size, inputs.size, generator=generator)))


class Brightness(Node):
    """Mean brightness of an image (consumes an image link)."""

    type_id = "test.brightness"
    version = "1.0.0"

    class Inputs(NodeInputs):
        image: Image

    class Outputs(NodeOutputs):
        value: float

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=float(inputs.image.tensor.mean()))


def weights(nbytes: int) -> object:
    """A real torch module holding ``nbytes`` of buffers: what the model manager measures and moves."""
    import torch

    module = torch.nn.Module()
    module.register_buffer("weight", torch.zeros(max(nbytes // 4, 1)))
    return module


def check_in(ctx: NodeContext, channel: str, barrier: str) -> None:
    """Record where the node runs on its channel, then wait at the channel's barrier when one is named."""
    if channel:
        coord = CHANNELS[channel]
        coord.record(f"{ctx.node_id}@{ctx.device}")
        if barrier:
            coord.barriers[barrier].wait(timeout=30)


class UseModel(Node):
    """Accelerator node that loads a model of a given size on its device and records where it ran."""

    type_id = "test.use_model"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        model: str = ModelInput(kind=WEIGHTS)
        size: int = 1000
        channel: str = ""
        barrier: str = ""
        x: int = 0

    Outputs = IntOut

    def run(self, inputs: Inputs, ctx: NodeContext) -> IntOut:
        ctx.models.hold(inputs.model, lambda device: weights(inputs.size))
        check_in(ctx, inputs.channel, inputs.barrier)
        return IntOut(value=inputs.x + 1)


class LoadWeights(Node):
    """Accelerator node that loads a weights file through the model catalogue (``ctx.models.load``): the loaded
    model's identity is where the files are, not the name the graph gave."""

    type_id = "test.load_weights"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        model: str = ModelInput(kind=WEIGHTS)
        channel: str = ""
        barrier: str = ""
        x: int = 0

    Outputs = IntOut

    def run(self, inputs: Inputs, ctx: NodeContext) -> IntOut:
        ctx.models.load(inputs.model, lambda resolved, device: weights(resolved.path.stat().st_size))
        check_in(ctx, inputs.channel, inputs.barrier)
        return IntOut(value=inputs.x + 1)


class DeviceWait(Node):
    """Accelerator node that reports progress until its channel's event is set (cancellation tests)."""

    type_id = "test.device_wait"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        channel: str
        x: int = 0

    Outputs = IntOut

    def run(self, inputs: Inputs, ctx: NodeContext) -> IntOut:
        coord = CHANNELS[inputs.channel]
        coord.record(f"{ctx.node_id}@{ctx.device}")
        step = 0
        while not coord.events["go"].wait(0.005):
            step += 1
            ctx.progress(step)
        return IntOut(value=inputs.x)


class FlakyDevice(Node):
    """Fails with a device error on one named device, succeeds elsewhere."""

    type_id = "test.flaky_device"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        bad_device: str
        x: int = 0

    Outputs = IntOut

    def run(self, inputs: Inputs, ctx: NodeContext) -> IntOut:
        if ctx.device == inputs.bad_device:
            raise DeviceError(f"CUDA out of memory on {ctx.device} (simulated driver failure)")
        return IntOut(value=inputs.x + 1)


class Render(Node):
    """Accelerator node producing an image of a given size (results that count against the device ledger)."""

    type_id = "test.render"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        size: int = 16
        x: int = 0

    class Outputs(NodeOutputs):
        image: Image

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import torch

        return self.Outputs(image=Image(torch.full((1, 3, inputs.size, inputs.size), inputs.x / 100.0)))


class TorchThreads(Node):
    """Reports how many threads torch uses inside the node."""

    type_id = "test.torch_threads"
    version = "1.0.0"

    class Inputs(NodeInputs):
        x: int = 0

    Outputs = IntOut

    def run(self, inputs: Inputs, ctx: NodeContext) -> IntOut:
        import torch

        return IntOut(value=torch.get_num_threads())
