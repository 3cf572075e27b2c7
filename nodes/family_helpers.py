"""Small helpers the model families share: the torch device of a node, seeded generators, quiet libraries."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from nodeforge.engine.errors import NodeError, first_line

if TYPE_CHECKING:
    import torch

ModuleT = TypeVar("ModuleT", bound="torch.nn.Module")

_GLOBAL_RNG = threading.Lock()  # torch's global RNG is one per process: one seeded draw from it at a time


def torch_device(device: str) -> str:
    """The torch device behind an engine device: virtual CPU devices (``cpu:0``) are the CPU."""
    return "cpu" if device.startswith("cpu") else device


def on_device(model: ModuleT, device: str) -> ModuleT:
    """``model.to(device).eval()``, typed as torch's ``Module.to`` (transformers wraps its models' ``to`` with
    ``functools.wraps``, which type checkers do not bind to the model)."""
    return model.to(torch_device(device)).eval()


def generator(device: str, seed: int) -> Any:
    """A private torch generator for ``seed``: reproducible, and untouched by other nodes running at once."""
    import torch

    kind = torch_device(device)
    return torch.Generator(device="cpu" if kind == "mps" else kind).manual_seed(seed)


@contextmanager
def seeded_global_rng(seed: int, device: Any) -> Iterator[None]:
    """torch's global RNG seeded with ``seed`` for code that draws from it and takes no generator (transformers'
    sampling in ``generate``), one caller at a time, and put back as it was afterwards, so other nodes' draws are
    neither disturbed nor disturbing."""
    import torch

    kind = torch.device(device)
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[kind] if kind.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


class _PillowFallbackNotice(logging.Filter):
    """transformers announces, once per image processor, that it uses the Pillow one because torchvision is not
    installed. nodeforge installs without torchvision on purpose (PyPI's build does not load beside the pinned
    torch) and the Pillow processors give the same pictures, so the notice tells a user nothing to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed)" not in record.getMessage()


def quiet_transformers() -> None:
    """No download, weight-loading or shard-writing progress bars from transformers (the engine reports progress
    itself), and no notice that the Pillow image processors stand in for torchvision's."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    notices = logging.getLogger("transformers.utils.import_utils")
    if not any(isinstance(existing, _PillowFallbackNotice) for existing in notices.filters):
        notices.addFilter(_PillowFallbackNotice())


def quiet_pipeline(pipe: Any) -> Any:
    """A diffusers pipeline without its tqdm bar (the node emits ``node.progress`` per step instead)."""
    pipe.set_progress_bar_config(disable=True)
    return pipe


@contextmanager
def reading_model(name: str, path: Path, what: str,
                  errors: tuple[type[Exception], ...] = (OSError, ValueError, KeyError)) -> Iterator[None]:
    """Turn a library's failure to read a model folder into an error on the node's ``model`` input, with the
    library's first line of reason instead of its traceback."""
    try:
        yield
    except errors as exc:
        raise NodeError(f"model '{name}' at {path} {what}: {first_line(exc)}", input="model") from None


def literal(literals: Mapping[str, Any], bound: frozenset[str], inputs: type[BaseModel], name: str) -> Any:
    """For ``Node.check``: an input's literal value, its declared default when it is not given, None when a link
    gives it (then nothing is known about it before the run)."""
    if name in literals:
        return literals[name]
    return None if name in bound else inputs.model_fields[name].get_default(call_default_factory=True)
