"""The options the commands share (engine options, step previews), the engine configuration they make, and the
parser's exit codes and plugin-facing types."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeAlias

from nodeforge.engine.cli.device_options import DEVICES_HELP, add_device_options
from nodeforge.engine.errors import EngineError, UsageError

if TYPE_CHECKING:
    from nodeforge.engine.config import EngineConfig
    from nodeforge.engine.previews import Previews

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    """A parser whose errors are a UsageError (one line, exit code 2), not argparse's exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


if TYPE_CHECKING:
    Commands: TypeAlias = argparse._SubParsersAction[Parser]
    """The subcommands a plugin command's ``register(commands, common)`` adds its parser to."""
CommonOptions = Callable[[argparse.ArgumentParser], None]
"""``register``'s ``common``: adds the options every graph command takes (``--data-dir``, ``--plugins``)."""


def add_engine_options(parser: argparse.ArgumentParser, *, cache: bool = False,
                       devices_help: str = DEVICES_HELP) -> None:
    """The options of every command that opens a session (run, serve, watch), read by ``engine_config``: one
    place, so no command lacks one the others have. ``cache`` adds ``--no-cache``."""
    add_device_options(parser, devices_help)
    parser.add_argument("--workers", type=int, default=8, help="threads for ready nodes within a run (default 8)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="where nodes run: this process (local, default) or a Ray cluster (ray: one worker per "
                             "GPU; needs pip install 'nodeforge[ray]')")
    parser.add_argument("--address", help="with --backend ray: auto (the cluster this machine joined), HOST:PORT of "
                                          "its head, or ray://HOST:10001; default: start a local cluster")
    if cache:
        parser.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")


def add_preview_options(parser: argparse.ArgumentParser) -> None:
    """``--previews DIR`` and its method, for the commands that run graphs from this terminal (run, watch)."""
    parser.add_argument("--previews", metavar="DIR", help="keep diffusion nodes' step previews in DIR as "
                                                         "<node>-<step>.jpg (a few per second per node)")
    parser.add_argument("--preview-method", choices=["latent", "taesd"], default="latent",
                        help="with --previews: latent (a fast projection, default) or taesd (the model family's tiny "
                             "autoencoder, tiny/taesd for tiny models; downloaded once like any model)")


def previews_of(args: argparse.Namespace) -> Previews | None:
    """Where ``add_preview_options`` keeps step previews (the folder is made now), or None without ``--previews``;
    UsageError for a method without a folder."""
    from nodeforge.engine.previews import FolderSink, Previews

    if args.preview_method != "latent" and not args.previews:
        raise UsageError("--preview-method needs --previews DIR")
    return Previews(FolderSink(Path(args.previews)), args.preview_method) if args.previews else None


def engine_config(args: argparse.Namespace, data_dir: Path, *, cache: bool = True) -> EngineConfig:
    """The engine configuration of a command's ``add_engine_options`` (``cache`` False for its ``--no-cache``);
    UsageError naming a bad option."""
    from nodeforge.engine.config import EngineConfig

    try:
        return EngineConfig(data_dir=data_dir, devices=args.devices, vram_budget=args.vram_budget,
                            memory_mode=args.memory_mode, backend=args.backend, address=args.address,
                            workers=args.workers, cache=cache)
    except EngineError as exc:
        raise UsageError(str(exc)) from None
