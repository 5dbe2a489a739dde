"""The bench population: names, amounts, and the seeding that creates it through the services.

One program, one hot cardholder with a huge balance, one small "drain" cardholder for the
overspend check, and `COLD` cold cardholders with a card and a deposit each. Everything is
created by `cards.services` (the ledger postings included); only the Redis pushes the commit
hooks would make are switched off while seeding, because the cache is loaded afterwards, per
run, from the cloned database (`bench_load`).
"""

from __future__ import annotations

from multiprocessing import get_context

from django.db import connections

PROGRAM = "bench"
CURRENCY = "USD"
COLD = 10_000
HOT_USER, HOT_CARD = "bench_hot", "bench_hot_card"
HOT_DEPOSIT_MINOR = 10**12  # 10 billion USD: never runs out; 13 digits stay exact in Lua
DRAIN_USER, DRAIN_CARD = "bench_drain", "bench_drain_card"
DRAIN_DEPOSIT_MINOR = 500_00  # 500.00: exactly 500 approvals of 1.00
COLD_DEPOSIT_MINOR = 1_000_00


def cold_user(number: int) -> str:
    return f"bench_u{number:05d}"


def cold_card(number: int) -> str:
    return f"bench_c{number:05d}"


def _quiet_cache_hooks() -> None:
    """No Redis pushes while seeding the template database (bench_load fills Redis later)."""
    from cards.signals import card_config_changed
    from ledger.signals import available_changed, wallet_opened

    card_config_changed.disconnect(dispatch_uid="jit.cache.card_config_changed")
    available_changed.disconnect(dispatch_uid="jit.cache.available_changed")
    wallet_opened.disconnect(dispatch_uid="jit.cache.wallet_opened")


def _holder(program: object, user: str, card: str, deposit_minor: int) -> None:
    from cards import services

    cardholder = services.create_cardholder(program=program, token=user)
    services.create_card(cardholder=cardholder, token=card)
    services.deposit_funds(
        cardholder=cardholder,
        amount_minor=deposit_minor,
        idempotency_key=f"bench-seed:{user}",
        actor="bench-seed",
    )


def _seed_cold(numbers: range) -> int:
    from cards.models import Program

    _quiet_cache_hooks()
    program = Program.objects.get(name=PROGRAM)
    for number in numbers:
        _holder(program, cold_user(number), cold_card(number), COLD_DEPOSIT_MINOR)
    connections.close_all()
    return len(numbers)


def seed(*, cold: int = COLD, processes: int = 2) -> int:
    """Create the population (in `processes` parallel processes); returns the cardholders."""
    from cards import services

    _quiet_cache_hooks()
    program = services.create_program(name=PROGRAM, currency_code=CURRENCY, timezone_name="UTC")
    _holder(program, HOT_USER, HOT_CARD, HOT_DEPOSIT_MINOR)
    _holder(program, DRAIN_USER, DRAIN_CARD, DRAIN_DEPOSIT_MINOR)
    connections.close_all()  # never share a connection with the forked children
    step = -(-cold // processes)
    slices = [range(start, min(start + step, cold)) for start in range(0, cold, step)]
    with get_context("fork").Pool(processes) as pool:
        created = sum(pool.map(_seed_cold, slices))
    return created + 2
