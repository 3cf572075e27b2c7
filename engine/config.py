"""The engine configuration, and the one place a session's parts are built.

Four front ends open sessions: ``nodeforge run``, ``nodeforge serve``, ``nodeforge watch`` and the embedding API.
Each only turns its options into an ``EngineConfig`` and hands it to ``Session.open``; the model managers, the
result cache and the Ray backend are constructed here and nowhere else. An option one front end gains therefore
reaches them all, and they cannot drift apart in how they read ``--vram-budget`` or ``--memory-mode``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from nodeforge.engine.cache import ResultCache
from nodeforge.engine.devices import default_budget, parse_budgets, parse_devices, parse_size
from nodeforge.engine.errors import EngineError
from nodeforge.engine.files import FilePolicy
from nodeforge.engine.limits import MediaLimits
from nodeforge.engine.memory_modes import (
    MemorySetting,
    check_memory_modes,
    parse_memory_modes,
    parse_memory_setting,
)
from nodeforge.engine.models import ModelManager

if TYPE_CHECKING:
    from nodeforge.engine.ray.driver import RayBackend

BackendName = Literal["local", "ray"]


@dataclass(frozen=True)
class EngineConfig:
    """What a session is opened from, as the command line spells it. Checked when made, without touching a
    device (EngineError naming the option): a config that exists opens, save for what only the devices themselves
    can refuse. ``devices``' ``auto`` is every GPU, detected when a session needs them; ``data_dir`` None keeps
    the result cache in memory; ``cache`` False runs without one."""

    data_dir: Path | None = None
    devices: str = "auto"
    vram_budget: str | None = None
    memory_mode: str | None = None
    backend: BackendName = "local"
    address: str | None = None
    workers: int = 8
    cache: bool = True
    policy: FilePolicy | None = None
    limits: MediaLimits = field(default_factory=MediaLimits)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise EngineError("--workers must be at least 1")
        if self.address and self.backend != "ray":
            raise EngineError("--address needs --backend ray")
        if self.backend == "ray":
            if self.devices != "auto":
                raise EngineError("--devices does not apply to --backend ray: every GPU of the cluster gets a worker")
            self.cluster_budget()
            self.cluster_memory()
        else:
            _check_device_options(self.devices, self.vram_budget, self.memory_mode)

    def device_names(self, accelerated: bool = True) -> list[str] | None:
        """The devices a local session's slots are: those named, or under ``auto`` the ones detected (only when
        the graph has an accelerator node: else the CPU, and nothing is imported to look). None on Ray, where the
        cluster's workers are the devices."""
        if self.backend == "ray":
            return None
        if self.devices == "auto" and not accelerated:
            return ["cpu"]
        return parse_devices(self.devices)

    def cluster_budget(self) -> int | None:
        """``--vram-budget`` for ``--backend ray``: one size for every GPU of the cluster."""
        return parse_size(self.vram_budget) if self.vram_budget else None

    def cluster_memory(self) -> MemorySetting | None:
        """``--memory-mode`` for ``--backend ray``: one mode for every GPU of the cluster (its names are not known)."""
        if not self.memory_mode:
            return None
        if "=" in self.memory_mode:
            raise EngineError("--memory-mode with --backend ray takes one mode for every GPU (e.g. offload), not "
                              "per-device names")
        return parse_memory_setting(self.memory_mode)


def open_cache(config: EngineConfig) -> ResultCache | None:
    """The result cache a config asks for (``result_cache``), none when ``cache`` is off."""
    return result_cache(config.data_dir) if config.cache else None


def result_cache(data_dir: Path | None) -> ResultCache:
    """The result cache of a data dir, on disk in its ``cache`` folder; in memory only without one."""
    return ResultCache(data_dir / "cache" if data_dir is not None else None)


def device_models(devices: list[str], vram_budget: str | None = None, memory_mode: str | None = None) -> ModelManager:
    """The model manager of these devices with their budgets and memory modes (each device's own when not given);
    EngineError when an option names a device that is not there."""
    return ModelManager(parse_budgets(vram_budget, devices), memory=parse_memory_modes(memory_mode, devices))


def worker_models(device: str, budget: int | None, memory: MemorySetting | None) -> ModelManager:
    """The model manager of one Ray device worker: its GPU, with the cluster's budget and memory mode."""
    return ModelManager({device: budget or default_budget(device)}, memory={device: memory or MemorySetting()})


def ray_backend(config: EngineConfig) -> RayBackend:
    """The Ray backend of ``config``, connected to its ``address`` or on a new local cluster; its workers are up
    when it returns. Raises what Ray raised when the cluster cannot be reached."""
    from nodeforge.engine.ray.driver import RayBackend

    return RayBackend(config.address, budget=config.cluster_budget(), memory=config.cluster_memory())


def _check_device_options(devices: str, budget: str | None, memory_mode: str | None) -> None:
    """The device options' syntax, and their device names against ``devices`` when it lists them (``auto``
    names are checked once detected)."""
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
