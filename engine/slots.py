"""The session's device slots: one accelerator node per device at a time, across every run however many run at once.

``DeviceSlots`` is the only holder of that state: which devices there are, which are leased and until about when,
and the learned run times placement weighs (``engine.scheduler``: ``place``, ``Estimates``). Its one condition is
what every worker of every run of the session waits on, so a device freed by one run wakes the workers of all.
Methods that read or change the slots are called with the condition held (``with slots:``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from nodeforge.engine.scheduler import DeviceSlot, Estimates, place

if TYPE_CHECKING:
    from nodeforge.engine.backend import Backend


class DeviceSlots:
    """The devices of one session and their leases; ``backend`` answers where models are resident, how long they
    take to load and which devices are down (placement weighs all three)."""

    def __init__(self, devices: Sequence[str], backend: Backend) -> None:
        self._slots = [DeviceSlot(device) for device in devices]
        self._backend = backend
        self._estimates = Estimates()
        self._condition = threading.Condition()

    @property
    def devices(self) -> list[str]:
        return [slot.name for slot in self._slots]

    def __enter__(self) -> DeviceSlots:
        self._condition.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._condition.release()

    def wait(self) -> None:
        """Wait until a device is released or a worker has news (held: ``with slots``)."""
        self._condition.wait()

    def notify(self, count: int = 1) -> None:
        self._condition.notify(count)

    def notify_all(self) -> None:
        self._condition.notify_all()

    def any_free(self) -> bool:
        """Whether some device has no node leased on it."""
        return any(slot.busy_until is None for slot in self._slots)

    def can_retry(self, device: str) -> bool:
        """Whether a device other than ``device`` is up, to retry a node that failed there."""
        down = self._backend.down
        return any(slot.name != device and slot.name not in down for slot in self._slots)

    def place(self, models: Sequence[str], node_type: str, exclude: frozenset[str] = frozenset()) -> str | None:
        """The free device where a node of ``node_type`` needing ``models`` would finish earliest, or None when it
        should wait (its best device is busy, or every device is excluded or down)."""
        backend, estimates = self._backend, self._estimates
        if backend.down:
            exclude |= backend.down
        load_times = backend.load_times
        return place(models, estimates.run_time(node_type), self._slots, backend.resident_on,
                     lambda model: load_times.get(model, estimates.default_load), time.monotonic(), exclude)

    def lease(self, device: str, models: Sequence[str], node_type: str) -> None:
        """Hold ``device`` for a node until about when it should finish: its run time plus loading the models
        that are not resident there."""
        backend, estimates = self._backend, self._estimates
        load_times = backend.load_times
        loading = sum(load_times.get(model, estimates.default_load)
                      for model in models if device not in backend.resident_on(model))
        until = time.monotonic() + loading + estimates.run_time(node_type)
        for slot in self._slots:
            if slot.name == device:
                slot.busy_until = until

    def release(self, device: str, node_type: str, seconds: float | None) -> None:
        """Free ``device`` and wake every waiting worker; ``seconds`` (the node's run time when it succeeded)
        teaches the estimates."""
        if seconds is not None:
            self._estimates.observe_run(node_type, seconds)
        for slot in self._slots:
            if slot.name == device:
                slot.busy_until = None
        self._condition.notify_all()

    def resize(self, devices: Sequence[str]) -> None:
        """Take a new device list (a cluster gained or lost GPUs); devices that stay keep their lease."""
        with self._condition:
            kept = {slot.name: slot for slot in self._slots}
            self._slots = [kept.get(name) or DeviceSlot(name) for name in devices]
