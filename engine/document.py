"""The graph document (design.md section 2): pydantic models, loading and saving, and input-binding parsing.

Node inputs stay raw JSON in the model so that one bad link becomes a validation issue naming the node and input,
not a parse failure of the whole file; ``parse_binding`` turns each raw value into a typed binding.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    WithJsonSchema,
    model_serializer,
)

from nodeforge.engine.errors import EngineError, GraphValidationError, Issue
from nodeforge.engine.types import GraphInputType

SCHEMA_ID: Final = "nodeforge/graph@1"
MAX_DEPTH = 64
"""How deeply lists and objects may nest inside one free-form value (a node input, a graph input's default or given
value, ``ui``): deeper data is refused with a ``too_deep`` issue, never left to exhaust a recursion limit later."""
NODE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
LINK = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_]*)$")
NodeId = Annotated[str, Field(pattern=NODE_ID.pattern)]

_INPUT_VALUE_SCHEMA: dict[str, Any] = {
    "description": "A literal, a link {\"from\": \"node.output\"}, a graph input {\"input\": \"name\"}, "
                   "{\"value\": ...} for a literal object that would look like a link, or a list of these. "
                   f"Lists and objects nest at most {MAX_DEPTH} levels.",
    "anyOf": [
        {"type": "object", "properties": {"from": {"type": "string", "pattern": LINK.pattern}},
         "required": ["from"], "additionalProperties": False, "title": "Link"},
        {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"],
         "additionalProperties": False, "title": "GraphInput"},
        {"type": "object", "properties": {"value": {}}, "required": ["value"], "additionalProperties": False,
         "title": "Value"},
        {},
    ],
}
InputValue = Annotated[Any, WithJsonSchema(_INPUT_VALUE_SCHEMA)]


class GraphInputDecl(BaseModel):
    """A named input of a reusable graph; ``default`` makes it optional."""

    model_config = ConfigDict(extra="forbid")
    type: GraphInputType
    default: Any = None
    description: str = ""


class GraphOutputDecl(BaseModel):
    """A named output of a graph: which node output it returns."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from", pattern=LINK.pattern)
    description: str = ""


class NodeDoc(BaseModel):
    """One node of a graph: its type, optional pinned version, its inputs, and whether it is bypassed."""

    model_config = ConfigDict(extra="forbid")
    type: str
    version: str | None = None
    inputs: dict[str, InputValue] = Field(default_factory=dict)
    bypass: bool = Field(False, description="skip the node: each output takes its first input of the same type")

    @model_serializer(mode="wrap")
    def _written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A node that is not bypassed is written without the flag (documents stay as they were)."""
        data: dict[str, Any] = handler(self)
        if not self.bypass:
            data.pop("bypass", None)
        return data


class GraphDocument(BaseModel):
    """A graph: nodes keyed by id, inline links, named graph inputs and outputs, free-form editor state."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schema_: Literal["nodeforge/graph@1"] = Field(default=SCHEMA_ID, alias="schema")
    name: str = ""
    description: str = ""
    inputs: dict[str, GraphInputDecl] = Field(default_factory=dict)
    nodes: dict[NodeId, NodeDoc]
    outputs: dict[str, GraphOutputDecl] = Field(default_factory=dict)
    ui: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=False)


@dataclass(frozen=True, slots=True)
class LinkBinding:
    node: str
    output: str


@dataclass(frozen=True, slots=True)
class InputBinding:
    name: str


@dataclass(frozen=True, slots=True)
class LiteralBinding:
    value: Any


@dataclass(frozen=True, slots=True)
class ListBinding:
    items: tuple[Binding, ...]


Binding = LinkBinding | InputBinding | LiteralBinding | ListBinding


class BadBinding(ValueError):
    """A raw input value that looks like a link or graph input but is malformed."""


def parse_binding(raw: Any) -> Binding:
    """Turn one raw input value into a binding. A list becomes a ListBinding only when an item is a link or input."""
    if isinstance(raw, dict) and len(raw) == 1:
        (key, inner), = raw.items()
        if key == "from":
            match = LINK.match(inner) if isinstance(inner, str) else None
            if match is None:
                raise BadBinding(f"link {inner!r} is not of the form 'node.output'")
            return LinkBinding(match.group(1), match.group(2))
        if key == "input":
            if not isinstance(inner, str) or not inner:
                raise BadBinding(f"graph input reference {inner!r} must be a non-empty name")
            return InputBinding(inner)
        if key == "value":
            return LiteralBinding(inner)
    if isinstance(raw, list):
        items = tuple(parse_binding(item) for item in raw)
        literals = [item.value for item in items if isinstance(item, LiteralBinding)]
        if len(literals) < len(items):
            return ListBinding(items)
        return LiteralBinding(literals)
    return LiteralBinding(raw)


