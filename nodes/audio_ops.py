"""Operations on Audio values the speech and video nodes share: resampling, mono, silence, length, sentences."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from nodeforge.engine.values import Audio

SILENCE_PEAK = 1e-4  # below -80 dBFS everywhere: nothing a recogniser could hear
_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])[\"'”’)\]]*\s+")


def split_sentences(text: str, longest: int = 400) -> list[str]:
    """Sentences of ``text`` in order; a sentence longer than ``longest`` characters is split again at commas,
    then at spaces, so no piece overwhelms a speech model."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = " ".join(sentence.split())
        while len(sentence) > longest:
            cut = max(sentence.rfind(", ", 0, longest), sentence.rfind("; ", 0, longest))
            cut = cut + 1 if cut > 0 else sentence.rfind(" ", 0, longest)
            cut = cut if cut > 0 else longest
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    return pieces


def to_mono(audio: Audio) -> Audio:
    """One channel: the mean of all channels."""
    if audio.tensor.shape[0] == 1:
        return audio
    return Audio(audio.tensor.float().mean(dim=0, keepdim=True), audio.sample_rate)


def resample(audio: Audio, rate: int) -> Audio:
    """``audio`` at ``rate`` Hz, through FFmpeg's resampler (libswresample, bundled with PyAV)."""
    if audio.sample_rate == rate:
        return audio
    import av
    import numpy as np
    import torch

    samples = audio.tensor.detach().float().to("cpu").numpy()
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    if samples.shape[0] > 2:
        raise ValueError(f"resampling handles mono or stereo audio, not {samples.shape[0]} channels")
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.float32), format="fltp",
                                       layout=layout)
    frame.sample_rate = audio.sample_rate
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    chunks = [out.to_ndarray() for out in (*resampler.resample(frame), *resampler.resample(None))]
    data = np.concatenate(chunks, axis=1) if chunks else np.zeros((samples.shape[0], 0), dtype=np.float32)
    expected = round(samples.shape[1] * rate / audio.sample_rate)
    data = data[:, :expected]
    if data.shape[1] < expected:
        data = np.pad(data, ((0, 0), (0, expected - data.shape[1])))
    return Audio(torch.from_numpy(np.ascontiguousarray(data)), rate)


def peak(audio: Audio) -> float:
    return float(audio.tensor.detach().abs().max()) if audio.tensor.numel() else 0.0


def loudness_problem(audio: Audio) -> str | None:
    """Why ``audio`` cannot be transcribed (empty or silent), or None."""
    if audio.tensor.shape[1] == 0:
        return "the audio is empty (0 samples)"
    level = peak(audio)
    if level < SILENCE_PEAK:
        shown = "-inf" if level == 0 else f"{20 * math.log10(level):.0f}"
        return f"the audio is silent (peak {shown} dBFS over {audio.seconds:.2f} s; it must reach -80 dBFS)"
    return None


@dataclass(frozen=True)
class Fitted:
    """Audio fitted to a length, and what was done to it (``trimmed``/``padded`` seconds, 0 when untouched)."""

    audio: Audio
    trimmed: float
    padded: float


def fit_length(audio: Audio, samples: int) -> Fitted:
    """``audio`` cut or padded with silence to exactly ``samples`` samples."""
    import torch

    have = int(audio.tensor.shape[1])
    if have == samples:
        return Fitted(audio, 0.0, 0.0)
    if have > samples:
        return Fitted(Audio(audio.tensor[:, :samples], audio.sample_rate), (have - samples) / audio.sample_rate,
                      0.0)
    pad = torch.zeros(audio.tensor.shape[0], samples - have, dtype=audio.tensor.dtype, device=audio.tensor.device)
    return Fitted(Audio(torch.cat([audio.tensor, pad], dim=1), audio.sample_rate), 0.0,
                  (samples - have) / audio.sample_rate)


def concat(parts: list[Any], rate: int, pause: float = 0.0) -> Audio:
    """Mono float arrays or tensors joined in order at ``rate`` Hz, with ``pause`` seconds of silence between."""
    import numpy as np
    import torch

    gap = np.zeros(int(round(pause * rate)), dtype=np.float32)
    joined: list[Any] = []
    for i, part in enumerate(parts):
        array = part.detach().float().to("cpu").reshape(-1).numpy() if hasattr(part, "detach") else part
        if i and gap.size:
            joined.append(gap)
        joined.append(np.asarray(array, dtype=np.float32).reshape(-1))
    data = np.concatenate(joined) if joined else np.zeros(0, dtype=np.float32)
    return Audio(torch.from_numpy(data).unsqueeze(0), rate)
