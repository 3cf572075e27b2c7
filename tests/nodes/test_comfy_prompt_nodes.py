"""ComfyUI's prompt syntax through the diffusion nodes: ``(word:1.0)`` is the word, other weights change the
picture, the words after the 77th token still count (ComfyUI encodes long prompts in chunks), ``clip_layer`` picks
the text encoder's layer, and an embedding name without a file is an error naming the node and the prompt."""

from __future__ import annotations

from typing import Any

import pytest

from nodeforge.engine.session import Session
from tests.nodes.image_support import generate, image_executor, pixels, run_nodes, succeeded

__all__ = ["image_executor"]


def picture(session: Session, prompt: str, **inputs: Any) -> Any:
    return pixels(succeeded(run_nodes(session, {"g": generate(prompt=prompt, **inputs)}))["g.image"])


@pytest.mark.parametrize("model", ["tiny/sd", "tiny/sdxl"])
def test_weights_emphasis_and_long_prompts_reach_the_picture(image_executor: Session, model: str) -> None:
    import torch

    plain = picture(image_executor, "a red fox in the snow", model=model)
    assert torch.equal(picture(image_executor, "a red (fox:1.0) in the snow", model=model), plain)
    assert not torch.equal(picture(image_executor, "a red (fox:1.4) in the snow", model=model), plain)
    assert not torch.equal(picture(image_executor, "a red (fox) in the snow", model=model), plain)
    long = "a red fox in the snow, " * 16
    assert not torch.equal(picture(image_executor, long + "under a green moon", model=model),
                           picture(image_executor, long + "under a blue sun", model=model))


def test_clip_layer_chooses_the_text_encoders_layer(image_executor: Session) -> None:
    import torch

    assert not torch.equal(picture(image_executor, "a red fox", clip_layer=-2), picture(image_executor, "a red fox"))


def test_an_embedding_without_a_file_fails_naming_node_and_prompt(image_executor: Session) -> None:
    result = run_nodes(image_executor, {"g": generate(prompt="a fox, embedding:no-such-style")})
    error = result.record.nodes["g"].error or ""
    assert error.startswith("node 'g' (image.generate), input 'prompt': ")
    assert "no-such-style" in error


def test_a1111_syntax_reads_brackets_as_less_weight(image_executor: Session) -> None:
    import torch

    plain = picture(image_executor, "a red fox in the snow", prompt_syntax="a1111")
    assert torch.equal(picture(image_executor, "a red fox in the snow"), plain)
    assert not torch.equal(picture(image_executor, "a red [fox] in the snow", prompt_syntax="a1111"), plain)
    assert not torch.equal(picture(image_executor, "a red (fox:1.3) in the snow", prompt_syntax="a1111_no_norm"),
                           picture(image_executor, "a red (fox:1.3) in the snow", prompt_syntax="a1111"))
