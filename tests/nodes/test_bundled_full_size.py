"""Every bundled full-size architecture, built from its shipped configuration on the meta device (no memory, no
weights), has exactly the parameter count of the real model: proof that the configurations are the real ones."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from nodeforge.nodes.models.checkpoints.bundled import BUNDLED_ARCHITECTURES, config_folder

pytestmark = pytest.mark.slow

# Where a count is "stored", it counts every tensor a checkpoint holds (SD3's positional table is a buffer, not a
# parameter); otherwise it counts parameters. Sources:
#   [diffusers]  diffusers' ModelMixin.num_parameters docstring: the SD 1.5 UNet has 859520964.
#   [index]      metadata.total_size of the Hub repository's safetensors index, divided by 2 bytes (bf16/fp16):
#                FLUX.1-dev transformer 23802816640, FLUX.1-schnell 23782357120, SD 3.5 Large 16292561536,
#                SD3 Medium text_encoder_3 (fp16 index) 9524621312.
#   [counted]    the same numbers printed or pinned by public projects that load the real weights: SD 1.5 VAE
#                83653863 and text encoder 123060480, SD2 UNet 865910724 and text encoder 340387840, SDXL UNet
#                2567463684, refiner UNet 2259526660, CLIP-L with projection 123650304, CLIP-bigG 694659840, the
#                16-channel VAE 83819683, SD3 Medium transformer 2028328000, Wan 2.1 1.3B transformer 1418996800.
#   [announced]  Stability AI's announced size, rounded: SD 3.5 Medium 2.5B (with its positional table).
CLIP_L, CLIP_L_PROJ, OPENCLIP_H, CLIP_G, T5_XXL = 123060480, 123650304, 340387840, 694659840, 4762310656
VAE_4, VAE_16 = 83653863, 83819683
EXPECTED: dict[str, dict[str, tuple[str, int]]] = {
    "sd15": {"unet": ("parameters", 859520964), "vae": ("parameters", VAE_4), "text_encoder": ("parameters", CLIP_L)},
    "sd2-base": {"unet": ("parameters", 865910724), "vae": ("parameters", VAE_4),
                 "text_encoder": ("parameters", OPENCLIP_H)},
    "sd2-v": {"unet": ("parameters", 865910724), "vae": ("parameters", VAE_4),
              "text_encoder": ("parameters", OPENCLIP_H)},
    "sdxl-base": {"unet": ("parameters", 2567463684), "vae": ("parameters", VAE_4),
                  "text_encoder": ("parameters", CLIP_L), "text_encoder_2": ("parameters", CLIP_G)},
    "sdxl-refiner": {"unet": ("parameters", 2259526660), "vae": ("parameters", VAE_4),
                     "text_encoder_2": ("parameters", CLIP_G)},
    "sd3-medium": {"transformer": ("parameters", 2028328000), "vae": ("parameters", VAE_16),
                   "text_encoder": ("parameters", CLIP_L_PROJ), "text_encoder_2": ("parameters", CLIP_G),
                   "text_encoder_3": ("parameters", T5_XXL)},
    "sd35-medium": {"vae": ("parameters", VAE_16), "text_encoder": ("parameters", CLIP_L_PROJ),
                    "text_encoder_2": ("parameters", CLIP_G), "text_encoder_3": ("parameters", T5_XXL)},
    "sd35-large": {"transformer": ("stored", 16292561536 // 2), "vae": ("parameters", VAE_16),
                   "text_encoder": ("parameters", CLIP_L_PROJ), "text_encoder_2": ("parameters", CLIP_G),
                   "text_encoder_3": ("parameters", T5_XXL)},
    "flux-dev": {"transformer": ("parameters", 23802816640 // 2), "vae": ("parameters", VAE_16),
                 "text_encoder": ("parameters", CLIP_L), "text_encoder_2": ("parameters", T5_XXL)},
    "flux-schnell": {"transformer": ("parameters", 23782357120 // 2), "vae": ("parameters", VAE_16),
                     "text_encoder": ("parameters", CLIP_L), "text_encoder_2": ("parameters", T5_XXL)},
    "wan21-t2v-1.3b": {"transformer": ("parameters", 1418996800)},
    "clip-l": {"": ("parameters", CLIP_L)}, "clip-g": {"": ("parameters", CLIP_G)},
    "t5-xxl": {"": ("parameters", T5_XXL)},
    "vae-sd": {"": ("parameters", VAE_4)}, "vae-sdxl": {"": ("parameters", VAE_4)},
    "vae-sd3": {"": ("parameters", VAE_16)}, "vae-flux": {"": ("parameters", VAE_16)},
}
ANNOUNCED = {("sd35-medium", "transformer"): 2.5e9}
NOT_WEIGHTS = ("scheduler", "tokenizer", "feature_extractor", "safety_checker")


def _on_meta(library: str, class_name: str, folder: Path) -> Any:
    from accelerate import init_empty_weights

    cls = getattr(importlib.import_module(library), class_name)
    with init_empty_weights(include_buffers=True):
        if library == "transformers":
            return cls(cls.config_class.from_pretrained(str(folder)))
        return cls.from_config(cls.load_config(str(folder)))


def _counts(model: Any) -> dict[str, int]:
    stored = {id(tensor): tensor.numel() for tensor in model.state_dict(keep_vars=True).values()}
    return {"parameters": sum(p.numel() for p in model.parameters()), "stored": sum(stored.values())}


def _weighted(architecture: str, folder: Path) -> dict[str, tuple[str, str, Path]]:
    """Each component with weights: (library, class, its config folder)."""
    if BUNDLED_ARCHITECTURES[architecture].kind == "component":
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if "_class_name" in config:
            return {"": ("diffusers", config["_class_name"], folder)}
        return {"": ("transformers", config["architectures"][0], folder)}
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    return {name: (entry[0], entry[1], folder / name) for name, entry in index.items()
            if isinstance(entry, list) and entry[0] is not None and not name.startswith(NOT_WEIGHTS)
            and name not in BUNDLED_ARCHITECTURES[architecture].missing}


@pytest.mark.parametrize("architecture", sorted(BUNDLED_ARCHITECTURES))
def test_full_size_components_have_the_published_parameter_counts(architecture: str, tmp_path: Path) -> None:
    folder = config_folder(architecture, tmp_path)
    components = _weighted(architecture, folder)
    expected = EXPECTED[architecture]
    assert set(components) == set(expected) | {part for arch, part in ANNOUNCED if arch == architecture}
    for name, (library, class_name, where) in components.items():
        counts = _counts(_on_meta(library, class_name, where))
        if (architecture, name) in ANNOUNCED:
            assert round(counts["stored"] / 1e8) == round(ANNOUNCED[architecture, name] / 1e8), (name, counts)
            continue
        kind, count = expected[name]
        assert counts[kind] == count, (architecture, name, class_name, counts)
