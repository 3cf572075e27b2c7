"""Step previews on the server: ``node.preview`` events in a run's SSE stream link to small artifacts the API
serves, each node keeps only its latest few while the run goes and its last one after it, and ``off`` makes none."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import httpx2
import pytest
from PIL import Image as PILImage

from nodeforge.engine.files import FileAccess
from nodeforge.engine.previews import PreviewPicture
from nodeforge.server.app import create_app
from nodeforge.server.artifact_store import PREVIEWS_KEPT, ArtifactStore
from nodeforge.server.run_store import RunStore
from nodeforge.server.settings import Settings
from tests.server.support import LiveServer, parse_sse, wait_finished

VIDEO = {"name": "clip", "nodes": {"clip": {"type": "video.generate", "inputs": {
    "prompt": "a red fox running in the snow", "model": "tiny/wan", "frames": 9, "width": 64, "height": 64,
    "steps": 3}}}, "outputs": {"video": {"from": "clip.video"}}}


@pytest.fixture
def models(shared_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    return shared_models_dir


def streamed_run(live: LiveServer) -> tuple[httpx2.Client, list[dict[str, object]]]:
    http = httpx2.Client(base_url=live.url, timeout=300)
    run_id = http.post("/api/runs", json={"graph": VIDEO}).json()["id"]
    events = [event["data"] for event in parse_sse(http.get(f"/api/runs/{run_id}/events").text)]
    assert wait_finished(http, run_id, timeout=300)["status"] == "succeeded"
    return http, events


def test_a_runs_stream_links_its_step_previews(settings: Settings, models: Path) -> None:
    with LiveServer(create_app(settings)) as live:
        http, events = streamed_run(live)
        try:
            previews = [event for event in events if event["kind"] == "node.preview"]
            assert previews and previews[0]["step"] == 1 and previews[0]["total"] == 3
            assert [event["step"] for event in previews] == sorted({event["step"] for event in previews})
            kinds = [event["kind"] for event in events]
            assert kinds.index("node.preview") < kinds.index("node.finished")
            last = previews[-1]
            assert str(last["link"]).startswith("/api/artifacts/") and (last["width"], last["height"]) == (8, 8)
            answer = http.get(str(last["link"]))
            assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
            with PILImage.open(io.BytesIO(answer.content)) as picture:
                assert picture.format == "JPEG" and picture.size == (8, 8)
            for earlier in previews[:-1]:  # after the run only each node's last preview is kept
                assert http.get(str(earlier["link"])).status_code == 404
        finally:
            http.close()


def test_previews_off(settings: Settings, models: Path) -> None:
    with LiveServer(create_app(replace(settings, preview_method="off"))) as live:
        http, events = streamed_run(live)
        http.close()
    assert not [event for event in events if event["kind"] == "node.preview"]


def test_each_node_keeps_its_latest_previews_then_its_last(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    try:
        artifacts = ArtifactStore(tmp_path, store, FileAccess())
        sink = artifacts.previews("r1")

        def stored(node: str, step: int) -> str:
            picture = PreviewPicture("r1", node, step, 9, f"{node}{step}".encode(), "image/jpeg", ".jpg", 8, 8)
            return sink.store(picture).removeprefix("/api/artifacts/")

        links = [stored("a", step) for step in range(1, 7)]
        other = stored("b", 1)
        held = [link for link in links if artifacts.open(link) is not None]
        assert held == links[-PREVIEWS_KEPT:] and artifacts.open(other) is not None
        assert len(list(artifacts.files.iterdir())) == PREVIEWS_KEPT + 1
        found = artifacts.open(links[-1])
        assert found is not None and found[1].kind == "preview" and found[0].read_bytes() == b"a6"
        sink.settle()
        assert [link for link in [*links, other] if artifacts.open(link) is not None] == [links[-1], other]
        assert len(list(artifacts.files.iterdir())) == 2
    finally:
        store.close()
