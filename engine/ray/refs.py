"""Object references inside node values, swapped for numbered slots and back.

A value may hold Ray object references at its top or inside lists and dicts. Ray resolves references only when
they are direct arguments of a remote call (or the list given to ``ray.get``), so the driver pulls them out into a
flat list, leaves a ``RefSlot`` where each was, and the receiving side puts the resolved objects back in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RefSlot:
    """Where the ``index``-th reference pulled out of a value was: an extra argument of a remote call, or an item
    of one ``ray.get``."""

    index: int


def swap_refs(value: Any, refs: list[Any]) -> Any:
    """``value`` with each object reference replaced by a ``RefSlot`` of its index in ``refs``, where it is
    appended."""
    from ray import ObjectRef

    if isinstance(value, ObjectRef):
        refs.append(value)
        return RefSlot(len(refs) - 1)
    if type(value) is list:
        return [swap_refs(item, refs) for item in value]
    if type(value) is dict:
        return {key: swap_refs(item, refs) for key, item in value.items()}
    return value


def restore_refs(value: Any, resolved: list[Any] | tuple[Any, ...]) -> Any:
    """``value`` with each ``RefSlot`` replaced by the resolved object at its index."""
    if type(value) is RefSlot:
        return resolved[value.index]
    if type(value) is list:
        return [restore_refs(item, resolved) for item in value]
    if type(value) is dict:
        return {key: restore_refs(item, resolved) for key, item in value.items()}
    return value


def holds_refs(value: Any) -> bool:
    """Whether ``value`` holds an object reference anywhere ``swap_refs`` looks."""
    refs: list[Any] = []
    swap_refs(value, refs)
    return bool(refs)
