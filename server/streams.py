"""Server-sent event streams: a run's events replayed from the start (or after ``Last-Event-ID``) then live, and
every run's events live. A heartbeat comment keeps idle connections open through proxies.

A late listener subscribes first, then waits until everything already handed to the database is committed, then
replays from the database: every event is then either in the replay or in its queue (or both, and then skipped by
its number), so none is lost and none is sent twice. A run's stream ends at its ``run.finished``, also when the
listener has already seen it (``Last-Event-ID`` at or past it: a browser's EventSource reconnects so; the route
answers 204 then, which tells an EventSource to stop). A run whose end the disk refused to store ends its stream
with that end, kept by the runner until it is stored.

Live events come typed from the hub (``engine.events.Event``) and are written out with ``to_dict``; stored ones
are replayed as they were stored, so a replay sends the bytes the run's listeners were sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio

from nodeforge.engine.events import Event, RunFinished
from nodeforge.server.event_hub import ALL, CLOSED, HEARTBEAT, OVERFLOW, sse_frame

if TYPE_CHECKING:
    from nodeforge.server.runtime import Runtime

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
REPLAY_LIMIT = 100_000
_OVERFLOW_NOTE = b": overflow, reconnect with Last-Event-ID to replay the rest\n\n"


def finished_by(runtime: Runtime, run_id: str, seq: int) -> bool:
    """Whether the run's ``run.finished`` is stored with a number at or before ``seq`` (nothing more will come)."""
    final = runtime.store.last_run_event(run_id)
    return final is not None and final["kind"] == RunFinished.kind and final["seq"] <= seq


async def run_events(runtime: Runtime, run_id: str, after: int) -> AsyncIterator[bytes]:
    """Events of one run with their sequence numbers as ids; ends after ``run.finished``."""
    sub = runtime.hub.subscribe(run_id)
    try:
        await anyio.to_thread.run_sync(runtime.store.barrier)
        if await anyio.to_thread.run_sync(finished_by, runtime, run_id, after):
            return
        stored = await anyio.to_thread.run_sync(lambda: list(runtime.store.run_events(run_id, after)))
        last = after
        for event in stored:
            last = event["seq"]
            yield sse_frame(event, last)
            if event["kind"] == RunFinished.kind:
                return
        ended = runtime.runner.unsettled(run_id)
        if ended is not None:  # the run ended, but the disk has not let its end be stored yet
            yield sse_frame(ended[1].to_dict(), ended[1].seq)
            return
        async for item in _live(sub.queue, runtime.settings.heartbeat_seconds):
            if isinstance(item, bytes):
                yield item
                if item == _OVERFLOW_NOTE:
                    return
                continue
            live: Event = item[1]
            if live.seq > last:
                last = live.seq
                yield sse_frame(live.to_dict(), last)
            match live.data:
                case RunFinished():
                    return
    finally:
        runtime.hub.unsubscribe(sub)


async def all_events(runtime: Runtime, since: int | None) -> AsyncIterator[bytes]:
    """Every event with its global id (server announcements carry no id); stored ones after ``since`` first."""
    sub = runtime.hub.subscribe(ALL)
    try:
        last = since
        if since is not None:
            await anyio.to_thread.run_sync(runtime.store.barrier)
            stored = await anyio.to_thread.run_sync(runtime.store.events_after, since, REPLAY_LIMIT)
            for event_id, event in stored:
                last = event_id
                yield sse_frame(event, event_id)
        yield b": connected\n\n"
        async for item in _live(sub.queue, runtime.settings.heartbeat_seconds):
            if isinstance(item, bytes):
                yield item
                if item == _OVERFLOW_NOTE:
                    return
                continue
            event_id, event = item
            if event_id is not None and last is not None and event_id <= last:
                continue
            yield sse_frame(event.to_dict() if isinstance(event, Event) else event, event_id)
    finally:
        runtime.hub.unsubscribe(sub)


async def _live(queue: asyncio.Queue[Any], heartbeat: float) -> AsyncIterator[Any]:
    """Items from a subscription, a heartbeat comment when idle; stops when the hub closes the stream."""
    while True:
        try:
            item = await asyncio.wait_for(queue.get(), timeout=heartbeat)
        except TimeoutError:
            yield HEARTBEAT
            continue
        if item == CLOSED:
            return
        if item == OVERFLOW:
            yield _OVERFLOW_NOTE
            return
        yield item
