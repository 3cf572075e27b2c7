"""Step previews through the engine: a node's ``ctx.preview_due``/``ctx.preview``, the sink a run is given, the
``node.preview`` events that link to what it stored, the rate limit (on a clock the test steps) and what happens
without a sink or with a failing one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image as PILImage
from pydantic import Field

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.context import NodeContext
from nodeforge.engine.document import parse_document
from nodeforge.engine.events import Event, NodePreview, NodeWarning
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.previews import LONGEST, FolderSink, PreviewPicture, Previews, RateLimit, encode_preview
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import Session
from nodeforge.engine.values import Image


class Denoise(Node):
    """Pretends to denoise: a picture per step, previewed whenever the context says one is due."""

    type_id = "test.denoise"
    version = "1.0.0"

    class Inputs(NodeInputs):
        steps: int = 5
        width: int = Field(40, ge=1)
        height: int = Field(24, ge=1)

    class Outputs(NodeOutputs):
        due: int
        method: str

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import torch

        due = 0
        for step in range(1, inputs.steps + 1):
            ctx.progress(step, inputs.steps)
            if ctx.preview_due():
                due += 1
                ctx.preview(step, inputs.steps, Image(torch.full((2, 3, inputs.height, inputs.width), step / 10)))
        return self.Outputs(due=due, method=ctx.preview_method or "none")


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def session(tmp_path: Path) -> Session:
    registry = Registry.discover()
    registry.add_module(sys.modules[__name__])
    return Session(GraphEnv(registry, GraphLibrary([])), None, workers=2, data_dir=tmp_path / "data")


def run(session: Session, previews: Previews | None, **inputs: int) -> tuple[dict[str, object], list[Event]]:
    events: list[Event] = []
    document = parse_document({"nodes": {"d": {"type": "test.denoise", "inputs": inputs}},
                               "outputs": {"due": {"from": "d.due"}, "method": {"from": "d.method"}}})
    result = session.run(document, listener=events.append, previews=previews)
    assert result.record.status == "succeeded", result.record.error
    return result.values, events


def previews_of(events: list[Event]) -> list[NodePreview]:
    return [event.data for event in events if isinstance(event.data, NodePreview)]


def test_previews_arrive_in_step_order_as_links_to_pictures(session: Session, tmp_path: Path) -> None:
    folder = tmp_path / "previews"
    values, events = run(session, Previews(FolderSink(folder), interval=0, budget=None), width=600, height=300)
    previews = [event for event in events if isinstance(event.data, NodePreview)]
    assert values == {"due": 5, "method": "latent"}
    assert [(p.node, p.step, p.total) for p in previews_of(events)] == [("d", step, 5) for step in range(1, 6)]
    kinds = [event.kind for event in events]
    assert kinds.index("node.preview") > kinds.index("node.progress") and kinds[-2] == "node.finished"
    for event, preview in zip(previews, previews_of(events), strict=True):
        assert preview.link == str(folder / f"d-{preview.step:04d}.jpg")
        assert set(event.to_dict()) == {"kind", "run", "seq", "at", "node", "step", "total", "link", "width",
                                        "height"}
        with PILImage.open(preview.link) as picture:
            assert picture.format == "JPEG" and picture.size == (preview.width, preview.height) == (LONGEST, 128)
            assert abs(picture.getpixel((10, 10))[0] - round(preview.step / 10 * 255)) <= 3
    assert sorted(path.name for path in folder.iterdir()) == [f"d-{step:04d}.jpg" for step in range(1, 6)]


def test_without_a_sink_no_node_makes_a_preview(session: Session) -> None:
    values, events = run(session, None)
    assert values == {"due": 0, "method": "none"}
    assert not previews_of(events)


def test_the_rate_limit_allows_the_first_step_then_one_per_interval(session: Session, tmp_path: Path) -> None:
    clock = Clock()
    values, events = run(session, Previews(FolderSink(tmp_path / "p"), clock=clock))  # time never moves
    assert values["due"] == 1
    assert [preview.step for preview in previews_of(events)] == [1]


def test_rate_limit_interval_and_time_budget() -> None:
    clock = Clock()
    limit = RateLimit(0.25, 0.03, clock)
    assert limit.due() and limit.due()  # asking without making one leaves it due
    clock.now += 0.001  # a cheap preview: 1 ms
    limit.taken()
    for offset, due in ((0.1, False), (0.2499, False), (0.2501, True)):
        clock.now = 100.001 + offset
        assert limit.due() is due, offset
    clock.now += 0.06  # an expensive one: 60 ms, so the next waits until it is 3% of the time
    limit.taken()
    done = clock.now
    for offset, due in ((0.25, False), (1.9, False), (1.9401, True)):
        clock.now = done + offset
        assert limit.due() is due, offset
    unbounded = RateLimit(0.0, None, clock)
    assert unbounded.due()
    unbounded.taken()
    assert unbounded.due()


def test_a_sink_that_fails_stops_the_previews_not_the_node(session: Session) -> None:
    class Full:
        def store(self, picture: PreviewPicture) -> str:
            raise OSError("No space left on device")

    values, events = run(session, Previews(Full(), interval=0, budget=None))
    assert values["due"] == 1
    assert not previews_of(events)
    assert [event.data.text for event in events if isinstance(event.data, NodeWarning)] == [
        "step previews stopped: the preview of step 1 could not be stored (No space left on device)"]


def test_encoding_keeps_small_pictures_and_shrinks_large_ones() -> None:
    import torch

    data, width, height = encode_preview(Image(torch.rand(3, 1, 8, 12)))
    assert (width, height) == (12, 8) and data[:2] == b"\xff\xd8"
    _, width, height = encode_preview(Image(torch.rand(1, 4, 1024, 512)))
    assert (width, height) == (128, 256)
