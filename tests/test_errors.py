"""Unknown URLs: the API's error body under the API's prefixes, Django's page elsewhere."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("path", ["/api/v1/nope/", "/jit/nope", "/webhooks/nope/"])
def test_given_unknown_api_url_when_requested_then_404_with_the_error_body(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "code": "not_found",
        "message": f"no endpoint at {path}",
        "details": {},
    }


def test_given_unknown_page_outside_the_api_when_requested_then_django_404_page(client):
    response = client.get("/nowhere/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
