"""Nodes for the server's tests, loaded as a plugin folder (also by a server started in a subprocess).

``test.gate`` blocks until a file named after its gate appears in ``$NODEFORGE_TEST_GATES`` (and writes
``<gate>.started`` there when it begins), so a test can hold a run in the middle and then kill the server;
``test.device_gate`` does the same on a device (an accelerator node).
"""

import os
import time
from pathlib import Path

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Audio, Image


class Gate(Node):
    """Waits, reporting progress, until its gate file exists; then passes ``x`` on."""

    type_id = "test.gate"
    version = "1.0.0"

    class Inputs(NodeInputs):
        gate: str
        x: int = 0

    class Outputs(NodeOutputs):
        value: int

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        gates = Path(os.environ["NODEFORGE_TEST_GATES"])
        (gates / f"{inputs.gate}.started").write_text(ctx.run_id)
        step = 0
        while not (gates / inputs.gate).exists():
            step += 1
            ctx.progress(step)
            time.sleep(0.01)
        return self.Outputs(value=inputs.x)


class DeviceGate(Gate):
    """An accelerator node that waits for its gate file: it holds its device until the gate opens."""

    type_id = "test.device_gate"
    version = "1.0.0"
    accelerator = True


class Picture(Node):
    """A seeded random picture (a media output for artifact tests)."""

    type_id = "test.picture"
    version = "1.0.0"

    class Inputs(NodeInputs):
        size: int = Field(8, ge=1, le=256)
        seed: int = 0

    class Outputs(NodeOutputs):
        image: Image

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import torch

        generator = torch.Generator().manual_seed(inputs.seed)
        return self.Outputs(image=Image(torch.rand(1, 3, inputs.size, inputs.size, generator=generator)))


class Measure(Node):
    """The width and height of an image, as text (a media input for upload tests)."""

    type_id = "test.measure"
    version = "1.0.0"

    class Inputs(NodeInputs):
        image: Image

    class Outputs(NodeOutputs):
        text: str

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        height, width = inputs.image.tensor.shape[-2:]
        return self.Outputs(text=f"{width}x{height}")


class Duration(Node):
    """The length of a sound in samples, as text."""

    type_id = "test.duration"
    version = "1.0.0"

    class Inputs(NodeInputs):
        audio: Audio

    class Outputs(NodeOutputs):
        text: str

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        return self.Outputs(text=f"{inputs.audio.tensor.shape[-1]} samples at {inputs.audio.sample_rate} Hz")