def parse_link(text: str) -> LinkBinding:
    match = LINK.match(text)
    if match is None:
        raise BadBinding(f"{text!r} is not of the form 'node.output'")
    return LinkBinding(match.group(1), match.group(2))


def nested_too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and objects in ``value`` nest more than ``limit`` levels; iterative, so any depth is safe."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list | tuple) else None
        if children is None:
            continue
        if depth == limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def too_deep_issue(node: str | None, input: str | None, where: str) -> Issue:
    return Issue(node, input, "too_deep", f"{where}: nested deeper than {MAX_DEPTH} levels")


_FLAT = frozenset({str, int, float, bool, type(None)})


def depth_issues(data: Any) -> list[Issue]:
    """A ``too_deep`` issue for each free-form value of a raw document that nests more than MAX_DEPTH levels."""
    if not isinstance(data, dict):
        return []
    issues: list[Issue] = []
    nodes = data.get("nodes")
    for node_id, node in nodes.items() if isinstance(nodes, dict) else ():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        for name, value in inputs.items() if isinstance(inputs, dict) else ():
            kind = type(value)
            if kind in _FLAT or (kind is dict and len(value) == 1 and type(next(iter(value.values()))) in _FLAT):
                continue  # a literal or a link: one level at most, no walk needed
            if nested_too_deep(value):
                issues.append(too_deep_issue(str(node_id), str(name), f"nodes.{node_id}.inputs.{name}"))
    declared = data.get("inputs")
    for name, decl in declared.items() if isinstance(declared, dict) else ():
        if isinstance(decl, dict) and nested_too_deep(decl.get("default")):
            issues.append(too_deep_issue(None, str(name), f"inputs.{name}.default"))
    if nested_too_deep(data.get("ui")):
        issues.append(too_deep_issue(None, None, "ui"))
    return issues


def parse_document(data: Any) -> GraphDocument:
    """Parse a JSON object into a document; structural errors (values nested too deeply included) become a
    GraphValidationError listing them all."""
    issues = depth_issues(data)
    try:
        document = GraphDocument.model_validate(data)
    except ValidationError as exc:
        raise GraphValidationError(issues + [_issue_from_pydantic(err) for err in exc.errors()]) from None
    if issues:
        raise GraphValidationError(issues)
    return document


def _issue_from_pydantic(err: Any) -> Issue:
    loc = [str(part) for part in err["loc"]]
    node = loc[1] if len(loc) > 1 and loc[0] == "nodes" else None
    field = loc[3] if node and len(loc) > 3 and loc[2] == "inputs" else None
    return Issue(node=node, input=field, code="document", message=f"{'.'.join(loc) or 'document'}: {err['msg']}")


PNG_GRAPH_CHUNK = "nodeforge.graph"
PNG_RUN_CHUNK = "nodeforge.run"


def _read_png_graph(path: Path) -> str:
    """The graph document a nodeforge PNG carries in its text chunk."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            text = picture.text.get(PNG_GRAPH_CHUNK) if hasattr(picture, "text") else None
    except (OSError, UnidentifiedImageError) as exc:
        raise EngineError(f"cannot read {path} as a PNG: {exc}") from None
    if text is None:
        raise EngineError(f"{path} carries no nodeforge graph (no '{PNG_GRAPH_CHUNK}' text chunk)")
    return text


def load_document(path: Path) -> GraphDocument:
    """Read a graph file (or the graph embedded in a nodeforge PNG); errors name the file."""
    try:
        text = _read_png_graph(path) if path.suffix.lower() == ".png" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EngineError(f"cannot read graph {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EngineError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise EngineError(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    document = parse_document(data)
    if not document.name:
        document = document.model_copy(update={"name": path.stem})
    return document


def atomic_write_text(path: Path, text: str) -> None:
    """Write through a temp file, fsync and rename, so a crash leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def document_schema() -> dict[str, Any]:
    """The JSON Schema of the graph document (``nodeforge schema``, ``graphs/graph.schema.json``)."""
    schema = GraphDocument.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    return schema
