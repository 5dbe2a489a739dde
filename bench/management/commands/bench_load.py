"""Load the bench Redis DB from the (cloned) bench database, and write the load generator's
inputs: the JIT body template, the user/card lists, the Basic auth header, the start state.

Redis gets what `rebuild_balance_cache` would give a ledger with no decisions yet: every
wallet's available balance, every card's record, the decision script. The 10,000 cold cards
share one record except for the user token, so the record is computed once with
`card_cache_record`, checked against `card_cache_record` on a sample of cards, and written with
one pipeline instead of 10,000 ORM round trips (the hot and drain cards go through
`jit.sync.push_cards` itself).
"""

from __future__ import annotations

import base64
import copy
import json
import random
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bench import population
from cards.controls import card_cache_record
from cards.models import Card
from jit import cache, keys
from jit.redis_client import maintenance_redis
from jit.sync import push_cards
from ledger.models import Wallet

FIXTURE = Path(settings.BASE_DIR) / "tests" / "fixtures" / "marqeta" / "jit_authorization.json"
SAMPLE = 25


USER, CARD, JIT, TXN, AMOUNT = "@@USER@@", "@@CARD@@", "@@JIT@@", "@@TXN@@", "@@AMOUNT@@"


def body_template() -> str:
    """MARQETA.md Example 1 (the test fixture), with markers the wrk script fills in."""
    body = copy.deepcopy(json.loads(FIXTURE.read_text()))
    body.update(user_token=USER, acting_user_token=USER, card_token=CARD, token=TXN)
    body["gpa_order"]["user_token"] = USER
    funding = body["gpa_order"]["jit_funding"]
    funding.update(token=JIT, user_token=USER, acting_user_token=USER, amount=AMOUNT)
    funding["method"] = "pgfs.authorization"
    funding.pop("original_jit_funding_token", None)
    return json.dumps(body).replace(f'"{AMOUNT}"', AMOUNT)


class Command(BaseCommand):
    help = "Flush the bench Redis DB, load it from the bench database, write wrk inputs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", default=str(Path(settings.BASE_DIR) / "var/bench/run"))

    def handle(self, *args: Any, out: str, **options: Any) -> None:
        if "bench" not in settings.DATABASES["default"]["NAME"]:
            raise CommandError("bench_load runs with config.settings.bench only")
        client = maintenance_redis()
        client.flushdb()  # settings.bench refuses Redis DB 0-8
        accounts = self._accounts(client)
        cards = self._cards(client)
        cache.load_scripts()
        self._inputs(Path(out))
        self.stdout.write(f"redis DB loaded: {accounts} accounts, {cards} cards")

    def _accounts(self, client: Any) -> int:
        rows = Wallet.objects.values_list(
            "holder_token", "currency_code", "available__balance_minor"
        )
        pipe = client.pipeline(transaction=False)
        for user, currency, available in rows.iterator(chunk_size=5_000):
            pipe.hset(
                keys.account_key(user), mapping={"available": available, "currency": currency}
            )
        return len(pipe.execute())

    def _cards(self, client: Any) -> int:
        special = [population.HOT_CARD, population.DRAIN_CARD]
        push_cards(card_ids=Card.objects.filter(token__in=special).values_list("pk", flat=True))
        cold = list(
            Card.objects.exclude(token__in=special)
            .select_related("cardholder__program")
            .order_by("pk")
        )
        template = card_cache_record(card=cold[0])
        for card in random.sample(cold, min(SAMPLE, len(cold))):
            expected = {**template, "user": card.cardholder.token}
            if card_cache_record(card=card) != expected:
                raise CommandError(f"card {card.token}: its record differs from the template")
        pipe = client.pipeline(transaction=False)
        for card in cold:
            key = keys.card_key(card.cardholder.token, card.token)
            pipe.delete(key)
            pipe.hset(key, mapping={**template, "user": card.cardholder.token})
        pipe.execute()
        return len(cold) + len(special)

    def _inputs(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "body.json").write_text(body_template())
        cold = Card.objects.exclude(
            token__in=[population.HOT_CARD, population.DRAIN_CARD]
        ).values_list("cardholder__token", "token")
        (out / "users-cold.txt").write_text("".join(f"{u} {c}\n" for u, c in cold))
        (out / "users-hot.txt").write_text(f"{population.HOT_USER} {population.HOT_CARD}\n")
        (out / "users-drain.txt").write_text(f"{population.DRAIN_USER} {population.DRAIN_CARD}\n")
        credentials = f"{settings.MARQETA_JIT_USERNAME}:{settings.MARQETA_JIT_PASSWORD}"
        (out / "auth.txt").write_text("Basic " + base64.b64encode(credentials.encode()).decode())
        users = (population.HOT_USER, population.DRAIN_USER)
        wallets = Wallet.objects.select_related("available").filter(holder_token__in=users)
        state = {
            "available": {user: cache.cached_available(user_token=user) for user in users},
            "ledger": {wallet.holder_token: wallet.available.balance_minor for wallet in wallets},
        }
        (out / "start.json").write_text(json.dumps(state))
