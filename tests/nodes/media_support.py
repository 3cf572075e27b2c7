"""Shared set-up for the speech, video and quickstart tests: one executor per module, so real voices and tiny
models load once per module instead of once per test."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.document import parse_document
from engine.executor import Executor, RunResult
from engine.graph import GraphEnv
from engine.library import GraphLibrary
from engine.registry import Registry


@pytest.fixture(scope="module")
def media_executor(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> Iterator[Executor]:
    """An executor without a result cache (every run computes) whose models stay loaded for the module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
        library = tmp_path_factory.mktemp("library")
        data = tmp_path_factory.mktemp("data")
        yield Executor(GraphEnv(Registry.discover(), GraphLibrary([library])), None, workers=2, data_dir=data)


def run_nodes(executor: Executor, nodes: dict[str, Any], outputs: dict[str, str] | None = None,
              **kwargs: Any) -> RunResult:
    document: dict[str, Any] = {"nodes": nodes}
    if outputs:
        document["outputs"] = {name: {"from": source} for name, source in outputs.items()}
    return executor.run(parse_document(document), **kwargs)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def sine(seconds: float, rate: int, frequency: float = 440.0, channels: int = 1) -> Any:
    import torch

    t = torch.arange(round(seconds * rate)) / rate
    return torch.sin(2 * math.pi * frequency * t).mul(0.5).repeat(channels, 1)
