"""Content types from the bytes of a file, never from its name: only media the engine can decode pass."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

from nodeforge.engine.limits import MediaLimits, media_problem

HEAD_BYTES = 64


@dataclass(frozen=True, slots=True)
class Sniffed:
    kind: str
    media_type: str
    suffix: str


def sniff(head: bytes) -> Sniffed | None:
    """The media an upload's first bytes announce, or None for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "image/png", ".png")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "image/jpeg", ".jpg")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "image/gif", ".gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "image/webp", ".webp")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Sniffed("audio", "audio/wav", ".wav")
    if head[4:8] == b"ftyp":
        return Sniffed("video", "video/mp4", ".mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed("video", "video/webm", ".webm")
    return None


ACCEPTED = "PNG, JPEG, GIF or WebP images, 16-bit PCM WAV audio, MP4 or WebM video"


def verify(path: Path, sniffed: Sniffed, limits: MediaLimits) -> str | None:
    """Decode enough of the file to know the engine can read it and that it is within the limits (from its
    header, before any pixels are decoded); the reason when it cannot."""
    try:
        too_large = media_problem(sniffed.kind, path, limits)
        if too_large:
            return too_large
        if sniffed.kind == "image":
            from PIL import Image

            with Image.open(path) as picture:
                picture.verify()
        elif sniffed.kind == "audio":
            with wave.open(str(path), "rb") as wav:
                if wav.getsampwidth() != 2:
                    return f"WAV with {8 * wav.getsampwidth()}-bit samples; only 16-bit PCM is supported"
                if wav.getnframes() == 0:
                    return "the WAV file has no samples"
        else:
            import av

            with av.open(str(path)) as container:
                if not container.streams.video:
                    return "the file has no video stream"
    except ImportError:
        return None
    except Exception as exc:
        return f"the file cannot be decoded as {sniffed.media_type}: {type(exc).__name__}: {_reason(exc, path)}"
    return None


def _reason(exc: Exception, path: Path) -> str:
    """The decoder's complaint without the upload's temporary path (OSErrors carry it as their file name)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return exc.strerror
    return str(exc).replace(str(path), "the upload")
