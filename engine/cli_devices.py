"""The device options that ``nodeforge run``, ``nodeforge devices`` and ``nodeforge serve`` share (``--devices``,
``--vram-budget``, ``--memory-mode``), the model manager they configure, and the ``nodeforge devices`` command."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from nodeforge.engine.errors import EngineError, UsageError

if TYPE_CHECKING:
    from nodeforge.engine.memory_modes import MemorySetting
    from nodeforge.engine.models import ModelManager

DEVICES_HELP = "auto, or a list such as cuda:0,cuda:1 or cpu:0,cpu:1"
BUDGET_HELP = "bytes of models and results per device: 8G, or cuda:0=8G,cuda:1=12G"
MEMORY_MODE_HELP = ("how diffusion pipelines sit on each device: auto (default: from the model's size and the "
                    "budget), gpu (all on the device), offload (one component at a time), sequential (one layer at "
                    "a time); +fp8 stores the denoiser's weights in fp8; one mode for all, or "
                    "cuda:0=gpu,cuda:1=sequential+fp8")


def add_device_options(parser: argparse.ArgumentParser, devices_help: str = DEVICES_HELP) -> None:
    parser.add_argument("--devices", default="auto", help=devices_help)
    parser.add_argument("--vram-budget", help=BUDGET_HELP)
    parser.add_argument("--memory-mode", metavar="MODE", help=MEMORY_MODE_HELP)


def device_manager(devices: list[str], budget: str | None, memory_mode: str | None) -> ModelManager:
    """The model manager of these devices with their budgets and memory modes; EngineError on a bad option."""
    from nodeforge.engine.devices import parse_budgets
    from nodeforge.engine.memory_modes import parse_memory_modes
    from nodeforge.engine.models import ModelManager

    return ModelManager(parse_budgets(budget, devices), memory=parse_memory_modes(memory_mode, devices))


def cluster_memory(memory_mode: str | None) -> MemorySetting | None:
    """``--memory-mode`` for ``--backend ray``: one mode for every GPU of the cluster (its names are not known)."""
    from nodeforge.engine.memory_modes import parse_memory_setting

    if not memory_mode:
        return None
    if "=" in memory_mode:
        raise EngineError("--memory-mode with --backend ray takes one mode for every GPU (e.g. offload), not "
                          "per-device names")
    return parse_memory_setting(memory_mode)


def devices_command(args: argparse.Namespace) -> int:
    """``nodeforge devices``: each device's budget, memory mode, bytes used and resident models."""
    from nodeforge.engine.devices import parse_devices

    try:
        manager = device_manager(parse_devices(args.devices), args.vram_budget, args.memory_mode)
    except EngineError as exc:
        raise UsageError(str(exc)) from None
    ledger = manager.snapshot()
    if args.json:
        print(json.dumps({"devices": ledger}, indent=2))
        return 0
    for name, info in ledger.items():
        models = ", ".join(info["models"]) or "no resident models"
        print(f"{name:<10} budget {info['budget'] / 2**30:8.2f} GiB  used {info['used'] / 2**30:6.2f} GiB  "
              f"memory mode {info['memory_mode']:<14} {models}")
    return 0


def check_device_options(devices: str, budget: str | None, memory_mode: str | None) -> None:
    """The device options' syntax (and their device names against ``--devices`` when it lists them) without
    touching a device: ``nodeforge serve`` checks them at start, before it detects ``auto`` devices."""
    from nodeforge.engine.devices import parse_devices, parse_size
    from nodeforge.engine.memory_modes import check_memory_modes, parse_memory_modes

    names = None if devices == "auto" else parse_devices(devices)
    for part in budget.split(",") if budget else ():
        name, equals, size = part.partition("=")
        if equals and names is not None and name.strip() not in names:
            raise EngineError(f"--vram-budget names '{name.strip()}', which is not in --devices")
        parse_size(size if equals else name)
    if names is not None:
        parse_memory_modes(memory_mode, names)
    else:
        check_memory_modes(memory_mode)
