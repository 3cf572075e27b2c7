"""Decoded-size limits for media, checked from a file's header before anything is decoded.

Pillow's own decompression-bomb guard (an error above twice ``PIL.Image.MAX_IMAGE_PIXELS``) stays in place
behind these checks, so a budget above about 178 MP is capped there; its error is reported as this limit.

A 17 KB PNG can announce 12000 x 12000 pixels and decode into gigabytes, so pictures, videos and sounds are
measured first and refused above a budget, at upload and wherever a graph loads one. The checks read only
headers (Pillow opens images lazily; WAV and container headers give lengths); a container whose header gives no
length is measured by reading its packets (nothing decoded). Decoding loops still count what they decode and stop
at the limit (``SoundMeter``, the frame count), since a header may understate what follows.

Sound has two limits: its length (``--max-audio-seconds``) and the samples it decodes into, rate x channels x
seconds. A 40 KB FLAC can be 110 s at 655 kHz: within the length, yet 72 million samples to decode. The sample
budget is the length limit at 48 kHz stereo, so any usual sound up to the length limit fits.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
DEFAULT_MAX_VIDEO_FRAMES = 2_000
DEFAULT_MAX_AUDIO_SECONDS = 1_800.0
BUDGET_RATE = 48_000
BUDGET_CHANNELS = 2


@dataclass(frozen=True)
class MediaLimits:
    """The largest picture (pixels), video (frames, each frame also under the pixel budget) and sound (seconds,
    and decoded samples: the seconds at 48 kHz stereo) a graph may load."""

    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_video_frames: int = DEFAULT_MAX_VIDEO_FRAMES
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS

    @property
    def max_audio_samples(self) -> int:
        return round(self.max_audio_seconds * BUDGET_RATE * BUDGET_CHANNELS)

    def pixels_problem(self, width: int, height: int) -> str | None:
        if width * height > self.max_image_pixels:
            return (f"the image is {width}x{height} ({_mega(width * height)} MP), over the limit of "
                    f"{_mega(self.max_image_pixels)} MP (--max-image-pixels)")
        return None

    def frames_problem(self, frames: int) -> str | None:
        if frames > self.max_video_frames:
            return f"the video has {frames} frames or more, over the limit of {self.max_video_frames} " \
                   "(--max-video-frames)"
        return None

    def seconds_problem(self, seconds: float) -> str | None:
        if seconds > self.max_audio_seconds:
            return f"the sound is {seconds:.1f} s long, over the limit of {self.max_audio_seconds:g} s " \
                   "(--max-audio-seconds)"
        return None

    def sound_problem(self, seconds: float, rate: int, channels: int) -> str | None:
        """Why a sound of ``seconds`` at ``rate`` Hz in ``channels`` channels is too large to decode, or None."""
        problem = self.seconds_problem(seconds)
        samples = seconds * rate * channels
        if problem is None and samples > self.max_audio_samples:
            problem = (f"the sound is {seconds:.1f} s of {channels} channel(s) at {rate} Hz, {round(samples):,} "
                       f"samples to decode, over the budget of {self.max_audio_samples:,} "
                       f"({self.max_audio_seconds:g} s at 48 kHz stereo, --max-audio-seconds)")
        return problem


@dataclass
class SoundMeter:
    """Counts the sound a decoding loop has produced so far, against the length and sample budgets."""

    limits: MediaLimits
    seconds: float = 0.0
    samples: int = 0

    def add(self, samples: int, rate: int, channels: int) -> str | None:
        """Count one decoded frame; why decoding must stop (None while within the limits)."""
        self.seconds += samples / max(rate, 1)
        self.samples += samples * channels
        if self.seconds > self.limits.max_audio_seconds:
            return f"the sound is longer than the limit of {self.limits.max_audio_seconds:g} s " \
                   "(--max-audio-seconds)"
        if self.samples > self.limits.max_audio_samples:
            return (f"the sound decodes to more than {self.limits.max_audio_samples:,} samples ({rate} Hz, "
                    f"{channels} channel(s)), over the budget of {self.limits.max_audio_seconds:g} s at 48 kHz "
                    "stereo (--max-audio-seconds)")
        return None


def image_problem(path: Path, limits: MediaLimits) -> str | None:
    """Why the picture in ``path`` is too large to decode (None when it fits), from its header alone."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            return limits.pixels_problem(*picture.size)
    except Image.DecompressionBombError:
        return f"the image is over the limit of {_mega(limits.max_image_pixels)} MP (--max-image-pixels)"


def audio_problem(path: Path, limits: MediaLimits) -> str | None:
    """Why the WAV sound in ``path`` is too long or too many samples (None when it fits), from its header."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate() or 1
        return limits.sound_problem(wav.getnframes() / rate, rate, wav.getnchannels())


def video_problem(path: Path, limits: MediaLimits) -> str | None:
    """Why the video in ``path`` is too large (frame size, frame count, sound length and samples), None when it
    fits; from the container's header (the frame count estimated from duration and rate where the container has
    none), or from its packets when the header has no duration (a live WebM)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        problem = limits.pixels_problem(stream.codec_context.width or 0, stream.codec_context.height or 0)
        if problem:
            return f"each frame: {problem}"
        if not container.duration:
            return _packets_problem(container, limits)
        frames = int(stream.frames or 0)
        if not frames and stream.average_rate:
            frames = int(container.duration / 1_000_000 * float(stream.average_rate))
        problem = limits.frames_problem(frames)
        if problem is None and container.streams.audio:
            problem = _track_problem(container.streams.audio[0], container.duration / 1_000_000, limits)
        return problem


def _track_problem(track: Any, seconds: float, limits: MediaLimits) -> str | None:
    problem = limits.sound_problem(seconds, int(track.rate or 0), int(track.codec_context.channels or 1))
    return problem and f"its sound track: {problem}"


def _packets_problem(container: Any, limits: MediaLimits) -> str | None:
    """The frame count and sound length of a container without a duration, read from its packets (demuxed, not
    decoded), stopping at the first limit passed."""
    video = container.streams.video[0]
    track = container.streams.audio[0] if container.streams.audio else None
    frames, seconds = 0, 0.0
    for packet in container.demux(*(s for s in (video, track) if s is not None)):
        if packet.stream is video and packet.size:
            frames += 1
            if problem := limits.frames_problem(frames):
                return problem
        elif packet.stream is track and packet.pts is not None and packet.time_base is not None:
            seconds = max(seconds, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            if seconds > limits.max_audio_seconds:
                return (f"its sound track runs past the limit of {limits.max_audio_seconds:g} s "
                        "(--max-audio-seconds; the file's header gives no duration, its packets were counted)")
            if problem := _track_problem(track, seconds, limits):
                return problem
    return None


def media_problem(kind: str, path: Path, limits: MediaLimits) -> str | None:
    """Why a media file of ``kind`` (image, audio, video) is over the limits, from its header."""
    if kind == "image":
        return image_problem(path, limits)
    if kind == "audio":
        return audio_problem(path, limits)
    if kind == "video":
        return video_problem(path, limits)
    return None


def _mega(count: int) -> str:
    return f"{count / 1_000_000:.1f}".rstrip("0").rstrip(".")
