"""--memory-mode parsing, the model manager's per-device setting and accounting, and the device commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.engine.cli import main
from nodeforge.engine.config import EngineConfig
from nodeforge.engine.errors import EngineError, UsageError
from nodeforge.engine.memory_modes import MemorySetting, parse_memory_modes, parse_memory_setting
from nodeforge.engine.models import ModelManager
from nodeforge.server.cli import settings_from_args
from tests.server.test_security import args

MB = 1 << 20


def test_one_mode_for_every_device_or_one_per_device() -> None:
    assert parse_memory_modes("offload", ["cuda:0", "cuda:1"]) == {"cuda:0": MemorySetting("offload"),
                                                                   "cuda:1": MemorySetting("offload")}
    modes = parse_memory_modes("cuda:1=sequential+fp8, cuda:0=gpu", ["cuda:0", "cuda:1", "cuda:2"])
    assert modes == {"cuda:0": MemorySetting("gpu"), "cuda:1": MemorySetting("sequential", fp8=True),
                     "cuda:2": MemorySetting("auto")}
    assert str(modes["cuda:1"]) == "sequential+fp8" and parse_memory_modes(None, ["cpu"]) == {"cpu": MemorySetting()}
    assert parse_memory_setting(" Auto+FP8 ") == MemorySetting("auto", fp8=True)


@pytest.mark.parametrize(("spec", "message"), [
    ("fast", "unknown memory mode 'fast' (use auto, gpu, offload, sequential, each optionally with +fp8)"),
    ("cuda:3=offload", "--memory-mode names 'cuda:3', which is not in --devices (cuda:0, cuda:1)"),
    ("cuda:0=offload,gpu", "--memory-mode 'gpu' is not DEVICE=MODE (e.g. cuda:0=offload)"),
    ("cuda:0=fp8", "unknown memory mode 'fp8'"),
])
def test_bad_modes_say_what_is_accepted(spec: str, message: str) -> None:
    with pytest.raises(EngineError) as caught:
        parse_memory_modes(spec, ["cuda:0", "cuda:1"])
    assert str(caught.value).startswith(message)


def test_each_ledger_carries_its_mode_and_reports_what_is_held() -> None:
    manager = ModelManager({"cpu:0": 8 * MB, "cpu:1": 8 * MB},
                           memory=parse_memory_modes("cpu:1=offload+fp8", ["cpu:0", "cpu:1"]))
    assert [info["memory_mode"] for info in manager.snapshot().values()] == ["auto", "offload+fp8"]
    memory = manager.memory_of("cpu:1")
    assert (memory.device, memory.budget, memory.used, memory.free, memory.setting) == (
        "cpu:1", 8 * MB, 0, 8 * MB, MemorySetting("offload", True))


class Offloaded:
    """A model that keeps less on its device than its weights and cannot be parked (an offloaded pipeline)."""

    device_nbytes = 3 * MB
    parkable = False

    def to(self, device: str) -> Offloaded:
        raise AssertionError("an offloaded model is never moved")


def test_a_model_is_accounted_by_what_it_keeps_on_the_device_and_dropped_not_parked() -> None:
    manager = ModelManager({"cuda:0": 4 * MB})
    manager.get("cuda:0", "a", lambda device: Offloaded())
    manager.release("cuda:0", "a")
    assert manager.snapshot()["cuda:0"]["used"] == 3 * MB
    manager.get("cuda:0", "b", lambda device: Offloaded())  # "a" must go: dropped, since it cannot be parked
    assert manager.snapshot()["cuda:0"]["models"] == ["b"] and not manager.offloaded


def test_devices_command_shows_each_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "--devices", "cpu:0,cpu:1", "--vram-budget", "1G", "--memory-mode",
                 "cpu:1=sequential", "--json"]) == 0
    ledger = json.loads(capsys.readouterr().out)["devices"]
    assert {name: info["memory_mode"] for name, info in ledger.items()} == {"cpu:0": "auto", "cpu:1": "sequential"}
    assert main(["devices", "--devices", "cpu:0", "--memory-mode", "cpu:7=gpu"]) == 2
    assert "--memory-mode names 'cpu:7', which is not in --devices (cpu:0)" in capsys.readouterr().err


def test_serve_checks_the_device_options_before_it_starts(tmp_path: Path) -> None:
    settings = settings_from_args(args(data_dir=tmp_path, devices="cpu:0,cpu:1", vram_budget="cpu:0=1G",
                                       memory_mode="cpu:1=offload"))
    assert (settings.vram_budget, settings.memory_mode) == ("cpu:0=1G", "cpu:1=offload")
    EngineConfig(vram_budget="8G", memory_mode="cuda:5=sequential")  # auto devices: names are checked once detected
    for bad, message in (({"memory_mode": "cpu:3=gpu"}, "--memory-mode names 'cpu:3'"),
                         ({"vram_budget": "cpu:3=1G"}, "--vram-budget names 'cpu:3'"),
                         ({"memory_mode": "lots"}, "unknown memory mode 'lots'"),
                         ({"backend": "ray", "memory_mode": "cuda:0=gpu", "devices": "auto"},
                          "--memory-mode with --backend ray takes one mode for every GPU")):
        with pytest.raises(UsageError) as caught:
            settings_from_args(args(**{"data_dir": tmp_path, "devices": "cpu:0,cpu:1", **bad}))
        assert str(caught.value).startswith(message)
