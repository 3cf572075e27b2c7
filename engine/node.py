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

Class flags: ``side_effects`` (always runs, never cached), ``accelerator`` (placed on a device, unless every model
it was given is a remote one), ``extra_inputs`` (the port type of extra named inputs, as ``text.template`` takes).
What an input means is declared on its field (``engine.declarations``: ``ModelInput``, ``SeedInput``,
``FileInput``, ``FolderInput``...): the path policy, model placement, the validation of model names, seeds and
the editor's widgets all derive from those declarations. Hooks for the few nodes that need them:
``ports`` (ports that depend on a literal, as ``graph.call``), ``check`` (node-specific validation),
``check_upstream`` (validation against the literals of the nodes linked in) and ``fingerprint`` (cache-key
material from outside state, such as a file's content). Ports themselves live in ``engine.ports``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from nodeforge.engine.declarations import FileRole, ModelKind, ModelRole, SeedRole
from nodeforge.engine.errors import NodeDefinitionError
from nodeforge.engine.files import FileUse, declared_strings
from nodeforge.engine.keys import key_head
from nodeforge.engine.ports import NodePorts, Port, make_port, ports_of_model

if TYPE_CHECKING:
    from nodeforge.engine.compiler import GraphEnv
    from nodeforge.engine.context import NodeContext
    from nodeforge.engine.model_source import ModelSource

TYPE_ID = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$")


class NodeInputs(BaseModel):
    """Base of every node's inputs model."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeOutputs(BaseModel):
    """Base of every node's outputs model."""

    model_config = ConfigDict(extra="forbid")


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

    def fingerprint(self, literals: Mapping[str, Any], env: GraphEnv) -> str | None:
        """Extra cache-key material from state outside the graph (a file's hash, a saved graph's document)."""
        return None


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
    def files(self) -> Mapping[str, FileUse]:
        """The inputs that name files, folders or models, and how each is used (the path policy reads this)."""
        return {name: port.role.file_use for name, port in self.inputs.items()
                if port.role is not None and port.role.file_use is not None}

    @functools.cached_property
    def model_kinds(self) -> Mapping[str, ModelKind]:
        """The model inputs and the kind each loads (``ModelInput(kind=...)``)."""
        return {name: port.role.kind for name, port in self.inputs.items() if isinstance(port.role, ModelRole)}

    @functools.cached_property
    def seed_input(self) -> str | None:
        """The input declared as the node's seed (``SeedInput``), if any: -1 there draws a seed per run."""
        return next((name for name, port in self.inputs.items() if isinstance(port.role, SeedRole)), None)

    def models(self, literals: Mapping[str, Any]) -> list[str]:
        """The models the node will ask ``ctx.models`` for, known before it runs (the literal names given to its
        model inputs): the scheduler places the node where they are resident."""
        return [name for input_name in self.model_kinds for name in declared_strings(literals.get(input_name), "model")]

    def needs_device(self, literals: Mapping[str, Any], remote: Callable[[str], bool]) -> bool:
        """Whether a node with these literals holds a device slot: an accelerator node does, unless every model
        input that may be remote names a remote model (``remote``: the catalogue's answer), as an HTTP call to
        another server must not keep local work off the device."""
        if not self.cls.accelerator:
            return False
        remote_inputs = [name for name, kind in self.model_kinds.items() if kind.remote]
        if not remote_inputs:
            return True
        return not all(isinstance(value := literals.get(name), str) and remote(value) for name in remote_inputs)

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
            "files": dict(self.files),
            "dynamic_ports": self.dynamic,
            "source": self.source,
            "inputs": _object_schema(self.cls.Inputs, self.inputs),
            "outputs": _object_schema(self.cls.Outputs, self.outputs),
        }


def _object_schema(model: type[BaseModel], ports: Mapping[str, Port]) -> dict[str, Any]:
    """The JSON Schema of an inputs or outputs model, each property as its port shows it (with the keys its
    declaration adds: ``x-nodeforge-widget``, ``x-nodeforge-file``, ``x-nodeforge-models``...), so the editor's
    widgets read them instead of guessing from input names."""
    schema = model.model_json_schema()
    schema["properties"] = {name: dict(port.schema) for name, port in ports.items()}
    schema["required"] = [name for name, port in ports.items() if port.required]
    return schema


def version_problem(spec: NodeSpec, wanted: str) -> str | None:
    """Why a graph that pins ``wanted`` cannot run the installed version of the type (None: it can): another
    major version, or a newer one than installed."""
    match, have = SEMVER.match(wanted), SEMVER.match(spec.version)
    if match is None or have is None:
        return f"version '{wanted}' is not semver (e.g. '1.0.0')"
    wanted_v = tuple(int(part) for part in match.groups())
    have_v = tuple(int(part) for part in have.groups())
    if wanted_v[0] != have_v[0] or wanted_v > have_v:
        return f"the graph wants {spec.type} {wanted}; the installed version {spec.version} is not compatible"
    return None


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
    if "files" in vars(cls):
        raise NodeDefinitionError(f"{name} ({type_id}): 'files' is now declared on the input fields "
                                  "(ModelInput(kind=...), FileInput(), FolderInput() from nodeforge.engine.authoring),"
                                  " with the model families in the ModelKind")
    problem = _role_problem(inputs)
    if problem:
        raise NodeDefinitionError(f"{name} ({type_id}): {problem}")
    return NodeSpec(cls=cls, instance=cls(), inputs=inputs, outputs=outputs, source=source)


def _role_problem(inputs: Mapping[str, Port]) -> str | None:
    """Why the declarations on a node's inputs do not fit their types (None when they do)."""
    seeds = [port for port in inputs.values() if isinstance(port.role, SeedRole)]
    if len(seeds) > 1:
        return f"inputs {', '.join(repr(port.name) for port in seeds)} are all declared SeedInput; a node has one seed"
    for port in inputs.values():
        if isinstance(port.role, SeedRole) and port.type != "int":
            return f"seed input '{port.name}' must be an int, not {port.type}"
        if isinstance(port.role, FileRole) and port.type != "text":
            return f"file input '{port.name}' must be text, not {port.type}"
    return None
