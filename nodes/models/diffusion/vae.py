"""A VAE that replaces a diffusion model's own for one run (``vae`` input of the image nodes): a fixed SD 1.5 VAE
(``vae-ft-mse-840000``), SDXL's fp16 fix, or the ``ae.safetensors`` a Flux user keeps next to the transformer.

It is loaded once per device as its own model (``vae-<family>`` kind) and swapped into the pipeline under the
model's lock, so the next run sees the model's own VAE again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodeforge.engine.declarations import ModelKind
from nodeforge.engine.errors import NodeError, first_line
from nodeforge.engine.model_source import ResolvedModel

if TYPE_CHECKING:
    from nodeforge.engine.context import NodeContext
    from nodeforge.nodes.models.diffusion.pipelines import DiffusionModel

VAE = ModelKind("vae")
"""A VAE to decode with instead of the model's own (built for the family it decodes for)."""


def override_vae(ctx: NodeContext, model: DiffusionModel, name: str) -> Any:
    """The VAE ``name`` for ``model``'s family on this node's device; None for "" (keep the model's own)."""
    if not name.strip():
        return None

    def build(resolved: ResolvedModel, device: str) -> Any:
        vae = load_vae(resolved, model)
        return vae.to(device) if device != "cpu" else vae

    return ctx.models.load(name, build, input="vae", variant=model.family)


def load_vae(resolved: ResolvedModel, model: DiffusionModel) -> Any:
    """A VAE from a file (original or diffusers layout) read with the model's VAE configuration, or from a folder
    (a VAE folder, or a pipeline folder with a ``vae`` subfolder); NodeError on ``vae`` when it does not fit."""
    from nodeforge.nodes.models.checkpoints.components import load_component

    own = model.pipe.vae
    cls = type(own)
    dtype = own.dtype
    path = resolved.path
    try:
        if path.is_dir():
            sub = "vae" if (path / "vae" / "config.json").exists() else None
            vae = cls.from_pretrained(str(path), subfolder=sub, dtype=dtype)
        elif model.config is not None:
            vae = load_component("vae", path, model.config, dtype)
        else:
            vae = cls.from_single_file(str(path), config=own.config, dtype=dtype)
    except NodeError as exc:
        raise NodeError(str(exc).replace("component vae", f"VAE '{resolved.name}'"), input="vae") from None
    except Exception as exc:  # noqa: BLE001 - a file that is not this kind of VAE
        raise NodeError(f"VAE '{resolved.name}' could not be loaded for a {model.family} model: "
                        f"{type(exc).__name__}: {first_line(exc)}", input="vae") from None
    channels, wanted = int(vae.config.latent_channels), int(own.config.latent_channels)
    if channels != wanted:
        plural = "s" if channels != 1 else ""
        raise NodeError(f"VAE '{resolved.name}' has {channels} latent channel{plural}, but model '{model.name}' "
                        f"({model.family}) needs {wanted}", input="vae")
    return vae.eval()
