"""What flows along a ComfyUI workflow's links while it is translated, and the evaluator that walks it.

ComfyUI passes models, text encoders, conditionings and latents between many small nodes; nodeforge passes images
between a few typed ones. Translation evaluates the workflow backwards from its outputs with symbolic values: a
loader yields a ``Model`` (a file name and its LoRAs), a text encoder a ``Cond`` (the prompt), a sampler creates
the nodeforge diffusion node and yields a ``Latent`` pointing at its image. Each ComfyUI node is evaluated once; a
node that cannot be translated raises ``NotMapped``, which fails everything that depends on it.
"""

from __future__ import annotations

import contextlib
import math
import re
import reprlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from nodeforge.nodes.importers.builder import Builder
from nodeforge.nodes.importers.comfy_workflow import ComfyNode, Link, Workflow
from nodeforge.nodes.importers.result import Unmapped

T = TypeVar("T")


@dataclass(frozen=True)
class Lora:
    name: str
    weight: float


@dataclass(frozen=True)
class Model:
    """A diffusion model: the checkpoint (or bare UNet/transformer file) and the LoRAs applied to it."""

    name: str
    loras: tuple[Lora, ...] = ()
    flow: bool = False
    bare: bool = False  # UNETLoader: the text encoders and VAE come from other files
    family: str = ""  # nodeforge's family when the file names one (comfy_families), e.g. wan, ltx
    controls: tuple[str, ...] = ()  # image.ip_adapter node ids adapting the model (IPAdapter nodes)


@dataclass(frozen=True)
class Clip:
    files: tuple[str, ...]
    flow: bool = False


@dataclass(frozen=True)
class Vae:
    name: str
    own: bool  # the checkpoint's own VAE


@dataclass(frozen=True)
class Cond:
    """A conditioning: its prompt text and what steers it (controls: nodeforge node ids of image.controlnet)."""

    text: str
    clip: Clip | None = None
    controls: tuple[str, ...] = ()
    guidance: float | None = None
    frame_rate: float | None = None  # LTXVConditioning's frame rate


@dataclass(frozen=True)
class Latent:
    """``empty`` (a size), ``pixels`` (an encoded image), ``inpaint`` (an image and a mask) or ``sampled`` (a
    diffusion node's result: ``origin`` is that node's id); ``video`` (a size, ``frames`` and maybe a start
    ``image``) and ``audio`` (``seconds``), and ``movie`` or ``sound`` once sampled (``image`` is then the nodeforge
    node's video or audio port)."""

    kind: str
    width: int = 0
    height: int = 0
    batch: int = 1
    image: str = ""
    mask: str = ""
    origin: str = ""
    model: Model | None = None
    clip: Clip | None = None
    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0


@dataclass(frozen=True)
class Pixels:
    ref: str  # "node.port" of an image


@dataclass(frozen=True)
class Footage:
    """A nodeforge video (``ref`` is "node.port"), its frame rate when known, and the sound track loaded with it."""

    ref: str
    fps: float = 0.0
    audio: str = ""


@dataclass(frozen=True)
class Sound:
    ref: str  # "node.port" of an audio


@dataclass(frozen=True)
class MaskRef:
    ref: str  # "node.port" of a mask


@dataclass(frozen=True)
class Named:
    """A model file picked by a loader that only names it (ControlNet, upscaler) or a sampler's name."""

    kind: str
    name: str
    mode: str = ""  # a ControlNet-Union's control type (SetUnionControlNetType)


@dataclass(frozen=True)
class Noise:
    seed: int


@dataclass(frozen=True)
class Guider:
    model: Model
    positive: Cond
    negative: Cond | None
    cfg: float | None


@dataclass(frozen=True)
class Sigmas:
    scheduler: str
    steps: int
    denoise: float


