"""GGUF files of diffusion transformers in city96's ComfyUI-GGUF layout, the one diffusers' GGUF loader reads.

The layout: ``general.architecture`` (flux, sd3, wan, sdxl, sd1), the tensors in their original names (bare, no
``model.diffusion_model.``), torch shapes (the file stores them reversed, as GGUF does; the reader turns them
back). Which tensors are quantized follows city96's ``tools/convert.py`` and its llama.cpp patch: 1-D tensors, tiny
ones (1024 values or fewer) and the embedders and final layer Flux needs precise stay F32 or F16; a matrix whose
rows are not a whole number of quantization blocks (32 values) falls back to F16. Tensors that are not matrices
(convolutions, SD3's position table, Wan's modulation) stay unquantized too: diffusers dequantizes GGUF weights only
inside ``nn.Linear``. Quantizing is done by the ``gguf`` package (``gguf.quants.quantize``), which implements
Q8_0, Q5_0, Q5_1, Q4_0, Q4_1 and BF16; the K-quants (Q4_K, ...) it can only read, so they need llama.cpp's
``llama-quantize`` with city96's patch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from nodeforge.nodes.models.checkpoints.layout_common import ConversionError

if TYPE_CHECKING:
    from torch import Tensor

GGUF_QTYPES = ("Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0", "BF16", "F16", "F32")
ARCHITECTURES = {"flux": "flux", "sd3": "sd3", "wan": "wan", "sdxl": "sdxl", "sd": "sd1"}
QUANTIZATION_THRESHOLD = 1024
MAX_NAME_LENGTH = 127
KEEP_F32 = ("img_in.", "time_in.in_layer.", "vector_in.in_layer.", "guidance_in.in_layer.", "final_layer.linear.",
            ".modulation")
KEEP_F16 = ("time_embedding.", "add_embedding.", "txt_in.", "time_in.", "vector_in.", "guidance_in.", "final_layer.")


def gguf_architecture(family: str) -> str:
    """The ``general.architecture`` city96's loader expects for a family."""
    if family not in ARCHITECTURES:
        raise ConversionError(f"no GGUF architecture for family '{family}' (families: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[family]


def tensor_qtype(name: str, shape: tuple[int, ...], qtype: str) -> str:
    """The type one tensor is stored in when the file's type is ``qtype`` (see the module docstring)."""
    import gguf

    values = 1
    for size in shape:
        values *= size
    if len(shape) <= 1 or values <= QUANTIZATION_THRESHOLD or any(part in name for part in KEEP_F32):
        return "F32"
    if qtype in ("F16", "F32"):
        return qtype
    if any(part in name for part in KEEP_F16) or len(shape) != 2:
        return "F16"
    block, _ = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype]]
    return qtype if shape[-1] % block == 0 else "F16"


def save_gguf(state: Mapping[str, Tensor], path: Path, architecture: str, qtype: str = "Q8_0") -> dict[str, str]:
    """Write ``state`` (original names) as a GGUF file of ``qtype``; returns the type each tensor got. Written to a
    temporary file beside ``path`` and renamed."""
    import gguf
    import torch

    if qtype not in GGUF_QTYPES:
        raise ConversionError(f"the gguf package cannot write {qtype} (it can: {', '.join(GGUF_QTYPES)}); K-quants "
                              "need llama.cpp's llama-quantize with city96's patch")
    if architecture not in ARCHITECTURES.values():
        raise ConversionError(f"unknown GGUF architecture '{architecture}' ({', '.join(ARCHITECTURES.values())})")
    long = [name for name in state if len(name) > MAX_NAME_LENGTH]
    if long:
        raise ConversionError(f"GGUF tensor names are at most {MAX_NAME_LENGTH} characters: {', '.join(long[:3])}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path=None, arch=architecture)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_file_type(gguf.LlamaFileType["ALL_F32" if qtype == "F32" else f"MOSTLY_{qtype}"])
    chosen: dict[str, str] = {}
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            raise ConversionError(f"GGUF: '{name}' is {tensor.dtype}; only floating-point tensors are written")
        data = tensor.detach().to(device="cpu", dtype=torch.float32).numpy()
        chosen[name] = tensor_qtype(name, tuple(data.shape), qtype)
        kind = gguf.GGMLQuantizationType[chosen[name]]
        writer.add_tensor(name, gguf.quants.quantize(data, kind), raw_dtype=kind)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        writer.write_header_to_file(path=temporary)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return chosen
