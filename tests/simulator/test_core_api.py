"""The fake Core API answers as Marqeta does: its request rules, its response and error shapes."""

from __future__ import annotations

import base64
import json

import pytest

from jit.simulator.core_api import FakeCoreApi

USER, PASSWORD = "app-token", "admin-access-token"
GOOD = {
    "token": "pgfs_demo",
    "name": "demo JIT gateway",
    "url": "https://gateway.example.com/jit/marqeta/",
    "basic_auth_username": "marqeta_jit",
    "basic_auth_password": "Jit-Test-Password-2026!",
    "timeout_millis": 3000,
}


def auth(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def api() -> FakeCoreApi:
    return FakeCoreApi(username=USER, password=PASSWORD, base_path="/v3")


def call(api, method, path, body=None, authorization=None):
    raw = json.dumps(body).encode() if body is not None else b""
    return api.handle(method, f"/v3{path}", authorization=authorization or auth(), body=raw)


def test_given_a_good_request_when_created_then_201_with_marqetas_added_fields_and_masked_secret(
    api,
):
    # when
    status, body = call(api, "POST", "/fundingsources/programgateway", GOOD)
    # then
    assert status == 201
    assert body["token"] == "pgfs_demo"
    assert body["timeout_millis"] == 3000
    assert {"account", "version", "created_time", "last_modified_time"} <= set(body)
    assert body["basic_auth_password"] == "*" * 19 + "026!"
    assert body["active"] is True
    assert body["use_mtls"] is False
    assert call(api, "GET", "/fundingsources/programgateway/pgfs_demo")[1] == body


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": ""}, "name: size must be between 1 and 50"),
        ({"name": "x" * 51}, "name: size must be between 1 and 50"),
        ({"token": "t" * 37}, "token: size must be between 1 and 36"),
        ({"url": "http://gateway.example.com/"}, "url: must be HTTPS"),
        ({"url": "https://" + "a" * 250}, "url: must be a string of at most 250 characters"),
        ({"basic_auth_username": ""}, "basic_auth_username: size must be between 1 and 50"),
        ({"basic_auth_password": "Short-1!"}, "basic_auth_password: size must be between 20"),
        ({"basic_auth_password": "alllowercaseletters-123"}, "must contain upper and lower"),
        ({"timeout_millis": 999}, "timeout_millis: must be between 1000 and 7000"),
        ({"timeout_millis": 7001}, "timeout_millis: must be between 1000 and 7000"),
        ({"timeout_millis": "3000"}, "timeout_millis: must be an integer"),
        ({"custom_header": {"X-A": 1}}, "custom_header: must be a map of strings to strings"),
        ({"colour": "blue"}, "Unrecognized field 'colour'"),
    ],
)
def test_given_bad_input_when_created_then_400_with_marqetas_error_body_and_nothing_stored(
    api, change, message
):
    status, body = call(api, "POST", "/fundingsources/programgateway", {**GOOD, **change})
    assert status == 400
    assert set(body) == {"error_code", "error_message"}
    assert message in body["error_message"]
    assert api.funding_sources == {}


def test_given_a_funding_source_when_its_token_is_changed_then_refused(api):
    call(api, "POST", "/fundingsources/programgateway", GOOD)
    status, body = call(api, "PUT", "/fundingsources/programgateway/pgfs_demo", {"token": "other"})
    assert status == 400
    assert body["error_message"] == "token: cannot be updated"


def test_given_a_funding_source_when_updated_then_the_version_moves_only_on_change(api):
    _, created = call(api, "POST", "/fundingsources/programgateway", GOOD)
    update = {key: value for key, value in GOOD.items() if key != "token"}
    _, same = call(api, "PUT", "/fundingsources/programgateway/pgfs_demo", update)
    _, changed = call(
        api, "PUT", "/fundingsources/programgateway/pgfs_demo", {**update, "timeout_millis": 2000}
    )
    _, headers = call(
        api,
        "PUT",
        "/fundingsources/programgateway/customheaders/pgfs_demo",
        {"custom_header": {"X-Program": "demo"}},
    )
    assert (created["version"], same["version"], changed["version"]) == ("1", "1", "2")
    assert changed["timeout_millis"] == 2000
    assert headers["custom_header"] == {"X-Program": "demo"}
    assert headers["version"] == "3"


def test_given_wrong_credentials_or_an_unknown_token_when_read_then_401_and_404(api):
    status, body = call(
        api, "GET", "/fundingsources/programgateway/x", authorization=auth(password="nope")
    )
    assert (status, body["error_code"]) == (401, "401001")
    status, body = call(api, "GET", "/fundingsources/programgateway/x")
    assert (status, body["error_code"]) == (404, "404001")


def test_given_control_sets_when_listed_then_marqetas_list_shape_paged(api):
    for number in range(3):
        api.add_commando_mode(
            {
                "token": f"cm_{number}",
                "program_gateway_funding_source_token": "pgfs_demo",
                "commando_mode_enables": {"program_funding_source": "pfs_standin"},
            }
        )
    status, page = call(api, "GET", "/commandomodes?count=2&start_index=0")
    assert status == 200
    assert (page["count"], page["start_index"], page["end_index"], page["is_more"]) == (
        2,
        0,
        1,
        True,
    )
    mode = page["data"][0]
    assert mode["real_time_standin_criteria"] == {
        "enabled": False,
        "include_connection_errors": False,
        "include_response_timeouts": False,
        "include_application_errors": False,
    }
    assert mode["current_state"]["commando_enabled"] is False
    assert call(api, "GET", "/commandomodes/cm_2")[1]["token"] == "cm_2"


def test_given_the_fake_served_over_http_when_called_then_it_answers(api):
    import httpx

    with api.running() as url:
        response = httpx.post(
            f"{url}/fundingsources/programgateway",
            json=GOOD,
            headers={"Authorization": auth()},
        )
    assert response.status_code == 201
    assert response.json()["token"] == "pgfs_demo"
