"""Reads of card-domain state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet

from cards.errors import (
    CardholderNotFound,
    CardNotFound,
    InvalidMccGroup,
    InvalidScope,
    NoProgram,
)
from cards.models import (
    Card,
    Cardholder,
    FallbackPolicy,
    FraudRule,
    FundingAccount,
    MccGroup,
    Program,
    Scope,
    SpendControl,
    VelocityLimit,
)
from ledger.selectors import Balances, wallet_balances

M = TypeVar("M", bound=Model)


def _by_token(rows: QuerySet[M], token: str) -> M:
    """`rows.get(token=token)`; a token with a NUL finds nothing (PostgreSQL text has no NUL,
    and asking for one is an error, not a miss)."""
    if "\x00" in token:
        raise rows.model.DoesNotExist
    return rows.get(token=token)


def cardholder_by_token(*, token: str) -> Cardholder:
    try:
        return _by_token(Cardholder.objects.select_related("program"), token)
    except Cardholder.DoesNotExist:
        raise CardholderNotFound(f"no cardholder {token!r}", token=token) from None


def card_by_token(*, token: str) -> Card:
    try:
        return _by_token(Card.objects.select_related("cardholder__program"), token)
    except Card.DoesNotExist:
        raise CardNotFound(f"no card {token!r}", token=token) from None


def funding_account_for(*, cardholder: Cardholder) -> FundingAccount:
    """The cardholder's funding account in the program's currency."""
    return FundingAccount.objects.select_related(
        "wallet__book__funding_bank",
        "wallet__book__settlement_payable",
        "wallet__book__adjustments",
        "wallet__available",
        "wallet__held",
    ).get(cardholder=cardholder, currency_code=cardholder.program.currency_code)


def cardholder_balances(*, cardholder: Cardholder) -> Balances:
    """Balances as the ledger knows them."""
    return wallet_balances(wallet=funding_account_for(cardholder=cardholder).wallet)


def hold_expiry_days(*, program: Program, mcc: str) -> int:
    """Days a hold for this MCC lives: the longest matching MCC-group override, else default."""
    overrides = [
        group.hold_expiry_days
        for group in program.mcc_groups.all()
        if group.hold_expiry_days and mcc in group.mccs
    ]
    return max(overrides, default=program.default_hold_expiry_days)


def hold_expires_at(*, program: Program, mcc: str, authorized_at: datetime) -> datetime:
    return authorized_at + timedelta(days=hold_expiry_days(program=program, mcc=mcc))


def default_program() -> Program:
    """The program API-created cardholders join: the first one (one program per deployment)."""
    program = Program.objects.select_related("book").order_by("pk").first()
    if program is None:
        raise NoProgram("no program is configured: run `manage.py seed_demo` or add one in admin")
    return program


# --- spend controls, velocity limits, fraud rules, fallback --------------------------------

ScopeObj = Program | Cardholder | Card
SCOPE_MODELS: dict[str, type[ScopeObj]] = {
    Scope.PROGRAM: Program,
    Scope.CARDHOLDER: Cardholder,
    Scope.CARD: Card,
}


def scope_filter(*, scope_obj: ScopeObj) -> dict[str, ScopeObj]:
    """`{"card": card}` for a card, and so on: the lookup of the scope's controls and limits."""
    for scope, model in SCOPE_MODELS.items():
        if isinstance(scope_obj, model) and scope_obj.pk is not None:
            return {scope: scope_obj}
    raise InvalidScope(f"{scope_obj!r} is not a saved program, cardholder or card")


def program_of(*, scope_obj: ScopeObj) -> Program:
    if isinstance(scope_obj, Card):
        return scope_obj.cardholder.program
    if isinstance(scope_obj, Cardholder):
        return scope_obj.program
    return scope_obj


