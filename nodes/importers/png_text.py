"""The text chunks of a PNG (tEXt, zTXt, iTXt), read from the chunk structure alone.

An import needs the workflow a picture carries, never its pixels: a 600 KB PNG can announce 13,000 x 13,000 pixels
and decode into gigabytes. This reader walks the chunks by their length fields, skips image data unread, checks each
text chunk's CRC, and bounds what it keeps: only the keywords asked for are decoded (compressed ones inflated to at
most ``limit`` characters), so a chunk cannot grow past the cap however well it compresses.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from nodeforge.nodes.importers.result import ImportFailed

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
MAX_CHUNKS = 100_000
"""A PNG with more chunks than this is refused (real files split their pixels into a few thousand at most)."""
MAX_WORKFLOW_TEXT = 8 * 1024 * 1024
"""Characters of a ComfyUI ``prompt`` or ``workflow`` chunk (the largest real workflows are a few MB of JSON)."""
MAX_PARAMETERS_TEXT = 256 * 1024
"""Characters of an A1111 ``parameters`` chunk (a prompt and one line of settings: a few KB in practice)."""
IMPORT_LIMITS = {"prompt": MAX_WORKFLOW_TEXT, "workflow": MAX_WORKFLOW_TEXT, "parameters": MAX_PARAMETERS_TEXT}


@dataclass
class PngTexts:
    """``texts``: the decoded chunks asked for, by keyword; ``keywords``: every text chunk's keyword."""

    texts: dict[str, str] = field(default_factory=dict)
    keywords: set[str] = field(default_factory=set)

    def found(self) -> str:
        return ", ".join(sorted(self.keywords)) or "none"


def png_texts(data: bytes, limits: Mapping[str, int] = IMPORT_LIMITS) -> PngTexts:
    """The text chunks of a PNG: decoded for the keywords in ``limits`` (each at most that many characters), only
    named for the others. A text over its limit, a damaged chunk or bytes that are not a PNG are an ImportFailed
    that says which."""
    if data[:8] != PNG_SIGNATURE:
        raise ImportFailed("the file is not a PNG (it does not start with the PNG signature)")
    found = PngTexts()
    offset, count = 8, 0
    while offset < len(data):
        count += 1
        if count > MAX_CHUNKS:
            raise ImportFailed(f"the PNG has more than {MAX_CHUNKS} chunks: not a picture an import reads")
        if offset + 8 > len(data):
            raise ImportFailed(f"the PNG is truncated: {len(data) - offset} stray byte(s) after its last chunk")
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if not (kind.isascii() and kind.isalpha()):
            raise ImportFailed(f"the PNG is damaged: at byte {offset} it holds no chunk (a chunk's type is four "
                               "letters)")
        end = offset + 12 + length
        if end > len(data):
            raise ImportFailed(f"the PNG is truncated: its {kind.decode()} chunk needs {length} bytes, "
                               f"{max(0, len(data) - offset - 12)} are left")
        if kind == b"IEND":
            break
        if kind in TEXT_CHUNKS:
            (crc,) = struct.unpack(">I", data[end - 4:end])
            if zlib.crc32(memoryview(data)[offset + 4:end - 4]) != crc:
                raise ImportFailed(f"the PNG is damaged: a {kind.decode()} chunk fails its checksum")
            keyword, text = _text_chunk(kind, data, offset + 8, end - 4, limits)
            found.keywords.add(keyword)
            if text is not None:
                found.texts[keyword] = text
        offset = end
    return found


def _text_chunk(kind: bytes, data: bytes, start: int, end: int, limits: Mapping[str, int]) -> tuple[str, str | None]:
    """(keyword, text) of the chunk whose body is ``data[start:end]``; the text is None for a keyword not asked for.
    The body is measured before it is copied or decoded, so an over-long text costs nothing."""
    nul = data.find(b"\0", start, min(end, start + 80))
    if nul <= start:
        raise ImportFailed(f"the PNG is damaged: a {kind.decode()} chunk has no keyword")
    keyword = data[start:nul].decode("latin-1")
    limit = limits.get(keyword)
    if limit is None:
        return keyword, None
    body = nul + 1
    if kind == b"tEXt":
        return keyword, _decoded(data, body, end, "latin-1", keyword, limit)
    if kind == b"zTXt":
        if data[body:body + 1] != b"\0":
            raise ImportFailed(f"the PNG's '{keyword}' chunk uses an unknown compression method")
        return keyword, _bounded(_inflate(memoryview(data)[body + 1:end], keyword, limit).decode("latin-1"), keyword,
                                 limit)
    if end - body < 2:
        raise ImportFailed(f"the PNG's '{keyword}' chunk is damaged: it ends before its text")
    compressed, method = data[body], data[body + 1]
    language_end = data.find(b"\0", body + 2, end)
    translated_end = data.find(b"\0", language_end + 1, end) if language_end >= 0 else -1
    if translated_end < 0:
        raise ImportFailed(f"the PNG's '{keyword}' chunk is damaged: it ends before its text")
    if not compressed:
        return keyword, _decoded(data, translated_end + 1, end, "utf-8", keyword, limit)
    if method != 0:
        raise ImportFailed(f"the PNG's '{keyword}' chunk uses an unknown compression method")
    raw = _inflate(memoryview(data)[translated_end + 1:end], keyword, limit * 4)  # UTF-8: up to 4 bytes a character
    return keyword, _decoded(raw, 0, len(raw), "utf-8", keyword, limit)


def _decoded(data: bytes, start: int, end: int, encoding: str, keyword: str, limit: int) -> str:
    """``data[start:end]`` as text of at most ``limit`` characters (checked on the bytes first: a character takes
    at least one)."""
    if end - start > limit * (4 if encoding == "utf-8" else 1):
        raise _too_long(keyword, limit)
    try:
        return _bounded(data[start:end].decode(encoding), keyword, limit)
    except UnicodeDecodeError:
        raise ImportFailed(f"the PNG's '{keyword}' chunk is not UTF-8 text") from None


def _inflate(data: memoryview, keyword: str, limit: int) -> bytes:
    """The inflated text, stopping one byte past ``limit`` so a small chunk cannot expand without bound."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise ImportFailed(f"the PNG's '{keyword}' chunk is damaged: its compressed text does not inflate") from None
    if len(out) > limit:
        raise _too_long(keyword, limit)
    return out


def _bounded(text: str, keyword: str, limit: int) -> str:
    if len(text) > limit:
        raise _too_long(keyword, limit)
    return text


def _too_long(keyword: str, limit: int) -> ImportFailed:
    return ImportFailed(f"the PNG's '{keyword}' text is longer than {limit:,} characters, the most an import "
                        "reads from it")
