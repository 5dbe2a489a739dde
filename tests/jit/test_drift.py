"""The drift check finds a cached balance that disagrees with the ledger, and only that."""

from __future__ import annotations

import pytest

from jit import cache
from jit.drift import find_drift
from tests.jit.conftest import JSON, jit_body

pytestmark = pytest.mark.django_db


def test_given_approvals_still_in_the_outbox_when_checked_then_no_drift(
    client, marqeta_auth, card_in_cache
):
    body = jit_body(card_in_cache, token="jit-inflight", amount="25.00")
    client.post("/jit/marqeta/", body, content_type=JSON, **marqeta_auth)
    assert find_drift(settle_seconds=0) == []


def test_given_cache_tampered_when_checked_then_drift_reported_with_both_figures(card_in_cache):
    user = card_in_cache.cardholder.token
    cache.put_account(user_token=user, available_minor=12_345, currency_code="USD")
    [drift] = find_drift(settle_seconds=0)
    assert (drift.user_token, drift.cached_minor, drift.expected_minor) == (user, 12_345, 10_000)
    assert drift.difference_minor == 2_345


def test_given_account_missing_from_cache_when_checked_then_reported(funded_card):
    [drift] = find_drift(settle_seconds=0)
    assert drift.cached_minor is None
    assert drift.difference_minor is None
