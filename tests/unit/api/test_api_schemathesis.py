"""Property-based fuzzing of the whole API from its own OpenAPI schema (schemathesis).

Every operation gets positive cases (valid by the schema: must not be rejected, must
answer as documented) and negative cases (invalid: must be rejected with a 4xx). Every
built-in check runs on every response: no server errors, documented status codes,
content types and headers, and bodies that conform to the response schemas. At least
1,000 cases in total; generation is derandomized so a run is reproducible.
"""

from __future__ import annotations

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from chatpersona.api import create_app
from chatpersona.config import Settings
from chatpersona.profiles import MemoryStore, ProfilePatch

POSITIVE_PER_OPERATION = 90
NEGATIVE_PER_OPERATION = 40
OWN_TAGS = {"profiles", "segments", "admin", "operations"}


def test_openapi_fuzz_finds_no_server_errors_or_schema_violations() -> None:
    store = MemoryStore()
    _, secret = store.create_key("acme", {"admin"})
    for uid in ("u1", "a", "0", "user.one"):
        store.merge("acme", uid, ProfilePatch(preferences={"language": "en"}))
    app = create_app(Settings(rate_limit_per_minute=0), store=store)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    auth = {"Authorization": f"Bearer {secret}"}
    cases: Counter[str] = Counter()

    # This stage's operations; other stages' routers (events, decisions, chat) fuzz their own.
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if set(op.tags or ()) & OWN_TAGS
    ]
    assert len(operations) == 13
    for operation in operations:
        modes = [(GenerationMode.POSITIVE, POSITIVE_PER_OPERATION)]
        if len(operation.path_parameters) or len(operation.query) or len(operation.body):
            # Only an operation that takes inputs can be sent invalid ones.
            modes.append((GenerationMode.NEGATIVE, NEGATIVE_PER_OPERATION))
        for mode, budget in modes:
            strategy = operation.as_strategy(generation_mode=mode)

            @given(case=strategy)
            @settings(
                max_examples=budget,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                response = case.call(headers=auth)
                excluded = []
                if response.status_code == 400 and response.json()["code"] == "invalid_cursor":
                    # A cursor is opaque: any string is schema-valid, but only the API's own
                    # next_cursor values are accepted (a documented 400, not a crash).
                    excluded = [positive_data_acceptance]
                case.validate_response(response, excluded_checks=excluded, headers=auth)
                cases[case.operation.label] += 1

            run()
    total = sum(cases.values())
    print(f"schemathesis: {total} cases over {len(operations)} operations: {dict(cases)}")
    assert total >= 1000, cases
    # Every operation was exercised (one without inputs has a single distinct case).
    assert all(cases[op.label] >= 1 for op in operations), cases
    assert sum(1 for n in cases.values() if n >= 50) >= 8, cases
