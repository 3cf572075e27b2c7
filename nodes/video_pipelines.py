"""diffusers video pipelines for video.generate: the families we recognise, their limits, loading, image-to-video.

A family is recognised from the resolver (tiny models and aliases declare it) or from ``model_index.json``. Each
family states the rules its checkpoints share (frame counts, size multiples), so a bad literal is reported before
anything runs; the exact limits of a loaded checkpoint (its VAE and patch size) are checked again before
inference, so nothing is rounded silently inside diffusers.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeforge.engine.declarations import ModelKind
from nodeforge.engine.errors import NodeError
from nodeforge.nodes.family_helpers import quiet_pipeline, reading_model, torch_device
from nodeforge.nodes.models.checkpoints.assemble import FindConfig, ModelFiles, load_from_files
from nodeforge.nodes.models.diffusion.memory import MemoryPlan, PlacedPipeline, place_pipeline

if TYPE_CHECKING:
    from nodeforge.engine.memory_modes import DeviceMemory


@dataclass(frozen=True)
class VideoFamily:
    """What one family of video models takes: frames ``frame_step * k + 1`` (1: any count up to ``max_frames``),
    width and height multiples of ``size_multiple``, text up to ``max_text_tokens`` tokens."""

    name: str
    text_to_video: str
    image_to_video: str | None
    frame_step: int
    size_multiple: int
    max_text_tokens: int | None
    max_frames: int | None = None
    takes_frame_rate: bool = False

    def frames_problem(self, frames: int, limit: int | None = None) -> str | None:
        step = self.frame_step
        if step > 1 and (frames - 1) % step:
            below = (frames - 1) // step * step + 1
            return (f"{self.name} makes {step}k+1 frames (its VAE packs {step} frames per latent after the first); "
                    f"{frames} is not one: use {below} or {below + step}")
        most = limit or self.max_frames
        if most is not None and frames > most:
            return f"{self.name} makes at most {most} frames; {frames} asked"
        return None

    def size_problem(self, name: str, value: int, multiple: int | None = None) -> str | None:
        multiple = multiple or self.size_multiple
        if value % multiple:
            below = max(value // multiple * multiple, multiple)
            return (f"{name} {value} is not a multiple of {multiple} (the {self.name} VAE and patch size divide "
                    f"it): use {below} or {below + multiple}")
        return None


FAMILIES = {
    "wan": VideoFamily("wan", "WanPipeline", "WanImageToVideoPipeline", 4, 16, 512),
    "ltx": VideoFamily("ltx", "LTXPipeline", "LTXImageToVideoPipeline", 8, 32, 128, takes_frame_rate=True),
    "cogvideox": VideoFamily("cogvideox", "CogVideoXPipeline", "CogVideoXImageToVideoPipeline", 4, 16, 226),
    "animatediff": VideoFamily("animatediff", "AnimateDiffPipeline", None, 1, 8, 77, max_frames=32),
}
VIDEO_MODEL = ModelKind("video", tuple(FAMILIES))
"""A diffusers video pipeline (Wan, LTX-Video, CogVideoX, AnimateDiff)."""
CLASS_PREFIXES = {"Wan": "wan", "LTX": "ltx", "CogVideoX": "cogvideox", "AnimateDiff": "animatediff"}
SUPPORTED_CLASSES = {"WanPipeline", "WanImageToVideoPipeline", "LTXPipeline", "LTXImageToVideoPipeline",
                     "CogVideoXPipeline", "CogVideoXImageToVideoPipeline", "AnimateDiffPipeline"}


def family_of_folder(name: str, path: Path) -> str:
    """The family of a diffusers folder, from the pipeline class in its ``model_index.json``."""
    index = path / "model_index.json"
    if not index.is_file():
        raise NodeError(f"model '{name}' is not a diffusers video pipeline folder (no model_index.json)",
                        input="model")
    cls = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
    family = next((family for prefix, family in CLASS_PREFIXES.items() if cls.startswith(prefix)), None)
    if family is None or cls not in SUPPORTED_CLASSES:
        known = ", ".join(sorted(SUPPORTED_CLASSES))
        raise NodeError(f"model '{name}' is a {cls or 'unknown'} pipeline; video.generate runs {known}",
                        input="model")
    return family


@dataclass
class VideoModel(PlacedPipeline):
    """A loaded video pipeline and what it can do: text-to-video, image-to-video, or both (Wan 2.2 TI2V, LTX)."""

    family: VideoFamily
    pipe: Any
    text_to_video: bool
    image_to_video: bool
    memory: MemoryPlan | None = None  # how it sits on its device (--memory-mode, nodes.models.diffusion.memory)

    @property
    def components(self) -> dict[str, Any]:
        return self.pipe.components

    def to(self, device: str) -> VideoModel:
        self.move_pipe(torch_device(device))
        return self

    def spatial_multiple(self) -> int:
        pipe, transformer = self.pipe, getattr(self.pipe, "transformer", None)
        patch = getattr(getattr(transformer, "config", None), "patch_size", 1) or 1
        patch = patch[1] if isinstance(patch, list | tuple) else patch
        vae = (getattr(pipe, "vae_scale_factor_spatial", None) or getattr(pipe, "vae_spatial_compression_ratio", None)
               or getattr(pipe, "vae_scale_factor", None) or 8)
        return int(vae) * int(patch)

    def temporal_step(self) -> int:
        if self.family.frame_step == 1:
            return 1
        pipe = self.pipe
        return int(getattr(pipe, "vae_scale_factor_temporal", None) or
                   getattr(pipe, "vae_temporal_compression_ratio", None) or self.family.frame_step)

    def max_frames(self) -> int | None:
        config = getattr(getattr(self.pipe, "transformer", None), "config", None)
        if self.family.name == "cogvideox" and config is not None and not getattr(config, "patch_size_t", None):
            return int(getattr(config, "sample_frames", 49))
        if self.family.name == "animatediff":
            adapter = getattr(getattr(self.pipe, "unet", None), "config", None)
            return int(getattr(adapter, "motion_max_seq_length", 32) or 32)
        return self.family.max_frames

    def fixed_size(self) -> tuple[int, int] | None:
        """(width, height) a checkpoint only makes (CogVideoX 1.0 image-to-video learned its positions)."""
        config = getattr(getattr(self.pipe, "transformer", None), "config", None)
        if config is not None and getattr(config, "use_learned_positional_embeddings", False):
            scale = self.spatial_multiple() // int(getattr(config, "patch_size", 1) or 1)
            return int(config.sample_width) * scale, int(config.sample_height) * scale
        return None


def load_video_model(name: str, path: Path, family_name: str, device: str, memory: DeviceMemory | None = None, *,
                     files: ModelFiles | None = None, find_config: FindConfig | None = None) -> VideoModel:
    """The pipeline at ``path`` (or built from a single file or component files, ``files``, with the configuration
    ``find_config`` finds) on ``device`` (bfloat16 on GPUs, float32 on CPU), placed by the device's memory mode
    (``memory``; None: all on the device), and its capabilities."""
    import diffusers
    import torch

    family = FAMILIES[family_name]
    target = torch_device(device)
    dtype = torch.float32 if target == "cpu" else (torch.float16 if family_name == "animatediff" else torch.bfloat16)
    if files is not None and find_config is not None:
        pipe, _ = load_from_files(None, files, family_name, dtype, find_config, {})
    else:
        with reading_model(name, path, f"cannot be loaded as a {family_name} pipeline",
                           (OSError, ValueError, KeyError, TypeError)):
            pipe = diffusers.DiffusionPipeline.from_pretrained(str(path), dtype=dtype)
    placed = place_pipeline(pipe, target, memory)
    model = _capabilities(family, quiet_pipeline(pipe))
    model.memory = placed
    return model


def _capabilities(family: VideoFamily, pipe: Any) -> VideoModel:
    """A loaded pipeline with what it can make (from its transformer's input channels and config)."""
    family_name = family.name
    cls = type(pipe).__name__
    if family_name in ("wan", "cogvideox"):
        transformer = pipe.components.get("transformer") or pipe.components.get("transformer_2")
        vae = pipe.components["vae"]
        latent = getattr(vae.config, "z_dim", None) or getattr(vae.config, "latent_channels", None)
        plain = transformer is not None and transformer.config.in_channels == latent
        both = bool(getattr(pipe.config, "expand_timesteps", False))
        return VideoModel(family, pipe, plain, both or not plain)
    if family_name == "ltx":
        return VideoModel(family, pipe, True, True)
    return VideoModel(family, pipe, cls == family.text_to_video, False)


def pipeline_for(model: VideoModel, image: bool) -> Any:
    """The loaded pipeline, or one of the other direction sharing its components (no copy of any weights)."""
    import diffusers

    wanted = model.family.image_to_video if image else model.family.text_to_video
    if wanted is None or type(model.pipe).__name__ == wanted:
        return model.pipe
    cls = getattr(diffusers, wanted)
    accepted = inspect.signature(cls.__init__).parameters
    parts = {key: value for key, value in model.pipe.components.items() if key in accepted}
    settings = {key: value for key, value in model.pipe.config.items() if key in accepted and key not in parts
                and not key.startswith("_")}
    return quiet_pipeline(cls(**parts, **settings))


def text_tokens(pipe: Any, prompt: str) -> tuple[int, int | None]:
    """Tokens of ``prompt`` in the pipeline's text encoder and the most it reads (None: no known limit)."""
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None:
        return 0, None
    count = len(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    limit = getattr(tokenizer, "model_max_length", None)
    return count, limit if isinstance(limit, int) and 0 < limit < 100_000 else None

