"""Redis key layout of the balance cache. Every key of one decision shares a partition tag.

The partition is `crc32(user_token) mod PARTITIONS`, so a cardholder's account, cards, holds,
velocity counters and the partition's outbox stream live in one Redis Cluster slot and one Lua
script can touch them all. PARTITIONS is fixed: changing it moves every key.
"""

from __future__ import annotations

import zlib

PARTITIONS = 64


def partition(user_token: str) -> int:
    return zlib.crc32(user_token.encode()) % PARTITIONS


def tag(user_token: str) -> str:
    return f"{{p{partition(user_token)}}}"


def account_key(user_token: str) -> str:
    return f"{tag(user_token)}:acct:{user_token}"


def card_key(user_token: str, card_token: str) -> str:
    return f"{tag(user_token)}:card:{card_token}"


def idempotency_key(user_token: str, jit_token: str) -> str:
    return f"{tag(user_token)}:idem:{jit_token}"


def hold_key(user_token: str, jit_token: str) -> str:
    return f"{tag(user_token)}:hold:{jit_token}"


def user_velocity_key(user_token: str) -> str:
    return f"{tag(user_token)}:vel:u:{user_token}"


def card_velocity_key(user_token: str, card_token: str) -> str:
    return f"{tag(user_token)}:vel:c:{card_token}"


def burst_key(user_token: str, card_token: str) -> str:
    return f"{tag(user_token)}:burst:{card_token}"


def stats_key(user_token: str, card_token: str) -> str:
    return f"{tag(user_token)}:stats:{card_token}"


def applied_key(user_token: str, ledger_key: str) -> str:
    """Marks a ledger posting as already reflected in the cached balance."""
    return f"{tag(user_token)}:applied:{ledger_key}"


def outbox_key(partition_number: int) -> str:
    return f"{{p{partition_number}}}:outbox"


def all_outbox_keys() -> list[str]:
    return [outbox_key(number) for number in range(PARTITIONS)]
