"""Prompt syntax: which parts of a prompt carry which weight, as ComfyUI reads them (and A1111, for its PNGs), and
where ComfyUI's ``embedding:name`` words are.

A ComfyUI prompt is parsed before it is tokenized (ComfyUI v0.3.64, ``comfy/sd1_clip.py``), and the same prompt
must give the same picture here, so this module follows ComfyUI's rules, quirks included:

- ``(text)`` multiplies the weight of ``text`` by 1.1; nested brackets multiply again (``((a))`` is 1.1 x 1.1, as
  a float product, so 1.2100000000000002).
- ``(text:1.3)`` sets the weight to 1.3 (it does not multiply): the number after the *last* colon inside the
  brackets, read as Python reads a float (``" 1.3 "``, ``1e-1`` and ``inf`` included); when it is not a number, the
  colon stays text and the group is an emphasis (x1.1). A colon at the start of the group is text.
- ``\\(`` and ``\\)`` are literal brackets. ``[text]`` is plain text: ComfyUI has no de-emphasis (A1111 does).
- Unbalanced brackets are not errors: an unclosed ``(`` is text, and a stray ``)`` joins the text around it.
- ``embedding:name`` loads a textual-inversion embedding when it starts a segment or follows a space or newline;
  the name ends at the next whitespace, and when ``name,`` has no file, ``name`` is tried and the commas stay text.

A1111 (stable-diffusion-webui 1.x, ``modules/prompt_parser.py``) reads the same brackets otherwise: ``(text:1.3)``
multiplies (it is the factor of the group), ``[text]`` divides by 1.1, unclosed brackets apply to the end, ``\\[``,
``\\]`` and ``\\\\`` are escapes too, runs of equal weight merge, and ``BREAK`` (a word of its own) ends a chunk: it is
returned as the run ``("BREAK", -1.0)``. Its prompt editing (``[a:b:0.5]``, ``[a|b]``) and ``AND`` are not parsed.
"""

from __future__ import annotations

import re
from typing import Any

from nodeforge.engine.errors import NodeError

EMBEDDING_PREFIX = "embedding:"
EMPHASIS = 1.1
# Escaped brackets become characters a prompt does not contain while brackets are parsed (as ComfyUI does).
_ESCAPES = (("\\)", "\0\1"), ("\\(", "\0\2"))
_EMBEDDING_START = re.compile(f" {EMBEDDING_PREFIX}|\n{EMBEDDING_PREFIX}")
A1111_BREAK = ("BREAK", -1.0)
_A1111_PARTS = re.compile(r"\\[()\[\]\\]?|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:")
_A1111_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def comfy_segments(text: str) -> list[tuple[str, float]]:
    """The prompt as (text, weight) runs in order, escapes resolved: ComfyUI's ``token_weights``."""
    for escape, hidden in _ESCAPES:
        text = text.replace(escape, hidden)
    return [(_unescape(part), weight) for part, weight in _weighted(text, 1.0)]


def _unescape(text: str) -> str:
    for escape, hidden in _ESCAPES:
        text = text.replace(hidden, escape[1])
    return text


def _weighted(text: str, weight: float) -> list[tuple[str, float]]:
    runs: list[tuple[str, float]] = []
    for part in _bracket_groups(text):
        if len(part) < 2 or part[0] != "(" or part[-1] != ")":
            runs.append((part, weight))
            continue
        inner, inner_weight = part[1:-1], weight * EMPHASIS
        colon = inner.rfind(":")
        if colon > 0:
            try:
                inner_weight = float(inner[colon + 1:])
                inner = inner[:colon]
            except ValueError:  # not a number: the colon is text and the group an emphasis
                pass
        runs.extend(_weighted(inner, inner_weight))
    return runs


def _bracket_groups(text: str) -> list[str]:
    """``text`` split into runs outside brackets and whole top-level ``(...)`` groups. Depth is counted the way
    ComfyUI counts it, so unbalanced text splits as it does there: a ``)`` that closes nothing makes the depth
    negative and keeps the following ``(`` in the same run."""
    parts: list[str] = []
    current = ""
    depth = 0
    for char in text:
        if char == "(":
            if depth == 0 and current:
                parts.append(current)
                current = ""
            depth += 1
            current += char
        elif char == ")":
            depth -= 1
            current += char
            if depth == 0:
                parts.append(current)
                current = ""
        else:
            current += char
    if current:
        parts.append(current)
    return parts


def split_embeddings(segment: str) -> list[str]:
    """The words of one segment that are tokenized apart: text runs, and runs that start with ``embedding:``
    (where one starts the segment or follows a space or newline; the separator itself is dropped)."""
    first, *rest = _EMBEDDING_START.split(segment)
    return [word for word in (first, *(EMBEDDING_PREFIX + part for part in rest)) if word]


def embedding_candidates(word: str) -> list[tuple[str, str]]:
    """For a word that starts with ``embedding:``: the embedding names to try in order, each with the text left
    over after it (tokenized as ordinary text). The name is the first whitespace-separated part; when it ends or
    starts with commas, the name without them is the second candidate and the commas are left over."""
    parts = word[len(EMBEDDING_PREFIX):].strip("\n").split()
    if not parts:
        return []
    name, leftover = parts[0], " ".join(parts[1:])
    candidates = [(name, leftover)]
    stripped = name.strip(",")
    if len(stripped) < len(name):
        candidates.append((stripped, f"{name[len(stripped):]} {leftover}"))
    return candidates


def a1111_segments(text: str) -> list[tuple[str, float]]:
    """The prompt as (text, weight) runs as A1111's ``parse_prompt_attention`` gives them, BREAK as A1111_BREAK."""
    runs: list[list[Any]] = []
    opened: dict[str, list[int]] = {"(": [], "[": []}

    def scale(start: int, factor: float) -> None:
        for run in runs[start:]:
            run[1] *= factor

    for match in _A1111_PARTS.finditer(text):
        part, number = match.group(0), match.group(1)
        if part.startswith("\\"):
            runs.append([part[1:], 1.0])
        elif part in opened:
            opened[part].append(len(runs))
        elif number is not None and opened["("]:
            scale(opened["("].pop(), _a1111_number(number))
        elif part == ")" and opened["("]:
            scale(opened["("].pop(), EMPHASIS)
        elif part == "]" and opened["["]:
            scale(opened["["].pop(), 1 / EMPHASIS)
        else:
            for i, piece in enumerate(_A1111_BREAK.split(part)):
                if i:
                    runs.append(list(A1111_BREAK))
                runs.append([piece, 1.0])
    for start in opened["("]:
        scale(start, EMPHASIS)
    for start in opened["["]:
        scale(start, 1 / EMPHASIS)
    merged: list[list[Any]] = []
    for run in runs or [["", 1.0]]:
        if merged and merged[-1][1] == run[1]:
            merged[-1][0] += run[0]
        else:
            merged.append(run)
    return [(part, weight) for part, weight in merged]


def _a1111_number(number: str) -> float:
    try:
        return float(number)
    except ValueError:  # A1111 stops with this error too
        raise NodeError(f"prompt weight '{number}' is not a number", input="prompt") from None


def has_syntax(text: str, syntax: str = "comfy") -> bool:
    """Whether a prompt means something else than its plain text: weights, escapes, embedding words, BREAK."""
    segments = a1111_segments(text) if syntax == "a1111" else comfy_segments(text)
    if any(weight != 1.0 for _, weight in segments) or "".join(part for part, _ in segments) != text:
        return True
    return syntax != "a1111" and any(word.startswith(EMBEDDING_PREFIX) for part, _ in segments
                                     for word in split_embeddings(part))
