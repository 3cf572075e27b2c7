"""Which model family a ComfyUI workflow's files belong to, from their names and the text encoder ``type`` its CLIP
loaders set, so a family nodeforge does not run is refused by its own name (a Z-Image or Qwen-Image workflow is never
imported as Flux), and the video and audio families nodeforge does run are recognised."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """``name`` as users know it; ``ours`` is nodeforge's family name, empty when nodeforge does not run it."""

    name: str
    ours: str = ""

    @property
    def runs(self) -> bool:
        return bool(self.ours)

    def refusal(self, what: str) -> str:
        return f"{what} is a {self.name} model: nodeforge does not run the {self.name} family"


# File name hints, most specific first (a "flux2" file is not Flux 1, "wan2.1_vace" is Wan).
FILE_HINTS: tuple[tuple[tuple[str, ...], Family], ...] = (
    (("z_image", "z-image", "zimage"), Family("Z-Image")),
    (("qwen_image", "qwen-image"), Family("Qwen-Image")),
    (("hidream",), Family("HiDream")),
    (("aura_flow", "auraflow"), Family("AuraFlow")),
    (("lumina",), Family("Lumina 2")),
    (("chroma",), Family("Chroma")),
    (("hunyuan_dit", "hunyuandit"), Family("Hunyuan-DiT")),
    (("hunyuan_video", "hunyuanvideo"), Family("HunyuanVideo")),
    (("hunyuan_image", "hunyuanimage"), Family("HunyuanImage")),
    (("cosmos",), Family("Cosmos")),
    (("mochi",), Family("Mochi")),
    (("stable_cascade", "stage_b", "stage_c"), Family("Stable Cascade")),
    (("omnigen",), Family("OmniGen")),
    (("kolors",), Family("Kolors")),
    (("pixart",), Family("PixArt")),
    (("flux2", "flux-2", "flux_2"), Family("Flux 2")),
    (("ace_step", "ace-step"), Family("ACE-Step")),
    (("stable_zero123", "zero123"), Family("Stable Zero123")),
    (("svd_xt", "svd.safetensors", "stable_video_diffusion"), Family("Stable Video Diffusion")),
    (("wan2", "wan_2", "wan-2", "wan21", "wan22"), Family("Wan", "wan")),
    (("ltx-video", "ltxv", "ltx_video", "ltx-2", "ltx2"), Family("LTX-Video", "ltx")),
    (("cogvideo",), Family("CogVideoX", "cogvideox")),
    (("stable_audio", "stable-audio"), Family("Stable Audio", "stable-audio")),
)

# ComfyUI's CLIPLoader / DualCLIPLoader ``type`` -> the family it loads text encoders for.
CLIP_TYPES: dict[str, Family] = {
    "lumina2": Family("Lumina 2 / Z-Image"), "qwen_image": Family("Qwen-Image"), "hidream": Family("HiDream"),
    "chroma": Family("Chroma"), "cosmos": Family("Cosmos"), "hunyuan_video": Family("HunyuanVideo"),
    "hunyuan_video_15": Family("HunyuanVideo"), "hunyuan_image": Family("HunyuanImage"), "mochi": Family("Mochi"),
    "ace": Family("ACE-Step"), "omnigen2": Family("OmniGen"), "pixart": Family("PixArt"),
    "stable_cascade": Family("Stable Cascade"), "flux2": Family("Flux 2"),
    "wan": Family("Wan", "wan"), "ltxv": Family("LTX-Video", "ltx"),
    "stable_audio": Family("Stable Audio", "stable-audio"),
}


def family_of_file(name: str) -> Family | None:
    """The family a model file's name announces; None for the image families nodeforge runs (SD, SDXL, SD3, Flux)
    and for names that say nothing."""
    lowered = name.lower().replace(" ", "_")
    return next((family for hints, family in FILE_HINTS if any(hint in lowered for hint in hints)), None)


def family_of_clip_type(kind: str) -> Family | None:
    return CLIP_TYPES.get(kind.lower())