class Lazy:
    """An output made only when something reads it (LoadImage's mask)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class NotMapped(Exception):
    def __init__(self, item: Unmapped) -> None:
        self.item = item
        super().__init__(str(item))


REQUIRED: Any = object()
MAX_NUMBER = 2**64
"""Numbers in a workflow are at most 64-bit seeds; anything larger is not a setting (and overflows where rounded)."""
BAND = 32
"""Evaluation recurses at most this many links deep before it meets a node already evaluated (see ``prepare``)."""
MAX_LORAS, MAX_CONTROLS = 64, 64
"""LoRAs on one model and ControlNets on one conditioning: each pass's node lists them all, so a long chain feeding
many samplers would otherwise multiply into the document."""
KIND_NAMES = {Model: "MODEL", Clip: "CLIP", Vae: "VAE", Cond: "CONDITIONING", Latent: "LATENT", Pixels: "IMAGE",
              Footage: "a video (frames)", Sound: "AUDIO",
              MaskRef: "MASK", Named: "a loader's model", Noise: "NOISE", Guider: "GUIDER", Sigmas: "SIGMAS"}


class Evaluator:
    """Evaluates workflow nodes on demand with ``handlers`` (class name -> function of (evaluator, node) that
    returns the node's outputs by slot), once each."""

    def __init__(self, workflow: Workflow, builder: Builder,
                 handlers: dict[str, Callable[[Evaluator, ComfyNode], tuple[Any, ...]]], vae_port: bool) -> None:
        self.workflow = workflow
        self.builder = builder
        self.handlers = handlers
        self.vae_port = vae_port
        self._done: dict[str, tuple[Any, ...] | NotMapped] = {}
        self._lazy: dict[tuple[str, int], Any] = {}

    def prepare(self, roots: Iterable[str]) -> None:
        """Evaluate, deepest first, every node more than ``BAND`` links above ``roots``, so that evaluating a root
        afterwards recurses at most ``BAND`` links before it meets a node already done. Nodes within ``BAND`` of a
        root are left to be evaluated on demand, in the order their consumers read them, as before."""
        distance = _longest_distances(self.workflow, roots)
        deep = [node_id for node_id in self.workflow.nodes if distance.get(node_id, 0) >= BAND]
        deep.sort(key=lambda node_id: distance[node_id] // BAND, reverse=True)
        for node_id in deep:
            with contextlib.suppress(NotMapped):  # kept in _done: it fails whatever reads it, if anything does
                self.outputs(node_id)

    def outputs(self, node_id: str) -> tuple[Any, ...]:
        done = self._done.get(node_id)
        if isinstance(done, NotMapped):
            raise done
        if done is not None:
            return done
        node = self.workflow.nodes[node_id]
        handler = self.handlers.get(node.class_type)
        try:
            if handler is None:
                raise NotMapped(Unmapped(node.id, node.class_type, unknown_reason(node.class_type), title=node.title))
            result = handler(self, node)
        except NotMapped as exc:
            self._done[node_id] = exc
            raise
        self._done[node_id] = result
        return result

    def value(self, node: ComfyNode, name: str, default: Any = REQUIRED) -> Any:
        """An input's value: a literal as written, or the output a link points at."""
        raw = node.inputs.get(name, default)
        if raw is REQUIRED:
            raise self.fail(node, f"input '{name}' is not connected", name)
        if not isinstance(raw, Link):
            return raw
        outputs = self.outputs(raw.node)
        if raw.slot >= len(outputs) or raw.slot < 0:
            source = self.workflow.nodes[raw.node]
            raise self.fail(node, f"input '{name}' reads output {raw.slot} of node {source.id} "
                                  f"({source.class_type}), which is not one this importer maps", name)
        found = outputs[raw.slot]
        if isinstance(found, Lazy):
            key = (raw.node, raw.slot)
            if key not in self._lazy:
                self._lazy[key] = found.make()
            found = self._lazy[key]
        return found

    def typed(self, node: ComfyNode, name: str, kind: type[T]) -> T:
        found = self.value(node, name)
        if not isinstance(found, kind):
            raise self.fail(node, f"input '{name}' gets {_kind(found)} where {KIND_NAMES.get(kind, kind.__name__)} "
                                  "is expected", name)
        return found

    def optional(self, node: ComfyNode, name: str, kind: type[T]) -> T | None:
        return self.typed(node, name, kind) if node.inputs.get(name) is not None else None

    def number(self, node: ComfyNode, name: str, default: float | None = None) -> float:
        """A finite number of at most 64 bits (JSON's NaN and Infinity, and larger numbers, are refused)."""
        found = self.value(node, name, REQUIRED if default is None else default)
        if isinstance(found, bool) or not isinstance(found, int | float):
            raise self.fail(node, f"input '{name}' is {_kind(found)}, not a number", name)
        if isinstance(found, float) and not math.isfinite(found):
            raise self.fail(node, f"input '{name}' is {found}, not a finite number", name)
        if abs(found) >= MAX_NUMBER:
            raise self.fail(node, f"input '{name}' is {_kind(found)}, out of range (at most 64 bits)", name)
        return found

    def integer(self, node: ComfyNode, name: str, default: int | None = None) -> int:
        return round(self.number(node, name, default))

    def text(self, node: ComfyNode, name: str, default: str | None = None) -> str:
        found = self.value(node, name, REQUIRED if default is None else default)
        if not isinstance(found, str):
            raise self.fail(node, f"input '{name}' is {_kind(found)}, not a text", name)
        return found

    def fail(self, node: ComfyNode, reason: str, input_name: str | None = None) -> NotMapped:
        return NotMapped(Unmapped(node.id, node.class_type, reason, input_name, node.title))

    def warn(self, node: ComfyNode, message: str) -> None:
        self.builder.warn(f"node {node.id} ({node.class_type}): {message}")


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def unknown_reason(class_type: str) -> str:
    """Why a class does not map: no equivalent, or a grouping of the editor that this workflow leaves unresolved."""
    if class_type.startswith(("workflow>", "workflow/")):
        return ("a group node (the editor's older grouping) is not expanded: convert it to nodes in ComfyUI, or "
                "import the API format or the picture ComfyUI saved")
    if UUID.fullmatch(class_type):
        return "a subgraph whose definition is not in the workflow (definitions.subgraphs)"
    return "no nodeforge equivalent"


def _kind(value: Any) -> str:
    """A value as an error names it: its kind for what flows along links, else a short repr."""
    name = KIND_NAMES.get(type(value))
    return name if name else f"the value {_SHORT.repr(value)}"


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 40
_SHORT.maxlevel = 2


def _longest_distances(workflow: Workflow, roots: Iterable[str]) -> dict[str, int]:
    """For each node that ``roots`` read, directly or not, the most links between it and a root (a topological
    pass over the workflow, which has no cycles: ``check_links``)."""
    reached: set[str] = set()
    stack = [root for root in roots if root in workflow.nodes]
    reached.update(stack)
    consumers: dict[str, int] = {}
    while stack:
        for value in workflow.nodes[stack.pop()].inputs.values():
            if isinstance(value, Link):
                consumers[value.node] = consumers.get(value.node, 0) + 1
                if value.node not in reached:
                    reached.add(value.node)
                    stack.append(value.node)
    distance = dict.fromkeys(reached, 0)
    ready = [node_id for node_id in reached if not consumers.get(node_id)]
    while ready:
        node_id = ready.pop()
        for value in workflow.nodes[node_id].inputs.values():
            if isinstance(value, Link):
                distance[value.node] = max(distance[value.node], distance[node_id] + 1)
                consumers[value.node] -= 1
                if not consumers[value.node]:
                    ready.append(value.node)
    return distance
