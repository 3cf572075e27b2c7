"""The one way to declare a node: a ``Node`` subclass with typed ``Inputs``/``Outputs`` models and a ``run``.

    class Join(Node):
        \"\"\"Join texts with a separator.\"\"\"
        type_id = "text.join"
        version = "1.0.0"

        class Inputs(NodeInputs):
            texts: list[str]
            separator: str = " "

        class Outputs(NodeOutputs):
            text: str

        def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
            return self.Outputs(text=inputs.separator.join(inputs.texts))

Class flags: ``side_effects`` (always runs, never cached), ``accelerator`` (placed on a device), ``extra_inputs``
(the port type of extra named inputs, as ``text.template`` takes), ``files`` (which inputs name files to read,
folders to write or models, ``{"path": "read"}``: the node opens them through ``ctx.files``, and the server's
path policy and the editor read the declaration). Hooks for the few nodes that need them:
``ports`` (ports that depend on a literal, as ``graph.call``), ``check`` (node-specific validation) and
``fingerprint`` (cache-key material from outside state, such as a file's content).
"""

from __future__ import annotations

import functools
import re
import types as pytypes
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Union

from pydantic import BaseModel, ConfigDict, TypeAdapter

from nodeforge.engine.errors import NodeDefinitionError
from nodeforge.engine.files import FileUse, check_declarations
from nodeforge.engine.keys import key_head
from nodeforge.engine.types import port_type_of, python_type

if TYPE_CHECKING:
    from nodeforge.engine.context import NodeContext
    from nodeforge.engine.graph import GraphEnv
    from nodeforge.engine.model_source import ModelSource

TYPE_ID = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$")


class NodeInputs(BaseModel):
    """Base of every node's inputs model."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeOutputs(BaseModel):
    """Base of every node's outputs model."""

    model_config = ConfigDict(extra="forbid")


ANY_VALUE: frozenset[type] = frozenset({object})
"""``Literals.exact`` of a port that takes any value unchanged (``json`` ports)."""
_EXACT = (str, int, float, bool, type(None))


class Literals:
    """How one port checks literals. Pydantic's validator and the JSON Schema are built on first use (building them
    for every port of every node type is most of a registry load, and most ports never see a literal); a value whose
    exact type is in ``exact`` is one the annotation accepts unchanged, so it skips pydantic altogether."""

    __slots__ = ("_annotation", "_adapter", "_schema", "_schema_of", "exact")

    def __init__(self, annotation: Any, schema_of: Callable[[], dict[str, Any]],
                 exact: frozenset[type] | None) -> None:
        self._annotation = annotation
        self._adapter: TypeAdapter[Any] | None = None
        self._schema: dict[str, Any] | None = None
        self._schema_of = schema_of
        self.exact = exact

    def adapter(self) -> TypeAdapter[Any]:
        if self._adapter is None:
            self._adapter = _adapter_for(self._annotation)
        return self._adapter

    def schema(self) -> dict[str, Any]:
        if self._schema is None:
            self._schema = self._schema_of()
        return self._schema

    def validate(self, value: Any) -> Any:
        exact = self.exact
        if exact is not None and (type(value) in exact or exact is ANY_VALUE):
            return value
        return self.adapter().validate_python(value)


def exact_types(annotation: Any, constrained: bool = False) -> frozenset[type] | None:
    """The exact Python types an annotation accepts unchanged, when it is a plain ``str``, ``int``, ``float``,
    ``bool``, ``None`` or a union of them without constraints (``Any``: every value); None otherwise."""
    if constrained:
        return None
    if annotation is Any:
        return ANY_VALUE
    if typing.get_origin(annotation) in (Union, pytypes.UnionType):
        members = typing.get_args(annotation)
        return frozenset(members) if all(member in _EXACT for member in members) else None
    return frozenset({annotation}) if annotation in _EXACT else None


