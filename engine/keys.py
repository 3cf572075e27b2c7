"""Merkle cache keys: sha256 over a node's type, version, canonical literal inputs and its upstream keys.

No value is hashed: an edge contributes the producer's key and output name, so a key costs the same for a
64-pixel image and a 4K video, and a whole graph's keys are computed before anything runs. Key material is a
string per input, tagged so that no literal can collide with a link: ``v<json>``, ``l<key>.<output>``,
``L<json list of item materials>``, ``m<kind>:<content sha256>`` for media given from outside.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any


def _reject(value: Any) -> Any:
    raise TypeError(f"a {type(value).__name__} cannot be part of a cache key")


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_reject)
_STRING = json.encoder.encode_basestring
quoted = _STRING
"""A text as a JSON string (what ``canonical`` gives for text)."""


def canonical(value: Any) -> str:
    """Canonical JSON of a value (sorted keys, no spaces, UTF-8 kept); text and numbers without the encoder's
    per-call set-up, which costs more than encoding them. Keys depend on these exact strings."""
    kind = type(value)
    if kind is str:
        return _STRING(value)
    if kind is int:
        return int.__repr__(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is float and value - value == 0:
        return float.__repr__(value)
    return _CANONICAL.encode(value)


def literal_material(value: Any) -> str:
    return "v" + canonical(value)


def link_material(upstream_key: str, output: str) -> str:
    return f"l{upstream_key}.{output}"


def list_material(items: list[str]) -> str:
    return "L" + _CANONICAL.encode(items)


def media_material(kind: str, digest: str) -> str:
    return f"m{kind}:{digest}"


def key_head(type_id: str, version: str) -> str:
    """The start of every key of a node type: its type id and version."""
    return _CANONICAL.encode([type_id, version])


def key_prefix(type_id: str, version: str, literals: Iterable[tuple[str, Any]], head: str | None = None) -> str:
    """The part of a key fixed by the graph document: type, version and literal inputs (sorted by name)."""
    parts = [key_head(type_id, version) if head is None else head]
    for name, value in sorted(literals):
        parts.append(f"{_STRING(name)}=v{canonical(value)};")
    return "".join(parts)


def input_part(name: str, material: str) -> str:
    return f"{_STRING(name)}={material};"


def finish_key(parts: list[str], fingerprint: str | None) -> str:
    if fingerprint is not None:
        parts.append(f"#fingerprint={fingerprint}")
    return hashlib.sha256("".join(parts).encode()).hexdigest()
