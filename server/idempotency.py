"""Idempotency-Key: a retry with the same key and the same request gets the run the first one made; the same key
with another request is a conflict, never a silent answer about a different run."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any


class IdempotencyConflict(Exception):
    """An Idempotency-Key that an earlier, different request already used."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"the Idempotency-Key '{key[:200]}' was already used for a different request; send a new "
                         "key for a new request")


def fingerprint(value: Any) -> str:
    """A digest of a JSON value that does not depend on key order: what a request is remembered by."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def keyed_run(db: sqlite3.Connection, key: str, request: str | None) -> str | None:
    """The id of the run ``key`` made, if any; raises IdempotencyConflict when it was made for another request
    (runs stored before requests were remembered, or without a fingerprint, match any)."""
    row = db.execute("SELECT id, request FROM runs WHERE idempotency_key = ?", (key,)).fetchone()
    if row is None:
        return None
    if None not in (row[1], request) and row[1] != request:
        raise IdempotencyConflict(key)
    return row[0]
