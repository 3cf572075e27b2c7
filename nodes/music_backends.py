"""Music and sound generators, chosen by the model: MusicGen (transformers; mono, stereo and melody layouts) and
Stable Audio Open (diffusers).

Each loaded generator makes one clip of a requested length at its own sampling rate, reporting progress per
generated token (MusicGen) or per denoising step (Stable Audio); the node fits the result to the exact sample count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeforge.engine.declarations import ModelKind
from nodeforge.engine.errors import NodeError
from nodeforge.engine.values import Audio
from nodeforge.nodes.audio_ops import resample, to_mono
from nodeforge.nodes.family_helpers import (
    generator,
    on_device,
    quiet_pipeline,
    quiet_transformers,
    reading_model,
    seeded_global_rng,
    torch_device,
)

MUSICGEN = "musicgen"
MELODY = "musicgen-melody"
STABLE_AUDIO = "stable-audio"
FAMILIES = (MUSICGEN, MELODY, STABLE_AUDIO)
MUSIC_GENERATOR = ModelKind("music", FAMILIES)
"""A music generator: MusicGen (with or without melody) or Stable Audio Open."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Request:
    """What one clip should be: the node's inputs as the generators read them."""

    prompt: str
    negative_prompt: str
    seconds: float
    guidance_scale: float
    steps: int
    seed: int
    melody: Audio | None


def music_family(name: str, path: Path, family: str | None) -> str:
    """Which generator runs the model at ``path``: a MusicGen or MusicGen Melody transformers folder (its
    config.json) or a Stable Audio diffusers folder (its model_index.json); a NodeError for anything else."""
    if family in FAMILIES:
        return family
    index, config = path / "model_index.json", path / "config.json"
    if index.is_file():
        pipeline = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
        if pipeline == "StableAudioPipeline":
            return STABLE_AUDIO
        raise NodeError(f"model '{name}' is a {pipeline} pipeline, not a music model (MusicGen and Stable Audio "
                        "are)", input="model")
    if config.is_file():
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        if model_type in ("musicgen", "musicgen_melody"):
            return MELODY if model_type == "musicgen_melody" else MUSICGEN
        raise NodeError(f"model '{name}' is a {model_type} model, not a music model (MusicGen and Stable Audio "
                        "are)", input="model")
    raise NodeError(f"model '{name}' is neither a MusicGen folder nor a Stable Audio pipeline folder", input="model")


class TokenProgress:
    """A logits processor that reports each generated token as a progress step and leaves the scores as they are
    (MusicGen's ``generate`` hands a streamer only its start tokens, so a streamer cannot count the rest)."""

    def __init__(self, total: int, progress: Progress) -> None:
        self.total = total
        self.progress = progress
        self.done = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.done += 1
        self.progress(min(self.done, self.total), self.total)
        return scores


@dataclass
class MusicGen:
    """A MusicGen model with its text processor; ``melody`` holds the chroma settings of a Melody model."""

    model: Any
    tokenizer: Any
    name: str
    melody: dict[str, Any] | None = None

    @property
    def sample_rate(self) -> int:
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def frame_rate(self) -> float:
        return float(self.model.audio_encoder.config.frame_rate)

    @property
    def channels(self) -> int:
        return int(self.model.decoder.config.audio_channels)

    @property
    def max_seconds(self) -> float:
        """The longest clip its decoder's positions allow (after the codebook delay)."""
        return (int(self.model.decoder.config.max_position_embeddings) - self._delay()) / self.frame_rate

    def _delay(self) -> int:
        """Steps the codebook delay pattern adds: each codebook of a channel starts one step after the last."""
        return int(self.model.decoder.num_codebooks) // self.channels - 1

    def to(self, device: str) -> MusicGen:
        return MusicGen(self.model.to(torch_device(device)), self.tokenizer, self.name, self.melody)

    def parameters(self) -> Any:
        return self.model.parameters()

    def buffers(self) -> Any:
        return self.model.buffers()

    def generate(self, request: Request, progress: Progress) -> Audio:
        import torch
        from transformers import LogitsProcessorList

        if request.melody is not None and self.melody is None:
            raise NodeError(f"{self.name} is a MusicGen model without melody conditioning, which takes no melody: "
                            "disconnect melody or use a MusicGen Melody model (musicgen-melody)", input="melody")
        frames = math.ceil(request.seconds * self.frame_rate)
        tokens = frames + self._delay()
        device = self.model.device
        inputs = dict(self.tokenizer(text=[request.prompt], padding=True, return_tensors="pt"))
        if request.melody is not None and self.melody is not None:
            inputs["input_features"] = melody_chroma(request.melody, self.melody)
        inputs = {key: value.to(device) for key, value in inputs.items()}
        with seeded_global_rng(request.seed, device), torch.inference_mode():
            values = self.model.generate(**inputs, max_new_tokens=tokens, do_sample=True,
                                         guidance_scale=request.guidance_scale,
                                         logits_processor=LogitsProcessorList([TokenProgress(tokens, progress)]))
        return Audio(values[0].float().cpu(), self.sample_rate)


