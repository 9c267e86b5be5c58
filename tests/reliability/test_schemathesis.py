"""Schemathesis over /openapi.json, every operation and every check, on SQLite and
PostgreSQL with the admin key: no server error, no answer outside the documented schema.

The app runs in-process (its lifespan started by the test, not by schemathesis), fed by
schemathesis' ASGI transport. Each operation gets a bounded number of generated examples
(EXAMPLES_PER_OPERATION) so the whole file stays within about two minutes on CI.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from service.config import Settings
from service.rating.scalar import Rater
from tests.conftest import TARIFFS
from tests.conftest_db import KEYS, running_api

EXAMPLES_PER_OPERATION = 50
# POST /v1/tariffs takes a TOML document: the bundled versions (published already: 200, or
# refused 409 once changed), a correction of one (201) and text that is not a tariff (422).
_TARIFF = (TARIFFS / "cmcc-2010.toml").read_text(encoding="utf-8")
schemathesis.openapi.media_type(
    "application/toml",
    st.one_of(
        st.just(_TARIFF),
        st.just(_TARIFF.replace("domestic_per_6s = 6", "domestic_per_6s = 7")),
        st.just(
            _TARIFF.replace('"cmcc-2010"', '"cmcc-2010-st"').replace(
                "2010-01-01T00:00:00+08:00", "2010-05-01T00:00:00+08:00"
            )
        ),
        st.text(max_size=200),
    ).map(str.encode),
)
# A quote that is valid by the schema may still not be rateable (a callee outside the
# numbering plan, a plan no tariff has): SPEC §6.1 answers it 422 in the error envelope, which
# response_schema_conformance checks. No JSON schema can say which numbers the numbering
# plan holds, so "schema-valid means accepted" does not hold for this one operation.
# The same for a registry entry (its home_area must be in the numbering plan, its plan and
# packages in a tariff), a re-rating window (from before to) and a usage month (a tariff
# version must be in force in it: the tariff data says which months those are).
# FreeSWITCH posts again only after a non-2xx, so SPEC §3.4 answers any body it cannot map
# 200 `rejected` and keeps it in suspense: "schema-violating means refused" does not hold
# there, by design (tests/api/test_mediation.py checks those answers).
EXCLUDED_CHECKS = {
    "POST /v1/cdrs/freeswitch": [negative_data_rejection],
    "POST /v1/quote": [positive_data_acceptance],
    "GET /v1/subscribers/{msisdn}/usage": [positive_data_acceptance],
    "PUT /v1/subscribers/{msisdn}": [positive_data_acceptance],
    "POST /v1/rerate": [positive_data_acceptance],
    "POST /v1/tariffs": [positive_data_acceptance],  # a schema cannot say what a tariff is
}
ADMIN = {"Authorization": f"Bearer {KEYS['admin']}"}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def without_lifespan(app: Any) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The app for schemathesis' transport: requests only; the test runs the lifespan."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("the lifespan is run by the test")
        await app(scope, receive, send)

    return asgi


def _examples(operation: Any) -> st.SearchStrategy[Any]:
    """Valid and invalid requests (the negative ones exercise the validation envelope)."""
    return st.one_of(
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE, headers=ADMIN),
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE, headers=ADMIN),
    )


def _check(operation: Any, statuses: Counter[int]) -> None:
    """Run EXAMPLES_PER_OPERATION examples of one operation through every check."""

    @given(case=_examples(operation))
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    def run(case: Any) -> None:
        excluded = EXCLUDED_CHECKS.get(operation.label, [])
        response = case.call_and_validate(headers=ADMIN, excluded_checks=excluded)
        statuses[response.status_code] += 1

    run()


def test_every_operation_every_check(settings: Settings, rater: Rater) -> None:
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    with running_api(settings, rater) as api:
        schema = schemathesis.openapi.from_asgi("/openapi.json", without_lifespan(api.app))
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 12
        for operation in operations:
            try:
                _check(operation, statuses)
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label}: {exc}"[:3000])
    by_status = dict(sorted(statuses.items()))
    print(f"schemathesis: {sum(statuses.values())} examples, statuses {by_status}")
    assert not failures, "\n\n".join(failures)
    assert not [status for status in statuses if status >= 500]
