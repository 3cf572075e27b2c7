"""Prompts encoded as ComfyUI encodes them, on the tiny SD and SDXL pipelines: the token chunks equal ComfyUI
v0.3.64's own (tests/data/comfy_prompts/reference.json) and so does the conditioning ComfyUI computes with the same
tiny text encoders (conditioning.safetensors); weights follow ComfyUI's formula, long prompts make 154-token
conditionings, embedding files are inserted, and the diffusers pipelines take the result."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from nodeforge.engine.errors import NodeError
from nodeforge.nodes.models import build_resolver
from nodeforge.nodes.models.diffusion.prompt_encoding import (
    Clip,
    Encoding,
    NotReproduced,
    embedding_files,
    encode,
    encode_prompt,
    family_clips,
    layer_index,
    prompt_kwargs,
    same_length,
    tokenize,
)

DATA = Path(__file__).parents[1] / "data" / "comfy_prompts"
REFERENCE = json.loads((DATA / "reference.json").read_text(encoding="utf-8"))
with safe_open(str(DATA / "conditioning.safetensors"), "pt") as _file:
    ENCODED: list[str] = json.loads(_file.metadata()["prompts"])
CONDITIONING = load_file(str(DATA / "conditioning.safetensors"))


def stored(name: str, folder: Path = DATA / "embeddings") -> Path | None:
    """Embedding files by name, with or without their extension, as ComfyUI finds them in its folder."""
    for candidate in (name, f"{name}.safetensors", f"{name}.pt", f"{name}.bin"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


@pytest.fixture(scope="module")
def pipes(shared_models_dir: Path) -> Iterator[dict[str, Any]]:
    from diffusers import DiffusionPipeline

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
        resolver = build_resolver()
        loaded = {family: DiffusionPipeline.from_pretrained(str(resolver.resolve(f"tiny/{family}", None).path))
                  for family in ("sd", "sdxl")}
    for pipe in loaded.values():
        pipe.set_progress_bar_config(disable=True)
    yield loaded


def as_json(chunks: list[list[tuple[Any, float]]]) -> list[dict[str, list[Any]]]:
    return [{"tokens": [t if isinstance(t, int) else [float(v) for v in t.tolist()] for t, _ in chunk],
             "weights": [w for _, w in chunk]} for chunk in chunks]


@pytest.mark.parametrize("key", ["clip_l", "clip_g"])
def test_tokens_equal_comfyui(pipes: dict[str, Any], key: str) -> None:
    clip = family_clips(pipes["sdxl"], "sdxl")[0 if key == "clip_l" else 1]
    assert clip.key == key
    different = [text for text, chunks in REFERENCE["tokens"][key].items()
                 if as_json(tokenize(text, clip, Encoding(stored))) != chunks]
    assert different == []
    assert max(len(chunks) for chunks in REFERENCE["tokens"][key].values()) >= 3  # long prompts were compared


@pytest.mark.parametrize(("family", "layer", "key"), [("sd", None, "sd"), ("sd", -2, "sd_layer-2"),
                                                      ("sdxl", None, "sdxl"), ("sdxl", -1, "sdxl_layer-1")])
def test_conditioning_equals_comfyui(pipes: dict[str, Any], family: str, layer: int | None, key: str) -> None:
    clips = family_clips(pipes[family], family)
    for i, text in enumerate(ENCODED):
        cond, pooled = encode_prompt(text, clips, Encoding(stored, layer))
        torch.testing.assert_close(cond, CONDITIONING[f"{key}/{i}"], atol=1e-5, rtol=0)  # attention kernels differ
        if key == "sdxl":
            assert pooled is not None
            torch.testing.assert_close(pooled, CONDITIONING[f"sdxl_pooled/{i}"], atol=1e-5, rtol=0)


def test_weights_move_away_from_the_empty_prompt(pipes: dict[str, Any]) -> None:
    clip = family_clips(pipes["sd"], "sd")[0]
    how = Encoding(stored)
    weighted = encode(tokenize("(cat:1.3) dog ((sky))", clip, how), clip, how)[0][0]
    plain = encode(tokenize("cat dog sky", clip, how), clip, how)[0][0]
    empty = encode(tokenize("", clip, how), clip, how)[0][0]
    for position, weight in ((1, 1.3), (3, 1.1 * 1.1)):
        expected = (plain[position] - empty[position]) * weight + empty[position]
        torch.testing.assert_close(weighted[position], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(weighted[2], plain[2], atol=1e-6, rtol=0)
    assert not torch.allclose(weighted[1], plain[1])


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_long_prompt_and_short_negative(pipes: dict[str, Any], family: str) -> None:
    long_prompt = "red cat, blue sky, green tree, " * 9
    kwargs = prompt_kwargs(pipes[family], family, long_prompt, "dog", guidance=True, embeddings=stored)
    assert kwargs is not None
    width = 32 if family == "sd" else 64
    assert kwargs["prompt_embeds"].shape == kwargs["negative_prompt_embeds"].shape == (1, 154, width)
    negative = encode_prompt("dog", family_clips(pipes[family], family), Encoding(stored))[0]
    assert torch.equal(kwargs["negative_prompt_embeds"], torch.cat([negative, negative], dim=1))
    if family == "sdxl":
        assert kwargs["pooled_prompt_embeds"].shape == kwargs["negative_pooled_prompt_embeds"].shape == (1, 32)
    else:
        assert "pooled_prompt_embeds" not in kwargs


def test_same_length_repeats_to_the_least_common_multiple() -> None:
    two, three = torch.randn(1, 154, 4), torch.randn(1, 231, 4)
    longer = same_length([two, three])
    assert [tuple(c.shape) for c in longer] == [(1, 462, 4), (1, 462, 4)]
    assert torch.equal(longer[0][:, 154:308], two) and torch.equal(longer[1][:, 231:], three)


def test_embedding_vectors_replace_token_embeddings(pipes: dict[str, Any], tmp_path: Path) -> None:
    """An embedding holding the token embeddings of "fox" and "sky" encodes exactly as those words do."""
    pipe = pipes["sd"]
    ids = pipe.tokenizer("fox sky")["input_ids"][1:-1]
    vectors = pipe.text_encoder.get_input_embeddings().weight[ids].detach().clone()
    save_file({"emb_params": vectors}, str(tmp_path / "foxsky.safetensors"))
    kwargs = prompt_kwargs(pipe, "sd", "a (embedding:foxsky:1.2) tree", "", guidance=False,
                           embeddings=lambda name: stored(name, tmp_path))
    expected = prompt_kwargs(pipe, "sd", "a (fox sky:1.2) tree", "", guidance=False, embeddings=stored)
    assert kwargs is not None and expected is not None
    assert torch.equal(kwargs["prompt_embeds"], expected["prompt_embeds"])
    hooks = pipe.text_encoder.get_input_embeddings()._forward_hooks
    assert not hooks  # the hook lived for one encode


def test_unknown_and_unfitting_embeddings_are_errors(pipes: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(NodeError, match="embedding 'nothere' was not found") as missing:
        prompt_kwargs(pipes["sd"], "sd", "a cat embedding:nothere", "", guidance=False, embeddings=stored)
    assert missing.value.input == "prompt"
    save_file({"emb_params": torch.zeros(2, 768)}, str(tmp_path / "sd15.safetensors"))
    with pytest.raises(NodeError, match="'sd15'.*width 768.*takes 32") as unfitting:
        prompt_kwargs(pipes["sd"], "sd", "embedding:sd15", "", guidance=False,
                      embeddings=lambda name: stored(name, tmp_path))
    assert unfitting.value.input == "prompt"


def test_clip_layer_out_of_range_is_an_error(pipes: dict[str, Any]) -> None:
    with pytest.raises(NodeError, match="CLIP layer -3 does not exist") as error:
        prompt_kwargs(pipes["sd"], "sd", "a cat", "", guidance=False, embeddings=stored, clip_layer=-3)
    assert error.value.input == "clip_layer"


def test_sd2_layers_count_the_layer_diffusers_drops(pipes: dict[str, Any]) -> None:
    """SD 2.x in diffusers has 23 of OpenCLIP-H's 24 layers: ComfyUI's default (-2) is the encoder's last layer,
    -3 the one before, and -1 is not in the checkpoint."""
    sd2 = Clip(pipes["sd"].tokenizer, None, "clip_h", pad_with_end=False, penultimate=True, norm_hidden=True,
               missing_layers=1)
    states = 24  # the embeddings and 23 layers
    assert layer_index(sd2, None, states) == layer_index(sd2, -2, states) == 23
    assert layer_index(sd2, -3, states) == 22
    with pytest.raises(NodeError, match="lacks its last 1 layer"):
        layer_index(sd2, -1, states)
    assert sd2.pad == 0


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_flow_families_are_not_reproduced(family: str) -> None:
    assert prompt_kwargs(None, family, "a red cat", "", guidance=True, embeddings=stored) is None
    with pytest.raises(NotReproduced, match=f"not applied for {family}"):
        prompt_kwargs(None, family, "a (red:1.2) cat", "", guidance=True, embeddings=stored)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_pipelines_take_the_conditioning(pipes: dict[str, Any], family: str) -> None:
    pipe = pipes[family]
    prompts = ["a (red:1.3) cat, " * 30, "embedding:emb_multi sky"]
    kwargs = prompt_kwargs(pipe, family, prompts, "(dog:0.5)", guidance=True, embeddings=stored)
    assert kwargs is not None and kwargs["prompt_embeds"].shape[:2] == (2, 154)
    images = pipe(**kwargs, num_inference_steps=1, guidance_scale=2.0, height=64, width=64, output_type="pt",
                  num_images_per_prompt=2, generator=torch.Generator("cpu").manual_seed(0)).images
    assert images.shape == (4, 3, 64, 64)


def test_embedding_files_try_comfyui_suffixes(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("plain.safetensors", "old.pt", "sub/deep.safetensors", "exact"):
        (tmp_path / name).write_bytes(b"")
    asked: list[str] = []

    def resolve(name: str) -> Path:
        asked.append(name)
        if not (tmp_path / name).exists():
            raise NodeError(f"model file or folder '{name}' does not exist", input="prompt")
        return tmp_path / name

    find = embedding_files(resolve)
    assert find("plain") == tmp_path / "plain.safetensors"
    assert find("old") == tmp_path / "old.pt"
    assert find("exact") == tmp_path / "exact"
    assert find("plain.safetensors") == tmp_path / "plain.safetensors"
    asked.clear()
    assert find("sub/deep") == tmp_path / "sub" / "deep.safetensors"
    assert asked == ["sub/deep.safetensors"]  # never the Hub-like bare name
    assert find("sub") is None  # a folder is not an embedding
    assert find("nothere") is None


def test_a1111_chunks_break_and_comma_backtrack(pipes: dict[str, Any]) -> None:
    clip = family_clips(pipes["sd"], "sd")[0]
    cat, dog, comma = (clip.tokenizer(word, add_special_tokens=False)["input_ids"][0] for word in ("cat", "dog", ","))
    how = Encoding(stored, syntax="a1111")
    broken = tokenize("a cat BREAK [dog]", clip, how)
    assert [len(chunk) for chunk in broken] == [77, 77]
    assert broken[1][1] == (dog, 1 / 1.1) and broken[1][2:] == [(clip.end, 1.0)] * 75
    moved = tokenize("cat " * 70 + ", " + "dog " * 10, clip, how)
    assert [token for token, _ in moved[0][:73]] == [clip.start, *[cat] * 70, comma, clip.end]
    assert [token for token, _ in moved[1][:12]] == [clip.start, *[dog] * 10, clip.end]
    assert len(tokenize("cat " * 80, clip, how)[0]) == 77  # no comma: cut at 75 tokens


@pytest.mark.parametrize("normalize", [True, False])
def test_a1111_weights_multiply_and_keep_the_mean(pipes: dict[str, Any], normalize: bool) -> None:
    clip = family_clips(pipes["sd"], "sd")[0]
    how = Encoding(stored, syntax="a1111", normalize=normalize)
    weighted = encode(tokenize("(cat:1.5) [dog]", clip, how), clip, how)[0][0]
    plain = encode(tokenize("cat dog", clip, how), clip, how)[0][0]
    multiplied = plain * torch.tensor([1.0, 1.5, 1 / 1.1] + [1.0] * 74)[:, None]
    expected = multiplied * (plain.mean() / multiplied.mean()) if normalize else multiplied
    torch.testing.assert_close(weighted, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_a1111_prompts_reach_the_pipeline(pipes: dict[str, Any], family: str) -> None:
    kwargs = prompt_kwargs(pipes[family], family, "a (red:1.2) cat BREAK [blue] sky", "dog", guidance=True,
                           embeddings=stored, syntax="a1111")
    assert kwargs is not None and kwargs["prompt_embeds"].shape[1] == kwargs["negative_prompt_embeds"].shape[1] == 154
    with pytest.raises(NotReproduced):
        prompt_kwargs(None, "flux", "a cat BREAK a dog", "", guidance=False, embeddings=stored, syntax="a1111")
