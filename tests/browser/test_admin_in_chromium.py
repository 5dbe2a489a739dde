"""The admin as ops and support use it, in a real browser against the running server."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from cards import services
from jit.outbox import drain_outbox
from ledger.models import AuditEvent, Kind, LedgerTransaction, ManualAdjustment, Wallet
from reconciliation.models import ReconciliationException
from reconciliation.services import open_exception
from tests.browser.conftest import post_jit, screenshot, submit

pytestmark = pytest.mark.browser


def available(wallet: Wallet) -> int:
    wallet.available.refresh_from_db()
    return wallet.available.balance_minor


def test_given_ops_lowers_the_daily_limit_when_next_jit_is_over_it_then_declined_and_named(
    browser, live_server, world, tmp_path
):
    # given: 10.00 approved under the 500.00 limit
    status, _ = post_jit(live_server.url, world.card, token="br-1", amount="10.00")
    assert status == 200
    # when: ops lower the card's daily limit to 30.00 on the card's page
    page = browser.login("ops")
    page.goto(f"{live_server.url}/admin/cards/card/{world.card.pk}/change/")
    page.fill("input[name$='-0-max_amount']", "30.00")
    submit(page, page.locator("input[name='_continue']"))
    assert "was changed successfully" in page.inner_text(".messagelist")
    world.daily_limit.refresh_from_db()
    assert world.daily_limit.max_amount_minor == 3_000
    assert "30.00 USD" in page.inner_text(".field-effective_controls")  # the preview follows
    # and: the next request, 25.00, is over what is left of the day
    status, answer = post_jit(live_server.url, world.card, token="br-2", amount="25.00")
    # then
    assert status == 402
    assert answer["jit_funding"]["decline_reason"] == "AMOUNT_LIMIT_EXCEEDED"
    drain_outbox()  # what the ledger writer does continuously
    submit(page, page.locator("a.historylink"))  # the change page's History button
    history = page.inner_text("#history")
    assert "declined: daily spend limit, 20.00 USD of 30.00 USD remaining" in history
    assert "AMOUNT_LIMIT_EXCEEDED" in history
    assert AuditEvent.objects.filter(action="set_velocity_limit", actor__username="ops").exists()
    screenshot(page, "card-history-after-limit-change", tmp_path)


def test_given_a_decline_when_support_searches_the_last_four_then_finds_the_card_and_it(
    browser, live_server, world
):
    # given: a decline over the daily limit
    services.set_velocity_limit(
        scope_obj=world.card, window="day", max_amount_minor=3_000, actor=None, reason="test"
    )
    status, _ = post_jit(live_server.url, world.card, token="br-s1", amount="45.00")
    assert status == 402
    drain_outbox()
    # when: support search from the home page by the last four digits
    page = browser.login("support")
    page.fill("#card-search input[name=q]", "6491")
    submit(page, page.locator("#card-search input[type=submit]"))
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("card_91b2")
    submit(page, rows.first.get_by_role("link", name="history"))
    # then
    history = page.inner_text("#history")
    assert "declined: daily spend limit, 30.00 USD of 30.00 USD remaining" in history
    assert "250.00 USD" in page.inner_text("#available-now")
    # and: support cannot change the card
    page.goto(f"{live_server.url}/admin/cards/card/{world.card.pk}/change/")
    assert page.locator("input[name='_save']").count() == 0
    assert page.goto(f"{live_server.url}/admin/cards/card/add/").status == 403


def test_given_a_proposed_adjustment_when_the_maker_then_a_checker_approve_then_once(
    browser, live_server, world
):
    before = available(world.wallet)
    # given: ops propose 5.00 back to Ada
    maker = browser.login("ops")
    maker.goto(f"{live_server.url}/admin/ledger/manualadjustment/add/")
    maker.fill("#id_wallet", str(world.wallet.pk))
    maker.fill("#id_amount", "5.00")
    maker.fill("#id_reason", "goodwill: fee refund")
    submit(maker, maker.locator("input[name='_save']"))
    adjustment = ManualAdjustment.objects.get()
    assert adjustment.status == ManualAdjustment.Status.PENDING

    def approve(page) -> str:
        page.goto(f"{live_server.url}/admin/ledger/manualadjustment/")
        page.check(f"input[name='_selected_action'][value='{adjustment.pk}']")
        page.select_option("select[name='action']", "approve")
        submit(page, page.locator("button[name='index']"))
        return page.inner_text(".messagelist")

    # when: the maker tries to approve it
    messages = approve(maker)
    # then: refused, nothing moved
    assert "needs a second person" in messages
    assert available(world.wallet) == before
    # when: a second ops user approves, then approves again
    checker = browser.login("ops2")
    assert "1 adjustment(s) decided" in approve(checker)
    assert "already approved" in approve(checker)
    # then: the balance changed once
    adjustment.refresh_from_db()
    assert adjustment.status == ManualAdjustment.Status.APPROVED
    assert adjustment.decided_by.username == "ops2"
    assert available(world.wallet) == before + 500
    assert LedgerTransaction.objects.filter(kind=Kind.ADJUSTMENT).count() == 1


def test_given_an_open_exception_when_ops_resolve_it_through_the_action_then_resolved(
    browser, live_server, world
):
    # given
    exception = open_exception(
        kind="cache_drift", dedupe_key="drift:br", user_token=world.card.cardholder.token,
        amount_minor=1_000, currency_code="USD",
    )  # fmt: skip
    page = browser.login("ops")
    page.goto(f"{live_server.url}/admin/reconciliation/reconciliationexception/?state__exact=open")

    def run_resolve(reason: str) -> str:
        page.check(f"input[name='_selected_action'][value='{exception.pk}']")
        page.select_option("select[name='action']", "resolve")
        page.fill("input[name='reason']", reason)
        submit(page, page.locator("button[name='index']"))
        return page.inner_text(".messagelist")

    # when: no reason typed: refused
    assert "Type how they were resolved" in run_resolve("")
    exception.refresh_from_db()
    assert exception.state == ReconciliationException.State.OPEN
    # when: with a reason
    assert "1 exception(s) resolved" in run_resolve("cache rebuilt; balances agree")
    # then
    exception.refresh_from_db()
    assert exception.state == ReconciliationException.State.RESOLVED
    assert exception.resolved_by.username == "ops"
    assert exception.resolution == "cache rebuilt; balances agree"
    assert AuditEvent.objects.filter(action="resolve_exception", actor__username="ops").exists()
