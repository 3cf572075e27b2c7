"""Sound files in the formats OpenAI's audio endpoints speak: speech answered as WAV, MP3, FLAC, Opus, AAC or raw
PCM (16-bit little-endian mono at 24 kHz, as OpenAI documents it), and uploads for transcription in any format
FFmpeg reads (WAV, MP3, FLAC, Ogg, M4A, WebM...) turned, as a stream under the sound limits, into the 16-bit mono
WAV at 16 kHz the recognizers hear. PyAV does the coding."""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import BinaryIO, cast

from nodeforge.engine.errors import GraphInputError, first_line
from nodeforge.engine.limits import MediaLimits
from nodeforge.engine.sound import header_problem, sound_chunks

SPEECH_MEDIA_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "opus": "audio/ogg",
                      "aac": "audio/aac", "pcm": "audio/pcm"}
PCM_RATE = 24_000
TRANSCRIBE_RATE = 16_000
"""The rate uploads for transcription are decoded to: Whisper's, which every recognizer here hears at."""
# container format, codec, and a sample rate the codec takes (None: the sound's own)
_ENCODERS = {"mp3": ("mp3", "libmp3lame", None), "flac": ("flac", "flac", None), "opus": ("ogg", "libopus", 48_000),
             "aac": ("adts", "aac", None)}


class AudioFormatError(ValueError):
    """A sound that cannot be read, or a format this server cannot write."""


class SoundTooLarge(AudioFormatError):
    """A sound over the length or sample limits (by its header, or counted while it decodes)."""


def encode_speech(wav: bytes, response_format: str) -> bytes:
    """The speech WAV the node wrote, in ``response_format``."""
    if response_format == "wav":
        return wav
    import av
    import numpy as np

    from nodeforge.nodes.openai_media_backend import read_wav_bytes

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


def upload_to_wav(source: BinaryIO, target: Path, limits: MediaLimits, rate: int = TRANSCRIBE_RATE) -> float:
    """Decode an uploaded sound in any format FFmpeg reads (WAV too) into a 16-bit mono WAV at ``rate`` in
    ``target``, frame by frame, so memory follows ``rate`` and not the file's own; the sound's length in seconds.
    AudioFormatError when it is not a sound, has no samples or is over the limits (from its header before
    anything is decoded, or counted while decoding when the header lies); ``target`` is removed on any error."""
    try:
        seconds = _transcode(source, target, limits, rate)
    except BaseException as exc:
        target.unlink(missing_ok=True)
        if isinstance(exc, AudioFormatError) or not isinstance(exc, Exception):
            raise
        if isinstance(exc, GraphInputError):
            raise SoundTooLarge(str(exc)) from None
        reason = getattr(exc, "strerror", None) or first_line(exc)  # FFmpeg's reason, without errno and path
        raise AudioFormatError(f"it cannot be decoded: {reason}") from None
    if not seconds:
        target.unlink(missing_ok=True)
        raise AudioFormatError("it holds no sound (0 samples)")
    return seconds


def _transcode(source: BinaryIO, target: Path, limits: MediaLimits, rate: int) -> float:
    import av
    import numpy as np

    written = 0
    source.seek(0)
    with av.open(source, "r") as container:
        if not container.streams.audio:
            raise AudioFormatError("it has no audio stream")
        stream = container.streams.audio[0]
        problem = header_problem(container, stream, limits)
        if problem:
            raise SoundTooLarge(problem)
        with wave.open(str(target), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            for chunk in sound_chunks(container, stream, limits, rate=rate, mono=True):
                wav.writeframes((np.clip(chunk[0], -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes())
                written += int(chunk.shape[1])
    return written / rate
