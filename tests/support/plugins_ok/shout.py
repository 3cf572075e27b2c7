"""A plugin node module as a user would write it in a plugins folder."""

from nodeforge.engine.context import NodeContext
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs


class Shout(Node):
    """Upper-case a text."""

    type_id = "plugin.shout"
    version = "0.1.0"

    class Inputs(NodeInputs):
        text: str

    class Outputs(NodeOutputs):
        text: str

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        return self.Outputs(text=inputs.text.upper())
