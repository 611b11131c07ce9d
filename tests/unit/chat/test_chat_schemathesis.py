"""Property-based fuzzing of the chat's HTTP operations from the OpenAPI schema
(schemathesis): no server errors, documented status codes, bodies that match the schemas."""

from __future__ import annotations

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from chatpersona.api import create_app
from chatpersona.chat import Bot, IntentModel
from chatpersona.config import Settings
from chatpersona.profiles import MemoryStore, ProfilePatch

POSITIVE_PER_OPERATION = 40
NEGATIVE_PER_OPERATION = 20


def test_chat_operations_fuzz_clean(intent_model: IntentModel) -> None:
    store = MemoryStore()
    _, secret = store.create_key("acme", {"admin"})
    for uid in ("u1", "a", "0"):
        store.merge("acme", uid, ProfilePatch(preferences={"language": "es"}, features={"x": 1.0}))
    app = create_app(
        Settings(rate_limit_per_minute=0, bus_url=""),
        store=store,
        services={"bot": Bot(intent_model)},
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    auth = {"Authorization": f"Bearer {secret}"}
    cases: Counter[str] = Counter()
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if "chat" in set(op.tags or ())
    ]
    assert len(operations) == 8
    for operation in operations:
        modes = [(GenerationMode.POSITIVE, POSITIVE_PER_OPERATION)]
        if len(operation.path_parameters) or len(operation.query) or len(operation.body):
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
                if response.status_code in (404, 409) and response.json()["code"] in (
                    "chat_not_found",
                    "conflict",
                ):
                    # A schema-valid chat id that no chat has, or a chat in the wrong state:
                    # documented 404 / 409 answers, not a rejection of valid data.
                    excluded = [positive_data_acceptance]
                case.validate_response(response, excluded_checks=excluded, headers=auth)
                cases[case.operation.label] += 1

            run()
    assert all(cases[op.label] >= 1 for op in operations), cases
    assert sum(cases.values()) >= 200, cases
