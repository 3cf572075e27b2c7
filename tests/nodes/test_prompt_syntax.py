"""ComfyUI's prompt syntax: the (text, weight) runs equal ComfyUI v0.3.64's own ``token_weights`` for tricky prompts
(tests/data/comfy_prompts/reference.json, made by ComfyUI itself), and embedding words are found as there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.nodes.models.diffusion.prompt_syntax import (
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
