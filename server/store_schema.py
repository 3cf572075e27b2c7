"""The run store's SQLite schema, and the columns later versions added to databases made before them."""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    graph TEXT NOT NULL,
    document TEXT NOT NULL,
    inputs TEXT NOT NULL,
    shown_inputs TEXT,
    status TEXT NOT NULL,
    error TEXT,
    seeds TEXT,
    outputs TEXT,
    devices TEXT,
    idempotency_key TEXT UNIQUE,
    request TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, seq);
CREATE TABLE IF NOT EXISTS nodes (
    run TEXT NOT NULL,
    node TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    device TEXT,
    started_at REAL,
    finished_at REAL,
    seconds REAL,
    error TEXT,
    traceback TEXT,
    details TEXT,
    PRIMARY KEY (run, node)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run, seq);
CREATE TABLE IF NOT EXISTS artifacts (
    id TEXT PRIMARY KEY,
    run TEXT,
    kind TEXT NOT NULL,
    file TEXT NOT NULL,
    media_type TEXT NOT NULL,
    filename TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL
);
"""
# Columns added after a table was first shipped: (table, column, type), added in place to an older database.
ADDED_COLUMNS = (("runs", "request", "TEXT"), ("nodes", "details", "TEXT"))


def create_schema(db: sqlite3.Connection) -> None:
    """Create the tables (no-op when present), add the columns an older database lacks, and stamp the version."""
    db.executescript(SCHEMA)
    for table, column, kind in ADDED_COLUMNS:
        if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.commit()
