"""``nodeforge serve``: the HTTP API on uvicorn. Registered through the ``nodeforge.commands`` entry point, so the
engine's CLI never imports the server."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from nodeforge.engine.cli import add_engine_options, engine_config
from nodeforge.engine.errors import UsageError
from nodeforge.engine.limits import (
    DEFAULT_MAX_AUDIO_SECONDS,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_VIDEO_FRAMES,
    MediaLimits,
)
from nodeforge.server.settings import MiB, Settings, is_loopback

if TYPE_CHECKING:
    from nodeforge.engine.cli import Commands, CommonOptions

EXIT_OK, EXIT_FAILED = 0, 1


def register_serve(commands: Commands, common: CommonOptions) -> None:
    serve = commands.add_parser("serve", help="serve the HTTP API (JSON, server-sent events, OpenAI-compatible)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8188)
    serve.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (prefer env NODEFORGE_TOKEN: "
                                       "arguments are visible to other users)")
    serve.add_argument("--insecure", action="store_true",
                       help="allow a non-loopback --host without a token (anyone who can reach it can run graphs)")
    add_engine_options(serve, devices_help="auto, or a list such as cuda:0,cuda:1")
    serve.add_argument("--concurrency", type=int, default=1, help="runs executed at the same time (default 1)")
    serve.add_argument("--max-upload-mb", type=int, default=256, help="largest upload accepted (default 256)")
    serve.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                       help="a browser origin allowed to call the API (repeatable), e.g. http://localhost:5173")
    serve.add_argument("--allow-dir", action="append", default=[], metavar="DIR",
                       help="another folder graphs may read files from (repeatable; the data dir's inputs/ and "
                            "models/ and the example graphs' folder always are)")
    serve.add_argument("--allow-write-dir", action="append", default=[], metavar="DIR",
                       help="a folder graphs may write files into (repeatable; the data dir's outputs/ always is; "
                            "a folder given only with --allow-dir stays read-only)")
    serve.add_argument("--max-image-pixels", type=int, default=DEFAULT_MAX_IMAGE_PIXELS, metavar="N",
                       help=f"largest picture an upload or a graph may load, in pixels (default "
                            f"{DEFAULT_MAX_IMAGE_PIXELS:,})")
    serve.add_argument("--max-video-frames", type=int, default=DEFAULT_MAX_VIDEO_FRAMES, metavar="N",
                       help=f"longest video an upload or a graph may load, in frames (default "
                            f"{DEFAULT_MAX_VIDEO_FRAMES:,})")
    serve.add_argument("--max-audio-seconds", type=float, default=DEFAULT_MAX_AUDIO_SECONDS, metavar="S",
                       help=f"longest sound an upload or a graph may load (default {DEFAULT_MAX_AUDIO_SECONDS:g} s)")
    serve.add_argument("--preview-method", choices=["latent", "taesd", "off"], default="latent",
                       help="step previews of diffusion nodes: latent (a fast projection, default), taesd (the "
                            "family's tiny autoencoder; tiny/taesd for tiny models) or off")
    serve.add_argument("--no-watch", action="store_true", help="do not reload graphs and plugins on file changes")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    common(serve)
    serve.set_defaults(handler=serve_command)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the command line; refuses a bind that would expose the API without a token."""
    from pathlib import Path

    from nodeforge.engine.datadir import resolve_data_dir

    token = args.token or os.environ.get("NODEFORGE_TOKEN") or None
    if not is_loopback(args.host) and token is None and not args.insecure:
        raise UsageError(f"refusing to listen on {args.host} without a token: give --token (or set "
                         "NODEFORGE_TOKEN), or --insecure to serve anyone who can reach it")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port")
    if args.concurrency < 1 or args.workers < 1 or args.max_upload_mb < 1:
        raise UsageError("--concurrency, --workers and --max-upload-mb must be at least 1")
    if args.max_image_pixels < 1 or args.max_video_frames < 1 or args.max_audio_seconds <= 0:
        raise UsageError("--max-image-pixels, --max-video-frames and --max-audio-seconds must be positive")
    for option, folders in (("--plugins", args.plugins), ("--allow-dir", args.allow_dir),
                            ("--allow-write-dir", args.allow_write_dir)):
        for folder in folders:
            if not Path(folder).is_dir():
                raise UsageError(f"{option} {folder}: no such folder")
    data_dir = resolve_data_dir(args.data_dir)
    engine = engine_config(args, data_dir)  # the engine options checked now, before the server starts
    return Settings(data_dir=data_dir, host=args.host, port=args.port, token=token, devices=engine.devices,
                    vram_budget=engine.vram_budget, memory_mode=engine.memory_mode, backend=engine.backend,
                    ray_address=engine.address,
                    plugins=tuple(Path(p) for p in args.plugins),
                    input_dirs=tuple(Path(p) for p in args.allow_dir),
                    write_dirs=tuple(Path(p) for p in args.allow_write_dir),
                    limits=MediaLimits(args.max_image_pixels, args.max_video_frames, args.max_audio_seconds),
                    concurrency=args.concurrency, workers=engine.workers,
                    max_upload_bytes=args.max_upload_mb * MiB, watch=not args.no_watch,
                    allowed_origins=tuple(args.allow_origin), preview_method=args.preview_method)


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from nodeforge.server.app import create_app
    from nodeforge.server.runtime import DataDirBusy, probe_data_dir
    from nodeforge.server.serving import Server

    settings = settings_from_args(args)
    try:
        probe_data_dir(settings.data_dir)
    except DataDirBusy as exc:
        print(f"nodeforge: {exc}", file=sys.stderr)
        return EXIT_FAILED
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    guard = "a bearer token is required" if settings.token else "no token"
    print(f"nodeforge: serving http://{shown}:{settings.port} (data dir {settings.data_dir}; {guard})",
          file=sys.stderr, flush=True)
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=args.log_level,
                            timeout_graceful_shutdown=3, access_log=False)
    server = Server(config, app)
    server.run()
    return EXIT_OK if server.started else EXIT_FAILED