@dataclass(frozen=True, slots=True)
class Port:
    """One named input or output of a node: its port type, whether it must be given, and how literals validate."""

    name: str
    type: str
    required: bool = True
    default: Any = None
    description: str = ""
    literals: Literals | None = field(default=None, compare=False, repr=False)

    @property
    def adapter(self) -> TypeAdapter[Any] | None:
        return None if self.literals is None else self.literals.adapter()

    @property
    def schema(self) -> Mapping[str, Any]:
        """The port's JSON Schema (with ``x-nodeforge-type``), built when first asked for (the catalogue)."""
        return {} if self.literals is None else self.literals.schema()

    def validate_literal(self, value: Any) -> Any:
        """The literal converted to the port's Python type; raises pydantic's ValidationError when it does not fit."""
        return value if self.literals is None else self.literals.validate(value)


@dataclass(frozen=True, slots=True)
class NodePorts:
    inputs: Mapping[str, Port]
    outputs: Mapping[str, Port]


@dataclass(frozen=True)
class Upstream:
    """A node linked into an input, as validation sees it: its type, the output used, and its literal inputs with
    the defaults of those left unset."""

    type: str
    output: str
    literals: Mapping[str, Any]


class Node:
    """Base class of node types. Subclasses set ``type_id``, ``version``, ``Inputs``, ``Outputs`` and ``run``."""

    type_id: ClassVar[str]
    version: ClassVar[str]
    title: ClassVar[str] = ""
    side_effects: ClassVar[bool] = False
    accelerator: ClassVar[bool] = False
    extra_inputs: ClassVar[str | None] = None
    files: ClassVar[Mapping[str, FileUse]] = MappingProxyType({})
    model_families: ClassVar[Mapping[str, tuple[str, ...]]] = MappingProxyType({})
    Inputs: ClassVar[type[NodeInputs]]
    Outputs: ClassVar[type[NodeOutputs]]

    def run(self, inputs: Any, ctx: NodeContext) -> NodeOutputs:
        raise NotImplementedError(f"{type(self).__name__}.run is not implemented")

    def ports(self, literals: Mapping[str, Any], env: GraphEnv) -> NodePorts | None:
        """Ports that depend on literal inputs (None: the static ports of ``Inputs``/``Outputs``)."""
        return None

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        """Node-specific validation: (input, message) pairs. ``bound`` holds every input given a value or link;
        ``models`` is the catalogue model names resolve through (ask it what it knows without loading anything).
        Called at validation with the literals, and again just before ``run`` with every value when some input
        came from a link or a graph input, so ``run`` need not repeat these checks."""
        return []

    def check_upstream(self, literals: Mapping[str, Any], upstream: Mapping[str, list[Upstream]],
                       models: ModelSource) -> list[tuple[str | None, str]]:
        """Validation that needs the nodes linked into this one (a ControlNet for another model family):
        ``upstream`` holds, per input, each linked node in order (one per item of a list input). Called at
        validation only; what links carry at run time is checked by ``check``."""
        return []

    def models(self, literals: Mapping[str, Any]) -> list[str]:
        """The models this node will ask ``ctx.models`` for, when known before it runs; the scheduler places the
        node where they are resident. Default: the literal names of the inputs ``files`` declares as models."""
        return [value for name, use in self.files.items()
                if use == "model" and isinstance(value := literals.get(name), str)]

    def fingerprint(self, literals: Mapping[str, Any], env: GraphEnv) -> str | None:
        """Extra cache-key material from state outside the graph (a file's hash, a saved graph's document)."""
        return None


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter_for(annotation: Any) -> TypeAdapter[Any]:
    """One literal validator per annotation that can key a dict (port types by name share theirs)."""
    try:
        adapter = _ADAPTERS.get(annotation)
    except TypeError:  # an annotation whose metadata cannot be hashed
        return TypeAdapter(annotation)
    if adapter is None:
        adapter = _ADAPTERS[annotation] = TypeAdapter(annotation)
    return adapter


_EXACT_BY_PORT_TYPE: dict[str, frozenset[type]] = {"text": frozenset({str}), "int": frozenset({int}),
                                                   "float": frozenset({float}), "bool": frozenset({bool}),
                                                   "json": ANY_VALUE}


def make_port(name: str, port_type: str, *, required: bool = True, default: Any = None,
              description: str = "") -> Port:
    """A port declared by type name rather than by a model field (extra inputs, a called graph's inputs)."""
    annotation = python_type(port_type)

    def schema_of() -> dict[str, Any]:
        schema = {**_adapter_for(annotation).json_schema(), "x-nodeforge-type": port_type, "description": description}
        if not required:
            schema["default"] = default
        return schema

    return Port(name=name, type=port_type, required=required, default=default, description=description,
                literals=Literals(annotation, schema_of, _EXACT_BY_PORT_TYPE.get(port_type)))


