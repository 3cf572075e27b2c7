"""Audio nodes: text to speech (Piper, VITS/MMS, espeak-ng) and speech to text (faster-whisper, transformers Whisper).

The backend follows from the model: ``piper-joe`` (a real voice shipped in a wheel) or any Piper ``.onnx``,
``tiny/vits`` or a VITS/MMS folder, ``espeak``; ``whisper-tiny.en`` (real, CTranslate2) or a CTranslate2 folder,
``tiny/whisper`` or a transformers Whisper folder; ``openai:<model>`` for an OpenAI-compatible server's speech or
transcriptions API (``nodes/openai_media_backend.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import ModelInput, SeedInput, TextInput
from nodeforge.engine.errors import NodeError
from nodeforge.engine.model_source import ModelSource, ResolvedModel
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Audio
from nodeforge.nodes import openai_media_backend, recognition, speech
from nodeforge.nodes.audio_ops import concat, loudness_problem, resample, split_sentences, to_mono
from nodeforge.nodes.family_helpers import literal

KNOWN_LANGUAGES = {"whisper-tiny.en": frozenset({"en"}), "tiny/whisper": frozenset({"en"})}
SPEED_RANGE = (0.25, 4.0)


def open_speaker(name: str, ctx: NodeContext) -> speech.Speaker:
    """The text-to-speech backend for model ``name``, loaded on the node's device."""
    if name.strip() == speech.ESPEAK:
        return speech.open_espeak()

    def build(resolved: ResolvedModel, device: str) -> speech.Speaker:
        family = speech.speech_family(name, resolved.path, resolved.family)
        if family == "piper":
            return speech.load_piper(name, resolved.path, device)
        return speech.load_vits(name, resolved.path, device)

    return ctx.models.load(name, build)


def open_recogniser(name: str, ctx: NodeContext) -> Any:
    """The speech-to-text backend for model ``name``, loaded on the node's device."""
    def build(resolved: ResolvedModel, device: str) -> Any:
        family = recognition.recognition_family(name, resolved.path, resolved.family)
        loader = recognition.load_faster_whisper if family == "faster-whisper" else \
            recognition.load_transformers_whisper
        return loader(name, resolved.path, device)

    return ctx.models.load(name, build)


class Speech(Node):
    """Speak text: ``piper-joe`` (natural en_US voice shipped in a wheel, offline), any Piper ``.onnx`` voice by
    path, ``tiny/vits`` or a VITS/MMS model (e.g. ``mms-tts-eng``), or ``espeak`` (the system's espeak-ng, any of
    its languages as ``voice``), or ``openai:<model>`` (an OpenAI-compatible speech API). Long text is spoken
    sentence by sentence. ``seed`` applies to VITS (Piper draws its noise inside onnxruntime; espeak has none)."""

    type_id = "audio.speech"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        text: str = TextInput(description="What to say")
        model: str = ModelInput("piper-joe", kind=speech.SPEAKER,
                                description="piper-joe, a Piper .onnx path, tiny/vits, a VITS folder or alias, espeak,"
                                            " or openai:<model>")
        voice: str = Field("", description="Speaker name or number for multi-speaker voices; an espeak-ng voice "
                                           "(en-us, de, fr+f3...) for espeak; empty for the default")
        speed: float = Field(1.0, ge=SPEED_RANGE[0], le=SPEED_RANGE[1], description="1 is normal, 2 twice as fast")
        seed: int = SeedInput(0, description="Noise seed (VITS); -1 draws one (recorded in the run)")

    class Outputs(NodeOutputs):
        audio: Audio

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        model = literal(literals, bound, self.Inputs, "model")
        voice = literal(literals, bound, self.Inputs, "voice")
        speed = literal(literals, bound, self.Inputs, "speed")
        if not isinstance(model, str):
            return []
        if models.remote_name(model) is not None:
            return []
        if model.strip() == speech.ESPEAK:
            problems: list[tuple[str | None, str]] = []
            if isinstance(voice, str) and (problem := speech.espeak_voice_problem(voice)):
                problems.append(("voice", problem))
            low, high = (limit / speech.ESPEAK_WPM for limit in speech.ESPEAK_WPM_RANGE)
            if isinstance(speed, int | float) and not low <= speed <= high:
                problems.append(("speed", f"espeak-ng speaks {speech.ESPEAK_WPM_RANGE[0]}-"
                                          f"{speech.ESPEAK_WPM_RANGE[1]} words a minute: speed must be within "
                                          f"{low:.2f}-{high:.2f}"))
            return problems
        if isinstance(voice, str) and voice.strip():
            voices = speech.known_voices(model, _static_paths(model, models))
            if voices is not None and voice.strip() not in voices and voice.strip() != "default":
                listed = ("a single voice" if not voices else f"a single voice, '{voices[0]}'" if len(voices) == 1
                          else f"the voices {', '.join(voices[:20])}")
                return [("voice", f"unknown voice '{voice}': {model} has {listed} (or leave voice empty for "
                                  "its default)")]
        return []

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        sentences = split_sentences(inputs.text)
        if not sentences:
            raise NodeError("there is no text to speak", input="text")
        if ctx.models.remote(inputs.model) is not None:
            ctx.progress(0, 1)
            remote = openai_media_backend.speech(inputs.model, inputs.text, voice=inputs.voice, speed=inputs.speed,
                                         data_dir=ctx.data_dir)
            ctx.progress(1, 1)
            return self.Outputs(audio=remote)
        speaker = open_speaker(inputs.model, ctx)
        parts = []
        for i, sentence in enumerate(sentences):
            parts.append(speaker.speak(sentence, voice=inputs.voice, speed=inputs.speed, seed=inputs.seed + i))
            ctx.progress(i + 1, len(sentences))
        audio = concat(parts, speaker.sample_rate, speaker.pause)
        if audio.tensor.shape[1] == 0:
            raise NodeError(f"{inputs.model} produced no audio for this text (nothing it can pronounce?)",
                            input="text")
        return self.Outputs(audio=audio)


