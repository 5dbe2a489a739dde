"""Drift check: does each cached available balance equal the ledger's, once in-flight
decisions (in the outbox, not yet written) are counted?

cache = ledger + effect of the events still in the outbox - moves the ledger made that Redis
has not taken yet (`jit.pushes`). A difference seen twice in a row,
with the same value, is drift (a single reading can race the ledger writer).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import simplejson

from jit import cache, keys, selectors
from jit.methods import Op
from jit.redis_client import maintenance_redis
from ledger.models import Wallet


@dataclass(frozen=True, slots=True)
class Drift:
    user_token: str
    currency_code: str
    cached_minor: int | None
    expected_minor: int

    @property
    def difference_minor(self) -> int | None:
        return None if self.cached_minor is None else self.cached_minor - self.expected_minor


def in_flight_effects() -> dict[str, int]:
    """user_token -> how much the cache already moved for events the ledger has not seen."""
    effects: dict[str, int] = defaultdict(int)
    client = maintenance_redis()
    for stream in keys.all_outbox_keys():
        for _, fields in client.xrange(stream):
            user = simplejson.loads(fields.get("meta") or "{}").get("user", "")
            if fields["outcome"] == "approved" and fields["op"] in (Op.AUTH, Op.STANDIN):
                effects[user] -= int(fields["amount"])
            elif fields.get("extra", "").lstrip("-").isdigit():
                effects[user] += int(fields["extra"])  # the advice's delta on the cache
    return effects


def _readings() -> dict[str, Drift]:
    effects = in_flight_effects()
    for user, delta in selectors.pending_deltas().items():
        effects[user] -= delta
    readings = {}
    for wallet in Wallet.objects.select_related("available").iterator(chunk_size=2_000):
        user = wallet.holder_token
        expected = wallet.available.balance_minor + effects.get(user, 0)
        drift = Drift(user, wallet.currency_code, cache.cached_available(user_token=user), expected)
        if drift.difference_minor != 0:
            readings[user] = drift
    return readings


def find_drift(*, settle_seconds: float = 2.0) -> list[Drift]:
    """Accounts whose cache and ledger disagree by the same amount in two readings."""
    first = _readings()
    if not first:
        return []
    time.sleep(settle_seconds)
    second = _readings()
    return [
        drift
        for user, drift in second.items()
        if user in first and first[user].difference_minor == drift.difference_minor
    ]
