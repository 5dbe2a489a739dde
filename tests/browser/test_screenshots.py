"""A realistic day on Ada's card, then the card history and the dashboard as ops see them.

Saves card-history.png and dashboard.png (docs/admin.md shows them): in the test's temporary
directory, or in docs/screenshots with SCREENSHOTS_DIR=docs/screenshots.
"""

from __future__ import annotations

import copy

import pytest

from cards import services
from jit.outbox import drain_outbox
from ledger.models import Hold
from ledger.services import Merchant, clear_hold, release_hold
from reconciliation.services import open_exception
from tests.browser.conftest import post_jit, screenshot, submit
from tests.jit.conftest import load_fixture

pytestmark = pytest.mark.browser


def at(name: str, mcc: str, country: str = "USA") -> dict:
    acceptor = copy.deepcopy(load_fixture("jit_authorization")["card_acceptor"])
    acceptor.update(name=name, mcc=mcc, country_code=country)
    return {"card_acceptor": acceptor}


def test_given_a_day_on_the_card_when_ops_look_then_history_and_dashboard_screenshots(
    browser, live_server, world, tmp_path
):
    # given: a daily limit of 100.00, casinos blocked, a day of swipes
    card, url = world.card, live_server.url
    services.set_velocity_limit(
        scope_obj=card, window="day", max_amount_minor=10_000, actor=None, reason="demo"
    )
    services.set_spend_control(
        scope_obj=card.cardholder.program, mcc_block=["7995"], actor=None, reason="demo"
    )
    swipes = [
        ("sc-1", "42.50", at("BLUE BOTTLE COFFEE", "5814"), 200),
        ("sc-2", "18.20", at("CITY PARKING", "7523"), 200),
        ("sc-3", "60.00", at("LUCKY CASINO", "7995"), 402),
        ("sc-4", "55.00", at("SUNSET CAR RENTAL", "7512"), 402),  # over the day's 39.30 left
        ("sc-5", "12.00", at("CORNER BOOKS", "5942"), 200),
        ("sc-6", "30.00", at("AIRPORT TAXI", "4121"), 402),
    ]
    for token, amount, merchant, expected in swipes:
        status, _ = post_jit(url, card, token=token, amount=amount, **merchant)
        assert status == expected, token
    drain_outbox()
    coffee = Hold.objects.get(authorization_key="jit:sc-1")
    clear_hold(
        hold=coffee, amount_minor=4_800, clearing_key="clr-sc-1",  # with the tip
        merchant=Merchant(card_token=card.token, mcc="5814", merchant_name="BLUE BOTTLE COFFEE"),
    )  # fmt: skip
    release_hold(hold=Hold.objects.get(authorization_key="jit:sc-2"), release_key="rev-sc-2")
    open_exception(kind="amount_mismatch", dedupe_key="demo:1", amount_minor=550)
    open_exception(kind="stale_hold", dedupe_key="demo:2", hold=coffee)
    open_exception(kind="stale_hold", dedupe_key="demo:3")
    # when
    page = browser.login("ops")
    page.goto(f"{url}/admin/cards/card/{card.pk}/history/")
    history = page.inner_text("#history")
    page_path = screenshot(page, "card-history", tmp_path)
    submit(page, page.get_by_role("link", name="Home"))
    submit(page, page.locator("#dashboard-link"))
    dashboard = page.inner_text("#content-main")
    dashboard_path = screenshot(page, "dashboard", tmp_path)
    # then
    assert "declined: merchant category blocked" in history
    assert "declined: daily spend limit, 39.30 USD of 100.00 USD remaining" in history
    assert "drops off" in history  # the bookshop's hold is still open
    assert "hold released (reversal)" in history
    assert "Approval rate" in dashboard
    assert "50.0 %" in dashboard  # 3 of 6
    assert page.locator("#volume-chart rect").count() >= 2
    assert page_path.stat().st_size > 10_000
    assert dashboard_path.stat().st_size > 10_000
