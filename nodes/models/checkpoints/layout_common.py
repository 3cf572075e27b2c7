"""What the original-layout converters share: the error they raise, prefixes, and name rules that run both ways.

A rule names one original tensor and the diffusers tensors it is made of: a rename (one part), a fusion (several
parts concatenated along the first dimension, as the original checkpoints store q, k and v in one matrix), or a
swap of the two halves (diffusers' ``AdaLayerNormContinuous`` projects to scale then shift, the original models to
shift then scale). The same table converts a diffusers state dict to the original names and back, and every tensor
must be covered by a rule, so no tensor is silently dropped either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

StateDict = dict[str, "Tensor"]
LEAVES = ("weight", "bias")


class ConversionError(ValueError):
    """A model or state dict the original-layout converter cannot express (it names the tensors and why)."""


@dataclass(frozen=True)
class Rule:
    """One original tensor and the diffusers tensors it holds, in order (see the module docstring)."""

    original: str
    parts: tuple[str, ...]
    swap: bool = False


def linear(original: str, *parts: str, swap: bool = False) -> list[Rule]:
    """The rules for a layer's weight and bias (a missing bias is skipped when converting)."""
    return [Rule(f"{original}.{leaf}", tuple(f"{part}.{leaf}" for part in parts), swap) for leaf in LEAVES]


def with_prefix(prefix: str, state: Mapping[str, Tensor]) -> StateDict:
    return {prefix + key: tensor for key, tensor in state.items()}


def swap_halves(tensor: Tensor) -> Tensor:
    import torch

    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def to_original(state: Mapping[str, Tensor], rules: Iterable[Rule], what: str) -> StateDict:
    """Diffusers names -> original names by ``rules``; ConversionError if a tensor is left over or half a fusion
    is missing."""
    import torch

    converted: StateDict = {}
    used: set[str] = set()
    for rule in rules:
        present = [part for part in rule.parts if part in state]
        if not present:
            continue
        if len(present) != len(rule.parts):
            missing = ", ".join(part for part in rule.parts if part not in state)
            raise ConversionError(f"{what}: '{rule.original}' is made of {', '.join(rule.parts)}; missing {missing}")
        tensors = [state[part] for part in rule.parts]
        if rule.swap:
            converted[rule.original] = swap_halves(tensors[0])
        else:
            converted[rule.original] = tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=0)
        used.update(rule.parts)
    _no_leftovers(state, used, what)
    return converted


def from_original(state: Mapping[str, Tensor], rules: Iterable[Rule], width: int, what: str) -> StateDict:
    """Original names -> diffusers names by the same ``rules``: a fused tensor splits into parts of ``width`` rows,
    the last part taking the rest (q, k, v are ``width`` each; Flux's single blocks add the MLP after them)."""
    import torch

    converted: StateDict = {}
    used: set[str] = set()
    for rule in rules:
        if rule.original not in state:
            continue
        tensor = state[rule.original]
        if rule.swap:
            pieces = [swap_halves(tensor)]
        elif len(rule.parts) == 1:
            pieces = [tensor]
        else:
            rest = tensor.shape[0] - width * (len(rule.parts) - 1)
            if rest <= 0:
                raise ConversionError(f"{what}: '{rule.original}' has {tensor.shape[0]} rows, too few for "
                                      f"{len(rule.parts)} parts of {width}")
            pieces = list(torch.split(tensor, [width] * (len(rule.parts) - 1) + [rest], dim=0))
        converted.update(zip(rule.parts, pieces, strict=True))
        used.add(rule.original)
    _no_leftovers(state, used, what)
    return converted


def _no_leftovers(state: Mapping[str, Tensor], used: set[str], what: str) -> None:
    left = sorted(set(state) - used)
    if left:
        shown = ", ".join(left[:6]) + (f" and {len(left) - 6} more" if len(left) > 6 else "")
        raise ConversionError(f"{what}: no original name for {len(left)} tensor(s): {shown}")


def block_numbers(state: Iterable[str], prefix: str) -> list[int]:
    """The block numbers under ``prefix`` (e.g. ``transformer_blocks.``), sorted."""
    numbers = set()
    for key in state:
        if key.startswith(prefix):
            head = key[len(prefix):].split(".", 1)[0]
            if head.isdigit():
                numbers.add(int(head))
    return sorted(numbers)
