"""Production settings: `manage.py check --deploy` is clean, and a secret comes only from the
real environment: missing, empty or the development value `.env.example` ships (which
`config/env.py` would read from a bootstrapped `.env`), the process refuses to start.

Each case runs in a subprocess with a clean environment, as a production process starts.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings.shipped import shipped_values

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ["SECRET_KEY", "MARQETA_JIT_USERNAME", "MARQETA_JIT_PASSWORD"]
REQUIRED += ["MARQETA_WEBHOOK_USERNAME", "MARQETA_WEBHOOK_PASSWORD"]
SECRETS = ["SECRET_KEY", "MARQETA_JIT_PASSWORD", "MARQETA_WEBHOOK_PASSWORD"]
SECRETS += ["MARQETA_API_PASSWORD"]


def production_environment() -> dict[str, str]:
    """What a deployment sets: fresh secrets, its own hosts; nothing of the developer's."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "cards.example.com",
        "MARQETA_JIT_USERNAME": "marqeta_jit_live",
        "MARQETA_JIT_PASSWORD": secrets.token_urlsafe(24),
        "MARQETA_WEBHOOK_USERNAME": "marqeta_webhook_live",
        "MARQETA_WEBHOOK_PASSWORD": secrets.token_urlsafe(24),
        "MARQETA_WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "MARQETA_API_PASSWORD": secrets.token_urlsafe(24),
    }


def run(argv: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, *argv], cwd=ROOT, env=environment, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def settings_load(environment: dict[str, str]) -> subprocess.CompletedProcess:
    """Import the production settings alone: what every production process does first."""
    return run(["-c", "import config.settings.production"], environment)


def test_given_production_settings_when_check_deploy_then_no_issue_at_all():
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_environment()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("name", REQUIRED)
def test_given_a_required_setting_empty_when_settings_load_then_refused(name):
    result = settings_load({**production_environment(), name: ""})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr


@pytest.mark.parametrize("name", SECRETS)
def test_given_the_shipped_development_secret_when_settings_load_then_refused(name):
    shipped = shipped_values()[name]
    result = settings_load({**production_environment(), name: shipped})
    assert result.returncode != 0
    assert f"{name} is the development value" in result.stderr


def test_given_the_secret_key_absent_from_the_environment_when_settings_load_then_refused():
    """Absent, it is either not set at all or read from a bootstrapped `.env`: refused both."""
    name = "SECRET_KEY"
    environment = production_environment()
    del environment[name]
    result = settings_load(environment)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr
