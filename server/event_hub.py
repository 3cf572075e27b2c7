"""Live fan-out of events to server-sent-event listeners, and the SSE wire format.

Items are ``(event id, Event)`` for run events (typed, ``engine.events``) and ``(None, dict)`` for the server's
announcements that belong to no run. Publishers are worker threads; each listener is an asyncio queue on the
server's event loop, fed with ``call_soon_threadsafe``. A listener that falls too far behind is closed with an
``overflow`` marker instead of holding memory without bound: it reconnects with ``Last-Event-ID`` and the rest is
replayed from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

ALL = "*"
QUEUE_LIMIT = 10_000
CLOSED = "closed"
OVERFLOW = "overflow"


@dataclass(eq=False)
class Subscription:
    """One listener: the run it follows (or ``ALL``) and its queue of ``(event id, event)`` or a marker."""

    topic: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Any] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT + 1))
    overflowed: bool = False

    def deliver(self, item: Any) -> None:
        """Runs on the loop: enqueue, or close the listener once it has fallen behind."""
        if self.overflowed:
            return
        if self.queue.qsize() >= QUEUE_LIMIT and item != CLOSED:
            self.overflowed = True
            item = OVERFLOW
        self.queue.put_nowait(item)


class EventHub:
    """Subscriptions by topic; ``publish`` is safe from any thread and never blocks on a listener."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._topics: dict[str, set[Subscription]] = {}
        self._closed = False

    def subscribe(self, topic: str) -> Subscription:
        """Call on the event loop (an async endpoint). After ``close`` the subscription is closed at once."""
        sub = Subscription(topic, asyncio.get_running_loop())
        with self._lock:
            if self._closed:
                sub.deliver(CLOSED)
            self._topics.setdefault(topic, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._topics.get(sub.topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._topics[sub.topic]

    def listeners(self) -> int:
        with self._lock:
            return sum(len(subs) for subs in self._topics.values())

    def publish(self, topic: str | None, item: Any) -> None:
        """Hand ``item`` to the listeners of ``topic`` and to those of every topic."""
        with self._lock:
            targets = list(self._topics.get(ALL, ()))
            if topic is not None and topic != ALL:
                targets.extend(self._topics.get(topic, ()))
        for sub in targets:
            try:
                sub.loop.call_soon_threadsafe(sub.deliver, item)
            except RuntimeError:
                self.unsubscribe(sub)

    def close(self) -> None:
        """End every stream, and every one opened later (server shutdown)."""
        with self._lock:
            self._closed = True
            targets = [sub for subs in self._topics.values() for sub in subs]
        for sub in targets:
            with contextlib.suppress(RuntimeError):
                sub.loop.call_soon_threadsafe(sub.deliver, CLOSED)


def sse_frame(data: dict[str, Any], event_id: int | None = None) -> bytes:
    """One server-sent event: an optional id line and the event as one line of JSON."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


HEARTBEAT = b": heartbeat\n\n"
