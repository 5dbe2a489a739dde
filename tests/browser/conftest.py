"""Browser tests: Debian's headless Chromium, driven by Playwright, against pytest-django's
`live_server` (a real HTTP server on this machine, transactional database).

Playwright's Python package carries its driver; no browser build is downloaded: it launches
`/usr/bin/chromium` (`apt-get install chromium`, done by scripts/bootstrap.sh). Without that
file these tests are skipped, saying why; with it (CI) they run in the default suite.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections

from cards import services
from cards.models import Card, VelocityLimit
from cards.selectors import funding_account_for
from ledger.models import Wallet
from tests.jit.conftest import jit_body, put_in_cache

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser-test-password-2026"  # noqa: S105 - test users only
# The PNGs shown in docs/admin.md: SCREENSHOTS_DIR=docs/screenshots pytest tests/browser
SCREENSHOTS_DIR = os.environ.get("SCREENSHOTS_DIR", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason=f"{CHROMIUM} is missing: install Debian's chromium package "
        "(scripts/bootstrap.sh does: apt-get install chromium)"
    )
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def staff(transactional_db) -> Callable[[str, str], object]:
    """`staff("ops", "Ops")`: a staff user in a group (the groups come from the data
    migration, which a transactional test's flush empties, so they are made again here)."""
    services.ensure_staff_groups()

    def make(username: str, group: str):
        user = get_user_model().objects.create_user(
            username=username, password=PASSWORD, is_staff=True
        )
        user.groups.add(Group.objects.get(name=group))
        return user

    return make


@dataclass
class Browser:
    """Sessions of one Chromium run: each person logs in in a context of their own."""

    playwright: object
    base_url: str
    profiles: Path

    def login(self, username: str):
        """A page logged in as `username` through the admin's login form."""
        profile = self.profiles / username
        context = self.playwright.chromium.launch_persistent_context(
            str(profile),  # a fresh --user-data-dir per person and test
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 900},
        )
        context.set_default_timeout(15_000)
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(f"{self.base_url}/admin/login/?next=/admin/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(f"{self.base_url}/admin/")
        return page


@pytest.fixture
def browser(live_server, tmp_path, monkeypatch) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls
    # (setting up rows, draining the outbox) are plain synchronous code all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        yield Browser(playwright, live_server.url, tmp_path / "profiles")
        # While Playwright's loop runs, Django's connection registry (an asgiref Local)
        # hands the test its own connections: close them, or the test database cannot be
        # dropped at the end of the session.
        connections.close_all()


@dataclass
class World:
    card: Card
    wallet: Wallet
    daily_limit: VelocityLimit


@pytest.fixture
def world(staff) -> World:
    """The demo's shape: a New York program, Ada's card ****6491 with 250.00 and a daily
    limit of 500.00 of its own, two other cards; users ops, ops2 and support."""
    staff("ops", "Ops")
    staff("ops2", "Ops")
    staff("support", "Support")
    program = services.create_program(
        name="demo", currency_code="USD", timezone_name="America/New_York"
    )
    ada = services.create_cardholder(
        program=program, token="user_7f3a", first_name="Ada", last_name="Lovelace",
        email="ada@example.com",
    )  # fmt: skip
    card = services.create_card(cardholder=ada, token="card_91b2", last_four="6491")
    for n, last_four in enumerate(["1234", "4321"]):
        other = services.create_cardholder(program=program, token=f"user_other{n}")
        services.create_card(cardholder=other, token=f"card_other{n}", last_four=last_four)
    services.deposit_funds(
        cardholder=ada, amount_minor=25_000, idempotency_key="seed:ada", actor="test"
    )
    limit = services.set_velocity_limit(
        scope_obj=card, window="day", max_amount_minor=50_000, actor=None, reason="setup"
    )
    put_in_cache(card)
    return World(card, funding_account_for(cardholder=ada).wallet, limit)


def screenshot(page, name: str, tmp_path: Path) -> Path:
    """A full-page PNG in the test's directory, and in SCREENSHOTS_DIR when set."""
    target = Path(SCREENSHOTS_DIR) if SCREENSHOTS_DIR else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def submit(page, target) -> None:
    """Click a link or button that loads a new page, and wait until that page has loaded."""
    with page.expect_navigation():
        target.click()


def post_jit(base_url: str, card, *, token: str, amount: str, **fields) -> tuple[int, dict]:
    """A Marqeta JIT funding request to the running server: (HTTP status, JSON answer)."""
    credentials = f"{settings.MARQETA_JIT_USERNAME}:{settings.MARQETA_JIT_PASSWORD}"
    request = urllib.request.Request(  # noqa: S310 - the test's own live_server URL
        f"{base_url}/jit/marqeta/",
        data=jit_body(card, token=token, amount=amount, **fields).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refusal:  # 402: declined
        return refusal.code, json.loads(refusal.read())
