"""Everything a node author imports, from one place: the node class and its inputs and outputs, the input
declarations, the context a node runs with, its errors, and the values that flow on links.

    from nodeforge.engine.authoring import ModelInput, ModelKind, Node, NodeContext, NodeInputs, NodeOutputs

A node package that imports only from here keeps working when the engine's rooms are rearranged.
"""

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import (
    FileInput,
    FolderInput,
    ModelInput,
    ModelKind,
    SavedGraphInput,
    SeedInput,
    TextInput,
)
from nodeforge.engine.errors import NodeError
from nodeforge.engine.model_source import ModelSource, ResolvedModel
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs, Upstream
from nodeforge.engine.values import Audio, Control, Image, Mask, Video

__all__ = [
    "Audio", "Control", "FileInput", "FolderInput", "Image", "Mask", "ModelInput", "ModelKind", "ModelSource",
    "Node", "NodeContext", "NodeError", "NodeInputs", "NodeOutputs", "ResolvedModel", "SavedGraphInput",
    "SeedInput", "TextInput", "Upstream", "Video",
]
