"""Nodes and actors for the Ray backend tests. Worker processes import this module by name, so everything a node
waits on lives in a named actor (a barrier, a counter) rather than in this process's memory."""

from __future__ import annotations

import asyncio
import os
import time

import ray

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import ModelInput, ModelKind
from nodeforge.engine.errors import NodeError
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs

NAMESPACE = "nodeforge-tests"


@ray.remote(num_cpus=0)
class Barrier:
    """``wait`` returns once ``parties`` callers are inside it at the same time (or raises after ``timeout``)."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.everyone = asyncio.Event()

    async def wait(self, timeout: float) -> int:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.everyone.set()
        await asyncio.wait_for(self.everyone.wait(), timeout)
        return self.arrived

    async def count(self) -> int:
        return self.arrived


@ray.remote(num_cpus=0)
class Counter:
    """Counts calls: lets a node behave differently on its retry."""

    def __init__(self) -> None:
        self.count = 0

    def next(self) -> int:
        self.count += 1
        return self.count

    def value(self) -> int:
        return self.count


class Placed(NodeOutputs):
    pid: int
    value: int


class Meet(Node):
    """Accelerator node that loads a model, then waits at a barrier actor: two of these finish only if two
    device workers run them at the same time."""

    type_id = "raytest.meet"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        model: str = ModelInput(kind=ModelKind("weights"))
        barrier: str = ""
        x: int = 0

    Outputs = Placed

    def run(self, inputs: Inputs, ctx: NodeContext) -> Placed:
        from tests.support.testnodes import weights

        ctx.models.hold(inputs.model, lambda device: weights(1000))
        if inputs.barrier:
            try:
                ray.get(ray.get_actor(inputs.barrier, namespace=NAMESPACE).wait.remote(30))
            except ray.exceptions.RayError as exc:
                raise NodeError(f"nobody else reached barrier {inputs.barrier}: {type(exc).__name__}") from None
        return Placed(pid=os.getpid(), value=inputs.x + 1)


class Spin(Node):
    """Reports progress until cancelled; fails after ``seconds`` if nothing stopped it."""

    type_id = "raytest.spin"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        seconds: float = 60.0
        x: int = 0

    Outputs = Placed

    def run(self, inputs: Inputs, ctx: NodeContext) -> Placed:
        deadline = time.monotonic() + inputs.seconds
        step = 0
        while time.monotonic() < deadline:
            step += 1
            ctx.progress(step)
            time.sleep(0.01)
        raise NodeError(f"still running after {inputs.seconds} s: nothing stopped it")


class SpinCpu(Spin):
    """The CPU-task flavour of ``raytest.spin``."""

    type_id = "raytest.spin_cpu"
    accelerator = False


class Fragile(Node):
    """On its first attempt (counted by a named counter actor) reports progress until its worker is killed; any
    later attempt succeeds at once."""

    type_id = "raytest.fragile"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        counter: str
        x: int = 0

    Outputs = Placed

    def run(self, inputs: Inputs, ctx: NodeContext) -> Placed:
        attempt = ray.get(ray.get_actor(inputs.counter, namespace=NAMESPACE).next.remote())
        step = 0
        while attempt == 1 and step < 6000:
            step += 1
            ctx.progress(step)
            time.sleep(0.01)
        if attempt == 1:
            raise NodeError("the first attempt was not stopped")
        return Placed(pid=os.getpid(), value=attempt)
