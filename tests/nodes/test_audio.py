"""audio.speech and audio.transcribe: the real piper-joe voice and whisper-tiny.en from wheels, tiny VITS and
Whisper models, the system's espeak-ng, and bad input reported with the input's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphValidationError, NodeError
from nodeforge.engine.events import Event
from nodeforge.engine.session import Session
from nodeforge.engine.values import Audio
from nodeforge.nodes.audio_ops import fit_length, resample, split_sentences
from nodeforge.nodes.speech import espeak_program
from tests.nodes.media_support import media_executor, run_nodes, sine, words

__all__ = ["media_executor"]

SENTENCE = "The quick brown fox jumps over the lazy dog."


def test_piper_speech_transcribed_by_whisper_gives_the_sentence_back(media_executor: Session) -> None:
    result = run_nodes(media_executor, {
        "line": {"type": "text.template", "inputs": {"template": "The quick brown {animal} jumps over the lazy dog.",
                                                     "animal": "fox"}},
        "say": {"type": "audio.speech", "inputs": {"text": {"from": "line.text"}, "model": "piper-joe"}},
        "hear": {"type": "audio.transcribe", "inputs": {"audio": {"from": "say.audio"},
                                                        "model": "whisper-tiny.en", "language": "en"}}},
        {"speech": "say.audio", "text": "hear.text"})
    assert result.record.status == "succeeded", result.record.error
    speech: Audio = result.values["speech"]
    assert speech.sample_rate == 22050 and 1.5 < speech.seconds < 6
    assert words(result.values["text"]) == words(SENTENCE)


def test_long_text_is_spoken_sentence_by_sentence(media_executor: Session) -> None:
    events: list[Event] = []
    text = "One small step. " * 3 + "And a question at the end?"
    result = run_nodes(media_executor, {"say": {"type": "audio.speech", "inputs": {"text": text, "model": "piper-joe",
                                                                                    "speed": 1.5}}},
                       {"speech": "say.audio"}, listener=events.append)
    assert result.record.status == "succeeded", result.record.error
    steps = [(e.data.step, e.data.total) for e in events if e.kind == "node.progress"]
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert split_sentences(text) == ["One small step.", "One small step.", "One small step.",
                                     "And a question at the end?"]


def test_vits_is_reproducible_with_a_seed_and_speed_shortens_it(media_executor: Session) -> None:
    def speak(seed: int, speed: float = 1.0) -> Audio:
        result = run_nodes(media_executor, {"say": {"type": "audio.speech", "inputs": {
            "text": "Hello there. A second sentence.", "model": "tiny/vits", "seed": seed, "speed": speed}}},
            {"speech": "say.audio"})
        assert result.record.status == "succeeded", result.record.error
        return result.values["speech"]

    first, again, other = speak(3), speak(3), speak(4)
    assert first.sample_rate == 16000
    assert first.tensor.shape == again.tensor.shape and bool((first.tensor == again.tensor).all())
    assert first.tensor.shape != other.tensor.shape or not bool((first.tensor == other.tensor).all())
    assert speak(3, speed=3.0).seconds < first.seconds


def test_tiny_whisper_runs_on_stereo_audio_at_another_rate(media_executor: Session) -> None:
    import torch

    graph = parse_document({"inputs": {"clip": {"type": "audio"}},
                            "nodes": {"hear": {"type": "audio.transcribe", "inputs": {
                                "audio": {"input": "clip"}, "model": "tiny/whisper", "language": "en"}}},
                            "outputs": {"text": {"from": "hear.text"}}})
    noise = torch.randn(2, 44100, generator=torch.Generator().manual_seed(0))
    clip = Audio(sine(1.0, 44100, channels=2) + 0.01 * noise, 44100)
    result = media_executor.run(graph, {"clip": clip})
    assert result.record.status == "succeeded", result.record.error
    assert isinstance(result.values["text"], str)


@pytest.mark.parametrize(("samples", "reason"), [(16000, "silent"), (0, "empty")])
def test_silent_or_empty_audio_is_a_node_error_naming_the_input(media_executor: Session, samples: int,
                                                                reason: str) -> None:
    import torch

    clip = Audio(torch.zeros(1, samples), 16000)
    graph = parse_document({"inputs": {"clip": {"type": "audio"}},
                            "nodes": {"hear": {"type": "audio.transcribe", "inputs": {"audio": {"input": "clip"}}}}})
    node = media_executor.run(graph, {"clip": clip}).record.nodes["hear"]
    assert node.status == "failed"
    assert "input 'audio'" in node.error and reason in node.error


def test_bad_literals_are_reported_before_anything_runs(media_executor: Session) -> None:
    nodes = {
        "a": {"type": "audio.speech", "inputs": {"text": "x", "model": "piper-joe", "voice": "alice"}},
        "b": {"type": "audio.speech", "inputs": {"text": "x", "model": "tiny/wan"}},
        "c": {"type": "audio.speech", "inputs": {"text": "x", "speed": 9}},
        "say": {"type": "audio.speech", "inputs": {"text": "x", "model": "tiny/vits"}},
        "d": {"type": "audio.transcribe", "inputs": {"audio": {"from": "say.audio"}, "language": "de"}},
        "e": {"type": "audio.transcribe", "inputs": {"audio": {"from": "say.audio"}, "model": "tiny/whisper",
                                                     "language": "klingon"}},
    }
    with pytest.raises(GraphValidationError) as caught:
        run_nodes(media_executor, nodes)
    issues = {(issue.node, issue.input): issue.message for issue in caught.value.issues}
    assert {("a", "voice"), ("b", "model"), ("c", "speed"), ("d", "language"), ("e", "language")} <= set(issues)
    assert issues[("a", "voice")] == ("unknown voice 'alice': piper-joe has a single voice, 'joe' (or leave voice "
                                      "empty for its default)")
    assert "only knows en" in issues[("d", "language")]
    assert "unknown language 'klingon'" in issues[("e", "language")]


def test_a_one_voice_piper_model_answers_to_its_own_name(media_executor: Session) -> None:
    """piper-joe's one voice is called joe (its dataset): naming it is the default voice, any other name an
    error that says which one there is."""
    result = run_nodes(media_executor, {"say": {"type": "audio.speech", "inputs": {
        "text": "Hi.", "model": "piper-joe", "voice": "joe"}}}, {"speech": "say.audio"})
    assert result.record.status == "succeeded", result.record.error
    assert result.values["speech"].sample_rate == 22050
    name = run_nodes(media_executor, {"name": {"type": "text.value", "inputs": {"value": "bob"}},
                                      "say": {"type": "audio.speech", "inputs": {
                                          "text": "Hi.", "model": "piper-joe", "voice": {"from": "name.text"}}}})
    assert name.record.nodes["say"].error == (
        "node 'say' (audio.speech), input 'voice': unknown voice 'bob': piper-joe has a single voice, 'joe' (or "
        "leave voice empty for its default)")


def test_piper_voice_by_path(media_executor: Session) -> None:
    from nodeforge.nodes.models import build_resolver

    path = build_resolver().resolve("piper-joe", None).path
    result = run_nodes(media_executor, {"say": {"type": "audio.speech", "inputs": {"text": "Hi.", "model": str(path)}}},
                       {"speech": "say.audio"})
    assert result.record.status == "succeeded", result.record.error
    assert result.values["speech"].sample_rate == 22050


@pytest.mark.skipif(espeak_program() is None, reason="espeak-ng is not installed")
def test_espeak_speaks_and_knows_its_voices(media_executor: Session) -> None:
    result = run_nodes(media_executor, {"say": {"type": "audio.speech", "inputs": {
        "text": "Hello world. Good morning.", "model": "espeak", "voice": "en-gb"}}}, {"speech": "say.audio"})
    assert result.record.status == "succeeded", result.record.error
    assert result.values["speech"].seconds > 1.0
    with pytest.raises(GraphValidationError, match="unknown espeak-ng voice 'xx-nope'"):
        run_nodes(media_executor, {"say": {"type": "audio.speech", "inputs": {"text": "x", "model": "espeak",
                                                                              "voice": "xx-nope"}}})


def test_espeak_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nodeforge.nodes.speech import open_espeak

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NodeError, match="apt-get install espeak-ng"):
        open_espeak()


def test_resampling_keeps_duration_and_pitch() -> None:
    import torch

    audio = resample(Audio(sine(1.0, 22050), 22050), 16000)
    assert audio.sample_rate == 16000 and audio.tensor.shape == (1, 16000)
    spectrum = torch.fft.rfft(audio.tensor[0]).abs()
    assert int(spectrum.argmax()) == 440


def test_fit_length_trims_and_pads() -> None:
    audio = Audio(sine(1.0, 8000), 8000)
    trimmed, padded = fit_length(audio, 6000), fit_length(audio, 10000)
    assert trimmed.audio.tensor.shape == (1, 6000) and trimmed.trimmed == 0.25 and trimmed.padded == 0
    assert padded.audio.tensor.shape == (1, 10000) and padded.padded == 0.25
    assert float(padded.audio.tensor[0, 8000:].abs().max()) == 0.0


def test_a_linked_model_is_checked_when_the_node_runs(media_executor: Session) -> None:
    result = run_nodes(media_executor, {
        "name": {"type": "text.value", "inputs": {"value": "tiny/vits"}},
        "say": {"type": "audio.speech", "inputs": {"text": "Hi.", "model": {"from": "name.text"}, "voice": "3"}}})
    node = result.record.nodes["say"]
    assert node.status == "failed"
    assert "input 'voice'" in node.error and "single voice" in node.error
