"""Graph inputs given from outside (``--set``, API ``inputs``): typed, defaulted, media decoded from files."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nodeforge.engine.context import BoundValue
from nodeforge.engine.document import MAX_DEPTH, GraphDocument, nested_too_deep, too_deep_issue
from nodeforge.engine.errors import GraphInputError, Issue, UsageError
from nodeforge.engine.keys import literal_material, media_material
from nodeforge.engine.limits import MediaLimits
from nodeforge.engine.media_io import file_digest, load_media
from nodeforge.engine.ports import make_port
from nodeforge.engine.types import MEDIA_TYPES
from nodeforge.engine.values import Audio, Image, Video

MediaResolver = Callable[[str], str]
"""Turns a media graph input as given (a path, an artifact id) into the file to decode, or raises
GraphInputError: the server's is its path policy."""


def parse_cli_value(port_type: str, text: str) -> Any:
    """A ``--set name=value`` string in the graph input's type (a media input stays a file path)."""
    if port_type in ("text", *MEDIA_TYPES):
        return text
    if port_type == "bool":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise GraphInputError(f"'{text}' is not a bool (true/false)")
    if port_type == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise GraphInputError(f"'{text}' is not JSON: {exc.msg}") from None
    return text


def parse_sets(document: GraphDocument, sets: list[str]) -> dict[str, Any]:
    """``--set NAME=VALUE`` options as graph inputs, each parsed by the input's declared type."""
    given: dict[str, Any] = {}
    for item in sets:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--set {item}: expected NAME=VALUE")
        decl = document.inputs.get(name)
        if decl is None:
            declared = ", ".join(document.inputs) or "none"
            raise UsageError(f"--set {item}: the graph has no input '{name}' (inputs: {declared})")
        too_deep = UsageError(f"--set {name}=...: graph input '{name}' is nested deeper than {MAX_DEPTH} levels")
        try:
            value = parse_cli_value(decl.type, text)
        except GraphInputError as exc:
            raise UsageError(f"--set {item}: graph input '{name}' is {decl.type}: {exc}") from None
        except RecursionError:
            raise too_deep from None
        if nested_too_deep(value):
            raise too_deep
        given[name] = value
    return given


MediaProblem = Callable[[Any, str], str | None]
"""Why a media graph input's value (and its kind) cannot be used, None when it can: the server checks uploads and
its path policy at submission."""


def input_issues(document: GraphDocument, given: Mapping[str, Any],
                 media_problem: MediaProblem | None = None) -> list[Issue]:
    """Every problem with the values given for a graph's inputs: unknown names, required inputs neither given nor
    defaulted, values nested too deeply, values that do not fit the declared type, and (with ``media_problem``)
    media that cannot be used; a graph without nodes, which has nothing to run. The one rule for the CLI, the API
    and ``bind_inputs``."""
    declared = ", ".join(document.inputs) or "none"
    issues = [Issue(None, name, "unknown_graph_input", f"the graph has no input '{name}' (inputs: {declared})")
              for name in given if name not in document.inputs]
    if not document.nodes:
        issues.append(Issue(None, None, "empty_graph", "the graph has no nodes: there is nothing to run"))
    for name, decl in document.inputs.items():
        value = given.get(name, decl.default)
        if isinstance(value, BoundValue):
            continue
        if nested_too_deep(value):
            issues.append(too_deep_issue(None, name, f"graph input '{name}'"))
        elif value is None:
            if name not in given:
                issues.append(Issue(None, name, "missing_graph_input",
                                    f"graph input '{name}' ({decl.type}) has no default and is not given"))
        elif decl.type in MEDIA_TYPES:
            problem = media_problem(value, decl.type) if media_problem is not None else None
            if problem:
                issues.append(Issue(None, name, "invalid_graph_input", f"graph input '{name}': {problem}"))
        else:
            try:
                make_port(name, decl.type).validate_literal(value)
            except ValidationError as exc:
                issues.append(Issue(None, name, "invalid_graph_input",
                                    f"graph input '{name}' is {decl.type}: {_short(value)} does not fit "
                                    f"({exc.errors()[0]['msg']})"))
    return issues


def bind_inputs(document: GraphDocument, given: Mapping[str, Any], media_resolver: MediaResolver | None = None,
                limits: MediaLimits | None = None) -> tuple[dict[str, BoundValue], dict[str, Any]]:
    """Bound values for every declared graph input, and the JSON form for the run record.

    Raises GraphInputError naming the input (``input_issues``' first issue), or a media file that cannot be read.
    """
    issues = input_issues(document, given)
    if issues:
        raise GraphInputError(issues[0].message)
    bound: dict[str, BoundValue] = {}
    shown: dict[str, Any] = {}
    for name, decl in document.inputs.items():
        value = given.get(name, decl.default)
        if isinstance(value, BoundValue):
            bound[name], shown[name] = value, _shown(value.value)
            continue
        if value is None:
            bound[name] = BoundValue(None, literal_material(None))
            shown[name] = None
            continue
        if decl.type in MEDIA_TYPES:
            bound[name] = _bind_media(name, decl.type, value, media_resolver, limits)
            shown[name] = value if isinstance(value, str) else _shown(value)
            continue
        converted = make_port(name, decl.type).validate_literal(value)
        bound[name] = BoundValue(converted, literal_material(converted))
        shown[name] = converted
    return bound, shown


def _bind_media(name: str, kind: str, value: Any, media_resolver: MediaResolver | None,
                limits: MediaLimits | None) -> BoundValue:
    if isinstance(value, Image | Audio | Video):
        import hashlib

        tensor = value.tensor if not isinstance(value, Video) else value.frames
        digest = hashlib.sha256(tensor.detach().to("cpu").contiguous().numpy().tobytes()).hexdigest()
        return BoundValue(value, media_material(kind, digest))
    if not isinstance(value, str):
        raise GraphInputError(f"graph input '{name}' is {kind}: give a file path, not {type(value).__name__}")
    path = Path(media_resolver(value)) if media_resolver is not None else Path(value)
    try:
        return BoundValue(load_media(kind, path, limits), media_material(kind, file_digest(path)))
    except GraphInputError as exc:
        raise GraphInputError(f"graph input '{name}': {exc}") from None


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool | list | dict) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _shown(value: Any) -> Any:
    if isinstance(value, Image | Audio | Video):
        return f"<{type(value).__name__.lower()}>"
    return value