def card_ids_for_scope(
    *,
    program: Program | None = None,
    cardholder: Cardholder | None = None,
    card: Card | None = None,
) -> list[int]:
    """The cards a change to one program, cardholder or card applies to, in pk order."""
    given = [scope_obj for scope_obj in (program, cardholder, card) if scope_obj is not None]
    if len(given) != 1:
        raise InvalidScope("name exactly one of program, cardholder or card")
    if card is not None:
        return [card.pk]
    cards = Card.objects.filter(
        **({"cardholder": cardholder} if cardholder else {"cardholder__program": program})
    )
    return list(cards.order_by("pk").values_list("pk", flat=True))


def _scopes_of(card: Card) -> Q:
    return (
        Q(program_id=card.cardholder.program_id)
        | Q(cardholder_id=card.cardholder_id)
        | Q(card_id=card.pk)
    )


def spend_controls_for(*, card: Card) -> list[SpendControl]:
    """The program's, the cardholder's and the card's own spend control, those that exist."""
    return list(
        SpendControl.objects.filter(_scopes_of(card))
        .prefetch_related("mcc_groups_allow", "mcc_groups_block")
        .order_by("pk")
    )


def velocity_limits_for(*, card: Card) -> list[VelocityLimit]:
    """Every active limit of the card's program, cardholder and card: all of them apply."""
    return list(VelocityLimit.objects.filter(_scopes_of(card), active=True).order_by("pk"))


def spend_control_of(*, scope_obj: ScopeObj) -> SpendControl | None:
    """The scope's own spend control (not the effective one), if it has one."""
    return (
        SpendControl.objects.filter(**scope_filter(scope_obj=scope_obj))
        .prefetch_related("mcc_groups_allow", "mcc_groups_block")
        .first()
    )


def velocity_limits_of(*, scope_obj: ScopeObj) -> list[VelocityLimit]:
    """The scope's own limits, inactive ones included."""
    return list(VelocityLimit.objects.filter(**scope_filter(scope_obj=scope_obj)).order_by("pk"))


def mcc_groups_by_name(*, program: Program, names: Iterable[str]) -> list[MccGroup]:
    """The program's MCC groups with these names; an unknown name is refused."""
    wanted = set(names)
    groups = list(MccGroup.objects.filter(program=program, name__in=wanted).order_by("name"))
    if missing := wanted - {group.name for group in groups}:
        raise InvalidMccGroup(
            f"no MCC group {', '.join(sorted(missing))} in program {program.name}",
            names=sorted(missing),
        )
    return groups


def fraud_rules_in_force(*, program: Program) -> list[FraudRule]:
    """The program's rules that are on or in shadow mode, in pk order."""
    return list(program.fraud_rules.exclude(mode=FraudRule.Mode.OFF).order_by("pk"))


def fallback_policy_for(*, program: Program) -> FallbackPolicy:
    """The program's fallback policy; the defaults (DECLINE_ALL) until ops set one."""
    return FallbackPolicy.objects.filter(program=program).first() or FallbackPolicy(program=program)


def remaining_limits(
    *, card: Card, usage: Mapping[tuple[str, str], tuple[int, int]]
) -> list[dict[str, Any]]:
    """Each limit that applies to the card with what is used and left in its current window.

    `usage` maps (counter, window), e.g. ("user", "day"), to (amount_minor, count) used so far;
    a missing key means nothing used. Remaining never goes below zero; None where no max.
    """

    def left(maximum: int | None, used: int) -> int | None:
        return None if maximum is None else max(maximum - used, 0)

    rows = []
    for limit in sorted(velocity_limits_for(card=card), key=lambda limit: limit.key):
        used_amount, used_count = usage.get((limit.counter, limit.window), (0, 0))
        rows.append(
            {
                "id": limit.key,
                "scope": limit.scope,
                "window": limit.window,
                "max_amount": limit.max_amount_minor,
                "used_amount": used_amount,
                "remaining_amount": left(limit.max_amount_minor, used_amount),
                "max_count": limit.max_count,
                "used_count": used_count,
                "remaining_count": left(limit.max_count, used_count),
            }
        )
    return rows
