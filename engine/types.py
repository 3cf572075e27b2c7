"""Port types: the names graphs and the editor use, how Python annotations map onto them, and which links fit.

A port type is a short string: ``text``, ``int``, ``float``, ``bool``, ``json``, ``image``, ``audio``, ``video``,
``mask`` (a one-channel image: where to repaint), ``control`` (steering for a diffusion node), or ``list[<item>]``.
Strings keep validation cheap and travel unchanged into JSON Schema and the editor.
"""

from __future__ import annotations

import types as pytypes
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel

from nodeforge.engine.values import Audio, Control, Image, Mask, Video

SCALAR_TYPES = ("text", "int", "float", "bool", "json")
MEDIA_TYPES = ("image", "audio", "video")
LINK_ONLY_TYPES = (*MEDIA_TYPES, "mask", "control")  # values that come from a link or a graph input, never a literal
GraphInputType = Literal["text", "int", "float", "bool", "json", "image", "audio", "video"]  # SCALAR_ + MEDIA_TYPES
_JSON_COMPATIBLE = {"text", "int", "float", "bool", "json"}

_BY_CLASS: dict[Any, str] = {str: "text", int: "int", float: "float", bool: "bool", Image: "image",
                             Mask: "mask", Control: "control", Audio: "audio", Video: "video", dict: "json",
                             Any: "json"}


def list_item(port_type: str) -> str | None:
    """The item type of ``list[x]``, else None."""
    if port_type.startswith("list[") and port_type.endswith("]"):
        return port_type[5:-1]
    return None


def port_type_of(annotation: Any) -> tuple[str, bool]:
    """Map a Python annotation to (port type, optional). ``X | None`` is optional X; models and dicts are json."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return port_type_of(typing.get_args(annotation)[0])
    if origin in (Union, pytypes.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        if len(members) == 1:
            return port_type_of(members[0])[0], optional
        kinds = {port_type_of(m)[0] for m in members}
        return (kinds.pop() if len(kinds) == 1 else "json"), optional
    if origin is Literal:
        values = typing.get_args(annotation)
        kinds = {_BY_CLASS.get(type(v), "json") for v in values}
        return (kinds.pop() if len(kinds) == 1 else "json"), False
    if origin in (list, tuple, typing.Sequence):
        args = typing.get_args(annotation)
        item = port_type_of(args[0])[0] if args else "json"
        return (f"list[{item}]" if item != "json" else "json"), False
    if origin is dict:
        return "json", False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "json", False
    if annotation in _BY_CLASS:
        return _BY_CLASS[annotation], False
    raise TypeError(f"no port type for annotation {annotation!r}")


def is_assignable(source: str, target: str) -> bool:
    """Whether an output of type ``source`` may feed an input of type ``target`` (int widens to float, a mask is a
    grayscale image)."""
    if source == target:
        return True
    if (source, target) in (("int", "float"), ("mask", "image")):
        return True
    if target == "json":
        return source in _JSON_COMPATIBLE or (list_item(source) or "") in _JSON_COMPATIBLE
    item = list_item(target)
    if item is not None:
        source_item = list_item(source)
        return is_assignable(source_item if source_item is not None else source, item)
    return False


def link_table() -> dict[str, list[str]]:
    """For every port type (each base type and a list of it), the port types its outputs may feed: the one rule
    above as data, which the editor reads from ``GET /api/nodes`` instead of keeping a copy of it."""
    base = (*SCALAR_TYPES, *LINK_ONLY_TYPES)
    types = [*base, *(f"list[{item}]" for item in base)]
    return {source: [target for target in types if is_assignable(source, target)] for source in types}


_PY_TYPES: dict[str, Any] = {"text": str, "int": int, "float": float, "bool": bool, "json": Any,
                             "image": Image, "mask": Mask, "control": Control, "audio": Audio,
                             "video": Video}


def python_type(port_type: str) -> Any:
    """The Python type that holds values of a port type (for ports declared by name, such as extra inputs)."""
    item = list_item(port_type)
    if item is not None:
        return pytypes.GenericAlias(list, (python_type(item),))  # list[item type], built at run time
    return _PY_TYPES[port_type]
