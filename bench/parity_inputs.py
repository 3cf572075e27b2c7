"""What both engines of ``bench/comfy_parity.py`` are given: the full-size random-weight checkpoint, the
textual-inversion embedding, and ComfyUI's default workflow set to one case (sampler, scheduler, prompt, seed).
The slow parity test builds the same inputs from here, so its checkpoint has the bench's weights."""

from __future__ import annotations

import argparse
import copy
import json
import re
from pathlib import Path
from typing import Any

WEIGHTED = "(masterpiece:1.3) best quality, (girl:0.8)"
EMBEDDING = "nf-parity"
WITH_EMBEDDING = f"embedding:{EMBEDDING}, {WEIGHTED}"
ARCHITECTURE = {"sd15": ("sd15", "sd"), "sdxl": ("sdxl-base", "sdxl")}


def build_checkpoint(model: str, path: Path, models_dir: Path) -> None:
    """The full-size architecture of ``model`` from nodeforge's bundled configuration, seeded random weights
    (torch seed 0), saved fp16 in the original single-file layout. Run in a child process (it holds the model)."""
    import importlib
    import inspect

    import diffusers
    import torch

    from nodeforge.nodes.models.checkpoints.bundled import config_folder
    from nodeforge.nodes.models.checkpoints.convert import original_state_dict, save_checkpoint

    architecture, family = ARCHITECTURE[model]
    folder = config_folder(architecture, models_dir)
    index = json.loads((folder / "model_index.json").read_text())
    torch.manual_seed(0)
    parts: dict[str, Any] = {}
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list):
            continue
        library, class_name = spec
        if name in ("safety_checker", "feature_extractor") or class_name is None:
            parts[name] = None
            continue
        cls = getattr(importlib.import_module(library), class_name)
        sub = str(folder / name)
        if name.startswith(("tokenizer", "scheduler")):
            parts[name] = cls.from_pretrained(sub)
        elif library == "diffusers":
            parts[name] = cls.from_config(cls.load_config(sub)).to(torch.float16)
        else:
            parts[name] = cls(cls.config_class.from_pretrained(sub)).to(torch.float16)
    pipeline = getattr(diffusers, index["_class_name"])
    accepted = inspect.signature(pipeline.__init__).parameters
    flags = {key: False for key in ("requires_safety_checker", "add_watermarker") if key in accepted}
    save_checkpoint(original_state_dict(pipeline(**parts, **flags), family), path, dtype="fp16")


def build_embedding(model: str, folder: Path) -> Path:
    """A textual-inversion file of two seeded random vectors for the model's text encoders (``emb_params`` for
    SD 1.5, ``clip_l`` + ``clip_g`` for SDXL), which both engines load by the name ``EMBEDDING``."""
    path = folder / f"{EMBEDDING}-{model}.safetensors"
    if not path.exists():
        import torch
        from safetensors.torch import save_file

        generator = torch.Generator().manual_seed(7)
        widths = {"emb_params": 768} if model == "sd15" else {"clip_l": 768, "clip_g": 1280}
        folder.mkdir(parents=True, exist_ok=True)
        save_file({key: torch.randn(2, width, generator=generator) * 0.015 for key, width in widths.items()}, path)
    return path


def default_workflow(comfy: Path) -> dict[str, Any]:
    """ComfyUI's default workflow in API format, as its ``script_examples/basic_api_example.py`` spells it."""
    source = (comfy / "script_examples" / "basic_api_example.py").read_text(encoding="utf-8")
    found = re.search(r'prompt_text\s*=\s*"""(.*?)"""', source, re.S)
    if found is None:
        raise SystemExit(f"no prompt_text in {comfy}/script_examples/basic_api_example.py")
    workflow: dict[str, Any] = json.loads(found.group(1))
    return workflow


def node_of(workflow: dict[str, Any], class_type: str) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [node for node in workflow.values() if node["class_type"] == class_type]
    if len(nodes) != 1:
        raise SystemExit(f"the default workflow has {len(nodes)} {class_type} nodes, expected one")
    return nodes[0]


def case_workflow(base: dict[str, Any], ckpt: str, case: dict[str, Any], args: argparse.Namespace,
                  prefix: str) -> dict[str, Any]:
    workflow = copy.deepcopy(base)
    sampler = node_of(workflow, "KSampler")["inputs"]
    sampler.update(seed=case["seed"], steps=args.steps, sampler_name=case["sampler"], scheduler=case["scheduler"])
    if args.cfg is not None:
        sampler["cfg"] = args.cfg
    if case["prompt"] is not None:
        workflow[sampler["positive"][0]]["inputs"]["text"] = case["prompt"]
    node_of(workflow, "CheckpointLoaderSimple")["inputs"]["ckpt_name"] = ckpt
    node_of(workflow, "EmptyLatentImage")["inputs"].update(width=args.size, height=args.size, batch_size=1)
    node_of(workflow, "SaveImage")["inputs"]["filename_prefix"] = prefix
    return workflow
