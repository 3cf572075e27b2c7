"""``nodeforge import comfy FILE`` and ``nodeforge import a1111 FILE.png``: write the nodeforge graph a ComfyUI
workflow or an A1111/Forge picture describes, and report what maps only approximately.

Exit codes: 0 imported (also with ``--partial`` when some nodes were left out; they are listed); 2 the file cannot
be imported (a bad file, or nodes that do not map: each is listed by id and class).

Registered through the ``nodeforge.commands`` entry point, so the engine's CLI never imports the node packages.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nodeforge.engine.errors import UsageError

if TYPE_CHECKING:
    from nodeforge.engine.cli import Commands, CommonOptions

EXIT_OK, EXIT_FAILED = 0, 2


def register(commands: Commands, common: CommonOptions) -> None:
    parser = commands.add_parser("import", help="turn a ComfyUI workflow (JSON, PNG or WebP) or an A1111 PNG into a "
                                                "graph")
    parser.add_argument("source", choices=["comfy", "a1111"], help="comfy: API or UI workflow JSON, or a PNG or "
                                                                    "WebP ComfyUI saved; a1111: a PNG A1111/Forge "
                                                                    "saved")
    parser.add_argument("file", help="the file to import")
    parser.add_argument("-o", "--out", help="where to write the graph (default: FILE's name with .json beside it; "
                                            "- prints it)")
    parser.add_argument("--partial", action="store_true", help="comfy: keep what maps when some nodes do not "
                                                               "(they are listed)")
    parser.add_argument("--json", action="store_true", help="print the report (out, warnings, unmapped) as JSON")
    common(parser)
    parser.set_defaults(handler=import_command)


def import_command(args: argparse.Namespace) -> int:
    from nodeforge.engine.document import atomic_write_text
    from nodeforge.nodes.importers import ImportFailed, import_a1111, import_comfy

    source = Path(args.file)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    if args.partial and args.source == "a1111":
        raise UsageError("--partial applies to ComfyUI workflows only")
    name = source.stem
    try:
        result = import_comfy(data, partial=args.partial, name=name) if args.source == "comfy" \
            else import_a1111(data, name=name)
    except ImportFailed as exc:
        if args.json:
            print(json.dumps({"error": exc.summary, "unmapped": [item.to_dict() for item in exc.unmapped]},
                             indent=2))
        else:
            print(f"nodeforge: cannot import {args.file}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    text = json.dumps(result.document, indent=2, ensure_ascii=False) + "\n"
    out = None if args.out == "-" else Path(args.out) if args.out else source.with_suffix(".json")
    if out is not None and out.resolve() == source.resolve():
        out = source.with_name(f"{source.stem}.nodeforge.json")
    if out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(out, text)
    if args.json:
        print(json.dumps({"out": str(out) if out else None, "source": result.source, "warnings": result.warnings,
                          "unmapped": [item.to_dict() for item in result.unmapped]}, indent=2))
        return EXIT_OK
    report = sys.stderr if out is None else sys.stdout
    nodes = len(result.document["nodes"])
    where = f"wrote {out}" if out else "printed the graph"
    print(f"{where}: {nodes} node(s), inputs {', '.join(result.document['inputs']) or 'none'}", file=report)
    for warning in result.warnings:
        print(f"  note: {warning}", file=report)
    for item in result.unmapped:
        print(f"  left out: {item}", file=report)
    return EXIT_OK
