"""Shared fixtures: real PostgreSQL (pytest-django) and real Redis (own DB index, flushed)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django_redis import get_redis_connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cards.models import Card
from cards.selectors import funding_account_for
from cards.services import deposit_funds
from jit import fallback
from ledger.models import Wallet
from tests.cards.factories import CardFactory


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with an empty Redis database of the test settings' own index."""
    connection = get_redis_connection("default")
    connection.flushdb()
    yield
    connection.flushdb()


@pytest.fixture(autouse=True)
def _fresh_fallback(tmp_path, settings):
    """Every test starts with a closed breaker, the default policy and its own spool file."""
    settings.JIT_STANDIN_SPOOL = str(tmp_path / "standin.jsonl")
    fallback.install_policy(fallback.StandInPolicy())
    fallback.breaker().record_success()
    fallback.forget_stand_ins()
    yield
    fallback.install_policy(fallback.StandInPolicy())
    fallback.breaker().record_success()


@pytest.fixture
def api_user(db):
    """An API client with the Ops group's permissions."""
    user = get_user_model().objects.create_user(username="api", password="api-pass-123456")
    user.groups.add(Group.objects.get(name="Ops"))
    return user


@pytest.fixture
def api_client(api_user) -> APIClient:
    token, _ = Token.objects.get_or_create(user=api_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def staff_user(username: str, group: str):
    user = get_user_model().objects.create_user(
        username=username, password=f"{username}-pass-123456", is_staff=True
    )
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def ops_user(db):
    return staff_user("maker", "Ops")


@pytest.fixture
def second_ops_user(db):
    return staff_user("checker", "Ops")


@pytest.fixture
def support_user(db):
    return staff_user("agent", "Support")


@pytest.fixture
def card(db) -> Card:
    return CardFactory()


@pytest.fixture
def wallet(card) -> Wallet:
    return funding_account_for(cardholder=card.cardholder).wallet


@pytest.fixture
def funded_card(card, django_capture_on_commit_callbacks) -> Card:
    """A card whose cardholder has 100.00 available, put there by a real deposit (committed, as
    far as the commit hooks are concerned: its cache push is not left pending)."""
    with django_capture_on_commit_callbacks(execute=True):
        deposit_funds(
            cardholder=card.cardholder, amount_minor=10_000, idempotency_key="seed", actor="test"
        )
    return card


@pytest.fixture
def funded_wallet(funded_card) -> Wallet:
    return funding_account_for(cardholder=funded_card.cardholder).wallet
