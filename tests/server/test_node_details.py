"""What a node records about itself (its memory mode, and why) is kept with the run: GET /api/runs/{id} shows it
after the run, and a database made before the column existed gains it in place."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import wait_finished


def test_the_run_record_keeps_each_node_memory_choice(settings: Settings, shared_models_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    chosen = dataclasses.replace(settings, memory_mode="auto", vram_budget="1GB")
    graph = {"nodes": {"draw": {"type": "image.generate", "inputs": {
        "prompt": "a fox", "model": "tiny/sd", "width": 64, "height": 64, "steps": 1}}},
        "outputs": {"image": {"from": "draw.image"}}}
    with TestClient(create_app(chosen), base_url="http://127.0.0.1:8188") as client:
        run_id = client.post("/api/runs", json={"graph": graph}).json()["id"]
        record = wait_finished(client, run_id)
        assert record["status"] == "succeeded", record
        memory = client.get(f"/api/runs/{run_id}").json()["nodes"]["draw"]["details"]["memory"]
    assert memory["asked"] == "auto" and memory["mode"] == "gpu" and "reason" in memory


def test_an_older_database_gains_the_details_column(tmp_path: Path) -> None:
    from nodeforge.server.run_store import RunStore

    path = tmp_path / "runs.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE nodes (run TEXT NOT NULL, node TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,"
               " device TEXT, started_at REAL, finished_at REAL, seconds REAL, error TEXT, traceback TEXT,"
               " PRIMARY KEY (run, node)) WITHOUT ROWID")
    db.commit()
    db.close()
    RunStore(path).close()
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(nodes)")}
    assert "details" in columns
