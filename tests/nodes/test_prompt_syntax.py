"""ComfyUI's prompt syntax: the (text, weight) runs equal ComfyUI v0.3.64's own ``token_weights`` for tricky prompts
(tests/data/comfy_prompts/reference.json, made by ComfyUI itself), and embedding words are found as there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.nodes.models.diffusion.prompt_syntax import (
    a1111_segments,
    comfy_segments,
    embedding_candidates,
    has_syntax,
    split_embeddings,
)

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "comfy_prompts" / "reference.json")
                       .read_text(encoding="utf-8"))


@pytest.mark.parametrize("text", list(REFERENCE["segments"]))
def test_segments_equal_comfyui(text: str) -> None:
    assert comfy_segments(text) == [tuple(run) for run in REFERENCE["segments"][text]]


def test_weights_follow_comfyui_rules() -> None:
    assert comfy_segments("((a))") == [("a", 1.1 * 1.1)]
    assert comfy_segments("(a:1.3)") == [("a", 1.3)]  # set, not multiplied
    assert comfy_segments("((a:0.5))") == [("a", 0.5)]
    assert comfy_segments("(a:b)") == [("a:b", 1.1)]  # not a number: the colon is text
    assert comfy_segments("[a]") == [("[a]", 1.0)]  # no de-emphasis in ComfyUI
    assert comfy_segments("\\(a\\)") == [("(a)", 1.0)]


def test_embedding_words_and_candidates() -> None:
    assert split_embeddings("a cat embedding:x, dog") == ["a cat", "embedding:x, dog"]
    assert split_embeddings("a cat,embedding:x") == ["a cat,embedding:x"]  # not after a space: text
    assert split_embeddings("embedding:x\nembedding:y") == ["embedding:x", "embedding:y"]
    assert embedding_candidates("embedding:x, dog") == [("x,", "dog"), ("x", ", dog")]
    assert embedding_candidates("embedding:x") == [("x", "")]
    assert embedding_candidates("embedding:") == []


def test_has_syntax() -> None:
    assert not has_syntax("a red cat, [blue] sky")
    assert not has_syntax("a (cat")  # an unclosed bracket stays text
    assert has_syntax("a (cat)")
    assert has_syntax("a \\(cat\\)")
    assert has_syntax("a embedding:x")


# A1111's own examples (stable-diffusion-webui 1.x, modules/prompt_parser.py, parse_prompt_attention's doctest).
A1111_EXAMPLES = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
      (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)]),
]


@pytest.mark.parametrize(("text", "expected"), A1111_EXAMPLES)
def test_a1111_segments_equal_a1111_examples(text: str, expected: list[tuple[str, float]]) -> None:
    assert a1111_segments(text) == expected


def test_a1111_break_and_brackets() -> None:
    assert a1111_segments("a cat BREAK [dog]") == [("a cat", 1.0), ("BREAK", -1.0), ("", 1.0), ("dog", 1 / 1.1)]
    assert a1111_segments("(a:1.2) ( b : 0.5 )") == [("a", 1.2), (" ", 1.0), (" b ", 0.5)]
    assert a1111_segments("") == [("", 1.0)]
    assert has_syntax("a BREAK b", "a1111") and not has_syntax("a BREAK b")
    assert has_syntax("[a]", "a1111") and not has_syntax("[a]")
