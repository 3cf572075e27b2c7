"""The ``nodeforge`` command line: run, validate, nodes, schema, devices, cache, and the commands installed
packages add (``serve``, ``watch``, ``models``, ``import``).

Exit codes: 0 success; 1 the graph is invalid or the run failed; 2 a bad command line (one line, no traceback);
130 cancelled with Ctrl-C.

Its modules, one job each: ``main`` (the parser and the dispatch), ``options`` (the options commands share and the
engine configuration they make), ``devices`` (the device options and ``nodeforge devices``), ``graphs``
(validate, nodes, cache), ``run`` (a run with its live table and summary), ``run_sweep`` (``--sweep`` and
``--rows``), ``progress`` (the live per-node table) and ``compare_page`` (a sweep's comparison page). The engine's
core imports none of them.
"""

from typing import TYPE_CHECKING

from nodeforge.engine.cli.main import BUILTIN_COMMANDS, COMMANDS_GROUP, build_parser, main
from nodeforge.engine.cli.options import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommonOptions,
    add_engine_options,
    add_preview_options,
    engine_config,
    previews_of,
)
from nodeforge.engine.cli.run import execute_with_progress, open_for, print_summary

if TYPE_CHECKING:
    from nodeforge.engine.cli.options import Commands

__all__ = ["BUILTIN_COMMANDS", "COMMANDS_GROUP", "EXIT_CANCELLED", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE",
           "Commands", "CommonOptions", "add_engine_options", "add_preview_options", "build_parser", "engine_config",
           "execute_with_progress", "main", "open_for", "previews_of", "print_summary"]
