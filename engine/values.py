"""Media values that cross edges in memory: small typed wrappers around a torch tensor that may live on a GPU.

torch is imported only when a tensor is touched, so the engine starts without it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

if TYPE_CHECKING:
    import PIL.Image
    import torch


class _MediaValue:
    """Lets pydantic models declare media fields: validated by isinstance, described in JSON Schema by kind."""

    __slots__ = ()

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.is_instance_schema(cls)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {"type": "object", "title": cls.__name__, "description": (cls.__doc__ or "").strip()}


@dataclass(frozen=True, slots=True, eq=False)
class Image(_MediaValue):
    """A batch of images: float tensor ``[B, C, H, W]`` with values in 0..1 (C is 3 for RGB, 4 for RGBA)."""

    tensor: torch.Tensor

    def __post_init__(self) -> None:
        if self.tensor.ndim != 4 or self.tensor.shape[1] not in (1, 3, 4):
            raise ValueError(f"an Image tensor is [B, C, H, W] with C in 1, 3, 4; got shape {tuple(self.tensor.shape)}")

    @property
    def batch(self) -> int:
        return int(self.tensor.shape[0])

    @property
    def height(self) -> int:
        return int(self.tensor.shape[2])

    @property
    def width(self) -> int:
        return int(self.tensor.shape[3])

    @property
    def nbytes(self) -> int:
        return int(self.tensor.nbytes)

    def to_pil(self) -> list[PIL.Image.Image]:
        """One PIL image per batch item, as 8-bit RGB(A)."""
        from PIL import Image as PILImage

        pixels = (self.tensor.detach().float().clamp(0, 1) * 255).round().to("cpu").byte()
        arrays = pixels.permute(0, 2, 3, 1).numpy()
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[arrays.shape[3]]
        return [PILImage.fromarray(a[:, :, 0] if mode == "L" else a, mode=mode) for a in arrays]

    @classmethod
    def from_pil(cls, images: list[PIL.Image.Image]) -> Image:
        """Stack PIL images of one size into a batch (converted to RGB unless they carry alpha)."""
        import numpy as np
        import torch

        mode = "RGBA" if any(im.mode in ("RGBA", "LA", "PA") for im in images) else "RGB"
        arrays = np.stack([np.asarray(im.convert(mode), dtype=np.uint8) for im in images])
        return cls(torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div(255.0).contiguous())


@dataclass(frozen=True, slots=True, eq=False)
class Mask(Image):
    """Where to repaint: float tensor ``[B, 1, H, W]`` in 0..1, 1 = repaint. A mask is also a grayscale image, so
    it links into any image input (a preview, ``image.save``)."""

    def __post_init__(self) -> None:
        if self.tensor.ndim != 4 or self.tensor.shape[1] != 1:
            raise ValueError(f"a Mask tensor is [B, 1, H, W]; got shape {tuple(self.tensor.shape)}")


@dataclass(frozen=True, slots=True, eq=False)
class Control(_MediaValue):
    """Steering for a diffusion node: an adapter model (``kind`` is ``controlnet`` or ``ip_adapter``) named as a
    model input is, its picture (a batch: several reference pictures for an IP-Adapter), its weight, and the
    fraction of the denoising steps it acts in. ``mode`` is the control type of a ControlNet-Union model;
    ``encoder`` the image encoder (a model name or path) an IP-Adapter reads its pictures with."""

    kind: str
    model: str
    image: Image
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    family: str | None = None
    mode: str | None = None
    encoder: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("controlnet", "ip_adapter"):
            raise ValueError(f"a Control is a controlnet or an ip_adapter, not {self.kind!r}")
        if not 0.0 <= self.start < self.end <= 1.0:
            raise ValueError(f"a Control acts from start to end, 0 <= start < end <= 1; got {self.start}..{self.end}")

    @property
    def nbytes(self) -> int:
        return self.image.nbytes


@dataclass(frozen=True, slots=True, eq=False)
class Audio(_MediaValue):
    """Audio samples: float tensor ``[channels, samples]`` in -1..1 at ``sample_rate`` Hz."""

    tensor: torch.Tensor
    sample_rate: int

    def __post_init__(self) -> None:
        if self.tensor.ndim != 2:
            raise ValueError(f"an Audio tensor is [channels, samples]; got shape {tuple(self.tensor.shape)}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")

    @property
    def seconds(self) -> float:
        return int(self.tensor.shape[1]) / self.sample_rate

    @property
    def nbytes(self) -> int:
        return int(self.tensor.nbytes)


@dataclass(frozen=True, slots=True, eq=False)
class Video(_MediaValue):
    """Video frames: float tensor ``[frames, C, H, W]`` in 0..1 at ``fps``, with an optional audio track."""

    frames: torch.Tensor
    fps: float
    audio: Audio | None = None

    def __post_init__(self) -> None:
        if self.frames.ndim != 4:
            raise ValueError(f"Video frames are [frames, C, H, W]; got shape {tuple(self.frames.shape)}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")

    @property
    def seconds(self) -> float:
        return int(self.frames.shape[0]) / self.fps

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes) + (self.audio.nbytes if self.audio else 0)


def value_nbytes(value: Any) -> int:
    """Approximate memory held by a value, for the cache's byte budget (tensors counted by ``nbytes``)."""
    kind = type(value)
    if kind is str:
        return len(value) + 49
    if kind is int or kind is float or kind is bool or value is None:
        return 32
    if kind is dict:
        return 64 + sum(len(k) + 49 + value_nbytes(v) for k, v in value.items())
    if isinstance(value, Image | Audio | Video | Control):
        return value.nbytes
    if isinstance(value, str):
        return len(value) + 49
    if isinstance(value, list | tuple):
        return 56 + sum(value_nbytes(item) for item in value)
    if isinstance(value, dict):
        return 64 + sum(value_nbytes(k) + value_nbytes(v) for k, v in value.items())
    return 32


def move_value(value: Any, device: str) -> Any:
    """The same value with every tensor moved to ``device`` (results parked off an accelerator)."""
    if isinstance(value, Image):
        return type(value)(value.tensor.to(device))
    if isinstance(value, Control):
        return dataclasses.replace(value, image=move_value(value.image, device))
    if isinstance(value, Audio):
        return Audio(value.tensor.to(device), value.sample_rate)
    if isinstance(value, Video):
        return Video(value.frames.to(device), value.fps, move_value(value.audio, device) if value.audio else None)
    if isinstance(value, list):
        return [move_value(item, device) for item in value]
    if isinstance(value, dict):
        return {key: move_value(item, device) for key, item in value.items()}
    return value


def tensor_nbytes(value: Any) -> int:
    """Bytes held in tensors by a value (what a result costs on the device that produced it)."""
    if isinstance(value, Image | Audio | Video | Control):
        return value.nbytes
    if isinstance(value, list):
        return sum(tensor_nbytes(item) for item in value)
    if isinstance(value, dict):
        return sum(tensor_nbytes(item) for item in value.values())
    return 0
