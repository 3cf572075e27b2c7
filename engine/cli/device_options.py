"""The device options (``--devices``, ``--vram-budget``, ``--memory-mode``) that ``nodeforge devices`` and every
command opening a session take (``engine.cli.options.add_engine_options``), and the ``nodeforge devices`` command."""

from __future__ import annotations

import argparse
import json

from nodeforge.engine.errors import EngineError, UsageError

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


def devices_command(args: argparse.Namespace) -> int:
    """``nodeforge devices``: each device's budget, memory mode, bytes used and resident models."""
    from nodeforge.engine.config import EngineConfig, device_models

    try:
        config = EngineConfig(devices=args.devices, vram_budget=args.vram_budget, memory_mode=args.memory_mode)
        manager = device_models(config.device_names() or ["cpu"], config.vram_budget, config.memory_mode)
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
