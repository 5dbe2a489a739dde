"""How long and how hard each scenario runs: a fast profile for `make test`, a full one for
`make reliability`, every figure overridable from the environment (`RELIABILITY_<FIELD>`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

FULL_ENV = "RELIABILITY_FULL"  # "1": the long variants (tests marked slow) are collected too


@dataclass(frozen=True, slots=True)
class Profile:
    """Durations in seconds, rates in requests per second, counts of things."""

    name: str
    traffic_rate: float  # the JIT traffic a fault scenario runs under
    traffic_seconds: float
    pg_outage_seconds: float  # PostgreSQL stopped while authorizations continue
    redis_outage_seconds: float
    latency_seconds: float  # the slowed network to Redis
    writer_burst: int  # decisions queued before the ledger writer is killed mid-batch
    clearing_lines: int  # lines of the clearing file the Celery worker is killed in
    load_rate: float  # sustained load: half the measured peak on this machine in `full`
    load_seconds: float
    load_hot_share: float  # of the sustained load, the share on the one hot account
    sample_seconds: float  # how often memory and outbox lag are sampled under load


FAST = Profile(
    name="fast",
    traffic_rate=40,
    traffic_seconds=3,
    pg_outage_seconds=3,
    redis_outage_seconds=2,
    latency_seconds=2,
    writer_burst=300,
    clearing_lines=100,
    load_rate=100,
    load_seconds=8,
    load_hot_share=0.2,
    sample_seconds=2,
)
FULL = Profile(
    name="full",
    traffic_rate=100,
    traffic_seconds=20,
    pg_outage_seconds=60,
    redis_outage_seconds=10,
    latency_seconds=10,
    writer_burst=2_000,
    clearing_lines=600,
    load_rate=650,
    load_seconds=180,
    load_hot_share=0.2,
    sample_seconds=10,
)


def from_env(profile: Profile) -> Profile:
    """`profile` with any `RELIABILITY_<FIELD>` of the environment applied (numbers only)."""
    changes: dict[str, float | int] = {}
    for field in fields(profile):
        raw = os.environ.get(f"RELIABILITY_{field.name.upper()}")
        if raw and field.name != "name":
            changes[field.name] = type(getattr(profile, field.name))(float(raw))
    return replace(profile, **changes)


def full_requested() -> bool:
    return os.environ.get(FULL_ENV) == "1"
