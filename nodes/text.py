"""Text nodes: templates with named placeholders, joining, and constants."""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import TextInput
from nodeforge.engine.model_source import ModelSource
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs


class TextOutput(NodeOutputs):
    text: str


def placeholders(template: str) -> list[str]:
    """The ``{name}`` fields of a template, in order; raises ValueError for malformed braces or positional fields."""
    return list(_placeholders(template))


@functools.lru_cache(maxsize=1024)
def _placeholders(template: str) -> tuple[str, ...]:
    """Parsed once per template: validation and every run of the node check the same few templates."""
    names = []
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        if not field.isidentifier():
            raise ValueError(f"placeholder {{{field}}} is not a name (write {{{{ and }}}} for literal braces)")
        names.append(field)
    return tuple(dict.fromkeys(names))


class Template(Node):
    """Fill ``{name}`` placeholders in a template from extra named text inputs (``{{`` and ``}}`` for braces)."""

    type_id = "text.template"
    version = "1.0.0"
    extra_inputs = "text"

    class Inputs(NodeInputs):
        model_config = ConfigDict(extra="allow", frozen=True)
        template: str = TextInput(description="Text with {name} placeholders")

    Outputs = TextOutput

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        template = literals.get("template")
        if not isinstance(template, str):
            return []
        try:
            names = placeholders(template)
        except ValueError as exc:
            return [("template", str(exc))]
        return [(name, f"placeholder {{{name}}} has no input named '{name}'") for name in names
                if name not in bound]

    def run(self, inputs: Inputs, ctx: NodeContext) -> TextOutput:
        return TextOutput(text=inputs.template.format_map(dict(inputs.model_extra or {})))


class Join(Node):
    """Join texts in order with a separator."""

    type_id = "text.join"
    version = "1.0.0"

    class Inputs(NodeInputs):
        texts: list[str] = Field(description="Texts to join, in order")
        separator: str = Field(" ", description="Put between consecutive texts")

    Outputs = TextOutput

    def run(self, inputs: Inputs, ctx: NodeContext) -> TextOutput:
        return TextOutput(text=inputs.separator.join(inputs.texts))


class Value(Node):
    """A constant text, typed once and wired to many inputs."""

    type_id = "text.value"
    version = "1.0.0"

    class Inputs(NodeInputs):
        value: str = TextInput(description="The text")

    Outputs = TextOutput

    def run(self, inputs: Inputs, ctx: NodeContext) -> TextOutput:
        return TextOutput(text=inputs.value)
