"""Device names: ``auto`` (every CUDA GPU, else MPS, else the CPU), explicit lists, and virtual CPU devices."""

from __future__ import annotations

import importlib.util
import re

from engine.errors import EngineError

DEVICE = re.compile(r"^(cpu|mps|cuda)(:\d+)?$")


def parse_devices(spec: str) -> list[str]:
    """``auto`` or a comma-separated list such as ``cuda:0,cuda:1`` or ``cpu:0,cpu:1`` (virtual devices)."""
    if spec.strip() == "auto":
        return detect_devices()
    names = [part.strip() for part in spec.split(",") if part.strip()]
    if not names:
        raise EngineError("--devices is empty; give 'auto' or a list such as cuda:0,cuda:1")
    bad = [name for name in names if not DEVICE.match(name)]
    if bad:
        raise EngineError(f"unknown device '{bad[0]}' (use auto, cpu, cpu:N, cuda:N or mps)")
    if len(set(names)) != len(names):
        raise EngineError(f"--devices lists a device twice: {spec}")
    return names


def detect_devices() -> list[str]:
    """Every CUDA GPU, else MPS, else the CPU. torch is consulted only when it is installed."""
    if importlib.util.find_spec("torch") is None:
        return ["cpu"]
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return ["mps"]
    return ["cpu"]


def default_budget(device: str) -> int:
    """Bytes of models a device may hold: 90% of a GPU's memory, half the RAM for the CPU (split across virtual
    CPU devices by the caller when it wants them smaller)."""
    if device.startswith("cuda"):
        import torch

        _, total = torch.cuda.mem_get_info(torch.device(device))
        return int(total * 0.9)
    import os

    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.5)
