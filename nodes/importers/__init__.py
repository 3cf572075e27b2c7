"""Importers: ComfyUI workflows (API or UI JSON, or a PNG ComfyUI saved) and A1111/Forge PNGs -> nodeforge graph
documents, used by ``nodeforge import``, ``POST /api/import`` and the editor's drop.

    result = import_file(Path("workflow.png").read_bytes())
    result.document   # a nodeforge graph; result.warnings: what maps only approximately

Every function raises ``ImportFailed`` with a reason (and, for nodes that do not map, their ids and classes);
nothing here runs a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from nodeforge.nodes.importers.result import ImportFailed, ImportResult, Unmapped

if TYPE_CHECKING:
    from nodeforge.nodes.importers.png_text import PngTexts

__all__ = ["ImportFailed", "ImportResult", "Unmapped", "import_a1111", "import_comfy", "import_file"]

Kind = Literal["auto", "comfy", "a1111"]


def import_comfy(data: bytes | Mapping[str, Any] | PngTexts, *, partial: bool = False,
                 name: str = "") -> ImportResult:
    """A ComfyUI workflow (file bytes, JSON or PNG, a PNG's text chunks, or parsed JSON) as a nodeforge document."""
    from nodeforge.nodes.importers.comfy_map import map_workflow
    from nodeforge.nodes.importers.comfy_read import read_comfy

    return map_workflow(read_comfy(data), partial=partial, name=name, vae_port=_has_vae_port())


def import_a1111(data: bytes | str, *, name: str = "") -> ImportResult:
    """An A1111/Forge PNG (or its ``parameters`` text) as a nodeforge document."""
    from nodeforge.nodes.importers.a1111 import import_parameters, parameters_of

    text = data if isinstance(data, str) else parameters_of(data)
    return import_parameters(text, name=name)


def import_file(data: bytes, *, kind: Kind = "auto", partial: bool = False, name: str = "") -> ImportResult:
    """A file of either kind; ``auto`` reads a PNG's chunks (ComfyUI's ``prompt``/``workflow``, else A1111's
    ``parameters``) and takes JSON as ComfyUI's."""
    from nodeforge.nodes.importers.png_text import PNG_SIGNATURE, png_texts

    if kind == "comfy":
        return import_comfy(data, partial=partial, name=name)
    if kind == "a1111":
        return import_a1111(data, name=name)
    if data[:8] == PNG_SIGNATURE:
        found = png_texts(data)
        texts = found.texts
        if "prompt" in texts or "workflow" in texts:
            return import_comfy(found, partial=partial, name=name)
        if "parameters" in texts:
            return import_a1111(texts["parameters"], name=name)
        if "nodeforge.graph" in found.keywords:
            raise ImportFailed("this PNG carries a nodeforge graph: open it as it is (nodeforge run FILE.png)")
        raise ImportFailed("this PNG carries no workflow: no ComfyUI 'prompt'/'workflow' chunk and no A1111 "
                           "'parameters' chunk")
    return import_comfy(data, partial=partial, name=name)


def _has_vae_port() -> bool:
    """Whether the diffusion nodes take a ``vae`` override, so a workflow's VAELoader file carries over."""
    from nodeforge.nodes.image import Generate

    return "vae" in Generate.Inputs.model_fields
