"""The quickstart (what ``make run`` runs) through the CLI, offline: every output is produced, the real models do
real work (the LLM writes English, its speech is transcribed back, the picture is 4x larger), and a re-run
executes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nodeforge.engine.media_io import read_video, read_wav
from tests.nodes.media_support import words
from tests.support.english import dictionary_share

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "nodeforge.engine.cli"]


def run_quickstart(tmp_path: Path, models: Path, out: str) -> dict:
    env = {**os.environ, "NODEFORGE_MODELS_DIR": str(models), "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([*CLI, "run", str(ROOT / "graphs" / "quickstart.json"), "--json", "--out",
                           str(tmp_path / out), "--data-dir", str(tmp_path / "data")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> tuple[dict, Path]:
    tmp_path = tmp_path_factory.mktemp("quickstart")
    return run_quickstart(tmp_path, shared_models_dir, "out"), tmp_path


def test_quickstart_produces_every_output_offline(first_run: tuple[dict, Path]) -> None:
    from PIL import Image

    record, _ = first_run
    assert record["status"] == "succeeded"
    assert {node["status"] for node in record["nodes"].values()} == {"succeeded"}
    outputs = record["outputs"]
    assert set(outputs) == {"speech", "transcript", "upscaled", "story", "still", "movie"}
    speech = read_wav(Path(outputs["speech"]["path"]))
    assert speech.sample_rate == 22050 and speech.seconds > 1
    # smollm2-135m-instruct writes a real sentence (its wording differs between backends, so no fixed text);
    # Piper draws its noise inside onnxruntime (no seed), so whisper-tiny.en may hear a word or two differently.
    story = outputs["story"]
    assert isinstance(story, str) and len(words(story)) >= 4 and dictionary_share(story) >= 0.8, story
    heard = set(words(outputs["transcript"]))
    assert sum(word in heard for word in words(story)) >= 0.6 * len(words(story)), (story, outputs["transcript"])
    with Image.open(outputs["upscaled"]["path"]) as upscaled, Image.open(ROOT / "graphs/assets/sample.png") as small:
        assert upscaled.size == (small.width * 4, small.height * 4)
    with Image.open(outputs["still"]["path"]) as still:
        assert still.size == (128, 128)
    movie = read_video(Path(outputs["movie"]["path"]))
    assert tuple(movie.frames.shape) == (33, 3, 128, 128) and movie.fps == 8
    assert movie.audio is not None and abs(movie.audio.seconds - 33 / 8) < 0.15


def test_quickstart_rerun_executes_nothing(first_run: tuple[dict, Path], shared_models_dir: Path) -> None:
    first, tmp_path = first_run
    again = run_quickstart(tmp_path, shared_models_dir, "again")
    assert {node["status"] for node in again["nodes"].values()} == {"cached"}
    assert again["outputs"]["transcript"] == first["outputs"]["transcript"]
    assert Path(again["outputs"]["movie"]["path"]).is_file()
