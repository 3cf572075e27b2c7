"""Merkle cache keys: sha256 over a node's type, version, canonical literal inputs and its upstream keys.

No value is hashed: an edge contributes the producer's key and output name, so a key costs the same for a
64-pixel image and a 4K video, and a whole graph's keys are computed before anything runs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces; the same data always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_reject)


def _reject(value: Any) -> Any:
    raise TypeError(f"a {type(value).__name__} cannot be part of a cache key")


def node_key(type_id: str, version: str, inputs: dict[str, Any], fingerprint: str | None) -> str:
    """The key of one node from its key material (``inputs`` maps input name to literal or link material)."""
    material = canonical_json([type_id, version, inputs, fingerprint])
    return hashlib.sha256(material.encode()).hexdigest()


def literal_material(value: Any) -> list[Any]:
    """Key material of a literal (tagged so that no literal can collide with a link)."""
    return ["v", value]


def link_material(upstream_key: str, output: str) -> list[str]:
    return ["l", upstream_key, output]


def list_material(items: list[Any]) -> list[Any]:
    return ["L", items]
