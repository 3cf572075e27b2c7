"""Super-resolution models for ``image.upscale``: loading weight files and tiled inference.

A weights file (``.safetensors``, or an upstream ``.pth`` with the state dict under ``params_ema``/``params``, read
with ``torch.load(weights_only=True)`` only) is matched against the architectures written here (RRDBNet,
SRVGGNetCompact). Anything else goes to spandrel when it is importable (SwinIR, HAT, DAT, OmniSR, ...).
"""

from __future__ import annotations

import enum
import importlib.util
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeforge.engine.errors import NodeError, first_line

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


@dataclass
class Upscaler:
    """A loaded super-resolution network: ``net`` maps [B, 3, H, W] in 0..1 to [B, 3, H*scale, W*scale];
    ``module`` holds its parameters (the same object, except for spandrel, whose descriptor pads the input)."""

    net: Any
    module: Any
    scale: int
    arch: str
    name: str

    @property
    def components(self) -> dict[str, Any]:
        return {"net": self.module}

    def to(self, device: str) -> Upscaler:
        self.module.to(device)
        return self

    @property
    def device(self) -> Any:
        return next(self.module.parameters()).device

    @property
    def dtype(self) -> Any:
        return next(self.module.parameters()).dtype


def weights_file(path: Path) -> Path:
    """The weights file of a model path: the file itself, or the single weights file in a folder."""
    if path.is_file():
        return path
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES)
    if len(files) == 1:
        return files[0]
    listed = ", ".join(p.name for p in files) or "none"
    raise NodeError(f"folder {path} must hold exactly one weights file ({', '.join(WEIGHT_SUFFIXES)}); "
                    f"found: {listed}", input="model")


def read_state_dict(path: Path) -> dict[str, Any]:
    """Tensors of a weights file, unwrapped from upstream containers (``params_ema``, ``params``, ``state_dict``)."""
    import torch

    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt files, pickles that are not plain tensors
        raise NodeError(f"cannot read weights file {path.name}: {type(exc).__name__}: {first_line(exc)} "
                        "(accepted: .safetensors, or a .pth/.pt state dict loadable with weights_only=True)",
                        input="model") from None
    for wrapper in ("params_ema", "params", "state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
            break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NodeError(f"weights file {path.name} does not hold a state dict of tensors", input="model")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_upscaler(path: Path, name: str, device: str) -> Upscaler:
    """Build the network a weights file describes, load its weights strictly, move it to ``device``."""
    import torch

    from nodeforge.nodes.models.upscalers.esrgan_arch import detect

    file = weights_file(path)
    state = read_state_dict(file)
    spec = detect(state)
    if spec is not None:
        net = spec.build()
        try:
            net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        except RuntimeError as exc:
            raise NodeError(f"weights file {file.name} looks like {spec.arch} but does not load into it: "
                            f"{first_line(exc)}", input="model") from None
        upscaler = Upscaler(net.eval(), net, spec.scale, spec.arch, name)
    else:
        upscaler = _spandrel(state, file, name)
    upscaler.module.requires_grad_(False)
    upscaler.module.to(torch.float16 if device.startswith("cuda") else torch.float32)
    return upscaler.to(device)


def _spandrel(state: dict[str, Any], file: Path, name: str) -> Upscaler:
    keys = ", ".join(list(state)[:4])
    known = ("RRDBNet (Real-ESRGAN x4plus/anime, ESRGAN with upstream key names) and SRVGGNetCompact "
             "(realesr-animevideov3, realesr-general-x4v3)")
    spandrel = import_spandrel()
    if spandrel is None:
        raise NodeError(f"unknown architecture in {file.name} (keys: {keys}, ...); accepted: {known}. Installing "
                        "spandrel (pip install --no-deps spandrel einops) adds SwinIR, HAT, DAT and others",
                        input="model")
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - spandrel's UnsupportedModelError and shape errors alike
        raise NodeError(f"unknown architecture in {file.name} (keys: {keys}, ...): {first_line(exc)}; accepted: "
                        f"{known}, and the architectures spandrel {getattr(spandrel, '__version__', '')} detects",
                        input="model") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.scale < 1:
        raise NodeError(f"{file.name} is a {descriptor.architecture.name} model, not an image upscaler",
                        input="model")
    descriptor.model.eval()
    return Upscaler(descriptor, descriptor.model, int(descriptor.scale), f"spandrel:{descriptor.architecture.name}",
                    name)


def import_spandrel() -> Any:
    """spandrel, imported with a stand-in for ``torchvision.transforms.functional`` when torchvision is missing
    (only two architectures use it at import); the stand-in is removed again so other libraries still see no
    torchvision. None when spandrel is not installed."""
    if importlib.util.find_spec("spandrel") is None:
        return None
    if "spandrel" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        import spandrel

        return spandrel
    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
    vision, transforms, functional = (types.ModuleType(n) for n in names)

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    def unsupported(*_: Any, **__: Any) -> Any:
        raise NotImplementedError("torchvision is not installed")

    vars(functional).update(InterpolationMode=InterpolationMode, rotate=unsupported, normalize=unsupported)
    vars(transforms)["functional"], vars(vision)["transforms"] = functional, transforms
    stubs = dict(zip(names, (vision, transforms, functional), strict=True))
    sys.modules.update(stubs)
    try:
        import spandrel
    finally:
        for stub in names:
            sys.modules.pop(stub, None)
    return spandrel


def upscale(model: Upscaler, pixels: Any, tile: int, overlap: int,
            progress: Callable[[int, int], None] | None = None) -> Any:
    """Run ``model`` over ``pixels`` ([B, 3, H, W] in 0..1) whole, or in ``tile``-sized tiles that overlap by
    ``overlap`` input pixels on each side; only each tile's core is kept, so seams vanish."""
    import torch

    batch, _, height, width = pixels.shape
    scale = model.scale
    source = pixels.to(model.device, model.dtype)
    with torch.inference_mode():
        if tile <= 0 or (height <= tile and width <= tile):
            if progress:
                progress(0, 1)
            out = model.net(source)
            if progress:
                progress(1, 1)
            return out.float().clamp_(0, 1)
        out = torch.empty(batch, 3, height * scale, width * scale, dtype=torch.float32, device=source.device)
        starts_y, starts_x = range(0, height, tile), range(0, width, tile)
        total, done = len(starts_y) * len(starts_x), 0
        for y0 in starts_y:
            for x0 in starts_x:
                y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
                py0, px0 = max(y0 - overlap, 0), max(x0 - overlap, 0)
                py1, px1 = min(y1 + overlap, height), min(x1 + overlap, width)
                result = model.net(source[:, :, py0:py1, px0:px1]).float()
                oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
                out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                    result[:, :, oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale]
                done += 1
                if progress:
                    progress(done, total)
        return out.clamp_(0, 1)
