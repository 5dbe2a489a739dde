"""Support finds a card by token, last four digits, cardholder name or email."""

from __future__ import annotations

import pytest

from tests.admin.conftest import login
from tests.cards.factories import CardFactory, CardholderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def cards():
    ada = CardholderFactory(first_name="Ada", last_name="Lovelace", email="ada@example.com")
    bob = CardholderFactory(first_name="Bob", last_name="Marley", email="bob@example.com")
    return {
        "ada": CardFactory(cardholder=ada, token="card_ada", last_four="6491"),
        "ada2": CardFactory(cardholder=ada, token="card_ada2", last_four="1111"),
        "bob": CardFactory(cardholder=bob, token="card_bob", last_four="1234"),
    }


def found(user, query: str) -> set[str]:
    response = login(user).get("/admin/cards/card/", {"q": query})
    assert response.status_code == 200
    return {card.token for card in response.context["cl"].result_list}


@pytest.mark.parametrize(
    ("query", "tokens"),
    [
        ("6491", {"card_ada"}),  # last four digits
        ("card_bob", {"card_bob"}),  # card token
        ("Ada", {"card_ada", "card_ada2"}),  # first name, any case
        ("lovelace", {"card_ada", "card_ada2"}),  # last name
        ("Ada Lovelace", {"card_ada", "card_ada2"}),  # both words must match
        ("Ada Marley", set()),
        ("ada@example.com", {"card_ada", "card_ada2"}),  # email
        ("ADA@example.com", {"card_ada", "card_ada2"}),  # as typed in upper case
        ("Ada 1111", {"card_ada2"}),  # a name and the last four
        ("9999", set()),
    ],
)
def test_given_cards_when_support_searches_then_the_matching_cards(
    support_user, cards, query, tokens
):
    assert found(support_user, query) == tokens


def test_given_cardholder_token_when_searching_cards_then_all_their_cards(support_user, cards):
    token = cards["bob"].cardholder.token
    assert found(support_user, token) == {"card_bob"}
