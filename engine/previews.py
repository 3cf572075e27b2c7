"""Step previews: a small picture of what a node (a diffusion node's current latent) is making, while it makes it.

Whoever runs a graph (the CLI, the server, a program embedding the engine) passes ``Previews`` to ``Session.run``:
a ``PreviewSink`` that keeps each picture and answers with a link to it, and how pictures are made. Without it no
node computes one. A node asks ``ctx.preview_due()`` before it computes a picture (cheap: False when nobody keeps
previews or when the rate limit says not yet) and hands it to ``ctx.preview(step, total, image)``: the first
picture of the batch, scaled down to at most ``LONGEST`` pixels on its long side and encoded as JPEG, goes to the
sink, and a ``node.preview`` event carries the sink's link and the size, never the bytes.

The rate limit, per node execution (``RateLimit``): the first step asked about always gets a preview; after one,
the next waits at least ``interval`` seconds (four a second by default) and long enough that previews take at
most ``budget`` of the node's time (3%: a preview that took 6 ms is followed by none for about 200 ms). The final
step is not forced: the node's output is the final picture, and forcing it would cost a decode per node even in
runs too short to watch.

Not previewed: the nodes of a nested graph (``graph.call``; their ids are not the outer graph's) and nodes the Ray
backend runs in its remote workers (their context has no sink).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from nodeforge.engine.events import EventEmitter, NodePreview, NodeWarning

if TYPE_CHECKING:
    from nodeforge.engine.values import Image

PreviewMethod = Literal["latent", "taesd"]
"""How nodes make the picture: ``latent``, a fast linear projection of the latent (per model family); ``taesd``,
the family's tiny autoencoder (TAESD) where one exists, else the projection."""
PREVIEW_METHODS: tuple[PreviewMethod, ...] = ("latent", "taesd")
LONGEST = 256
"""Most pixels on the long side of a stored preview."""
JPEG_QUALITY = 85


@dataclass(frozen=True, slots=True)
class PreviewPicture:
    """One encoded preview as a sink receives it."""

    run: str
    node: str
    step: int
    total: int | None
    data: bytes
    media_type: str
    suffix: str
    width: int
    height: int


class PreviewSink(Protocol):
    """Keeps previews for whoever runs the graph; called on the node's worker thread, once per preview."""

    def store(self, picture: PreviewPicture) -> str:
        """Keep one preview; returns the link the ``node.preview`` event carries (a file path, a URL)."""
        ...


@dataclass(frozen=True)
class Previews:
    """A run's previews: where they go (``sink``), how nodes make them (``method``) and how often (``interval``
    seconds at least between two of one node, at most ``budget`` of its time, None for no such bound; ``clock``
    is the limiter's, so tests can step time)."""

    sink: PreviewSink
    method: PreviewMethod = "latent"
    interval: float = 0.25
    budget: float | None = 0.03
    clock: Callable[[], float] = time.monotonic


class FolderSink:
    """Previews as files ``<folder>/<node>-<step>.jpg`` (``nodeforge run --previews DIR``); the link is the path.
    Node ids are safe file names (``[A-Za-z_][A-Za-z0-9_-]*``); a node that runs again writes over its files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def store(self, picture: PreviewPicture) -> str:
        path = self.folder / f"{picture.node}-{picture.step:04d}{picture.suffix}"
        path.write_bytes(picture.data)
        return str(path)


class RateLimit:
    """When one node's next preview is due (the rule is in the module docstring)."""

    __slots__ = ("_interval", "_budget", "_clock", "_next", "_asked")

    def __init__(self, interval: float, budget: float | None, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._budget = budget
        self._clock = clock
        self._next: float | None = None
        self._asked: float | None = None

    def due(self) -> bool:
        """Whether a preview may be made now; when so, its cost is counted from here until ``taken``."""
        now = self._clock()
        if self._next is not None and now < self._next:
            return False
        self._asked = now
        return True

    def taken(self) -> None:
        """A preview was made: the next one waits ``interval``, or longer when this one cost much."""
        now = self._clock()
        wait = self._interval
        if self._budget and self._asked is not None:
            wait = max(wait, (now - self._asked) * (1 - self._budget) / self._budget)
        self._next = now + wait


class NodePreviews:
    """One node execution's side of the previews: its rate limit, the sink and the run's events. A preview the sink
    cannot store (a full disk) is a warning and the node's last: previews never fail the node."""

    __slots__ = ("method", "_sink", "_limit", "_emitter", "_node", "_stopped")

    def __init__(self, previews: Previews, emitter: EventEmitter, node: str) -> None:
        self.method = previews.method
        self._sink = previews.sink
        self._limit = RateLimit(previews.interval, previews.budget, previews.clock)
        self._emitter = emitter
        self._node = node
        self._stopped = False

    def due(self) -> bool:
        return not self._stopped and self._limit.due()

    def publish(self, step: int, total: int | None, image: Image) -> None:
        data, width, height = encode_preview(image)
        picture = PreviewPicture(self._emitter.run_id, self._node, step, total, data, "image/jpeg", ".jpg", width,
                                 height)
        try:
            link = self._sink.store(picture)
        except Exception as exc:  # noqa: BLE001 - whatever the sink raised, the node goes on without previews
            self._stopped = True
            self._emitter.emit(NodeWarning(node=self._node, text=f"step previews stopped: the preview of step "
                                                                 f"{step} could not be stored ({exc})"))
            return
        self._emitter.emit(NodePreview(node=self._node, step=step, total=total, link=link, width=width,
                                       height=height))
        self._limit.taken()


def encode_preview(image: Image, longest: int = LONGEST) -> tuple[bytes, int, int]:
    """The first picture of ``image`` as JPEG bytes, scaled down (on its device) to at most ``longest`` pixels on
    its long side; with its width and height."""
    import torch
    from PIL import Image as PILImage

    pixels = image.tensor[:1].detach().float()
    height, width = int(pixels.shape[2]), int(pixels.shape[3])
    if max(height, width) > longest:
        scale = longest / max(height, width)
        height, width = max(1, round(height * scale)), max(1, round(width * scale))
        pixels = torch.nn.functional.interpolate(pixels, size=(height, width), mode="bilinear", antialias=True)
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    array = (pixels[0, :3].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    buffer = io.BytesIO()
    PILImage.fromarray(array, mode="RGB").save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue(), width, height
