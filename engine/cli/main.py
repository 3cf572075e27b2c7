"""``nodeforge``'s parser and dispatch: the built-in commands, the commands installed packages add, and ``main``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nodeforge.engine.cli.device_options import add_device_options, devices_command
from nodeforge.engine.cli.graph_commands import cache_command, nodes_command, validate_command
from nodeforge.engine.cli.options import (
    EXIT_CANCELLED,
    EXIT_OK,
    EXIT_USAGE,
    CommonOptions,
    Parser,
    add_engine_options,
    add_preview_options,
)
from nodeforge.engine.cli.run import run_command
from nodeforge.engine.errors import UsageError

if TYPE_CHECKING:
    from nodeforge.engine.cli.options import Commands

BUILTIN_COMMANDS = ("run", "validate", "nodes", "schema", "devices", "cache")


def build_parser(plugin_commands: bool = True) -> argparse.ArgumentParser:
    """The command line; ``plugin_commands`` False leaves out the installed packages' commands (importing their
    modules costs more than a small graph's validation)."""
    parser = Parser(prog="nodeforge", description="Typed node-graph pipelines for generative AI.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--data-dir", help="state folder (cache, models, graphs); env NODEFORGE_DATA_DIR")
        sub.add_argument("--plugins", action="append", default=[], metavar="DIR",
                         help="a folder of plugin node modules (repeatable)")

    run = commands.add_parser("run", help="run a graph")
    run.add_argument("graph", help="a graph .json file, or a PNG that nodeforge wrote (re-runs its graph)")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="sets",
                     help="a graph input, parsed by its declared type (a media input takes a file path)")
    run.add_argument("--json", action="store_true", help="print the run record as one JSON object")
    run.add_argument("--sweep", action="append", default=[], metavar="NAME=VALUES", dest="sweeps", help="run over "
                     "values of an input (a,b,c or FIRST..LAST; more --sweep: every combination); writes compare.html")
    run.add_argument("--zip", action="store_true", help="with --sweep: take the i-th values of every axis together")
    run.add_argument("--rows", metavar="FILE", help="run once per row of a .jsonl or .csv file of inputs (a "
                                                    "batch; a re-run skips finished rows through the cache)")
    run.add_argument("--out", help="folder for media outputs (default outputs/<run id>)")
    add_preview_options(run)
    add_engine_options(run, cache=True)
    common(run)

    validate = commands.add_parser("validate", help="check a graph and list every issue")
    validate.add_argument("graph")
    validate.add_argument("--json", action="store_true", help='print {"valid": bool, "issues": [...]}')
    common(validate)

    nodes = commands.add_parser("nodes", help="the node catalogue")
    nodes.add_argument("--json", action="store_true", help="every node type with JSON Schema of its ports")
    common(nodes)

    commands.add_parser("schema", help="print the JSON Schema of the graph document")

    devices = commands.add_parser("devices", help="devices, their memory budgets and modes, resident models")
    add_device_options(devices)
    devices.add_argument("--json", action="store_true")

    cache = commands.add_parser("cache", help="inspect or clear the result cache")
    cache.add_argument("action", choices=["info", "clear"])
    cache.add_argument("--data-dir")
    if plugin_commands:
        _add_plugin_commands(commands, common)
    return parser


COMMANDS_GROUP = "nodeforge.commands"


def _add_plugin_commands(commands: Commands, common: CommonOptions) -> None:
    """Commands contributed by installed packages (``serve``, ``models``...): entry points in the group
    ``nodeforge.commands``, each ``register(subparsers, add_common_options)`` setting a ``handler(args) -> int``.
    The engine stays free of imports from the server and node packages."""
    import importlib.metadata

    for entry in sorted(importlib.metadata.entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            entry.load()(commands, common)
        except Exception as exc:
            print(f"nodeforge: command '{entry.name}' unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in words if not word.startswith("-")), None)
    try:
        # a built-in command needs no plugin command; help, a plugin's command or a mistyped one loads them all
        args = build_parser(plugin_commands=command not in BUILTIN_COMMANDS).parse_args(words)
        return _dispatch(args)
    except UsageError as exc:
        print(f"nodeforge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("nodeforge: interrupted", file=sys.stderr)
        return EXIT_CANCELLED


def _dispatch(args: argparse.Namespace) -> int:
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))
    if args.command == "schema":
        from nodeforge.engine.document import document_schema

        print(json.dumps(document_schema(), indent=2))
        return EXIT_OK
    if args.command == "cache":
        return cache_command(args)
    if args.command == "devices":
        return devices_command(args)
    if args.command == "nodes":
        return nodes_command(args)
    if args.command == "validate":
        return validate_command(args)
    return run_command(args)
