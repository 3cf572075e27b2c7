"""The workflow a WebP that ComfyUI saved carries (SaveAnimatedWEBP, SaveWEBM's stills): EXIF entries of the form
``workflow:<UI JSON>`` (tag 0x010F) and ``prompt:<API JSON>`` (tag 0x0110), read from the RIFF chunk structure.

As with PNGs (``png_text``), the pixels are never decoded: the RIFF chunks are walked by their length fields to the
``EXIF`` chunk, whose entries Pillow parses; only the keywords asked for are kept, each at most its limit.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from nodeforge.nodes.importers.png_text import IMPORT_LIMITS, MAX_CHUNKS, PngTexts
from nodeforge.nodes.importers.result import ImportFailed

WORKFLOW_TAGS = range(0x0100, 0x0120)
"""The EXIF tags ComfyUI writes its ``keyword:JSON`` entries under (0x0110 the prompt, 0x010F downwards the rest)."""


def is_webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def webp_texts(data: bytes, limits: Mapping[str, int] = IMPORT_LIMITS) -> PngTexts:
    """The ``keyword:text`` EXIF entries of a WebP: decoded for the keywords in ``limits`` (each at most that many
    characters), only named for the others. A damaged file is an ImportFailed that says how."""
    from PIL import Image

    found = PngTexts()
    exif = _exif_chunk(data)
    if exif is None:
        return found
    entries = Image.Exif()
    try:
        entries.load(exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    except (SyntaxError, ValueError, struct.error, OSError) as exc:
        raise ImportFailed(f"the WebP's EXIF data is damaged ({exc})") from None
    for tag in WORKFLOW_TAGS:
        value = entries.get(tag)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if not isinstance(value, str) or ":" not in value:
            continue
        keyword, text = value.split(":", 1)
        found.keywords.add(keyword)
        limit = limits.get(keyword)
        if limit is None:
            continue
        if len(text) > limit:
            raise ImportFailed(f"the WebP's '{keyword}' entry is longer than {limit:,} characters: not a workflow an "
                               "import reads")
        found.texts[keyword] = text
    return found


def _exif_chunk(data: bytes) -> bytes | None:
    """The payload of the RIFF container's ``EXIF`` chunk, or None when it has none."""
    if not is_webp(data):
        raise ImportFailed("the file is not a WebP (it does not start with RIFF....WEBP)")
    offset, count = 12, 0
    while offset + 8 <= len(data):
        count += 1
        if count > MAX_CHUNKS:
            raise ImportFailed(f"the WebP has more than {MAX_CHUNKS} chunks: not a picture an import reads")
        kind, length = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        end = offset + 8 + length
        if end > len(data):
            raise ImportFailed(f"the WebP is truncated: its {kind.decode('latin-1')!r} chunk needs {length} bytes, "
                               f"{len(data) - offset - 8} are left")
        if kind == b"EXIF":
            return data[offset + 8:end]
        offset = end + (length & 1)  # chunks are padded to an even length
    return None