def _static_paths(model: str, models: ModelSource) -> list[Path]:
    """Files behind a model name that are known without building or downloading (shipped voices, paths)."""
    found = models.known_files(model)
    return [found] if found is not None else []


class Transcribe(Node):
    """Transcribe speech: ``whisper-tiny.en`` (real English recognition shipped in a wheel, offline) or any
    CTranslate2 Whisper folder through faster-whisper; ``tiny/whisper`` or any transformers Whisper folder or alias
    (e.g. ``whisper-small``), or ``openai:<model>`` (an OpenAI-compatible transcriptions API). Audio is mixed to
    mono and resampled to the model's rate (16 kHz)."""

    type_id = "audio.transcribe"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        audio: Audio
        model: str = ModelInput("whisper-tiny.en", kind=recognition.RECOGNISER,
                                description="whisper-tiny.en, tiny/whisper, a Whisper folder, alias or Hub id, or "
                                            "openai:<model>")
        language: str = Field("", description="Language code (en, de, fr...); empty: the model detects it")

    class Outputs(NodeOutputs):
        text: str

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        model = literal(literals, bound, self.Inputs, "model")
        language = literal(literals, bound, self.Inputs, "language")
        if isinstance(model, str) and models.remote_name(model) is not None:
            return []  # the server knows its own languages
        if isinstance(language, str):
            known = KNOWN_LANGUAGES.get(model) if isinstance(model, str) else None
            if problem := recognition.language_problem(language, known):
                return [("language", f"{model}: {problem}" if known else problem)]
        return []

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        if problem := loudness_problem(inputs.audio):
            raise NodeError(problem, input="audio")
        language = inputs.language.strip().lower()
        if problem := recognition.language_problem(language):
            raise NodeError(problem, input="language")
        if ctx.models.remote(inputs.model) is not None:
            ctx.progress(0, 1)
            text = openai_media_backend.transcribe(inputs.model, inputs.audio, language=language, data_dir=ctx.data_dir)
            ctx.progress(1, 1)
            return self.Outputs(text=text)
        recogniser = open_recogniser(inputs.model, ctx)
        if problem := recognition.language_problem(language, recogniser.languages):
            raise NodeError(f"{inputs.model}: {problem}", input="language")
        audio = resample(to_mono(inputs.audio), recogniser.sample_rate)
        samples = audio.tensor[0].detach().float().cpu().numpy()

        def progress(done: float, total: float) -> None:
            ctx.progress(round(done * 100), max(round(total * 100), 1))

        return self.Outputs(text=recogniser.transcribe(samples, language, progress))
