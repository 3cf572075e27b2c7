"""Writes reference.json, ComfyUI's own tokenization of the prompts in prompts.json, and conditioning.safetensors,
ComfyUI's own encoding of some of them with the tiny SD and SDXL text encoders (see README.md).

Run with ComfyUI's venv; it imports ComfyUI's ``comfy.sd1_clip`` and ``comfy.sdxl_clip`` from ``--comfy``. The
embedding files in ``embeddings/`` are written first when missing (fixed values, so they are the same everywhere).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
WIDTH = 32  # the tiny models' CLIP width
ENCODED = ["", "a red cat", "(masterpiece:1.3) best quality, (girl:0.8)", "((fox)) and (((dog)))",
           "red cat, blue sky, green tree, " * 9, "a (embedding:emb_multi:1.2) cat",
           "embedding:emb_pair (sky:0.7) embedding:emb_multi"]


def write_embeddings(folder: Path) -> None:
    """Small textual-inversion files in the formats ComfyUI reads: single-tensor safetensors (``emb_params``),
    A1111's ``.pt`` (``string_to_param``) and SDXL's ``clip_l``/``clip_g`` pair."""
    import torch
    from safetensors.torch import save_file

    def rows(count: int, offset: float) -> torch.Tensor:
        return (torch.arange(count * WIDTH, dtype=torch.float32).reshape(count, WIDTH) / 64.0 + offset).contiguous()

    folder.mkdir(exist_ok=True)
    save_file({"emb_params": rows(1, 1.0)}, str(folder / "emb_a.safetensors"))
    save_file({"emb_params": rows(3, -2.0)}, str(folder / "emb_multi.safetensors"))
    torch.save({"string_to_param": {"*": rows(2, 0.5)}, "name": "emb_pt", "step": 10}, str(folder / "emb_pt.pt"))
    save_file({"clip_l": rows(2, 3.0), "clip_g": rows(2, -3.0)}, str(folder / "emb_pair.safetensors"))


def encoded(chunks: list[list[tuple[Any, float]]]) -> list[dict[str, list[Any]]]:
    """Chunks as JSON: token ids, or an embedding vector as its list of floats; the weights beside them."""
    return [{"tokens": [t if isinstance(t, int) else [float(v) for v in t.tolist()] for t, _ in chunk],
             "weights": [w for _, w in chunk]} for chunk in chunks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--comfy", type=Path, required=True, help="ComfyUI's source folder")
    parser.add_argument("--tokenizer", type=Path, required=True, help="the tiny CLIP tokenizer folder")
    parser.add_argument("--sd", type=Path, required=True, help="the tiny/sd diffusers folder")
    parser.add_argument("--sdxl", type=Path, required=True, help="the tiny/sdxl diffusers folder")
    args = parser.parse_args()
    sys.argv = [sys.argv[0], "--cpu"]
    sys.path.insert(0, str(args.comfy))
    import comfy.options

    comfy.options.enable_args_parsing()
    from comfy import sd1_clip, sdxl_clip

    logging.disable(logging.WARNING)  # unknown embeddings are warned about and dropped
    embeddings = HERE / "embeddings"
    if not embeddings.exists():
        write_embeddings(embeddings)
    tokenizers = {"clip_l": sd1_clip.SDTokenizer(str(args.tokenizer), embedding_directory=str(embeddings)),
                  "clip_g": sdxl_clip.SDXLClipGTokenizer(str(args.tokenizer), embedding_directory=str(embeddings))}
    prompts = json.loads((HERE / "prompts.json").read_text(encoding="utf-8"))
    segments = {text: [[sd1_clip.unescape_important(part), weight]
                       for part, weight in sd1_clip.token_weights(sd1_clip.escape_important(text), 1.0)]
                for text in prompts}
    tokens = {key: {text: encoded(tokenizer.tokenize_with_weights(text)) for text in prompts}
              for key, tokenizer in tokenizers.items()}
    reference = {"segments": segments, "tokens": tokens}
    (HERE / "reference.json").write_text(json.dumps(reference, ensure_ascii=False) + "\n", encoding="utf-8")
    write_conditioning(tokenizers, args.sd, args.sdxl)


def tiny_clip(folder: Path, **options: Any) -> Any:
    """ComfyUI's CLIP text model (``SDClipModel``) with a tiny diffusers text encoder's config and weights."""
    from comfy import sd1_clip
    from safetensors.torch import load_file

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    model = sd1_clip.SDClipModel(textmodel_json_config=config, **options)
    import torch

    weights = {key if key.startswith(("text_model.", "text_projection")) else f"text_model.{key}": value
               for key, value in load_file(str(folder / "model.safetensors")).items()}  # CLIPTextModel: no prefix
    vocab = weights["text_model.embeddings.token_embedding.weight"]  # ComfyUI's CLIP always has 49408 token rows
    weights["text_model.embeddings.token_embedding.weight"] = torch.cat([vocab, vocab.new_zeros(49408 - len(vocab),
                                                                                                 WIDTH)])
    missing, _ = model.load_sd(weights)
    assert not [key for key in missing if "text_projection" not in key], missing
    return model


def write_conditioning(tokenizers: dict[str, Any], sd: Path, sdxl: Path) -> None:
    """ComfyUI's ``CLIP.encode_from_tokens`` path (``encode_token_weights``) for ENCODED: SD 1.x at its default
    layer and at CLIPSetLastLayer -2, SDXL with both encoders and clip_g's pooled output, and at CLIPSetLastLayer
    -1."""
    import torch
    from comfy import sd1_clip, sdxl_clip
    from safetensors.torch import save_file

    tiny = {"start": 0, "end": 1, "pad": 1}
    sd1 = sd1_clip.SD1ClipModel()
    sd1.clip_l = tiny_clip(sd / "text_encoder", special_tokens=tiny, return_projected_pooled=False)
    xl = sdxl_clip.SDXLClipModel()
    xl.clip_l = tiny_clip(sdxl / "text_encoder", special_tokens=tiny, layer_norm_hidden_state=False)
    xl.clip_g = tiny_clip(sdxl / "text_encoder_2", special_tokens={**tiny, "pad": 0}, layer_norm_hidden_state=False,
                          return_projected_pooled=True)
    xl.set_clip_options({"layer": -2})  # SDXL's penultimate layer (the constructor refuses it for 2 layers)
    tensors: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for i, text in enumerate(ENCODED):
            l_tokens = tokenizers["clip_l"].tokenize_with_weights(text)
            tensors[f"sd/{i}"] = sd1.encode_token_weights({"l": l_tokens})[0]
            sd1.set_clip_options({"layer": -2})
            tensors[f"sd_layer-2/{i}"] = sd1.encode_token_weights({"l": l_tokens})[0]
            sd1.reset_clip_options()
            xl_tokens = {"l": l_tokens, "g": tokenizers["clip_g"].tokenize_with_weights(text)}
            tensors[f"sdxl/{i}"], tensors[f"sdxl_pooled/{i}"] = xl.encode_token_weights(xl_tokens)
            xl.set_clip_options({"layer": -1})
            tensors[f"sdxl_layer-1/{i}"] = xl.encode_token_weights(xl_tokens)[0]
            xl.set_clip_options({"layer": -2})
    save_file({key: value.contiguous() for key, value in tensors.items()}, str(HERE / "conditioning.safetensors"),
              metadata={"prompts": json.dumps(ENCODED)})


if __name__ == "__main__":
    main()