def ports_of_model(model: type[BaseModel]) -> dict[str, Port]:
    """Ports for every field of an inputs or outputs model; each validates literals by its field's annotation (with
    the field's constraints), its JSON Schema is the model's property for the field."""
    properties = functools.cache(lambda: model.model_json_schema().get("properties", {}))
    ports: dict[str, Port] = {}
    for name, info in model.model_fields.items():
        port_type, optional = port_type_of(info.annotation)
        required = info.is_required()
        default = None if required else info.get_default(call_default_factory=True)

        def schema_of(name: str = name, port_type: str = port_type) -> dict[str, Any]:
            return {**properties().get(name, {}), "x-nodeforge-type": port_type}

        literals = Literals(info.rebuild_annotation(), schema_of,  # the annotation with its metadata
                            exact_types(info.annotation, constrained=bool(info.metadata)))
        ports[name] = Port(name=name, type=port_type, required=required and not optional, default=default,
                           description=info.description or "", literals=literals)
    return ports


@dataclass(frozen=True)
class NodeSpec:
    """A registered node type: its class, one shared instance, and its static ports."""

    cls: type[Node]
    instance: Node
    inputs: Mapping[str, Port]
    outputs: Mapping[str, Port]
    source: str

    @property
    def type(self) -> str:
        return self.cls.type_id

    @property
    def version(self) -> str:
        return self.cls.version

    @property
    def category(self) -> str:
        return self.cls.type_id.split(".", 1)[0]

    @property
    def title(self) -> str:
        return self.cls.title or self.cls.type_id.split(".", 1)[1].replace("_", " ").capitalize()

    @property
    def description(self) -> str:
        return (self.cls.__doc__ or "").strip()

    @functools.cached_property
    def dynamic(self) -> bool:
        return type(self.instance).ports is not Node.ports

    @functools.cached_property
    def fingerprints(self) -> bool:
        """Whether the node type has its own ``fingerprint`` (cache-key material from outside state)."""
        return type(self.instance).fingerprint is not Node.fingerprint

    @functools.cached_property
    def checks(self) -> bool:
        """Whether the node type has its own ``check``."""
        return type(self.instance).check is not Node.check

    @functools.cached_property
    def checks_upstream(self) -> bool:
        """Whether the node type has its own ``check_upstream``."""
        return type(self.instance).check_upstream is not Node.check_upstream

    @functools.cached_property
    def static_ports(self) -> NodePorts:
        return NodePorts(self.inputs, self.outputs)

    @functools.cached_property
    def plain_ports(self) -> bool:
        """Whether every node of this type has the static ports (no ``ports`` hook, no extra inputs)."""
        return not self.dynamic and self.cls.extra_inputs is None

    @functools.cached_property
    def required_inputs(self) -> tuple[str, ...]:
        return tuple(name for name, port in self.inputs.items() if port.required)

    @functools.cached_property
    def key_head(self) -> str:
        """The start of this type's cache keys (its type id and version)."""
        return key_head(self.type, self.version)

    @functools.cached_property
    def _extra_ports(self) -> dict[tuple[str, ...], NodePorts]:
        return {}

    def ports_for(self, literals: Mapping[str, Any], given: Iterable[str], env: GraphEnv) -> NodePorts:
        """The ports of one node in a graph: those its literals select (``graph.call``), else the static ones plus
        a port of type ``extra_inputs`` for every other input given (built once per set of extra names)."""
        ports = self.instance.ports(literals, env) if self.dynamic else None
        if ports is not None:
            return ports
        extra_type = self.cls.extra_inputs
        if extra_type is None:
            return self.static_ports
        inputs = self.inputs
        extras = tuple(name for name in given if name not in inputs)
        if not extras:
            return self.static_ports
        known = self._extra_ports
        ports = known.get(extras)
        if ports is None:
            if len(known) >= 256:
                known.clear()
            ports = known[extras] = NodePorts({**inputs, **{name: make_port(name, extra_type) for name in extras}},
                                              self.outputs)
        return ports

    def catalogue_entry(self) -> dict[str, Any]:
        """What ``nodeforge nodes --json`` and ``GET /api/nodes`` show for this type."""
        return {
            "type": self.type,
            "version": self.version,
            "title": self.title,
            "category": self.category,
            "description": self.description,
            "side_effects": self.cls.side_effects,
            "accelerator": self.cls.accelerator,
            "extra_inputs": self.cls.extra_inputs,
            "files": dict(self.cls.files),
            "dynamic_ports": self.dynamic,
            "source": self.source,
            "inputs": _object_schema(self.cls.Inputs, self.inputs, self.cls.files, self.cls.model_families),
            "outputs": _object_schema(self.cls.Outputs, self.outputs),
        }


