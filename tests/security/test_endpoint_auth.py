"""Every endpoint of the URLconf (tests/security/endpoints.py) refuses a caller without valid
credentials, with every HTTP method, and writes nothing; only the listed public ones answer.

Refusing means: the admin redirects to its login page; the API and Marqeta's endpoints
answer 401/403 with the error body. Never a 200, never a 5xx.
"""

from __future__ import annotations

import base64

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.test import Client

from tests.security.conftest import SWEPT, jit_basic, webhook_basic, written_state
from tests.security.endpoints import PUBLIC, Endpoint, all_endpoints

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete", "options", "head")
REFUSAL_CODES = {"not_authenticated", "authentication_failed", "permission_denied"}


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def callers(db, superuser_token) -> dict[str, Client]:
    """Clients without valid credentials for the endpoint they call. A valid credential of
    another kind (the superuser's API token, Marqeta's Basic pairs) must not open a door."""
    plain = get_user_model().objects.create_user(username="plain", password="plain-123456789")
    logged_in_non_staff = Client()
    logged_in_non_staff.force_login(plain)
    headers = {
        "no credentials": {},
        "wrong API token": {"HTTP_AUTHORIZATION": "Token " + "0" * 40},
        "wrong Basic password": {"HTTP_AUTHORIZATION": _basic("marqeta_jit_test", "wrong")},
        "Bearer junk": {"HTTP_AUTHORIZATION": "Bearer abc.def.ghi"},
        "malformed Basic": {"HTTP_AUTHORIZATION": "Basic !!!not-base64"},
        "superuser API token": {"HTTP_AUTHORIZATION": f"Token {superuser_token}"},
        "JIT Basic": {"HTTP_AUTHORIZATION": jit_basic()},
        "webhook Basic": {"HTTP_AUTHORIZATION": webhook_basic()},
    }
    clients = {label: Client(**extra) for label, extra in headers.items()}
    clients["non-staff session"] = logged_in_non_staff
    return clients


def valid_for(caller: str, endpoint: Endpoint) -> bool:
    """The few (caller, endpoint) pairs that are real credentials, so not swept here."""
    return (
        (caller == "superuser API token" and endpoint.area == "api")
        or (caller == "JIT Basic" and endpoint.path == "/jit/marqeta/")
        or (caller == "webhook Basic" and endpoint.path == "/webhooks/marqeta/")
        or (caller == "non-staff session" and endpoint.name == "schema")  # any login reads it
    )


def assert_refused(endpoint: Endpoint, method: str, caller: str, response) -> None:
    where = f"{caller}: {method.upper()} {endpoint.path} ({endpoint.name})"
    assert response.status_code < 500, where
    if endpoint.area == "admin":
        assert response.status_code == 302, where
        assert response["Location"].startswith("/admin/login/"), where
        return
    if caller == "non-staff session" and endpoint.area == "api":  # a login, no permission
        assert response.status_code == 403, where
    else:
        assert response.status_code == 401, where
    if method != "head":  # JSON, or YAML from the schema view (its renderer): YAML reads both
        assert yaml.safe_load(response.content)["code"] in REFUSAL_CODES, where


def test_given_any_endpoint_when_called_without_valid_credentials_then_refused_and_nothing_written(
    callers,
):
    # given
    endpoints = [endpoint for endpoint in all_endpoints() if endpoint.area != "public"]
    before = written_state()
    # when / then
    for caller, client in callers.items():
        for endpoint in endpoints:
            if valid_for(caller, endpoint):
                continue
            for method in METHODS:
                response = getattr(client, method)(endpoint.path)
                assert_refused(endpoint, method, caller, response)
                SWEPT[caller] += 1
    assert written_state() == before
    assert len(endpoints) > 150  # the admin's model URLs are in: the walk found the URLconf


def test_given_the_public_list_when_read_then_each_exists_and_answers_anonymously(client):
    names = {endpoint.name: endpoint for endpoint in all_endpoints()}
    assert set(PUBLIC) <= set(names), "a public endpoint listed in endpoints.py is gone"
    for name in ("healthz", "readyz", "metrics", "admin:login"):
        assert client.get(names[name].path).status_code == 200, name
    assert client.post(names["admin:logout"].path).status_code in (200, 302)
