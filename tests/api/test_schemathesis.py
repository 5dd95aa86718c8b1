"""Property-based fuzzing of every documented operation: no input may cause a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
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
    # Like Django's own test client: a request must not close the test's connection
    # (it is inside the test transaction, which Django would take for a stale one).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema/", application)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


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
