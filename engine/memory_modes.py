"""Per-device memory modes for diffusion pipelines: ``--memory-mode auto|gpu|offload|sequential``, optionally with
``+fp8``, for every device or per device (``cuda:0=gpu,cuda:1=sequential+fp8``).

The engine only parses and holds the setting (each device's ledger in the model manager carries one); the diffusion
nodes read it through ``ctx.models.memory`` and decide how a pipeline sits on the device
(``nodes.models.diffusion.memory``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nodeforge.engine.errors import EngineError

MemoryMode = Literal["auto", "gpu", "offload", "sequential"]
MEMORY_MODES: tuple[MemoryMode, ...] = ("auto", "gpu", "offload", "sequential")
FP8_SUFFIX = "+fp8"


@dataclass(frozen=True, slots=True)
class MemorySetting:
    """What a device was told: a mode, and whether the denoiser's weights may be stored in fp8 (layerwise
    casting: weights kept as float8_e4m3fn, each layer upcast to the compute dtype when it runs)."""

    mode: MemoryMode = "auto"
    fp8: bool = False

    def __str__(self) -> str:
        return self.mode + (FP8_SUFFIX if self.fp8 else "")


@dataclass(frozen=True, slots=True)
class DeviceMemory:
    """A node's view of its device's memory: the setting, the byte budget of its ledger and what is held against
    that budget right now (resident models and cached results)."""

    device: str
    budget: int
    used: int = 0
    setting: MemorySetting = MemorySetting()

    @property
    def free(self) -> int:
        return max(self.budget - self.used, 0)


def parse_memory_setting(text: str) -> MemorySetting:
    """``auto``, ``gpu``, ``offload`` or ``sequential``, optionally followed by ``+fp8``."""
    cleaned = text.strip().lower()
    fp8 = cleaned.endswith(FP8_SUFFIX)
    mode = cleaned.removesuffix(FP8_SUFFIX) if fp8 else cleaned
    if mode not in MEMORY_MODES:
        raise EngineError(f"unknown memory mode '{text.strip()}' (use {', '.join(MEMORY_MODES)}, each optionally "
                          f"with {FP8_SUFFIX})")
    return MemorySetting(mode, fp8)


def parse_memory_modes(spec: str | None, devices: list[str]) -> dict[str, MemorySetting]:
    """Per-device settings: ``offload`` for every device, ``cuda:0=gpu,cuda:1=sequential+fp8`` per device (devices
    not named get ``auto``); None or empty: ``auto`` everywhere. A named device must be in ``devices``."""
    if not spec or not spec.strip():
        return {device: MemorySetting() for device in devices}
    if "=" not in spec:
        setting = parse_memory_setting(spec)
        return {device: setting for device in devices}
    given: dict[str, MemorySetting] = {}
    for part in spec.split(","):
        name, equals, mode = (piece.strip() for piece in part.partition("="))
        if not equals or not name:
            raise EngineError(f"--memory-mode '{part.strip()}' is not DEVICE=MODE (e.g. cuda:0=offload)")
        if name not in devices:
            raise EngineError(f"--memory-mode names '{name}', which is not in --devices ({', '.join(devices)})")
        given[name] = parse_memory_setting(mode)
    return {device: given.get(device, MemorySetting()) for device in devices}


def check_memory_modes(spec: str | None) -> None:
    """The syntax of ``--memory-mode`` before the devices are known (``auto`` devices are detected later)."""
    if not spec or "=" not in spec:
        parse_memory_setting(spec or "auto")
        return
    names = [part.partition("=")[0].strip() for part in spec.split(",")]
    parse_memory_modes(spec, names)
