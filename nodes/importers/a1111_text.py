"""Scanners for A1111's ``parameters`` text, each one forward pass over its input.

The text is untrusted (any PNG): regular expressions with nested or overlapping repeats backtrack over it in
quadratic time while holding the GIL, so a 40 KB chunk froze a whole server. These scanners read what A1111 writes
(``Key: value`` settings with quoted values, ``<lora:name:weight>`` tags) and never revisit a character more than
a bounded number of times; the one regular expression left matches a run of a single character class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BLANK_RUN = re.compile(r"[ \t]{2,}")  # one class repeated: each match ends where its run ends, never backtracks
KEY_PUNCTUATION = frozenset(" -/")
NETWORK_KINDS = ("lora", "lyco", "hypernet")
BLANKS = " \t"


def settings_of(line: str) -> list[tuple[str, str]]:
    """The ``Key: value`` pairs of a settings line, values unquoted (``Lora hashes: "a: 1, b: 2"``).

    A key starts with a letter, digit or underscore and holds those, spaces, ``-`` and ``/``; an item of the line
    without such a key is not a setting and is skipped."""
    found: list[tuple[str, str]] = []
    quotes = _Quotes(line)
    position, size = 0, len(line)
    while position < size:
        start = position
        while position < size and line[position] not in ":,":
            position += 1
        if position >= size or line[position] == ",":
            position += 1  # an item without a colon
            continue
        key = line[start:position].strip()
        position += 1
        while position < size and line[position].isspace():
            position += 1
        value_start = position
        close = quotes.closing(position) if position < size and line[position] == '"' else -1
        if close >= 0 and (close + 1 == size or line[close + 1] == ","):
            value, position = unquote(line[value_start:close + 1]), close + 2
        else:
            comma = line.find(",", position)
            position = size if comma < 0 else comma
            value = line[value_start:position].strip()
            position += 1
        if _is_key(key):
            found.append((key, value))
    return found


def _is_key(key: str) -> bool:
    if not key or not (key[0].isalnum() or key[0] == "_"):
        return False
    return all(char.isalnum() or char == "_" or char in KEY_PUNCTUATION for char in key)


class _Quotes:
    """Where the quoted value opened at a position closes, remembering the last scan: a later opening inside a
    scanned value was an escaped quote there, and closes where that value closed (or does not close at all)."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.scanned = (-1, -1, -1)  # (opening, closing or -1, end of the scan)

    def closing(self, opening: int) -> int:
        start, close, end = self.scanned
        if start < opening < end:
            return close
        line, position = self.line, opening + 1
        while position < len(line):
            char = line[position]
            if char == "\\":
                position += 2
                continue
            if char == '"':
                self.scanned = (opening, position, position)
                return position
            position += 1
        self.scanned = (opening, -1, len(line))
        return -1


def unquote(value: str) -> str:
    """A quoted setting's text: the quotes removed and each backslash escape replaced by the character it
    escapes; an unquoted value as it is."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    out: list[str] = []
    inner, position = value[1:-1], 0
    while position < len(inner):
        backslash = inner.find("\\", position)
        if backslash < 0 or backslash + 1 >= len(inner):
            out.append(inner[position:])
            break
        out.append(inner[position:backslash])
        out.append(inner[backslash + 1])
        position = backslash + 2
    return "".join(out)


@dataclass(frozen=True)
class Network:
    """A ``<kind:name:weight>`` tag of the prompt; ``weight`` is the text written, possibly empty."""

    kind: str
    name: str
    weight: str
    start: int
    end: int


def networks_of(prompt: str) -> list[Network]:
    """The ``<lora:...>``, ``<lyco:...>`` and ``<hypernet:...>`` tags of a prompt (any letter case), in order."""
    found: list[Network] = []
    position, closing = 0, -1
    while True:
        opening = prompt.find("<", position)
        if opening < 0:
            return found
        if closing < opening:
            closing = prompt.find(">", opening)
            if closing < 0:
                return found  # no tag can close after this point
        tag = _network_at(prompt, opening, closing)
        if tag is None:
            position = opening + 1
        else:
            found.append(tag)
            position = tag.end
            closing = -1


def _network_at(prompt: str, opening: int, closing: int) -> Network | None:
    """The tag opening at ``opening`` and closing at the next ``>``; its name runs to the first colon, its weight
    to the next one (anything after that is ignored, as A1111 does)."""
    for kind in NETWORK_KINDS:
        head = opening + 1 + len(kind)
        if prompt[opening + 1:head].lower() == kind and prompt[head:head + 1] == ":":
            break
    else:
        return None
    name_start = head + 1
    name_end = _colon(prompt, name_start, closing)
    if name_end == name_start:
        return None
    weight = ""
    if name_end < closing:
        weight = prompt[name_end + 1:_colon(prompt, name_end + 1, closing)]
    return Network(kind, prompt[name_start:name_end], weight, opening, closing + 1)


def _colon(text: str, start: int, end: int) -> int:
    found = text.find(":", start, end)
    return end if found < 0 else found


def without_networks(prompt: str, tags: list[Network]) -> str:
    """The prompt with ``tags`` cut out."""
    parts, position = [], 0
    for tag in tags:
        parts.append(prompt[position:tag.start])
        position = tag.end
    parts.append(prompt[position:])
    return "".join(parts)


def tidy(line: str) -> str:
    """A prompt line after its tags were cut: runs of commas with only blanks between them become one comma, runs
    of blanks one space, and leading or trailing blanks and commas go."""
    parts = line.split(",")
    kept = [parts[0]]
    index = 1
    while index < len(parts):
        end = index
        while end < len(parts) - 1 and not parts[end].strip(BLANKS):
            end += 1
        if end > index:  # two commas or more with only blanks between them: one comma
            kept[-1] = kept[-1].rstrip(BLANKS)
        kept.append(parts[end])
        index = end + 1
    return BLANK_RUN.sub(" ", ",".join(kept)).strip().strip(",").strip()
