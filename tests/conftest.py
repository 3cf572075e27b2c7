"""Shared fixtures. The environment is fixed before anything imports torch: passive OpenMP, one thread, offline hub."""

import os

os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import gc  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from nodeforge.engine.cache import ResultCache  # noqa: E402
from nodeforge.engine.compiler import GraphEnv  # noqa: E402
from nodeforge.engine.registry import Registry  # noqa: E402
from nodeforge.engine.saved_graphs import GraphLibrary  # noqa: E402
from nodeforge.engine.session import Session  # noqa: E402
from tests.support import testnodes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def unfrozen_heap() -> Iterator[None]:
    """The command line and the server freeze the collector's heap (``gc.freeze``) for their one long-lived
    process; a test that runs them in-process must not leave every object made so far uncollectable for the rest
    of the suite, whose memory would only grow."""
    yield
    gc.unfreeze()


@pytest.fixture
def registry() -> Registry:
    """The built-in nodes plus the test nodes of tests/support/testnodes.py."""
    registry = Registry.discover()
    registry.add_module(testnodes)
    return registry


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def env(registry: Registry, tmp_path: Path) -> GraphEnv:
    library = tmp_path / "library"
    library.mkdir()
    return GraphEnv(registry, GraphLibrary([library]))


@pytest.fixture
def cache(data_dir: Path):
    cache = ResultCache(data_dir / "cache")
    yield cache
    cache.close()


@pytest.fixture
def session(env: GraphEnv, cache: ResultCache, data_dir: Path) -> Session:
    return Session(env, cache, workers=4, data_dir=data_dir)


@pytest.fixture(scope="session")
def shared_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models folder for the session (use with ``NODEFORGE_MODELS_DIR``): tiny models build once, not per test."""
    return tmp_path_factory.mktemp("models")
