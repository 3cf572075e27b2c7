"""A plugin whose node forgets its version: reported, not registered."""

from nodeforge.engine.node import Node, NodeInputs, NodeOutputs


class NoVersion(Node):
    """Has no semver version."""

    type_id = "plugin.noversion"

    class Inputs(NodeInputs):
        x: int = 0

    class Outputs(NodeOutputs):
        x: int

    def run(self, inputs, ctx):
        return self.Outputs(x=inputs.x)
