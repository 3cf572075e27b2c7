"""Server settings: one frozen object built by ``nodeforge serve`` or by a test, handed to ``create_app``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from nodeforge.engine.config import BackendName, EngineConfig
from nodeforge.engine.files import FilePolicy
from nodeforge.engine.limits import MediaLimits

MiB = 1 << 20
PROJECT_GRAPHS = Path(__file__).resolve().parent.parent / "graphs"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    """Whether a bind address or Host name only reaches this machine."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Settings:
    """Everything the app needs; paths are resolved by ``resolved()``."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8188
    token: str | None = None
    devices: str = "auto"
    vram_budget: str | None = None
    memory_mode: str | None = None
    backend: BackendName = "local"
    ray_address: str | None = None
    plugins: tuple[Path, ...] = ()
    examples_dir: Path | None = PROJECT_GRAPHS
    input_dirs: tuple[Path, ...] = ()
    write_dirs: tuple[Path, ...] = ()
    limits: MediaLimits = field(default_factory=MediaLimits)
    concurrency: int = 1
    workers: int = 8
    max_body_bytes: int = 16 * MiB
    max_upload_bytes: int = 256 * MiB
    heartbeat_seconds: float = 15.0
    watch: bool = True
    allowed_origins: tuple[str, ...] = ()
    queue_limit: int = 10_000
    shutdown_grace_seconds: float = 10.0
    preview_method: Literal["latent", "taesd", "off"] = "latent"

    def resolved(self) -> Settings:
        """A copy with absolute, symlink-free paths and the data dir created."""
        data_dir = Path(self.data_dir).expanduser().resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        examples = Path(self.examples_dir).resolve() if self.examples_dir else None
        return replace(self, data_dir=data_dir, token=self.token or None,
                       plugins=tuple(Path(p).resolve() for p in self.plugins),
                       examples_dir=examples if examples and examples.is_dir() else None,
                       input_dirs=tuple(Path(p).resolve() for p in self.input_dirs),
                       write_dirs=tuple(Path(p).resolve() for p in self.write_dirs),
                       concurrency=max(1, self.concurrency), workers=max(1, self.workers))

    def engine_config(self) -> EngineConfig:
        """The engine configuration of the server's session (its devices, backend and workers, with the server's
        file policy and media limits); EngineError naming a bad option."""
        return EngineConfig(data_dir=self.data_dir, devices=self.devices, vram_budget=self.vram_budget,
                            memory_mode=self.memory_mode, backend=self.backend, address=self.ray_address,
                            workers=self.workers, policy=self.file_policy, limits=self.limits)

    @property
    def file_policy(self) -> FilePolicy:
        """What a graph may open: files in the allowed folders, and writes only into the data dir's outputs and
        the folders given for writing (``--allow-write-dir``); reading a folder never lets a graph write there."""
        return FilePolicy(read=self.allowed_folders, write=(self.data_dir / "outputs", *self.write_dirs))

    @property
    def allowed_folders(self) -> tuple[Path, ...]:
        """Folders a graph document or a media input may name files in."""
        folders = [self.data_dir / "inputs", self.data_dir / "models", self.data_dir / "graphs",
                   self.data_dir / "artifacts" / "files", *self.input_dirs]
        if self.examples_dir is not None:
            folders.append(self.examples_dir)
        return tuple(folders)
