"""Fixtures for the server: settings on a temporary data dir with the test plugin nodes, an in-process client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import PLUGINS


@pytest.fixture
def gates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "gates"
    folder.mkdir()
    monkeypatch.setenv("NODEFORGE_TEST_GATES", str(folder))
    return folder


@pytest.fixture
def settings(tmp_path: Path, gates: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", devices="cpu", plugins=(PLUGINS,), watch=False,
                    heartbeat_seconds=0.2)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8188") as test_client:
        yield test_client
