"""Hundreds of simultaneous authorizations on one account, through a real HTTP server."""

from __future__ import annotations

import http.client
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest

from jit import cache
from jit.outbox import drain_outbox
from tests.jit.conftest import jit_body
from tests.ledger.helpers import assert_ledger_consistent, balances

pytestmark = pytest.mark.django_db(transaction=True)


def test_given_100_available_when_300_concurrent_auths_of_1_then_exactly_100_approved(
    live_server, marqeta_auth, card_in_cache, funded_wallet
):
    address = urlparse(live_server.url)
    bodies = [jit_body(card_in_cache, token=f"jit-c{n}", amount="1.00") for n in range(300)]

    def send(body: str) -> int:
        # The test server's listen backlog is small: a reset connection is retried, which is
        # safe because a retried jit_funding.token gets its first answer back.
        for _ in range(20):
            connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
            try:
                connection.request(
                    "POST",
                    "/jit/marqeta/",
                    body,
                    {
                        "Content-Type": "application/json",
                        "Authorization": marqeta_auth["HTTP_AUTHORIZATION"],
                    },
                )
                return connection.getresponse().status
            except (ConnectionResetError, ConnectionRefusedError):
                continue
            finally:
                connection.close()
        raise AssertionError("the server never answered")

    # when
    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(send, bodies))
    # then: never a cent of overspend
    assert statuses.count(200) == 100
    assert statuses.count(402) == 200
    assert cache.cached_available(user_token=card_in_cache.cardholder.token) == 0
    drain_outbox()
    assert balances(funded_wallet) == (0, 10_000)
    assert_ledger_consistent()
