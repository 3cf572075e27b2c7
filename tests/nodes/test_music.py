"""audio.music on the tiny MusicGen (mono, stereo, melody) and Stable Audio models: exact durations, rates and
channels, seeded sampling, progress, melody conditioning, and bad input reported with the node and input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import load_document, parse_document
from nodeforge.engine.errors import GraphValidationError
from nodeforge.engine.events import Event
from nodeforge.engine.media_io import read_video, read_wav
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import Session
from nodeforge.engine.values import Audio
from tests.nodes.media_support import media_executor, run_nodes, sine

__all__ = ["media_executor"]

PROMPT = "a calm piano melody with soft drums"
ROOT = Path(__file__).resolve().parents[2]


def music(**inputs: Any) -> dict[str, Any]:
    return {"type": "audio.music", "inputs": {"prompt": PROMPT, "model": "tiny/musicgen", "seconds": 0.5,
                                              "seed": 1, **inputs}}


def make(session: Session, events: list[Event] | None = None, **inputs: Any) -> Audio:
    result = run_nodes(session, {"tune": music(**inputs)}, {"audio": "tune.audio"}, events=events)
    assert result.record.status == "succeeded", result.record.error
    audio: Audio = result.values["audio"]
    return audio


@pytest.mark.parametrize(("model", "seconds", "rate", "channels"), [
    ("tiny/musicgen", 0.5, 8000, 1), ("tiny/musicgen", 0.73, 8000, 1), ("tiny/musicgen-stereo", 0.4, 8000, 2),
    ("tiny/stable-audio", 0.6, 8000, 2)])
def test_the_clip_is_exactly_as_long_as_asked_at_the_models_rate(media_executor: Session, model: str,
                                                                  seconds: float, rate: int, channels: int) -> None:
    audio = make(media_executor, model=model, seconds=seconds, steps=3, guidance_scale=4.0)
    assert audio.sample_rate == rate
    assert tuple(audio.tensor.shape) == (channels, round(seconds * rate))
    assert float(audio.tensor.abs().max()) > 0  # noise, but sound: not the silence of padding
    if channels == 2:
        assert not bool((audio.tensor[0] == audio.tensor[1]).all())


@pytest.mark.parametrize("model", ["tiny/musicgen", "tiny/stable-audio"])
def test_the_same_seed_gives_the_same_samples_and_another_seed_others(media_executor: Session, model: str) -> None:
    first, again, other = (make(media_executor, model=model, seed=seed, steps=2) for seed in (5, 5, 6))
    assert bool((first.tensor == again.tensor).all())
    assert not bool((first.tensor == other.tensor).all())


def test_sampling_leaves_the_global_rng_alone(media_executor: Session) -> None:
    import torch

    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    make(media_executor, seed=9)
    assert bool((torch.rand(4) == expected).all())


def test_musicgen_reports_each_token_and_stable_audio_each_step(media_executor: Session) -> None:
    events: list[Event] = []
    make(media_executor, events=events, seconds=0.2)
    steps = [(e.data.step, e.data.total) for e in events if e.kind == "node.progress"]
    tokens = 10 + 1  # 0.2 s at 50 frames a second, and the one step the second codebook starts late
    assert steps == [(i, tokens) for i in range(1, tokens + 1)]
    events.clear()
    make(media_executor, events=events, model="tiny/stable-audio", steps=4)
    steps = [(e.data.step, e.data.total) for e in events if e.kind == "node.progress"]
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_a_melody_model_follows_the_melody(media_executor: Session) -> None:
    def play(melody: Audio | None) -> Audio:
        nodes = {"tune": music(model="tiny/musicgen-melody", seconds=0.4)}
        document: dict[str, Any] = {"nodes": nodes, "outputs": {"audio": {"from": "tune.audio"}}}
        if melody is not None:
            document["inputs"] = {"melody": {"type": "audio"}}
            nodes["tune"]["inputs"]["melody"] = {"input": "melody"}
        result = media_executor.run(parse_document(document), {"melody": melody} if melody is not None else {})
        assert result.record.status == "succeeded", result.record.error
        audio: Audio = result.values["audio"]
        return audio

    a_note, other_note = Audio(sine(1.0, 16000, 440.0, channels=2), 16000), Audio(sine(1.0, 16000, 262.0), 16000)
    plain, followed, other = play(None), play(a_note), play(other_note)
    assert followed.sample_rate == 8000 and tuple(followed.tensor.shape) == (1, 3200)
    assert not bool((followed.tensor == plain.tensor).all())
    assert not bool((followed.tensor == other.tensor).all())


def test_melody_chroma_finds_the_pitch_class() -> None:
    from nodeforge.nodes.music_backends import melody_chroma

    settings = {"sampling_rate": 8000, "n_fft": 4096, "hop_length": 1024, "num_chroma": 12, "chunk_length": 30}
    chroma = melody_chroma(Audio(sine(1.0, 8000, 440.0), 8000), settings)
    assert tuple(chroma.shape) == (1, 8, 12) and bool((chroma.sum(-1) == 1).all())
    assert int(chroma[0, 4].argmax()) == 9  # A, counting from C (librosa's chroma order)


def test_a_melody_for_a_model_without_melody_is_an_error_naming_the_input(media_executor: Session) -> None:
    nodes = {"beep": {"type": "audio.speech", "inputs": {"text": "Hello there.", "model": "tiny/vits"}},
             "tune": music(melody={"from": "beep.audio"})}
    with pytest.raises(GraphValidationError) as caught:
        run_nodes(media_executor, nodes)
    issues = {(issue.node, issue.input): issue.message for issue in caught.value.issues}
    assert "takes no melody" in issues[("tune", "melody")]
    nodes["name"] = {"type": "text.value", "inputs": {"value": "tiny/musicgen"}}
    nodes["tune"]["inputs"]["model"] = {"from": "name.text"}
    node = run_nodes(media_executor, nodes).record.nodes["tune"]
    assert node.status == "failed"
    assert "input 'melody'" in node.error and "takes no melody" in node.error


def test_bad_literals_are_reported_before_anything_runs(media_executor: Session) -> None:
    nodes = {"a": music(model="tiny/nope"), "b": music(model="tiny/vits"), "c": music(seconds=0),
             "d": music(seconds=1000)}
    with pytest.raises(GraphValidationError) as caught:
        run_nodes(media_executor, nodes)
    issues = {(issue.node, issue.input): issue.message for issue in caught.value.issues}
    assert {("a", "model"), ("b", "model"), ("c", "seconds"), ("d", "seconds")} <= set(issues)
    assert "unknown tiny model 'tiny/nope'" in issues[("a", "model")]
    assert "vits model" in issues[("b", "model")]
    assert "greater than 0" in issues[("c", "seconds")] and "less than or equal to 300" in issues[("d", "seconds")]


def test_an_unknown_model_is_an_error_naming_the_input(media_executor: Session) -> None:
    node = run_nodes(media_executor, {"tune": music(model="no-such-music-model")}).record.nodes["tune"]
    assert node.status == "failed"
    assert "input 'model'" in node.error and "unknown model 'no-such-music-model'" in node.error


def test_longer_than_the_model_makes_is_an_error_naming_seconds(media_executor: Session) -> None:
    node = run_nodes(media_executor, {"tune": music(model="tiny/stable-audio", seconds=2.0)}).record.nodes["tune"]
    assert node.status == "failed"
    assert "input 'seconds'" in node.error and "at most 1.02 s" in node.error


def test_a_musicgen_folder_by_path_is_read_from_its_config(media_executor: Session) -> None:
    from nodeforge.nodes.models import build_resolver

    folder = str(build_resolver().resolve("tiny/musicgen", None).path)
    assert tuple(make(media_executor, model=folder, seconds=0.25).tensor.shape) == (1, 2000)
    document = {"inputs": {"melody": {"type": "audio"}},
                "nodes": {"tune": music(model=folder, melody={"input": "melody"})}}
    result = media_executor.run(parse_document(document), {"melody": Audio(sine(0.5, 8000), 8000)})
    node = result.record.nodes["tune"]
    assert node.status == "failed"
    assert "input 'melody'" in node.error and "without melody conditioning" in node.error


def test_the_music_video_graph_animates_the_sample_with_music_as_its_sound_track(
        tmp_path: Path, shared_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    session = Session(GraphEnv(Registry.discover(), GraphLibrary([ROOT / "graphs"])), None, data_dir=tmp_path)
    result = session.run(load_document(ROOT / "graphs" / "music-video.json"), out_dir=tmp_path / "out")
    assert result.record.status == "succeeded", result.record.error
    music = read_wav(Path(result.record.outputs["music"]["path"]))
    assert music.sample_rate == 8000 and tuple(music.tensor.shape) == (1, 17000)  # 17 frames at 8 fps: 2.125 s
    video = read_video(Path(result.record.outputs["video"]))
    assert tuple(video.frames.shape) == (17, 3, 64, 64) and video.fps == 8
    assert video.audio is not None and video.audio.sample_rate == 8000
    assert abs(video.audio.seconds - 2.125) < 0.2  # AAC codes whole frames of 1024 samples and a priming delay
