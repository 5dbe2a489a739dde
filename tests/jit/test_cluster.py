"""The gateway on a real 3-node Redis Cluster: every key of a decision in one slot, and two web
processes sharing the cluster decide exactly as one process on a single Redis."""

from __future__ import annotations

import httpx
import pytest

from cards.selectors import funding_account_for
from cards.services import deposit_funds
from jit import cache
from jit.models import JitDecision
from jit.outbox import drain_outbox
from jit.redis_client import gateway_redis
from ledger.selectors import wallet_balances
from tests.cards.factories import CardFactory
from tests.jit.cluster import gateway_on_cluster, running_cluster, web_processes
from tests.jit.conftest import JSON, jit_body, put_in_cache
from tests.ledger.helpers import assert_ledger_consistent
from tests.processes import process_env

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_cluster(tmp_path):
    """The cluster, with this process's gateway and maintenance clients pointed at it."""
    with running_cluster(tmp_path) as ports, gateway_on_cluster(ports):
        yield ports


def cards_on_every_node(prefix: str, per_node: int) -> list:
    """Funded cards (10.00 each) whose cardholders' keys live on each of the cluster's nodes,
    in the cache of the Redis the settings name."""
    cluster = gateway_redis()
    by_node: dict[str, list[str]] = {}
    for n in range(500):
        token = f"{prefix}{n}"
        node = cluster.get_node_from_key(cache.keys.account_key(token)).name
        if len(by_node.setdefault(node, [])) < per_node:
            by_node[node].append(token)
    assert len(by_node) == 3
    return funded_cards([token for tokens in by_node.values() for token in tokens])


def funded_cards(tokens: list[str]) -> list:
    cards = [CardFactory(cardholder__token=token) for token in tokens]
    for card in cards:
        deposit_funds(
            cardholder=card.cardholder, amount_minor=1_000, idempotency_key=card.token, actor="t"
        )
        put_in_cache(card)
    return cards


def test_given_cluster_when_cardholders_on_all_nodes_authorize_then_same_results_as_single(
    client, marqeta_auth, redis_cluster
):
    # given: four cardholders on each of the three nodes
    cards = cards_on_every_node("user_c", per_node=4)
    # when: each spends 6.00 twice (the second is declined) and replays the first
    statuses = []
    for card in cards:
        for token, amount in ((f"{card.token}-1", "6.00"), (f"{card.token}-2", "6.00"),
                              (f"{card.token}-1", "6.00")):  # fmt: skip
            body = jit_body(card, token=token, amount=amount)
            statuses.append(
                client.post("/jit/marqeta/", body, content_type=JSON, **marqeta_auth).status_code
            )
    drain_outbox()
    # then
    assert len(cards) == 12
    assert statuses == [200, 402, 200] * len(cards)
    assert JitDecision.objects.filter(outcome="approved").count() == len(cards)
    for card in cards:
        assert cache.cached_available(user_token=card.cardholder.token) == 400
    assert_ledger_consistent()


# --- two web processes on the cluster against one process on a single Redis ------------------

# Per card, 10.00 deposited: (JIT token suffix, amount, method, original token suffix).
WORKLOAD = [
    ("a", "6.00", "pgfs.authorization", None),  # approved, 4.00 left
    ("b", "6.00", "pgfs.authorization", None),  # declined: insufficient funds
    ("a", "6.00", "pgfs.authorization", None),  # Marqeta's retry: the first answer
    ("a-incr", "3.00", "pgfs.authorization.incremental", "a"),  # approved, 1.00 left
    ("a-rev", "2.00", "pgfs.authorization.reversal", "a"),  # advice: 3.00 back
    ("c", "3.00", "pgfs.authorization", None),  # approved, 0.00 left
    ("b", "1.00", "pgfs.authorization", None),  # the declined token, another amount: 409
    ("d", "0.01", "pgfs.authorization", None),  # declined
]


def workload(card, step: int) -> str:
    suffix, amount, method, original = WORKLOAD[step]
    return jit_body(
        card, token=f"{card.token}-{suffix}", amount=amount, method=method,
        original=f"{card.token}-{original}" if original else None,
    )  # fmt: skip


def outcome(cards: list) -> dict:
    """What the platform shows once the ledger writer has caught up, per card index."""
    drain_outbox()
    wallets = [funding_account_for(cardholder=card.cardholder).wallet for card in cards]
    balances = [wallet_balances(wallet=wallet) for wallet in wallets]
    tokens = [card.cardholder.token for card in cards]
    return {
        "cached": [cache.cached_available(user_token=token) for token in tokens],
        "ledger": [(b.available_minor, b.pending_minor) for b in balances],
        "decisions": [
            sorted(JitDecision.objects.filter(user_token=token).values_list("outcome", "op"))
            for token in tokens
        ],
    }


def run_single(client, marqeta_auth) -> tuple[list[int], dict]:
    """The workload through one process (this one) on the suite's single Redis."""
    cards = funded_cards([f"user_s{n}" for n in range(6)])
    statuses = [
        client.post("/jit/marqeta/", workload(card, step), content_type=JSON, **marqeta_auth)
        for step in range(len(WORKLOAD))
        for card in cards
    ]
    return [response.status_code for response in statuses], outcome(cards)


def run_split(urls: list[str], marqeta_auth: dict) -> tuple[list[int], dict]:
    """The same workload through the web processes, each card's steps alternating between
    them, so every step after the first reads what the other process wrote."""
    cards = cards_on_every_node("user_w", per_node=2)
    headers = {"Authorization": marqeta_auth["HTTP_AUTHORIZATION"], "Content-Type": JSON}
    statuses = []
    with httpx.Client(timeout=10) as http:
        for step in range(len(WORKLOAD)):
            for index, card in enumerate(cards):
                url = urls[(step + index) % len(urls)] + "/jit/marqeta/"
                statuses.append(http.post(url, content=workload(card, step), headers=headers))
    return [response.status_code for response in statuses], outcome(cards)


@pytest.mark.django_db(transaction=True)  # the web processes read the committed cards
def test_given_two_web_processes_on_the_cluster_when_a_workload_is_split_then_same_as_single(
    client, marqeta_auth, tmp_path
):
    # given: the single-Redis reference, through this process
    single_statuses, single = run_single(client, marqeta_auth)
    # when: the same workload through two gunicorn processes on a 3-node cluster
    with running_cluster(tmp_path / "cluster") as ports, gateway_on_cluster(ports):
        environment = {
            **process_env(),  # the test database; TEST_REDIS_URL: the cluster
            "JIT_REDIS_CLUSTER": "true",
            "JIT_STANDIN_SPOOL": str(tmp_path / "standin.jsonl"),
        }
        with web_processes(2, environment, tmp_path) as urls:
            split_statuses, split = run_split(urls, marqeta_auth)
    # then
    assert single_statuses[:6] == [200] * 6  # the workload does what its comments say
    assert set(single_statuses) == {200, 402, 409}
    assert split_statuses == single_statuses
    assert split == single
    assert single["cached"] == [0] * 6
    assert_ledger_consistent()
