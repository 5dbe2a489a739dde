"""Cache drift becomes an exception ops can see, once per account per day."""

from __future__ import annotations

import pytest

from jit import cache
from reconciliation.drift import record_cache_drift
from reconciliation.models import ReconciliationException
from tests.jit.conftest import put_in_cache

pytestmark = pytest.mark.django_db


def test_given_tampered_cache_when_checked_twice_then_one_cache_drift_exception(funded_card):
    put_in_cache(funded_card)
    user = funded_card.cardholder.token
    cache.put_account(user_token=user, available_minor=9_000, currency_code="USD")
    # when
    assert record_cache_drift(settle_seconds=0) == 1
    assert record_cache_drift(settle_seconds=0) == 1
    # then
    exception = ReconciliationException.objects.get(kind="cache_drift")
    assert (exception.user_token, exception.amount_minor) == (user, -1_000)
    assert exception.details == {"cached_minor": 9_000, "ledger_minor": 10_000}


def test_given_cache_in_step_when_checked_then_no_exception(funded_card):
    put_in_cache(funded_card)
    assert record_cache_drift(settle_seconds=0) == 0
    assert not ReconciliationException.objects.exists()


def test_given_overdraft_from_a_force_post_when_flagged_then_one_negative_balance_exception(
    funded_wallet,
):
    from ledger.services import force_post
    from reconciliation.drift import record_negative_balances

    force_post(wallet=funded_wallet, amount_minor=12_000, clearing_key="force-1")
    assert record_negative_balances() == 1
    assert record_negative_balances() == 1  # the same flag: the same exception
    exception = ReconciliationException.objects.get(kind="negative_balance")
    assert (exception.amount_minor, exception.user_token) == (-2_000, funded_wallet.holder_token)
