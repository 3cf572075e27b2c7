"""The tiny TAESD for step previews: a diffusers ``AutoencoderTiny`` from a small config with fixed random weights.

It has TAESD's layout (three 2x upsamplings, so one latent cell becomes 8x8 pixels; 4 latent channels like the SD,
SDXL and tiny SD3 latents) with 8 channels per block and one block per level, so tests and the offline quickstart
run the real TAESD decoding path in a fraction of a millisecond. Its pictures are noise, like every tiny model's.
"""

from __future__ import annotations

import json
from pathlib import Path

from nodeforge.nodes.models.catalogue.resolver import TinyModel


def build_taesd(folder: Path) -> None:
    from diffusers import AutoencoderTiny

    taesd = AutoencoderTiny(latent_channels=4, encoder_block_out_channels=(8, 8, 8, 8),
                            decoder_block_out_channels=(8, 8, 8, 8), num_encoder_blocks=(1, 1, 1, 1),
                            num_decoder_blocks=(1, 1, 1, 1))
    taesd.save_pretrained(str(folder))
    config = folder / "config.json"  # diffusers saves an alias it then warns about on every load: leave it out
    data = json.loads(config.read_text(encoding="utf-8"))
    data.pop("block_out_channels", None)
    config.write_text(json.dumps(data, indent=2), encoding="utf-8")


TINY = {
    "taesd": TinyModel("taesd", build_taesd, "TAESD (AutoencoderTiny) layout for step previews, random weights "
                                             "(noise); what tiny models preview with under --preview-method taesd"),
}
