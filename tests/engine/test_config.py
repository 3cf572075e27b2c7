"""The engine configuration and ``Session.open``: options are checked when a config is made, the session gets the
devices, budgets, memory modes and workers the config names, and the parts of a session are built in one module."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nodeforge.engine.cache import ResultCache
from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.config import EngineConfig, open_cache
from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import EngineError
from nodeforge.engine.memory_modes import MemorySetting
from nodeforge.engine.session import Session

ROOT = Path(__file__).resolve().parents[2]
GIB = 1 << 30
HELLO = parse_document({"nodes": {"v": {"type": "text.value", "inputs": {"value": "hi"}}},
                        "outputs": {"text": {"from": "v.text"}}})


@pytest.mark.parametrize(("options", "message"), [
    ({"workers": 0}, "--workers must be at least 1"),
    ({"address": "auto"}, "--address needs --backend ray"),
    ({"backend": "ray", "devices": "cuda:0"}, "--devices does not apply to --backend ray"),
    ({"backend": "ray", "memory_mode": "cuda:0=gpu"}, "--memory-mode with --backend ray takes one mode"),
    ({"backend": "ray", "vram_budget": "cuda:0=8G"}, "'cuda:0=8G' is not a size"),
    ({"devices": "cpu:0", "vram_budget": "cpu:3=1G"}, "--vram-budget names 'cpu:3'"),
    ({"devices": "cpu:0", "memory_mode": "cpu:3=gpu"}, "--memory-mode names 'cpu:3'"),
    ({"memory_mode": "lots"}, "unknown memory mode 'lots'"),
    ({"devices": "gpu7"}, "unknown device 'gpu7'"),
])
def test_a_bad_option_is_refused_when_the_config_is_made(options: dict[str, object], message: str) -> None:
    with pytest.raises(EngineError) as caught:
        EngineConfig(**options)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)


def test_the_devices_a_session_gets() -> None:
    assert EngineConfig().device_names(accelerated=False) == ["cpu"]  # nothing detected for a CPU-only graph
    assert EngineConfig(devices="cpu:0,cpu:1").device_names(accelerated=False) == ["cpu:0", "cpu:1"]
    ray = EngineConfig(backend="ray", vram_budget="2G", memory_mode="offload+fp8")
    assert ray.device_names() is None
    assert (ray.cluster_budget(), ray.cluster_memory()) == (2 * GIB, MemorySetting("offload", fp8=True))


def test_the_session_has_the_devices_budgets_modes_and_workers_of_its_config(env: GraphEnv) -> None:
    config = EngineConfig(devices="cpu:0,cpu:1", vram_budget="cpu:1=1G", memory_mode="cpu:0=sequential", workers=3)
    session = Session.open(config, env)
    ledger = session.models.snapshot()
    assert session.devices == ["cpu:0", "cpu:1"] and session.slots.devices == session.devices
    assert ledger["cpu:1"]["budget"] == GIB
    assert {name: info["memory_mode"] for name, info in ledger.items()} == {"cpu:0": "sequential", "cpu:1": "auto"}
    assert session.workers == 3
    assert session.run(HELLO).values == {"text": "hi"}
    session.close()


def test_a_session_closes_the_cache_it_opened_and_leaves_a_shared_one_open(env: GraphEnv, tmp_path: Path) -> None:
    config = EngineConfig(data_dir=tmp_path, devices="cpu")
    own = Session.open(config, env)
    own.run(HELLO)
    assert isinstance(own.cache, ResultCache) and own.cache.info()["entries"] == 1
    own.close()
    shared = open_cache(config)
    assert shared is not None
    session = Session.open(config, env, cache=shared)
    assert session.cache is shared
    session.close()
    assert shared.info()["entries"] == 1  # still open: a closed cache could not be read
    shared.close()
    assert Session.open(EngineConfig(devices="cpu", cache=False), env).cache is None


def test_bad_devices_for_the_options_fail_when_the_session_opens(env: GraphEnv) -> None:
    config = EngineConfig(vram_budget="cuda:5=1G")  # auto: the names are checked once the devices are known
    with pytest.raises(EngineError, match="--vram-budget names 'cuda:5'"):
        Session.open(config, env, devices=["cpu:0"])


def test_the_parts_of_a_session_are_built_in_one_module() -> None:
    built = re.compile(r"(?<!class )\b(ModelManager|ResultCache|RayBackend)\(")
    places: dict[str, set[str]] = {}
    for package in ("engine", "nodes", "server"):
        for path in (ROOT / package).rglob("*.py"):
            for name in built.findall(path.read_text()):
                places.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert places == {"ModelManager": {"engine/config.py"}, "ResultCache": {"engine/config.py"},
                      "RayBackend": {"engine/config.py"}}
