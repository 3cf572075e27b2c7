"""Text-to-speech backends, chosen by the model name: Piper voices (ONNX), transformers VITS/MMS, system espeak-ng.

Each backend speaks one sentence at a time (the node splits long text), so progress is reported per sentence and
no single call overwhelms the model.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nodeforge.engine.declarations import ModelKind
from nodeforge.engine.errors import NodeError
from nodeforge.nodes.family_helpers import on_device, quiet_transformers, reading_model, seeded_global_rng, torch_device

ESPEAK = "espeak"
FAMILIES = ("piper", "vits")
SPEAKER = ModelKind("tts", FAMILIES, remote=True, extra_names=(ESPEAK,))
"""A text-to-speech voice: Piper, VITS, the system's espeak-ng, or a remote server's."""
ESPEAK_WPM = 175  # espeak-ng's default rate; ``speed`` scales it
ESPEAK_WPM_RANGE = (80, 450)

class Speaker(Protocol):
    """A loaded voice: speaks one sentence into mono float samples at ``sample_rate``."""

    @property
    def sample_rate(self) -> int: ...

    @property
    def pause(self) -> float: ...

    def speak(self, sentence: str, *, voice: str, speed: float, seed: int) -> Any: ...


@dataclass
class PiperSpeaker:
    """A Piper voice (``.onnx`` with its ``.onnx.json``). Its noise is drawn inside onnxruntime, so the same text
    gives slightly different audio each time: ``seed`` is not supported. ``own_voice`` is the name a one-voice
    model goes by (its dataset, ``joe`` for piper-joe)."""

    voice: Any
    name: str
    own_voice: str = ""
    pause: float = 0.2

    @property
    def sample_rate(self) -> int:
        return int(self.voice.config.sample_rate)

    def voices(self) -> list[str]:
        return piper_voices(self.voice.config.num_speakers, self.voice.config.speaker_id_map, self.own_voice)

    def speak(self, sentence: str, *, voice: str, speed: float, seed: int) -> Any:
        import numpy as np
        from piper import SynthesisConfig

        speaker = piper_speaker_id(voice, self.voice.config.num_speakers, self.voice.config.speaker_id_map,
                                   self.name, self.own_voice)
        config = SynthesisConfig(speaker_id=speaker, length_scale=self.voice.config.length_scale / speed)
        chunks = [chunk.audio_float_array for chunk in self.voice.synthesize(sentence, config)]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def piper_voices(num_speakers: int, speaker_map: Mapping[str, int], own_voice: str = "") -> list[str]:
    """The voices a Piper model answers to: its speakers, or its own name when it has one voice."""
    if num_speakers > 1:
        return sorted(speaker_map, key=speaker_map.__getitem__)
    return [own_voice] if own_voice else []


def piper_speaker_id(voice: str, num_speakers: int, speaker_map: Mapping[str, int], name: str,
                     own_voice: str = "") -> int | None:
    """The speaker id of ``voice`` in a Piper voice (None: the default, also for a one-voice model's own name);
    a NodeError naming the voices when it is not one of them."""
    voice = voice.strip()
    if voice in ("", "default"):
        return None
    if num_speakers <= 1:
        if own_voice and voice.lower() == own_voice.lower():
            return None
        known = f"a single voice, '{own_voice}'" if own_voice else "a single voice"
        raise NodeError(f"unknown voice '{voice}': {name} has {known} (or leave voice empty for its default)",
                        input="voice")
    if voice in speaker_map:
        return int(speaker_map[voice])
    if voice.isdigit() and int(voice) < num_speakers:
        return int(voice)
    shown = ", ".join(piper_voices(num_speakers, speaker_map)[:20])
    raise NodeError(f"unknown voice '{voice}' for {name}; its {num_speakers} voices include: {shown}",
                    input="voice")


def piper_config(path: Path) -> dict[str, Any]:
    """The JSON config beside a Piper ``.onnx`` voice."""
    config = path.with_name(path.name + ".json")
    if not config.is_file():
        raise NodeError(f"Piper voice {path.name} needs its config file {config.name} beside it", input="model")
    return json.loads(config.read_text(encoding="utf-8"))


def load_piper(name: str, path: Path, device: str) -> PiperSpeaker:
    try:
        from piper import PiperVoice
    except ImportError:
        raise NodeError("Piper voices need the piper-tts package: pip install piper-tts", input="model") from None
    import onnxruntime

    own_voice = str(piper_config(path).get("dataset") or "")
    cuda = torch_device(device).startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    return PiperSpeaker(PiperVoice.load(str(path), config_path=str(path) + ".json", use_cuda=cuda), name, own_voice)


@dataclass
class VitsSpeaker:
    """A transformers VITS/MMS text-to-speech model; its noise is seeded, so output is reproducible."""

    model: Any
    tokenizer: Any
    name: str
    pause: float = 0.2

    @property
    def sample_rate(self) -> int:
        return int(self.model.config.sampling_rate)

    def to(self, device: str) -> VitsSpeaker:
        return VitsSpeaker(self.model.to(torch_device(device)), self.tokenizer, self.name, self.pause)

    def parameters(self) -> Any:
        return self.model.parameters()

    def buffers(self) -> Any:
        return self.model.buffers()

    def speak(self, sentence: str, *, voice: str, speed: float, seed: int) -> Any:
        import torch

        speakers = int(getattr(self.model.config, "num_speakers", 1) or 1)
        speaker = None
        if voice.strip():
            if speakers <= 1 or not voice.strip().isdigit() or int(voice) >= speakers:
                known = f"speakers 0..{speakers - 1}" if speakers > 1 else "a single voice (leave voice empty)"
                raise NodeError(f"unknown voice '{voice}': {self.name} has {known}", input="voice")
            speaker = int(voice)
        encoded = self.tokenizer(sentence, return_tensors="pt")
        if encoded["input_ids"].shape[1] == 0:
            return torch.zeros(0)
        device = self.model.device
        inputs = {key: value.to(device) for key, value in encoded.items()}
        if speaker is not None:
            inputs["speaker_id"] = speaker
        with seeded_global_rng(seed, device), torch.inference_mode():  # VITS draws from torch's global RNG
            waveform = self.model(**inputs, speaking_rate=speed).waveform
        return waveform[0].float().cpu()


def load_vits(name: str, path: Path, device: str) -> VitsSpeaker:
    from transformers import AutoTokenizer, VitsModel

    quiet_transformers()
    with reading_model(name, path, "is not a VITS/MMS text-to-speech model"):
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = on_device(VitsModel.from_pretrained(str(path)), device)
    return VitsSpeaker(model, tokenizer, name)


@dataclass
class EspeakSpeaker:
    """The system's espeak-ng (robotic but intelligible, any of its languages); deterministic, so no seed."""

    program: str
    sample_rate: int = 22050
    pause: float = 0.0

    def speak(self, sentence: str, *, voice: str, speed: float, seed: int) -> Any:
        from nodeforge.engine.media_io import read_wav

        rate = round(ESPEAK_WPM * speed)
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "speech.wav"
            done = subprocess.run([self.program, "-v", voice.strip() or "en-us", "-s", str(rate), "-w", str(out),
                                   "--", sentence], capture_output=True, text=True, timeout=120, check=False)
            if done.returncode != 0 or not out.is_file():
                reason = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
                field = "voice" if "voice" in reason.lower() else "text"
                raise NodeError(f"espeak-ng failed: {reason}", input=field)
            audio = read_wav(out)
        self.sample_rate = audio.sample_rate
        return audio.tensor.mean(dim=0)


def espeak_program() -> str | None:
    return shutil.which("espeak-ng") or shutil.which("espeak")


def open_espeak() -> EspeakSpeaker:
    program = espeak_program()
    if program is None:
        raise NodeError("the espeak model is the system's espeak-ng, which is not installed (Debian/Ubuntu: "
                        "apt-get install espeak-ng); or use model piper-joe for natural speech offline",
                        input="model")
    return EspeakSpeaker(program)


@functools.lru_cache(maxsize=4)
def espeak_voices(program: str) -> frozenset[str]:
    """Language codes and voice names espeak-ng knows (``--voices``), for checking ``voice`` before a run."""
    listing = subprocess.run([program, "--voices"], capture_output=True, text=True, timeout=30, check=False).stdout
    names: set[str] = set()
    for line in listing.splitlines()[1:]:
        columns = line.split()
        if len(columns) >= 4:
            names.update((columns[1], columns[3], columns[4].rsplit("/", 1)[-1] if len(columns) > 4 else ""))
    names.discard("")
    return frozenset(names)


def espeak_voice_problem(voice: str) -> str | None:
    program = espeak_program()
    if program is None or not voice.strip():
        return None
    base = voice.strip().split("+", 1)[0]
    known = espeak_voices(program)
    if known and base not in known:
        close = sorted(name for name in known if name.split("-")[0] == base.split("-")[0])[:8]
        hint = f" (close: {', '.join(close)})" if close else " (espeak-ng --voices lists them)"
        return f"unknown espeak-ng voice '{voice}'{hint}"
    return None


def speech_family(name: str, path: Path, family: str | None) -> str:
    """Which backend speaks with the model at ``path``: ``piper`` (an .onnx voice) or ``vits`` (a transformers
    folder whose config says vits); a NodeError for anything else."""
    if family in FAMILIES:
        return family
    if path.suffix == ".onnx":
        return "piper"
    config = path / "config.json"
    if config.is_file():
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        if model_type == "vits":
            return "vits"
        raise NodeError(f"model '{name}' is a {model_type} model, not text-to-speech (Piper .onnx voices, VITS/MMS "
                        "folders and espeak are)", input="model")
    raise NodeError(f"model '{name}' is neither a Piper .onnx voice nor a VITS/MMS folder", input="model")


def known_voices(name: str, paths: Sequence[Path]) -> list[str] | None:
    """The voices of a Piper model known without loading it (its JSON config), or None when not known."""
    for path in paths:
        if path.suffix == ".onnx" and path.with_name(path.name + ".json").is_file():
            config = piper_config(path)
            return piper_voices(int(config.get("num_speakers", 1)), config.get("speaker_id_map") or {},
                                str(config.get("dataset") or ""))
    return None
