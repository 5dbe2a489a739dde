"""Hold expiry: the hourly task releases what no clearing came for (per MCC group), warns
before it, and flags holds still open well past it; a late clearing still charges."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cards.services import set_mcc_group
from ledger.models import HoldRelease, HoldStatus
from reconciliation import tasks
from reconciliation.expiry import expire_due_holds, flag_stale_holds
from reconciliation.models import ReconciliationException
from tests.ledger.helpers import assert_ledger_consistent, balances
from tests.reconciliation.clearing_helpers import authorize, ingest_rows, row

pytestmark = pytest.mark.django_db
LATER = timedelta(days=8)


def test_given_holds_past_and_before_expiry_when_the_task_runs_then_only_the_past_released(
    week_wallet,
):
    # given: one expired an hour ago (with an incremental), one still has a day
    old = authorize(week_wallet, txn="txn-old", amount_minor=3_000, expires_in=-timedelta(hours=1))
    authorize(week_wallet, txn="txn-old-incr", amount_minor=1_000, original=old)
    fresh = authorize(
        week_wallet, txn="txn-fresh", amount_minor=2_000, expires_in=timedelta(days=2)
    )
    # when
    result = tasks.expire_holds_task()
    # then: the chain is released whole, once
    assert result["expired"] == 1
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.status, fresh.status) == (HoldStatus.EXPIRED, HoldStatus.OPEN)
    assert balances(week_wallet) == (23_000, 2_000)
    release = HoldRelease.objects.get()
    assert (release.reason, release.amount_minor) == ("expiry", 4_000)
    # and again: nothing more
    assert tasks.expire_holds_task()["expired"] == 0
    assert HoldRelease.objects.count() == 1
    assert_ledger_consistent()


def test_given_a_car_rental_hold_when_7_days_pass_then_it_is_still_held(week_card, week_wallet):
    # given: the program keeps car rental holds 30 days (hold_expires_at per MCC group)
    from cards.selectors import hold_expires_at

    program = week_card.cardholder.program
    set_mcc_group(program=program, name="car_rental", mccs=["7512"], hold_expiry_days=30)
    expires_at = hold_expires_at(program=program, mcc="7512", authorized_at=timezone.now())
    hold = authorize(
        week_wallet, txn="txn-car", amount_minor=5_000, expires_in=expires_at - timezone.now()
    )
    # when
    run = expire_due_holds(now=timezone.now() + LATER)
    # then
    assert run.expired == 0
    hold.refresh_from_db()
    assert hold.status == HoldStatus.OPEN
    assert expire_due_holds(now=timezone.now() + timedelta(days=31)).expired == 1


def test_given_an_expired_hold_when_its_clearing_line_comes_then_charged_from_available(
    tmp_path, week_wallet
):
    # given
    authorize(week_wallet, txn="txn-late", amount_minor=3_000, expires_in=-timedelta(minutes=1))
    tasks.expire_holds_task()
    assert balances(week_wallet) == (25_000, 0)
    # when
    ingest_rows(tmp_path / "inbox", [row("txn-late-clr", "30.00", preceding="txn-late")])
    # then
    assert balances(week_wallet) == (22_000, 0)
    assert_ledger_consistent()


def test_given_holds_near_and_past_expiry_when_flagged_then_one_stale_hold_each_and_stage(
    week_wallet,
):
    # given: one expires in 2 hours (warning band 24 h), one is 10 hours overdue and still
    # open (the expiry task could not run), one expires in 3 days
    soon = authorize(week_wallet, txn="txn-soon", amount_minor=1_000, expires_in=timedelta(hours=2))
    stuck = authorize(
        week_wallet, txn="txn-stuck", amount_minor=1_000, expires_in=-timedelta(hours=10)
    )
    authorize(week_wallet, txn="txn-later", amount_minor=1_000, expires_in=timedelta(days=3))
    before = balances(week_wallet)
    # when
    opened = flag_stale_holds(warning=timedelta(hours=24), overdue=timedelta(hours=6))
    again = flag_stale_holds(warning=timedelta(hours=24), overdue=timedelta(hours=6))
    # then: flags only, nothing released
    assert opened == {"expires_soon": 1, "overdue": 1}
    assert again == {"expires_soon": 0, "overdue": 0}
    stale = {
        e.details["stage"]: e for e in ReconciliationException.objects.filter(kind="stale_hold")
    }
    assert stale["expires_soon"].hold == soon
    assert stale["overdue"].hold == stuck
    assert stale["overdue"].amount_minor == 1_000
    assert balances(week_wallet) == before


def test_given_the_hourly_task_when_run_then_it_expires_before_it_flags(week_wallet, settings):
    # given: overdue by 10 hours; the task releases it, so no overdue flag is needed
    settings.STALE_HOLD_OVERDUE_HOURS = 6
    authorize(week_wallet, txn="txn-stuck", amount_minor=1_000, expires_in=-timedelta(hours=10))
    # when
    result = tasks.expire_holds_task()
    # then
    assert result == {"expired": 1, "skipped": 0, "expires_soon": 0, "overdue": 0}
    assert not ReconciliationException.objects.exists()


def test_given_beat_then_expiry_hourly_and_pull_every_5_minutes(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["reconciliation.expire_holds"]["schedule"] == timedelta(hours=1)
    assert schedule["reconciliation.pull_clearing_files"]["schedule"] == timedelta(minutes=5)
