"""A bounded schemathesis run against the server's own OpenAPI document: no request it generates gets a 5xx.

Streams (server-sent events) are left out: they stay open by design.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from server.app import create_app  # noqa: E402
from server.settings import Settings  # noqa: E402
from tests.server.support import LiveServer  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data_dir = tmp_path_factory.mktemp("schemathesis")
    with LiveServer(create_app(Settings(data_dir=data_dir, devices="cpu", watch=False))) as live:
        yield schemathesis.openapi.from_url(f"{live.url}/openapi.json")


def test_no_server_errors(api_schema: Any) -> None:
    """Every operation, 15 generated requests each (schemathesis's pytest plugin predates pytest 9, so the
    strategies are driven with hypothesis directly)."""
    operations = [result.ok() for result in api_schema.exclude(path_regex=r"events$").get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_5xx(case: Any) -> None:
            case.call_and_validate(checks=[not_a_server_error])

        no_5xx()
