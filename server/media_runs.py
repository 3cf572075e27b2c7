"""Images, speech and transcripts for the OpenAI-compatible media endpoints, made by the nodes themselves.

Each request becomes a one-node graph (``image.generate``, ``audio.speech`` or ``audio.transcribe``) queued like any
other run (``Runtime.submit``): it goes through the server's one engine session, so it shares the resident models
and the device slots with the graphs and the chat endpoint, is cached like them (a request with a seed that was
asked before is answered from the cache), and shows in the run history with its artifacts. The route waits for
the run's end on the event hub. A graph issue on ``model`` is a model that cannot answer (404
``model_not_found``); any other issue or a failed run is a 400 naming the request's parameter.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from nodeforge.engine.errors import NodeError
from nodeforge.engine.events import RunFinished
from nodeforge.server.disconnect import Disconnected, unless_gone
from nodeforge.server.error_responses import ApiError
from nodeforge.server.event_hub import CLOSED
from nodeforge.server.model_names import known_models
from nodeforge.server.run_store import QueueFull
from nodeforge.server.runtime import Invalid
from nodeforge.server.schemas import RunView

if TYPE_CHECKING:
    from nodeforge.engine.declarations import ModelKind
    from nodeforge.server.runtime import Runtime

FINISHED = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
NODE_ERROR = re.compile(r"node 'node' \([^)]*\)(?:, input '([^']*)')?: (.*)", re.DOTALL)  # NodeExecutionError
REPAINTING = re.compile(r"\binpainting\b|\bfill\b", re.IGNORECASE)
# The node input behind each OpenAI request parameter, for error messages and ``param``.
PARAMS = {"width": "size", "height": "size", "count": "n", "text": "input", "audio": "file"}
MEDIA_NODES = {"image": "image.generate", "speech": "audio.speech", "transcription": "audio.transcribe"}
"""The node behind each kind of media request; its ``model`` declaration says which models answer."""


@dataclass(frozen=True)
class Finished:
    """A succeeded run: its id and outputs as the API shows them (media as artifacts)."""

    run_id: str
    outputs: dict[str, Any]


def media_kind(runtime: Runtime, kind: str) -> ModelKind | None:
    """The model kind the node behind ``kind`` (image, speech, transcription) declares for its ``model`` input;
    None without the node package."""
    spec = runtime.registry.find(MEDIA_NODES[kind])
    return spec.model_kinds.get("model") if spec is not None else None


def media_models(runtime: Runtime, kinds: Iterable[str] = tuple(MEDIA_NODES)) -> list[str]:
    """Model names of ``kinds`` that load from this machine alone and that a ``/v1`` route can answer with, as
    ``GET /v1/models`` lists them; the names a node handles itself (``espeak``) when they can answer."""
    source = runtime.registry.model_source
    names: list[str] = []
    for kind_name in kinds:
        kind = media_kind(runtime, kind_name)
        if kind is None or not kind.families:
            continue
        entries, _ = known_models(source, runtime.settings.data_dir, kind.families)
        names.extend(entry["name"] for entry in entries if not _repaints_only(entry["name"])
                     and source.local_problem(entry["name"], runtime.settings.data_dir) is None)
        names.extend(name for name in kind.extra_names if _extra_problem(name) is None)
    return list(dict.fromkeys(names))


def _repaints_only(name: str) -> bool:
    """Whether ``name`` is an inpainting checkpoint (tiny/sd-inpainting, sd15-inpainting, flux-fill...): those
    repaint a masked picture through image.inpaint, which no ``/v1`` route runs. The catalogue names them so."""
    return REPAINTING.search(name) is not None


def media_unavailable(runtime: Runtime, model: str) -> str | None:
    """Why ``model`` cannot make an image, speech or a transcript now; None when it can."""
    kinds = [kind for kind in (media_kind(runtime, name) for name in MEDIA_NODES) if kind is not None]
    if any(model.strip() in kind.extra_names for kind in kinds):
        return _extra_problem(model.strip())
    if _repaints_only(model):
        return f"model '{model[:200]}' is an inpainting checkpoint: it repaints through image.inpaint in a graph"
    source = runtime.registry.model_source
    data_dir = runtime.settings.data_dir
    try:
        name = runtime.files.model(model, input="model")
        reasons = []
        for kind in kinds:
            problem = source.problem(name, data_dir, families=kind.families)
            if problem is None:
                local = source.local_problem(name, data_dir)
                return local and f"model '{model[:200]}' cannot answer now: {local}"
            reasons.append(problem)
    except NodeError as exc:  # the path policy refused it
        return f"model {exc}"
    except OSError as exc:  # a name the file system cannot look up (too long, bad characters)
        return f"model '{model[:200]}' is not a usable name: {exc.strerror or type(exc).__name__}"
    return reasons[0] if reasons else "no node that makes images, speech or transcripts is installed"


def _extra_problem(name: str) -> str | None:
    """Why a name a node handles without the catalogue cannot answer here (espeak needs the system's espeak-ng)."""
    try:
        speech = importlib.import_module("nodeforge.nodes.speech")
    except ImportError:
        return f"'{name}' needs the speech nodes, which are not installed"
    if name == speech.ESPEAK and speech.espeak_program() is None:
        return "espeak needs the system's espeak-ng, which is not installed"
    return None


def refuse_remote(runtime: Runtime, model: str) -> None:
    if runtime.registry.model_source.remote_name(model) is not None:
        raise ApiError(404, f"'{model[:200]}' names a remote server; this endpoint serves local models",
                       code="model_not_found")


def one_node_graph(name: str, node_type: str, inputs: dict[str, Any], output: str | Sequence[str],
                   graph_inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The graph a request runs: one node, its output (or outputs) returned (the run history shows it under
    ``name``)."""
    outputs = [output] if isinstance(output, str) else list(output)
    return {"schema": "nodeforge/graph@1", "name": name, "inputs": graph_inputs or {},
            "nodes": {"node": {"type": node_type, "inputs": inputs}},
            "outputs": {port: {"from": f"node.{port}"} for port in outputs}}


async def run_graph(runtime: Runtime, document: dict[str, Any], inputs: dict[str, Any] | None = None,
                    disconnected: Disconnected | None = None, params: Mapping[str, str] = PARAMS) -> Finished:
    """Queue the graph, wait for its end and return its outputs; ApiError for issues and failures (``params``:
    the request parameter behind each node input, where the names differ). A client that goes away
    (``disconnected``) or a request cancelled while it waits cancels the run."""
    return await finish_run(runtime, await queue_graph(runtime, document, inputs, params), disconnected, params)


async def queue_graph(runtime: Runtime, document: dict[str, Any], inputs: dict[str, Any] | None = None,
                      params: Mapping[str, str] = PARAMS) -> str:
    """Queue the graph as a run of the server; its id, or ApiError when it is refused (nothing was queued)."""
    try:
        run_id, _ = await run_in_threadpool(runtime.submit, document, inputs or {})
    except Invalid as exc:
        raise _issue_error(exc, params) from None
    except QueueFull as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": "5"}) from None
    return run_id


async def finish_run(runtime: Runtime, run_id: str, disconnected: Disconnected | None = None,
                     params: Mapping[str, str] = PARAMS) -> Finished:
    """Wait for a queued run's end: its outputs, or ApiError when it failed; cancelled when the client goes away
    (``disconnected``) or the request is cancelled while it waits."""
    view = await unless_gone(_finished(runtime, run_id), disconnected, lambda: runtime.cancel(run_id))
    if view.status != "succeeded":
        raise _failure(view, params)
    return Finished(run_id, view.outputs)


def _failure(view: RunView, params: Mapping[str, str]) -> ApiError:
    """A failed run in OpenAI's terms: the node's reason with the request parameter at fault (a model that could
    not load is a 404 ``model_not_found``)."""
    node = view.nodes.get("node")
    error = (node.error if node is not None else None) or view.error or view.status
    found = NODE_ERROR.match(error)
    field, reason = (found[1], found[2]) if found else (None, error)
    if field == "model":
        return ApiError(404, reason, code="model_not_found", param="model")
    return ApiError(400, reason, param=params.get(field or "", field))


async def _finished(runtime: Runtime, run_id: str) -> RunView:
    """The run's view once it has finished: re-read when its ``run.finished`` is published (or every second,
    should the stream of events have been cut short)."""
    sub = runtime.hub.subscribe(run_id)
    try:
        while True:
            view = await run_in_threadpool(runtime.run_view, run_id)
            if view is None or view.status in FINISHED:
                if view is None:
                    raise ApiError(500, f"run {run_id} vanished")
                return view
            while True:
                try:
                    item = await asyncio.wait_for(sub.queue.get(), timeout=1.0)
                except TimeoutError:
                    break
                if item == CLOSED:
                    raise ApiError(503, "the server is shutting down")
                if not isinstance(item, tuple) or isinstance(item[1].data, RunFinished):
                    break
    finally:
        runtime.hub.unsubscribe(sub)


def _issue_error(exc: Invalid, params: Mapping[str, str]) -> ApiError:
    """The first issue of a refused request in OpenAI's terms: on ``model`` a 404, otherwise a 400."""
    first = next((issue for issue in exc.issues if issue.input == "model"), exc.issues[0])
    param = params.get(first.input or "", first.input)
    if first.input == "model":
        return ApiError(404, first.message, code="model_not_found", param="model")
    message = f"{param}: {first.message}" if param else first.message
    more = f" (and {len(exc.issues) - 1} more)" if len(exc.issues) > 1 else ""
    return ApiError(400, message + more, param=param)


def artifact_bytes(runtime: Runtime, described: dict[str, Any]) -> tuple[bytes, str]:
    """The bytes and media type of an output artifact the run just stored."""
    found = runtime.artifacts.open(str(described.get("artifact")))
    if found is None:
        raise ApiError(500, "the run's output file is missing")
    path, artifact = found
    return path.read_bytes(), artifact.media_type
