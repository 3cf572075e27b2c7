"""One local Ray cluster for the whole session: two logical GPUs on two CPUs, so two DeviceWorker actors run side
by side without GPU hardware. Ray starts once; every test shares the cluster, its workers and their models.

Ray is optional: without it the test modules here skip themselves (``pytest.importorskip``) with the reason."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from tests.support import testnodes

ROOT = Path(__file__).resolve().parents[2]
RAY_MISSING = "the Ray backend tests need Ray: pip install -e '.[ray]'"


@pytest.fixture(scope="session")
def ray_backend(shared_models_dir: Path) -> Iterator[Any]:
    """The session's cluster and its Ray backend; worker processes import the project (and these tests) from the
    project root and build tiny models in the session's models folder."""
    ray = pytest.importorskip("ray", reason=RAY_MISSING)
    from nodeforge.engine.ray.driver import RayBackend
    from tests.ray.raynodes import NAMESPACE

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env_vars = {"PYTHONPATH": str(ROOT), "NODEFORGE_MODELS_DIR": str(shared_models_dir), "OMP_NUM_THREADS": "1",
                "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, object_store_memory=256 << 20, log_to_driver=False,
             namespace=NAMESPACE, runtime_env={"env_vars": env_vars})
    backend = None
    try:
        backend = RayBackend()
        yield backend
    finally:
        if backend is not None:
            backend.close()
        ray.shutdown()


@pytest.fixture(scope="session")
def ray_registry() -> Registry:
    """Built-in nodes, the engine's test nodes and the Ray test nodes (workers import the same modules)."""
    pytest.importorskip("ray", reason=RAY_MISSING)
    from tests.ray import raynodes

    registry = Registry.discover()
    registry.add_module(testnodes)
    registry.add_module(raynodes)
    return registry


@pytest.fixture
def ray_env(ray_registry: Registry, tmp_path: Path) -> GraphEnv:
    library = tmp_path / "library"
    library.mkdir()
    return GraphEnv(ray_registry, GraphLibrary([library]))
