"""Device names: ``auto`` (every CUDA GPU, else MPS, else the CPU), explicit lists, and virtual CPU devices."""

from __future__ import annotations

import importlib.util
import re

from nodeforge.engine.errors import DeviceError, EngineError, ModelBudgetError, NodeExecutionError

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


def is_device_failure(error: BaseException | None) -> bool:
    """Whether a node failed because of its device (out of memory, a driver error), not because of its inputs."""

    cause = error.cause if isinstance(error, NodeExecutionError) else error
    if isinstance(cause, DeviceError | ModelBudgetError):
        return True
    if type(cause).__name__ == "OutOfMemoryError":
        return True
    message = str(cause)
    return isinstance(cause, RuntimeError) and ("CUDA error" in message or "out of memory" in message)


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``8G``, ``512M``, ``1.5G`` or a byte count."""
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = cleaned[-1] if cleaned and cleaned[-1] in _UNITS else ""
    number = cleaned[: len(cleaned) - len(unit)] if unit else cleaned
    try:
        value = float(number)
    except ValueError:
        raise EngineError(f"'{text}' is not a size (e.g. 8G, 512M)") from None
    if value <= 0:
        raise EngineError(f"size '{text}' must be positive")
    return int(value * _UNITS[unit])


def parse_budgets(spec: str | None, devices: list[str]) -> dict[str, int]:
    """Per-device byte budgets: ``--vram-budget 8G`` for every device, ``cuda:0=8G,cuda:1=12G`` per device,
    else what the device reports (``default_budget``)."""
    budgets = {}
    given: dict[str, int] = {}
    if spec:
        if "=" in spec:
            for part in spec.split(","):
                name, _, size = part.partition("=")
                if name.strip() not in devices:
                    raise EngineError(f"--vram-budget names '{name.strip()}', which is not in --devices")
                given[name.strip()] = parse_size(size)
        else:
            given = {device: parse_size(spec) for device in devices}
    for device in devices:
        budgets[device] = given.get(device) or default_budget(device)
    return budgets
