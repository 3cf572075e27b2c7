"""Shared set-up for the conversion tests: the tiny models' folders (built once per session) and exact comparisons."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from nodeforge.nodes.models import build_resolver


@pytest.fixture(scope="module")
def tiny(shared_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Path]]:
    """``tiny("sd")`` -> the resolved folder of tiny/sd (what every other test of the tiny models loads)."""
    data = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
        resolver = build_resolver()
        yield lambda name: resolver.resolve(f"tiny/{name}", data).path


def assert_same(converted: Mapping[str, Any], reference: Mapping[str, Any], what: str) -> None:
    """The same names both ways and every tensor bit-identical (shape, dtype and values)."""
    missing, extra = sorted(set(reference) - set(converted)), sorted(set(converted) - set(reference))
    assert not missing and not extra, f"{what}: missing {missing[:5]}, extra {extra[:5]}"
    for key, tensor in reference.items():
        assert converted[key].shape == tensor.shape and converted[key].dtype == tensor.dtype, f"{what}: {key}"
        assert converted[key].equal(tensor), f"{what}: {key} differs"


def values(state: Mapping[str, Any], prefix: str = "") -> int:
    """How many numbers the tensors under ``prefix`` hold: a fusion or a swap keeps it, a dropped tensor does not."""
    return sum(tensor.numel() for key, tensor in state.items() if key.startswith(prefix))


def under(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The tensors under ``prefix`` (a copy: diffusers' SD3, Flux and Wan readers pop what they read)."""
    return {key: tensor for key, tensor in state.items() if key.startswith(prefix)}
