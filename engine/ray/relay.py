"""Events of remote nodes (progress, model loads, warnings) on their way to the run's event stream.

A worker numbers each event of a call and pushes its typed payload to the driver's collector actor as it happens;
the driver's relay long-polls that actor from a thread and hands each call's events to its run's emitter in the
order the node emitted them, with the device named as the driver knows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from nodeforge.engine.events import (
    Event,
    EventData,
    EventEmitter,
    ModelLoaded,
    ModelOffloaded,
    NodeFinished,
    NodeStarted,
    NodeWarning,
)

EVENT_WAIT = 10.0

Pushed = tuple[str, int, EventData]


class EventCollector:
    """Events of remote nodes on their way to the driver, which long-polls ``take`` (runs as an actor)."""

    def __init__(self) -> None:
        self._events: list[Pushed] = []
        self._ready = asyncio.Event()

    async def push(self, call_id: str, number: int, data: EventData) -> None:
        self._events.append((call_id, number, data))
        self._ready.set()

    async def take(self, timeout: float) -> list[Pushed]:
        if not self._events:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
        self._ready.clear()
        events, self._events = self._events, []
        return events


@functools.lru_cache(maxsize=8)
def _collector(name: str, namespace: str) -> Any:
    import ray

    return ray.get_actor(name, namespace=namespace)


class EventForwarder:
    """Sends a node's events to the driver's collector as they happen, numbered so the driver keeps their order
    (worker side)."""

    def __init__(self, call_id: str, collector: str, namespace: str) -> None:
        self._call_id = call_id
        self._collector = collector
        self._namespace = namespace
        self._numbers = itertools.count()
        self.sent = 0

    def __call__(self, event: Event) -> None:
        collector = _collector(self._collector, self._namespace)
        collector.push.remote(self._call_id, next(self._numbers), event.data)
        self.sent += 1


@dataclass
class Listening:
    """Events of one remote call, delivered to its run's emitter in the order the node emitted them."""

    emitter: EventEmitter
    device: str
    delivered: int = 0
    early: dict[int, EventData] = field(default_factory=dict)


class EventRelay:
    """The driver's collector actor (named ``name``) and the thread that drains it into the calls listening
    (driver side)."""

    def __init__(self, ray: Any, name: str, namespace: str) -> None:
        self.name = name
        self._ray = ray
        self._collector = ray.remote(EventCollector).options(name=name, namespace=namespace, num_cpus=0).remote()
        self._calls: dict[str, Listening] = {}
        self._delivered = threading.Condition()
        self._closed = threading.Event()
        self._drainer = threading.Thread(target=self._drain, name="nodeforge-ray-events", daemon=True)
        self._drainer.start()

    @contextlib.contextmanager
    def listen(self, call_id: str, emitter: EventEmitter, device: str) -> Iterator[Listening]:
        """Deliver the events of ``call_id`` to ``emitter`` (their device read as ``device``) while inside."""
        listening = Listening(emitter, device)
        with self._delivered:
            self._calls[call_id] = listening
        try:
            yield listening
        finally:
            with self._delivered:
                self._calls.pop(call_id, None)

    def wait_delivered(self, listening: Listening, events: int) -> None:
        """Wait (up to EVENT_WAIT) until the first ``events`` events of a call reached its emitter."""
        with self._delivered:
            self._delivered.wait_for(lambda: listening.delivered >= events, EVENT_WAIT)

    def _drain(self) -> None:
        ray = self._ray
        while not self._closed.is_set():
            try:
                batch = ray.get(self._collector.take.remote(0.5))
            except Exception:
                if self._closed.wait(0.2):
                    return
                continue
            with self._delivered:
                for call_id, number, data in batch:
                    listening = self._calls.get(call_id)
                    if listening is not None:
                        listening.early[number] = data
                        self._deliver(listening)
                self._delivered.notify_all()

    @staticmethod
    def _deliver(listening: Listening) -> None:
        while listening.delivered in listening.early:
            data = listening.early.pop(listening.delivered)
            listening.emitter.emit(on_device(data, listening.device))
            listening.delivered += 1

    def close(self) -> None:
        """Stop draining and end the collector actor."""
        self._closed.set()
        with contextlib.suppress(Exception):
            self._ray.kill(self._collector)
        self._drainer.join(timeout=5)


def on_device(data: EventData, device: str) -> EventData:
    """A remote event with the device it names called as the driver calls it (a worker sees only its own GPU)."""
    match data:
        case NodeStarted() | NodeFinished() | ModelLoaded() | ModelOffloaded() | NodeWarning(device=str()):
            return replace(data, device=device)
    return data
