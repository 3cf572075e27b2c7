"""Ports: one named input or output of a node, its port type, and how literals given to it are validated.

Ports come from a node's pydantic ``Inputs``/``Outputs`` fields (``ports_of_model``) or from a port type name
(``make_port``: extra inputs, a called graph's inputs). Validators and JSON Schemas are built on first use.
"""

from __future__ import annotations

import functools
import types as pytypes
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from pydantic import BaseModel, TypeAdapter

from nodeforge.engine.declarations import InputRole, role_of
from nodeforge.engine.types import port_type_of, python_type

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
    role: InputRole | None = field(default=None, compare=False)

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
        role = role_of(info)
        keys = role.schema_keys() if role is not None else {}

        def schema_of(name: str = name, port_type: str = port_type, keys: dict[str, Any] = keys) -> dict[str, Any]:
            return {**properties().get(name, {}), "x-nodeforge-type": port_type, **keys}

        constrained = any(not isinstance(item, InputRole) for item in info.metadata)
        literals = Literals(info.rebuild_annotation(), schema_of,  # the annotation with its metadata
                            exact_types(info.annotation, constrained=constrained))
        ports[name] = Port(name=name, type=port_type, required=required and not optional, default=default,
                           description=info.description or "", literals=literals, role=role)
    return ports


