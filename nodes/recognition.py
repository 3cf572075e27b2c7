"""Speech-to-text backends, chosen by the model's layout: faster-whisper for CTranslate2 Whisper models, transformers
for Hugging Face Whisper folders. Both take mono float audio at the model's own rate (16 kHz for Whisper).

Decoding is deterministic (temperature 0, no sampling fallback), so a transcript is reproducible and cacheable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeforge.engine.declarations import ModelKind
from nodeforge.engine.errors import NodeError
from nodeforge.nodes.family_helpers import on_device, quiet_transformers, reading_model, torch_device

FAMILIES = ("faster-whisper", "whisper")
RECOGNISER = ModelKind("asr", FAMILIES, remote=True)
"""A speech recogniser: Whisper (faster-whisper or transformers), or a remote server's."""
WINDOW_SECONDS = 30  # Whisper hears 30 s at a time

# The languages Whisper was trained on (its tokenizer's language tokens).
_CODES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt la mi "
    "ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc ka be tg sd "
    "gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su yue")
WHISPER_LANGUAGES = frozenset(_CODES.split())

Progress = Callable[[float, float], None]


def language_problem(language: str, known: frozenset[str] | None = None) -> str | None:
    """Why ``language`` cannot be asked for (not a Whisper code, or not one this model knows), or None."""
    language = language.strip().lower()
    if not language:
        return None
    if language not in WHISPER_LANGUAGES:
        return f"unknown language '{language}': give a Whisper language code such as en, de, fr, ja (or leave empty)"
    if known is not None and language not in known:
        return f"this model only knows {', '.join(sorted(known))}; language '{language}' is not one of them"
    return None


@dataclass
class FasterWhisper:
    """A CTranslate2 Whisper model through faster-whisper (int8 on CPU, float16 on CUDA)."""

    model: Any
    name: str
    sample_rate: int = 16000

    @property
    def languages(self) -> frozenset[str] | None:
        return None if self.model.model.is_multilingual else frozenset({"en"})

    def transcribe(self, samples: Any, language: str, progress: Progress) -> str:
        segments, info = self.model.transcribe(samples, language=language or None, beam_size=5, temperature=0.0,
                                               condition_on_previous_text=False, vad_filter=False)
        texts = []
        for segment in segments:
            texts.append(segment.text.strip())
            progress(min(segment.end, info.duration), info.duration)
        return " ".join(text for text in texts if text)


def load_faster_whisper(name: str, path: Path, device: str) -> FasterWhisper:
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise NodeError("CTranslate2 Whisper models need the faster-whisper package: pip install faster-whisper",
                        input="model") from None
    target = torch_device(device)
    cuda = target.startswith("cuda")
    index = int(target.split(":", 1)[1]) if cuda and ":" in target else 0
    try:
        model = WhisperModel(str(path), device="cuda" if cuda else "cpu", device_index=index,
                             compute_type="float16" if cuda else "int8")
    except (RuntimeError, ValueError, OSError) as exc:
        raise NodeError(f"model '{name}' at {path} cannot be loaded by faster-whisper: {exc}", input="model") from None
    return FasterWhisper(model, name, int(model.feature_extractor.sampling_rate))


@dataclass
class TransformersWhisper:
    """A Hugging Face Whisper folder through transformers; audio longer than 30 s is heard window by window."""

    model: Any
    processor: Any
    name: str

    @property
    def sample_rate(self) -> int:
        return int(self.processor.feature_extractor.sampling_rate)

    @property
    def languages(self) -> frozenset[str] | None:
        config = self.model.generation_config
        table = getattr(config, "lang_to_id", None) or {}
        if not getattr(config, "is_multilingual", True) or not table:
            return frozenset({"en"})
        found = frozenset(token.strip("<|>") for token in table)
        return None if found >= WHISPER_LANGUAGES else found

    def to(self, device: str) -> TransformersWhisper:
        return TransformersWhisper(self.model.to(torch_device(device)), self.processor, self.name)

    def parameters(self) -> Any:
        return self.model.parameters()

    def buffers(self) -> Any:
        return self.model.buffers()

    def transcribe(self, samples: Any, language: str, progress: Progress) -> str:
        import torch

        rate = self.sample_rate
        window = WINDOW_SECONDS * rate
        total = len(samples) / rate
        multilingual = self.languages != frozenset({"en"}) or getattr(self.model.generation_config,
                                                                      "is_multilingual", False)
        options: dict[str, Any] = {"task": "transcribe"} if multilingual else {}
        if language and multilingual:
            options["language"] = language
        texts = []
        for start in range(0, len(samples), window):
            features = self.processor(samples[start:start + window], sampling_rate=rate, return_tensors="pt")
            inputs = features.input_features.to(self.model.device, self.model.dtype)
            with torch.inference_mode():
                ids = self.model.generate(inputs, **options)
            texts.append(self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip())
            progress(min((start + window) / rate, total), total)
        return " ".join(text for text in texts if text)


def load_transformers_whisper(name: str, path: Path, device: str) -> TransformersWhisper:
    from transformers import AutoProcessor, WhisperForConditionalGeneration

    quiet_transformers()
    with reading_model(name, path, "is not a transformers Whisper model"):
        processor = AutoProcessor.from_pretrained(str(path))
        model = on_device(WhisperForConditionalGeneration.from_pretrained(str(path)), device)
    return TransformersWhisper(model, processor, name)


def recognition_family(name: str, path: Path, family: str | None) -> str:
    """``whisper`` for a transformers folder, ``faster-whisper`` for a CTranslate2 one; a NodeError otherwise."""
    if family in FAMILIES:
        return family
    config = path / "config.json"
    if path.is_dir() and config.is_file():
        settings = json.loads(config.read_text(encoding="utf-8"))
        if settings.get("model_type") == "whisper":
            return "whisper"
        if (path / "model.bin").is_file() and "model_type" not in settings:
            return "faster-whisper"
        raise NodeError(f"model '{name}' is a {settings.get('model_type')} model, not speech-to-text (Whisper in "
                        "transformers or CTranslate2 layout is)", input="model")
    raise NodeError(f"model '{name}' is not a Whisper folder (transformers or CTranslate2 layout)", input="model")
