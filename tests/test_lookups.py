"""`field__any=[...]` finds what `field__in=[...]` finds, with one array parameter."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ledger.models import Hold
from tests.ledger.helpers import hold

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(funded_wallet):
    wallet = funded_wallet
    root = hold(wallet, 500, "jit:root")
    return [root, hold(wallet, 100, "jit:more", original=root), hold(wallet, 200, "jit:other")]


@pytest.mark.parametrize(
    "lookup",
    [
        {"authorization_key": ["jit:root", "jit:other", "jit:absent"]},
        {"pk": "pks"},
        {"original": "pks"},
        {"original_id": "pks"},
        {"authorization_key": []},
    ],
)
def test_any_matches_in(chain, lookup):
    [(field, values)] = lookup.items()
    values = [held.pk for held in chain] if values == "pks" else values
    expected = set(Hold.objects.filter(**{f"{field}__in": values}))
    assert set(Hold.objects.filter(**{f"{field}__any": values})) == expected


def test_any_sends_the_list_as_one_parameter(chain):
    keys = [f"jit:{n}" for n in range(5_000)] + ["jit:root"]
    with CaptureQueriesContext(connection) as queries:
        found = list(Hold.objects.filter(authorization_key__any=keys))
    assert found == [chain[0]]
    assert "= ANY(" in queries[0]["sql"]
    assert " IN (" not in queries[0]["sql"]  # not 5,001 placeholders
