"""Periodic gateway upkeep, run as the worker would run it (the task functions, directly)."""

from __future__ import annotations

import pytest

from jit import keys
from jit.redis_client import maintenance_redis
from jit.tasks import refresh_card_records_task, replay_standin_spool_task
from tests.cards.factories import CardFactory

pytestmark = pytest.mark.django_db


def test_given_cards_missing_from_cache_when_refreshed_then_every_card_record_is_back():
    cards = [CardFactory() for _ in range(3)]
    assert refresh_card_records_task() == 3
    for card in cards:
        record = maintenance_redis().hgetall(keys.card_key(card.cardholder.token, card.token))
        assert record["state"] == "ACTIVE"
        assert record["user"] == card.cardholder.token


def test_given_empty_spool_when_replayed_then_nothing_happens():
    assert replay_standin_spool_task() == 0