def melody_chroma(melody: Audio, settings: dict[str, Any]) -> Any:
    """The one-hot chroma MusicGen Melody reads ([1, frames, 12]): the melody in mono at the extractor's rate, at
    most ``chunk_length`` seconds, its power spectrogram folded into pitch classes, the loudest class of each frame.

    This is what transformers' ``MusicgenMelodyFeatureExtractor`` computes; that class needs torchaudio to be
    constructed, which has no build for every torch, so the same steps run here on torch.stft. (The extractor's
    spectrogram normalisation is a positive scale per frame, which the per-frame argmax ignores.)"""
    import torch
    from transformers.audio_utils import chroma_filter_bank

    rate, n_fft, hop = int(settings["sampling_rate"]), int(settings["n_fft"]), int(settings["hop_length"])
    chroma_bins = int(settings.get("num_chroma", 12))
    wave = resample(to_mono(melody), rate).tensor[0].float().cpu()
    wave = wave[: int(settings.get("chunk_length", 30)) * rate]
    if wave.numel() < n_fft:
        missing = n_fft - wave.numel()
        wave = torch.nn.functional.pad(wave, (missing // 2, missing - missing // 2))
    spectrum = torch.stft(wave, n_fft=n_fft, hop_length=hop, window=torch.hann_window(n_fft), center=True,
                          pad_mode="reflect", return_complex=True).abs().pow(2)
    filters = torch.from_numpy(chroma_filter_bank(sampling_rate=rate, num_frequency_bins=n_fft, tuning=0,
                                                  num_chroma=chroma_bins)).float()
    chroma = (filters @ spectrum).transpose(0, 1)
    one_hot = torch.zeros_like(chroma).scatter_(-1, chroma.argmax(-1, keepdim=True), 1.0)
    return one_hot.unsqueeze(0)


def load_musicgen(name: str, path: Path, family: str, device: str) -> MusicGen:
    """MusicGen through transformers (``MusicgenForConditionalGeneration`` with its ``AutoProcessor``), or MusicGen
    Melody (``MusicgenMelodyForConditionalGeneration``, its tokenizer and chroma settings)."""
    from transformers import (
        AutoProcessor,
        AutoTokenizer,
        MusicgenForConditionalGeneration,
        MusicgenMelodyForConditionalGeneration,
    )

    quiet_transformers()
    with reading_model(name, path, "is not a MusicGen model"):
        if family == MELODY:
            settings = json.loads((path / "preprocessor_config.json").read_text(encoding="utf-8"))
            melody_model = MusicgenMelodyForConditionalGeneration.from_pretrained(str(path))
            return MusicGen(on_device(melody_model, device), AutoTokenizer.from_pretrained(str(path)), name, settings)
        model = MusicgenForConditionalGeneration.from_pretrained(str(path))
        return MusicGen(on_device(model, device), AutoProcessor.from_pretrained(str(path)), name)


@dataclass
class StableAudio:
    """A diffusers ``StableAudioPipeline`` (Stable Audio Open: stereo 44.1 kHz, up to 47 s)."""

    pipe: Any
    name: str

    @property
    def components(self) -> dict[str, Any]:
        return dict(self.pipe.components)

    @property
    def sample_rate(self) -> int:
        return int(self.pipe.vae.config.sampling_rate)

    @property
    def channels(self) -> int:
        return int(self.pipe.vae.config.audio_channels)

    @property
    def max_seconds(self) -> float:
        return float(self.pipe.transformer.config.sample_size * self.pipe.vae.hop_length / self.sample_rate)

    def to(self, device: str) -> StableAudio:
        self.pipe.to(torch_device(device))
        return self

    def generate(self, request: Request, progress: Progress) -> Audio:
        import torch

        if request.melody is not None:
            raise NodeError(f"{self.name} is a Stable Audio model, which takes no melody: disconnect melody or use "
                            "a MusicGen Melody model (musicgen-melody)", input="melody")
        steps = request.steps

        def on_step(step: int, timestep: Any, latents: Any) -> None:
            progress(step + 1, steps)

        with torch.inference_mode():
            audios = self.pipe(prompt=request.prompt, negative_prompt=request.negative_prompt or None,
                               audio_end_in_s=request.seconds, num_inference_steps=steps,
                               guidance_scale=request.guidance_scale,
                               generator=generator(str(self.pipe.device), request.seed), callback=on_step,
                               callback_steps=1, output_type="pt").audios
        return Audio(audios[0].float().cpu(), self.sample_rate)


def load_stable_audio(name: str, path: Path, device: str) -> StableAudio:
    """Stable Audio through diffusers, half precision on GPUs (as its model card runs it), float32 on the CPU."""
    import torch
    from diffusers import StableAudioPipeline

    target = torch_device(device)
    dtype = torch.float32 if target == "cpu" else torch.float16
    with reading_model(name, path, "is not a Stable Audio pipeline", (OSError, ValueError, KeyError, ImportError)):
        pipe = StableAudioPipeline.from_pretrained(str(path), dtype=dtype)
    return StableAudio(quiet_pipeline(pipe).to(target), name)
