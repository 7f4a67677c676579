"""Schemathesis against the live hub's /v1/openapi.json: no 5xx, responses match the published
schema, invalid data is rejected. Bounded: a few examples per operation, positive and negative."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.generation import GenerationMode

from hub.settings import LimitSettings
from tests.conftest import LiveHub, make_settings, start_live_hub


@pytest.fixture(scope="module")
def fuzzed_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    # generous limits: this run is about schema conformance, the limits have their own tests
    limits = LimitSettings(
        requests_per_second=10_000, burst=10_000, anonymous_per_second=10_000, anonymous_burst=10_000
    )
    hub = start_live_hub(make_settings(tmp_path_factory.mktemp("schemathesis"), limits=limits))
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def api_schema(fuzzed_hub: LiveHub) -> Any:
    return schemathesis.openapi.from_url(f"{fuzzed_hub.url}/v1/openapi.json")


def _operations(api_schema: Any) -> list[Any]:
    return [result.ok() for result in api_schema.get_all_operations()]


# schemathesis' own pytest plugin does not run on this pytest; drive its strategies with hypothesis
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_honours_its_published_contract(api_schema: Any, fuzzed_hub: LiveHub, mode: GenerationMode) -> None:
    headers = {"Authorization": f"Bearer {fuzzed_hub.setup.tokens['duo']}"}
    operations = _operations(api_schema)
    assert {op.path for op in operations} >= {"/berichten", "/inbox", "/oauth/token"}
    for operation in operations:
        inputs = len(operation.path_parameters) + len(operation.query) + len(operation.body)
        if mode is GenerationMode.NEGATIVE and inputs == 0:
            continue  # nothing to make invalid (GET /oauth/jwks): the positive run covers it

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            # Schema-valid is not message-valid: an INSZ checksum or a type's XSD cannot be said in
            # OpenAPI, so "valid data accepted" does not hold for a message body; the other checks do.
            case.call_and_validate(headers=headers, excluded_checks=[checks.positive_data_acceptance])

        run()


def test_the_published_document_is_the_committed_one(fuzzed_hub: LiveHub) -> None:
    import json

    import httpx

    from hub.api import contracts

    live = httpx.get(f"{fuzzed_hub.url}/v1/openapi.json").json()
    committed = json.loads(Path(contracts.OPENAPI).read_text(encoding="utf-8"))
    assert sorted(live["paths"]) == sorted(committed["paths"])
