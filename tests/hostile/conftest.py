"""One attacked server per session, and the table of every attack printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hostile.support import HostileServer, Measure, hostile_server

ROWS: list[Measure] = []


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileServer]:
    """``nodeforge serve`` with small limits (60 s of sound, 4 MP pictures, 200 frames) so an attack that slips
    past a check shows up in memory, on a fresh data dir."""
    root = tmp_path_factory.mktemp("hostile")
    data_dir = root / "data"
    with hostile_server(data_dir, "--max-audio-seconds", "60", "--max-image-pixels", "4000000",
                        "--max-video-frames", "200", "--max-upload-mb", "64") as live:
        live.rows = ROWS
        yield live


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("attacks on nodeforge serve")
    write(f"{'input':<48} {'answer':<60} {'time':>8} {'memory':>9}")
    for row in ROWS:
        write(f"{row.name[:48]:<48} {row.answer[:60]:<60} {row.seconds * 1000:>6.0f}ms {row.grown_mb:>+7.1f}MB")

