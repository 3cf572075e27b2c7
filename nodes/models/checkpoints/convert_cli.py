"""``nodeforge models convert MODEL OUT``: a diffusers model (tiny/sd, an alias, a folder) written the way users'
files are: one original-layout checkpoint, one component in ComfyUI's split-file names, or a GGUF transformer.

A single ``.safetensors`` MODEL (already in the original layout) can be re-saved in another dtype, or its
transformer written as GGUF, as city96's convert script does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeforge.engine.errors import UsageError

if TYPE_CHECKING:
    from nodeforge.nodes.models.checkpoints.layout_common import StateDict

TRANSFORMER_FAMILIES = ("flux", "sd3", "wan")
FILE_FAMILY_KEYS = (("double_blocks.0.img_attn.qkv.weight", "flux"), ("joint_blocks.0.x_block.attn.qkv.weight", "sd3"),
                    ("head.modulation", "wan"))


def add_convert_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", nargs="?", help="with convert: the file to write (.safetensors or .gguf)")
    parser.add_argument("--to", choices=["single-file", "gguf"], help="with convert: the format (default: from "
                        "OUT's suffix)")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16", "fp8"], help="with convert: tensor dtype of a "
                        "single file (fp8 = float8_e4m3fn matrices, bf16 vectors); default: as loaded")
    parser.add_argument("--quant", default="Q8_0", help="with convert --to gguf: Q8_0 (default), Q5_1, Q5_0, Q4_1, "
                        "Q4_0, BF16, F16 or F32")
    parser.add_argument("--component", help="with convert: one component of the pipeline (transformer, unet, vae, "
                        "text_encoder, text_encoder_2, ...); GGUF defaults to the transformer (or unet)")
    parser.add_argument("--family", choices=["sd", "sdxl", "sd3", "flux", "wan"], help="with convert: the model "
                        "family, when the model does not say")


def convert_command(args: argparse.Namespace, data_dir: Path) -> int:
    """Resolve MODEL, convert it and write OUT; prints what it wrote. 0 on success, 1 when MODEL cannot be used."""
    from nodeforge.nodes.models import ModelResolveError, build_resolver
    from nodeforge.nodes.models.checkpoints.layout_common import ConversionError

    if not args.name or not args.output:
        raise UsageError("models convert needs MODEL and OUT, e.g. nodeforge models convert tiny/sd sd.safetensors")
    output = Path(args.output)
    target = args.to or ("gguf" if output.suffix.lower() == ".gguf" else "single-file")
    if target == "gguf" and args.dtype:
        raise UsageError("--dtype applies to single files; a GGUF file's type is --quant")
    try:
        resolved = build_resolver().resolve(args.name, data_dir)
        family = args.family or resolved.family
        if resolved.path.is_file():
            state, family = _from_file(resolved.path, family, gguf=target == "gguf")
        else:
            state, family = _from_folder(resolved.path, family, args.component, gguf=target == "gguf")
        row = _write(state, output, target, family, args.dtype, args.quant)
    except (ModelResolveError, ConversionError) as exc:
        print(f"nodeforge: {exc}", file=sys.stderr)
        return 1
    row = {"model": args.name, "family": family, **row}
    if args.json:
        print(json.dumps(row, indent=2))
    else:
        types = ", ".join(f"{name} {count}" for name, count in row["types"].items())
        print(f"wrote {row['path']}: {row['format']}, {_megabytes(row['bytes'])}, {row['tensors']} tensors ({types})")
    return 0


def _from_folder(folder: Path, family: str | None, component: str | None, *, gguf: bool) -> tuple[StateDict, str]:
    from nodeforge.nodes.models.checkpoints.convert import component_state_dict, original_state_dict, pipeline_family
    from nodeforge.nodes.models.checkpoints.layout_common import ConversionError
    from nodeforge.nodes.models.diffusion.pipelines import quiet_loading

    quiet_loading()
    index = _model_index(folder)
    if gguf and component is None:
        component = "transformer" if "transformer" in index else "unet"
    if component is not None:
        if component not in index or not isinstance(index[component], list) or None in index[component]:
            parts = ", ".join(name for name, value in index.items() if isinstance(value, list) and None not in value)
            raise ConversionError(f"{folder} has no component '{component}' (it has: {parts})")
        library, class_name = index[component]
        import importlib

        module = getattr(importlib.import_module(library), class_name).from_pretrained(str(folder),
                                                                                      subfolder=component)
        state = component_state_dict(module)
        return state, family or _family_of_index(index)
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(folder))
    family = family or pipeline_family(pipe)
    return original_state_dict(pipe, family), family


def _from_file(path: Path, family: str | None, *, gguf: bool) -> tuple[StateDict, str]:
    """An original-layout safetensors file: as it is for a single file; for GGUF its transformer, bare."""
    from safetensors.torch import load_file

    from nodeforge.nodes.models.checkpoints.layout_common import ConversionError

    if path.suffix.lower() != ".safetensors":
        raise ConversionError(f"{path.name}: convert reads diffusers folders and .safetensors files")
    state = load_file(str(path))
    if not gguf:
        return state, family or "unknown"
    prefix = "model.diffusion_model."
    if any(key.startswith(prefix) for key in state):
        state = {key.removeprefix(prefix): tensor for key, tensor in state.items() if key.startswith(prefix)}
    family = family or next((name for key, name in FILE_FAMILY_KEYS if key in state), None)
    if family not in TRANSFORMER_FAMILIES:
        raise ConversionError(f"{path.name}: not a Flux, SD3 or Wan transformer in the original layout "
                              "(give --family if it is one)")
    return state, family


def _write(state: StateDict, output: Path, target: str, family: str, dtype: str | None,
           quant: str) -> dict[str, Any]:
    from nodeforge.nodes.models.checkpoints.convert import cast_state, gguf_architecture, save_checkpoint, save_gguf

    if target == "gguf":
        types = Counter(save_gguf(state, output, gguf_architecture(family), quant.upper()).values())
        label = f"GGUF {quant.upper()}"
    else:
        cast = cast_state(state, dtype)
        save_checkpoint(cast, output, metadata={"nodeforge.family": family})
        types = Counter(str(tensor.dtype).removeprefix("torch.") for tensor in cast.values())
        label = f"safetensors {dtype or 'as loaded'}"
    return {"path": str(output), "format": label, "bytes": output.stat().st_size, "tensors": sum(types.values()),
            "types": dict(types.most_common())}


def _model_index(folder: Path) -> dict[str, Any]:
    from nodeforge.nodes.models.checkpoints.layout_common import ConversionError

    index = folder / "model_index.json"
    if not index.is_file():
        raise ConversionError(f"{folder} is not a diffusers pipeline folder (no model_index.json)")
    data: dict[str, Any] = json.loads(index.read_text(encoding="utf-8"))
    return data


def _family_of_index(index: dict[str, Any]) -> str:
    from nodeforge.nodes.models.checkpoints.convert import PIPELINE_PREFIXES
    from nodeforge.nodes.models.checkpoints.layout_common import ConversionError

    name = str(index.get("_class_name", ""))
    for prefix, family in PIPELINE_PREFIXES:
        if name.startswith(prefix):
            return family
    raise ConversionError(f"cannot tell the family of a {name or 'pipeline'} (give --family)")


def _megabytes(nbytes: int) -> str:
    return f"{nbytes / 1024 / 1024:.1f} MB" if nbytes >= 1024 * 1024 else f"{nbytes / 1024:.1f} KB"
