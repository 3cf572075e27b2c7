"""Sound files in the formats OpenAI's audio endpoints speak: speech answered as WAV, MP3, FLAC, Opus, AAC or raw
PCM (16-bit little-endian mono at 24 kHz, as OpenAI documents it), and uploads for transcription in any format
FFmpeg reads (MP3, FLAC, Ogg, M4A, WebM...) turned into the 16-bit WAV the nodes take. PyAV does the coding."""

from __future__ import annotations

import io
from typing import cast

SPEECH_MEDIA_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "opus": "audio/ogg",
                      "aac": "audio/aac", "pcm": "audio/pcm"}
PCM_RATE = 24_000
# container format, codec, and a sample rate the codec takes (None: the sound's own)
_ENCODERS = {"mp3": ("mp3", "libmp3lame", None), "flac": ("flac", "flac", None), "opus": ("ogg", "libopus", 48_000),
             "aac": ("adts", "aac", None)}


class AudioFormatError(ValueError):
    """A sound that cannot be read, or a format this server cannot write."""


def encode_speech(wav: bytes, response_format: str) -> bytes:
    """The speech WAV the node wrote, in ``response_format``."""
    if response_format == "wav":
        return wav
    import av
    import numpy as np

    from nodeforge.nodes.openai_media import read_wav_bytes

    audio = read_wav_bytes(wav)
    samples = np.ascontiguousarray(audio.tensor.mean(dim=0, keepdim=True).numpy(), dtype=np.float32)
    if response_format == "pcm":
        return _pcm(samples, audio.sample_rate)
    if response_format not in _ENCODERS:
        raise AudioFormatError(f"response_format {response_format} is not one of {', '.join(SPEECH_MEDIA_TYPES)}")
    container_format, codec, rate = _ENCODERS[response_format]
    out = io.BytesIO()
    with av.open(out, "w", format=container_format) as container:
        stream = cast("av.AudioStream", container.add_stream(codec, rate=rate or audio.sample_rate, layout="mono"))
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = audio.sample_rate
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def _pcm(samples: object, rate: int) -> bytes:
    import av
    import numpy as np

    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")  # type: ignore[arg-type]
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=PCM_RATE)
    chunks = [out.to_ndarray().tobytes() for out in [*resampler.resample(frame), *resampler.resample(None)]]
    return b"".join(chunks) if chunks else np.zeros(0, dtype="<i2").tobytes()


def is_wav(head: bytes) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"WAVE"


def upload_as_wav(data: bytes, max_seconds: float) -> bytes:
    """A sound file in any format FFmpeg reads as a 16-bit WAV; AudioFormatError when it is not a sound or is
    longer than ``max_seconds``."""
    from nodeforge.engine.errors import NodeError
    from nodeforge.nodes.openai_media import decode_audio, wav_bytes

    try:
        return wav_bytes(decode_audio(data, "the file", max_seconds))
    except NodeError as exc:
        raise AudioFormatError(str(exc)) from None