def _object_schema(model: type[BaseModel], ports: Mapping[str, Port], files: Mapping[str, FileUse] | None = None,
                   families: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    """The JSON Schema of an inputs or outputs model, each property as its port shows it; the node's declarations
    ride along on the properties (``x-nodeforge-file``: read, write or model; ``x-nodeforge-models``: the model
    families a model input takes), so the editor's pickers read them instead of guessing from input names."""
    schema = model.model_json_schema()
    schema["properties"] = {name: dict(port.schema) for name, port in ports.items()}
    for name, use in (files or {}).items():
        if name in schema["properties"]:
            schema["properties"][name]["x-nodeforge-file"] = use
    for name, kinds in (families or {}).items():
        if name in schema["properties"]:
            schema["properties"][name]["x-nodeforge-models"] = list(kinds)
    schema["required"] = [name for name, port in ports.items() if port.required]
    return schema


def build_spec(cls: type[Node], source: str) -> NodeSpec:
    """Check a node class's declaration and build its spec; raises NodeDefinitionError naming what is wrong."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    type_id = getattr(cls, "type_id", None)
    old_style = vars(cls).get("type")
    if type_id is None and isinstance(old_style, str):
        raise NodeDefinitionError(f"{name}: the class attribute 'type' is now 'type_id' (type_id = {old_style!r})")
    if not isinstance(type_id, str) or not TYPE_ID.match(type_id):
        raise NodeDefinitionError(f"{name}: type {type_id!r} is not of the form 'family.name' (lower case)")
    version = getattr(cls, "version", None)
    if not isinstance(version, str) or not SEMVER.match(version):
        raise NodeDefinitionError(f"{name} ({type_id}): version {version!r} is not semver (e.g. '1.0.0')")
    for attr, base in (("Inputs", NodeInputs), ("Outputs", NodeOutputs)):
        model = getattr(cls, attr, None)
        if not (isinstance(model, type) and issubclass(model, base)):
            raise NodeDefinitionError(f"{name} ({type_id}): {attr} must be a subclass of {base.__name__}")
    if cls.run is Node.run:
        raise NodeDefinitionError(f"{name} ({type_id}): run(inputs, ctx) is not defined")
    if not (cls.__doc__ or "").strip():
        raise NodeDefinitionError(f"{name} ({type_id}): a docstring is required (it is the node's help text)")
    try:
        inputs, outputs = ports_of_model(cls.Inputs), ports_of_model(cls.Outputs)
    except TypeError as exc:
        raise NodeDefinitionError(f"{name} ({type_id}): {exc}") from exc
    if cls.extra_inputs is not None and cls.Inputs.model_config.get("extra") != "allow":
        raise NodeDefinitionError(f"{name} ({type_id}): extra_inputs needs Inputs.model_config extra='allow'")
    problem = check_declarations(cls.files, list(inputs))
    if problem:
        raise NodeDefinitionError(f"{name} ({type_id}): {problem}")
    undeclared = [input_name for input_name in cls.model_families if cls.files.get(input_name) != "model"]
    if undeclared:
        raise NodeDefinitionError(f"{name} ({type_id}): model_families names '{undeclared[0]}', which files does "
                                  "not declare as a model input")
    seed = inputs.get("seed")
    if seed is not None and seed.type != "int":
        raise NodeDefinitionError(f"{name} ({type_id}): a 'seed' input must be an int, not {seed.type}")
    return NodeSpec(cls=cls, instance=cls(), inputs=inputs, outputs=outputs, source=source)
