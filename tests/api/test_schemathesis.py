"""Property-based fuzzing of every documented operation: no input may cause a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.utils import folder_files, upload

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def api_schema(tiny_base, alice, alice_client, bob, lora_dir):
    """The live schema of the WSGI app, with data to hit: a public adapter with a version."""
    from config.wsgi import application

    alice_client.post("/api/v1/adapters/", {"namespace": "alice", "name": "fuzz"}, format="json")
    assert upload(alice_client, "alice/fuzz", folder_files(lora_dir)).status_code == 201
    return schemathesis.openapi.from_wsgi("/api/schema/", application)


def _operations(schema):
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, "the schema lost operations"
    return operations


@pytest.mark.parametrize("as_user", [False, True], ids=["anonymous", "token"])
def test_no_operation_answers_with_a_server_error(api_schema, alice, as_user):
    headers = {"Authorization": f"Bearer {alice.token}"} if as_user else {}
    for operation in _operations(api_schema):

        @FUZZ
        @given(case=operation.as_strategy())
        def fuzz(case):
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        fuzz()
