"""`marqeta_configure` end to end against the fake Core API (a real HTTP server in a thread)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cards.models import CommandoModeRecord
from jit.simulator.core_api import FakeCoreApi

GATEWAY = "https://gateway.example.com/jit/marqeta/"


@pytest.fixture
def core_api(settings, program):
    api = FakeCoreApi(username="app-token", password="admin-access-token", base_path="/v3")
    api.add_commando_mode(
        {
            "token": "cm_demo",
            "program_gateway_funding_source_token": "pgfs_demo",
            "commando_mode_enables": {
                "program_funding_source": "pfs_demo_standin",
                "auth_controls": ["ac_mcc_block", "ac_max_100"],
            },
            "real_time_standin_criteria": {"enabled": True, "include_response_timeouts": False},
        }
    )
    with api.running() as url:
        settings.MARQETA_API_URL = url
        settings.MARQETA_API_USERNAME = "app-token"
        settings.MARQETA_API_PASSWORD = "admin-access-token"
        yield api


def configure(*args: str) -> str:
    out = StringIO()
    call_command("marqeta_configure", "--gateway-url", GATEWAY, *args, stdout=out)
    return out.getvalue()


def test_given_no_funding_source_when_configured_then_created_once_with_our_credentials(
    core_api, settings
):
    # when
    output = configure()
    # then
    assert "Created program gateway funding source pgfs_demo" in output
    source = core_api.funding_sources["pgfs_demo"]
    assert source["url"] == GATEWAY
    assert source["basic_auth_username"] == settings.MARQETA_JIT_USERNAME
    assert source["basic_auth_password"] == settings.MARQETA_JIT_PASSWORD
    assert source["timeout_millis"] == 3000  # sent explicitly
    assert source["active"] is True
    assert core_api.calls[:2] == [
        ("GET", "/v3/fundingsources/programgateway/pgfs_demo"),
        ("POST", "/v3/fundingsources/programgateway"),
    ]
    assert settings.MARQETA_JIT_PASSWORD not in output  # shown masked


def test_given_a_configured_gateway_when_run_again_then_put_and_no_change(core_api):
    # given
    configure()
    core_api.calls.clear()
    # when
    output = configure()
    # then
    assert "Updated program gateway funding source pgfs_demo with PUT (version 1)" in output
    assert "  no change" in output
    assert ("PUT", "/v3/fundingsources/programgateway/pgfs_demo") in core_api.calls
    assert not any(method == "POST" for method, _ in core_api.calls)


def test_given_a_configured_gateway_when_settings_change_then_each_change_is_printed(core_api):
    # given
    configure()
    # when
    output = configure("--timeout-millis", "2500", "--header", "X-Program-Secret=s3cr3t")
    # then
    assert "timeout_millis: 3000 -> 2500" in output
    assert "custom_header: [] -> [X-Program-Secret]" in output
    assert "s3cr3t" not in output
    source = core_api.funding_sources["pgfs_demo"]
    assert source["timeout_millis"] == 2500
    assert source["custom_header"] == {"X-Program-Secret": "s3cr3t"}


def test_given_wrong_core_api_credentials_when_configured_then_a_clear_error_and_nothing_made(
    core_api, settings
):
    settings.MARQETA_API_PASSWORD = "wrong-token"
    with pytest.raises(CommandError, match=r"401 \(error_code 401001\): Invalid application"):
        configure()
    assert core_api.funding_sources == {}


def test_given_an_http_gateway_url_when_configured_without_allow_http_then_refused_before_calling(
    core_api,
):
    with pytest.raises(CommandError, match="must be https://"):
        call_command("marqeta_configure", "--gateway-url", "http://127.0.0.1:8000/jit/marqeta/")
    assert core_api.calls == []


def test_given_marqeta_refuses_the_input_when_configured_then_its_message_is_shown(
    core_api, settings
):
    core_api.allow_http = False
    with pytest.raises(CommandError, match="url: must be HTTPS"):
        call_command(
            "marqeta_configure",
            "--gateway-url",
            "http://127.0.0.1:8000/jit/marqeta/",
            "--allow-http",
        )


def test_given_commando_mode_differs_from_our_record_when_configured_then_each_difference_listed(
    core_api, program
):
    # given: ops recorded stand-in on timeouts and one auth control; Marqeta has two and no
    # timeout criterion
    CommandoModeRecord.objects.create(
        program=program,
        program_gateway_funding_source_token="pgfs_demo",
        auth_controls=["ac_max_100"],
        real_time_standin_enabled=True,
        include_response_timeouts=True,
    )
    # when
    output = configure()
    # then
    lines = [line for line in output.splitlines() if "<- differs" in line]
    assert len(lines) == 2
    assert "include_response_timeouts" in lines[0]
    assert "auth_controls" in lines[1]
    assert "[ac_max_100, ac_mcc_block]" in lines[1]
    assert "2 difference(s)" in output
    with pytest.raises(CommandError, match="Commando Mode differs"):
        configure("--strict")


def test_given_commando_mode_matching_our_record_when_configured_then_it_says_so(core_api, program):
    CommandoModeRecord.objects.create(
        program=program,
        program_gateway_funding_source_token="pgfs_demo",
        auth_controls=["ac_mcc_block", "ac_max_100"],
        real_time_standin_enabled=True,
    )
    assert "matches our record" in configure("--strict")
