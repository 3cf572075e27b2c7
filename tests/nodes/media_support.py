"""Shared set-up for the speech, video and quickstart tests: one session per module, so real voices and tiny
models load once per module instead of once per test."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.session import Session
from tests.nodes.image_support import module_executor, run_nodes

__all__ = ["media_executor", "run_nodes", "sine", "words"]


@pytest.fixture(scope="module")
def media_executor(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> Iterator[Session]:
    yield from module_executor(tmp_path_factory, shared_models_dir)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def sine(seconds: float, rate: int, frequency: float = 440.0, channels: int = 1) -> Any:
    import torch

    t = torch.arange(round(seconds * rate)) / rate
    return torch.sin(2 * math.pi * frequency * t).mul(0.5).repeat(channels, 1)
