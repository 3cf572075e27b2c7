"""Decoded-size limits for media, checked from a file's header before anything is decoded.

Pillow's own decompression-bomb guard (an error above twice ``PIL.Image.MAX_IMAGE_PIXELS``) stays in place
behind these checks, so a budget above about 178 MP is capped there; its error is reported as this limit.

A 17 KB PNG can announce 12000 x 12000 pixels and decode into gigabytes, so pictures, videos and sounds are
measured first and refused above a budget, at upload and wherever a graph loads one. The checks read only
headers (Pillow opens images lazily; WAV and container headers give lengths); decoding loops still stop at the
limit when a header understates what follows.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
DEFAULT_MAX_VIDEO_FRAMES = 2_000
DEFAULT_MAX_AUDIO_SECONDS = 1_800.0


@dataclass(frozen=True)
class MediaLimits:
    """The largest picture (pixels), video (frames, each frame also under the pixel budget) and sound (seconds)
    a graph may load."""

    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_video_frames: int = DEFAULT_MAX_VIDEO_FRAMES
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS

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


def image_problem(path: Path, limits: MediaLimits) -> str | None:
    """Why the picture in ``path`` is too large to decode (None when it fits), from its header alone."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            return limits.pixels_problem(*picture.size)
    except Image.DecompressionBombError:
        return f"the image is over the limit of {_mega(limits.max_image_pixels)} MP (--max-image-pixels)"


def audio_problem(path: Path, limits: MediaLimits) -> str | None:
    """Why the WAV sound in ``path`` is too long (None when it fits), from its header alone."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate() or 1
        return limits.seconds_problem(wav.getnframes() / rate)


def video_problem(path: Path, limits: MediaLimits) -> str | None:
    """Why the video in ``path`` is too large (frame size, frame count, sound length), None when it fits; from
    the container's header (the frame count estimated from duration and rate where the container has none)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        problem = limits.pixels_problem(stream.codec_context.width or 0, stream.codec_context.height or 0)
        if problem:
            return f"each frame: {problem}"
        frames = int(stream.frames or 0)
        if not frames and container.duration and stream.average_rate:
            frames = int(container.duration / 1_000_000 * float(stream.average_rate))
        problem = limits.frames_problem(frames)
        if problem is None and container.streams.audio and container.duration:
            problem = limits.seconds_problem(container.duration / 1_000_000)
        return problem


def media_problem(kind: str, path: Path, limits: MediaLimits) -> str | None:
    """Why a media file of ``kind`` (image, audio, video) is over the limits, from its header."""
    if kind == "image":
        return image_problem(path, limits)
    if kind == "audio":
        return audio_problem(path, limits)
    if kind == "video":
        return video_problem(path, limits)
    return None


def _mega(pixels: int) -> str:
    return f"{pixels / 1_000_000:.1f}".rstrip("0").rstrip(".")
