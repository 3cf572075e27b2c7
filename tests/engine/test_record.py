"""The run record's timestamps."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from nodeforge.engine.record import iso


def test_timestamps_are_written_as_datetime_writes_them() -> None:
    base = time.time()
    for stamp in [0.0, 1.0, base, base + 0.0004995, base + 0.9995, base + 0.9999996, 1e9 + 0.5, -5.25]:
        assert iso(stamp) == datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds")
    assert iso(None) is None
