"""What flows along a ComfyUI workflow's links while it is translated, and the evaluator that walks it.

ComfyUI passes models, text encoders, conditionings and latents between many small nodes; nodeforge passes images
between a few typed ones. Translation evaluates the workflow backwards from its outputs with symbolic values: a
loader yields a ``Model`` (a file name and its LoRAs), a text encoder a ``Cond`` (the prompt), a sampler creates
the nodeforge diffusion node and yields a ``Latent`` pointing at its image. Each ComfyUI node is evaluated once; a
node that cannot be translated raises ``NotMapped``, which fails everything that depends on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from nodeforge.nodes.importers.builder import Builder
from nodeforge.nodes.importers.comfy_read import ComfyNode, Link, Workflow
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


@dataclass(frozen=True)
class Latent:
    """``empty`` (a size), ``pixels`` (an encoded image), ``inpaint`` (an image and a mask) or ``sampled`` (a
    diffusion node's result: ``origin`` is that node's id)."""

    kind: str
    width: int = 0
    height: int = 0
    batch: int = 1
    image: str = ""
    mask: str = ""
    origin: str = ""
    model: Model | None = None
    clip: Clip | None = None


@dataclass(frozen=True)
class Pixels:
    ref: str  # "node.port" of an image


@dataclass(frozen=True)
class MaskRef:
    ref: str  # "node.port" of a mask


@dataclass(frozen=True)
class Named:
    """A model file picked by a loader that only names it (ControlNet, upscaler) or a sampler's name."""

    kind: str
    name: str


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
KIND_NAMES = {Model: "MODEL", Clip: "CLIP", Vae: "VAE", Cond: "CONDITIONING", Latent: "LATENT", Pixels: "IMAGE",
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
                raise NotMapped(Unmapped(node.id, node.class_type, "no nodeforge equivalent"))
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
            raise self.fail(node, f"input '{name}' is not connected")
        if not isinstance(raw, Link):
            return raw
        outputs = self.outputs(raw.node)
        if raw.slot >= len(outputs) or raw.slot < 0:
            source = self.workflow.nodes[raw.node]
            raise self.fail(node, f"input '{name}' reads output {raw.slot} of node {source.id} "
                                  f"({source.class_type}), which is not one this importer maps")
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
                                  "is expected")
        return found

    def optional(self, node: ComfyNode, name: str, kind: type[T]) -> T | None:
        return self.typed(node, name, kind) if node.inputs.get(name) is not None else None

    def number(self, node: ComfyNode, name: str, default: float | None = None) -> float:
        found = self.value(node, name, REQUIRED if default is None else default)
        if isinstance(found, bool) or not isinstance(found, int | float):
            raise self.fail(node, f"input '{name}' is {found!r}, not a number")
        return found

    def integer(self, node: ComfyNode, name: str, default: int | None = None) -> int:
        return round(self.number(node, name, default))

    def text(self, node: ComfyNode, name: str, default: str | None = None) -> str:
        found = self.value(node, name, REQUIRED if default is None else default)
        if not isinstance(found, str):
            raise self.fail(node, f"input '{name}' is {_kind(found)}, not a text")
        return found

    def fail(self, node: ComfyNode, reason: str) -> NotMapped:
        return NotMapped(Unmapped(node.id, node.class_type, reason))

    def warn(self, node: ComfyNode, message: str) -> None:
        self.builder.warn(f"node {node.id} ({node.class_type}): {message}")


def _kind(value: Any) -> str:
    name = KIND_NAMES.get(type(value))
    return name if name else f"the value {value!r}"
