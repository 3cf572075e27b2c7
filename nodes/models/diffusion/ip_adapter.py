"""IP-Adapters for the diffusion nodes: where an adapter's weights and image encoder are, and applying adapters to
a pipeline for one run.

Files are found in the layouts users download (``h94/IP-Adapter``): a weights file (``.safetensors`` or ``.bin``)
with an ``image_encoder`` folder beside it or in the repository's ``models/`` folder, or any folder holding one
adapter file. The image encoder is a model like any other, resident once per device; the adapter's own weights are
small and are loaded into the UNet for the run and removed after it, so the next node sees the base model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeforge.engine.declarations import ModelKind
from nodeforge.engine.errors import NodeError, first_line
from nodeforge.engine.model_source import ResolvedModel
from nodeforge.engine.values import Control
from nodeforge.nodes.family_helpers import torch_device

if TYPE_CHECKING:
    from nodeforge.engine.context import NodeContext
    from nodeforge.nodes.models.diffusion.pipelines import DiffusionModel

WEIGHT_SUFFIXES = (".safetensors", ".bin")

IMAGE_ENCODER = ModelKind("image_encoder")
"""The CLIP vision model an IP-Adapter encodes its reference picture with."""


def adapter_file(path: Path) -> Path:
    """The adapter weights behind a resolved path: the file itself, or the one adapter file in a folder (or its
    ``models``/``sdxl_models`` subfolder); ValueError naming what was found otherwise."""
    if path.is_file():
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            raise ValueError(f"{path.name} is not IP-Adapter weights (.safetensors or .bin)")
        return path
    found = sorted(p for folder in (path, path / "models", path / "sdxl_models") if folder.is_dir()
                   for p in folder.iterdir() if p.suffix.lower() in WEIGHT_SUFFIXES and "ip-adapter" in p.name)
    if len(found) != 1:
        listed = ", ".join(p.name for p in found) or "none"
        raise ValueError(f"the folder must hold exactly one ip-adapter*.safetensors/.bin file (found: {listed}); "
                         "name the file itself")
    return found[0]


def encoder_folder(weights: Path) -> Path | None:
    """The CLIP image encoder that goes with adapter weights: ``image_encoder`` beside the file, else in the
    ``models`` folder next to it (h94/IP-Adapter keeps the ViT-H encoder there for its SDXL Plus adapters)."""
    for folder in (weights.parent / "image_encoder", weights.parent.parent / "models" / "image_encoder"):
        if (folder / "config.json").is_file():
            return folder
    return None


@contextmanager
def applied_ip_adapters(model: DiffusionModel, pipe: Any, adapters: Sequence[Control],
                        ctx: NodeContext) -> Iterator[dict[str, Any]]:
    """Load the adapters into ``pipe`` for a block and yield the call arguments (reference pictures); they are
    always removed afterwards, also when loading one fails. Hold ``model.lock`` around it."""
    if not adapters:
        yield {}
        return
    files = [_weights(ctx, control, i) for i, control in enumerate(adapters)]
    encoders = {control.encoder for control in adapters}
    if len(encoders) > 1:
        raise NodeError("IP-Adapters in one run must share one image encoder; these name "
                        f"{', '.join(sorted(str(e) for e in encoders))}", input="controls")
    encoder = _encoder(ctx, adapters[0], model)
    saved = {name: getattr(pipe, name, None) for name in ("image_encoder", "feature_extractor")}
    pipe.image_encoder = encoder
    pipe.feature_extractor = _feature_extractor(encoder)
    try:
        try:
            pipe.load_ip_adapter([str(f.parent) for f in files], subfolder=[""] * len(files),
                                 weight_name=[f.name for f in files], image_encoder_folder=None)
        except Exception as exc:  # noqa: BLE001 - shape and key mismatches: the adapter does not fit this model
            raise NodeError(f"IP-Adapter '{adapters[0].model}' does not fit model '{model.name}' ({model.family}): "
                            f"{type(exc).__name__}: {first_line(exc)}", input="controls") from None
        pipe.set_ip_adapter_scale([control.weight for control in adapters])
        yield {"ip_adapter_image": [control.image.to_pil() for control in adapters]}
    finally:
        _remove(pipe, model, ctx, saved)


def _remove(pipe: Any, model: DiffusionModel, ctx: NodeContext, saved: dict[str, Any]) -> None:
    """Take the adapters out again; a model that cannot be put back is dropped, never left half-changed."""
    try:
        if getattr(pipe.unet, "encoder_hid_proj", None) is not None:
            pipe.unload_ip_adapter()
    except Exception:  # noqa: BLE001 - whatever went wrong, the shared model must not stay altered
        ctx.models.evict(model.key)
        raise
    finally:
        for name, module in saved.items():
            setattr(pipe, name, module)


def _weights(ctx: NodeContext, control: Control, index: int) -> Path:
    resolved = ctx.models.resolve(control.model, input="controls")
    try:
        return adapter_file(resolved.path)
    except ValueError as exc:
        raise NodeError(f"controls[{index}]: IP-Adapter '{control.model}': {exc}", input="controls") from None


def _encoder(ctx: NodeContext, control: Control, model: DiffusionModel) -> Any:
    dtype = model.dtype

    def build(resolved: ResolvedModel, device: str) -> Any:
        from transformers import CLIPVisionModelWithProjection

        try:
            encoder = CLIPVisionModelWithProjection.from_pretrained(str(resolved.path), dtype=dtype)
        except Exception as exc:  # noqa: BLE001 - any load failure becomes one message naming the encoder
            raise NodeError(f"the image encoder of IP-Adapter '{control.model}' could not be loaded from "
                            f"{resolved.path}: {type(exc).__name__}: {first_line(exc)}", input="controls") from None
        return encoder.eval().to(torch_device(device))

    if not control.encoder:
        raise NodeError(f"IP-Adapter '{control.model}' has no image encoder", input="controls")
    return ctx.models.load(control.encoder, build, input="controls", kind=IMAGE_ENCODER,
                           variant=str(dtype))


def _feature_extractor(encoder: Any) -> Any:
    """CLIP preprocessing at the encoder's own resolution (224 for the real ViT-H and ViT-bigG encoders)."""
    from transformers import CLIPImageProcessorPil

    size = int(encoder.config.image_size)
    return CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
