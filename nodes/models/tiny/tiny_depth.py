"""A tiny Depth Anything model (``tiny/depth``) built from a config with fixed random weights.

The layout of Depth Anything V2: a DINOv2 backbone (patch 14) feeding a DPT neck and a depth head, with the DPT
image processor of the real checkpoints (keep the aspect ratio, sides a multiple of 14, ImageNet mean and std),
shrunk to a 56-pixel input, 32 hidden units and 2 layers. ``image.depth`` loads it with the same
``from_pretrained`` calls as the real weights, so tests run the real transformers code; its depth maps are noise.
"""

from __future__ import annotations

from pathlib import Path

from nodeforge.nodes.models.catalogue.resolver import TinyModel

PATCH = 14
SIZE = 4 * PATCH
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def build_depth(folder: Path) -> None:
    """Depth Anything: DINOv2 (32 hidden, 2 layers, 2 heads, patch 14; both layers feed the neck, as the real
    checkpoints' four do), a two-level neck, a 16-channel fusion. The backbone config is given as a dict, the way
    saved checkpoints carry it."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    backbone = {"model_type": "dinov2", "image_size": SIZE, "patch_size": PATCH, "hidden_size": 32,
                "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2, "out_features": ["stage1", "stage2"],
                "reshape_hidden_states": False}
    config = DepthAnythingConfig(backbone_config=backbone, patch_size=PATCH, reassemble_hidden_size=32,
                                 reassemble_factors=[2, 1], neck_hidden_sizes=[16, 32], fusion_hidden_size=16,
                                 head_hidden_size=8, depth_estimation_type="relative")
    processor = DPTImageProcessorPil(size={"height": SIZE, "width": SIZE}, keep_aspect_ratio=True,
                                     ensure_multiple_of=PATCH, resample=3, do_rescale=True, do_normalize=True,
                                     image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)
    DepthAnythingForDepthEstimation(config).save_pretrained(str(folder))
    processor.save_pretrained(str(folder))


TINY = {
    "depth": TinyModel("depth", build_depth, "Depth Anything layout (DINOv2 + DPT head), random weights (noise)"),
}
