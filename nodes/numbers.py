"""Number constants: one int or float typed once and wired to many inputs."""

from __future__ import annotations

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs


class IntValue(Node):
    """A constant integer."""

    type_id = "int.value"
    version = "1.0.0"

    class Inputs(NodeInputs):
        value: int = Field(description="The integer")

    class Outputs(NodeOutputs):
        value: int

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=inputs.value)


class FloatValue(Node):
    """A constant floating-point number."""

    type_id = "float.value"
    version = "1.0.0"

    class Inputs(NodeInputs):
        value: float = Field(description="The number")

    class Outputs(NodeOutputs):
        value: float

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=inputs.value)
