"""The only writers of card-domain state."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any, NotRequired, TypedDict, Unpack
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.db import IntegrityError, transaction
from django.db.models import BooleanField, CharField, JSONField, Model, TextField

from cards.errors import (
    CardholderClosed,
    CardholderNotActive,
    CardTerminated,
    InvalidChannel,
    InvalidCommandoModeRecord,
    InvalidCountry,
    InvalidFallbackPolicy,
    InvalidFraudRule,
    InvalidLimit,
    InvalidMcc,
    InvalidMccGroup,
    InvalidRuleParams,
    InvalidTimezone,
    InvalidWindow,
    TokenTaken,
    VelocityLimitNotFound,
)
from cards.models import (
    COUNTRY_RE,
    FALLBACK_BREAKER_FAILURES,
    FALLBACK_BREAKER_RESET_SECONDS,
    FALLBACK_DEADLINE_MS,
    FRAUD_PARAM_KEYS,
    MCC_RE,
    Card,
    Cardholder,
    Channel,
    CommandoModeRecord,
    FallbackMode,
    FallbackPolicy,
    FraudAction,
    FraudKind,
    FraudMode,
    FraudRule,
    FundingAccount,
    MccGroup,
    Program,
    SpendControl,
    VelocityLimit,
    VelocityWindow,
)
from cards.selectors import (
    ScopeObj,
    card_ids_for_scope,
    fallback_policy_for,
    funding_account_for,
    program_of,
    scope_filter,
    velocity_limits_of,
)
from cards.signals import announce_card_config_change
from config.errors import DomainError, InvalidAmount
from ledger import services as ledger
from ledger.audit import audited, record_audit_event, snapshot
from ledger.errors import ReasonRequired
from ledger.models import LedgerTransaction
from ledger.money import MAX_MINOR, currency_exponent

CARD_LIFETIME_YEARS = 4

Actor = AbstractBaseUser | AnonymousUser | None


@transaction.atomic
def create_program(
    *,
    name: str,
    currency_code: str,
    timezone_name: str = "UTC",
    default_hold_expiry_days: int = 7,
) -> Program:
    """A program with its own books (funding bank, settlement payable, adjustments)."""
    currency_exponent(currency_code)  # UnknownCurrency
    check_timezone(timezone_name)
    return Program.objects.create(
        name=name,
        currency_code=currency_code,
        timezone=timezone_name,
        default_hold_expiry_days=default_hold_expiry_days,
        book=ledger.open_book(name=name, currency_code=currency_code),
    )


def check_timezone(timezone_name: str) -> None:
    try:
        ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidTimezone(f"{timezone_name!r} is not an IANA timezone") from None


@transaction.atomic
def update_program(
    *,
    program: Program,
    actor: Actor,
    reason: str,
    name: str,
    timezone_name: str,
    default_hold_expiry_days: int,
) -> Program:
    """Rename a program or change its timezone (calendar limits follow it) or hold expiry."""
    reason = reason_for(actor=actor, reason=reason)
    check_timezone(timezone_name)
    program = Program.objects.select_for_update().get(pk=program.pk)
    moved = program.timezone != timezone_name
    with audited(target=program, actor=actor, action="update_program", reason=reason):
        program.name, program.timezone = name, timezone_name
        program.default_hold_expiry_days = default_hold_expiry_days
        program.save(update_fields=["name", "timezone", "default_hold_expiry_days"])
    if moved:
        announce_card_config_change(card_ids=card_ids_for_scope(program=program))
    return program


@transaction.atomic
def set_mcc_group(
    *, program: Program, name: str, mccs: list[str], hold_expiry_days: int | None = None
) -> MccGroup:
    """Create or replace a named MCC group of the program."""
    group, _ = MccGroup.objects.update_or_create(
        program=program,
        name=name,
        defaults={
            "mccs": clean_mccs(mccs),
            "hold_expiry_days": hold_expiry_days,
        },
    )
    announce_mcc_groups_changed(program=program)
    return group


def announce_mcc_groups_changed(*, program: Program) -> None:
    """Controls name MCC groups and are compiled with the groups' MCCs expanded."""
    announce_card_config_change(card_ids=card_ids_for_scope(program=program))


def _new_token(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


@transaction.atomic
def create_cardholder(
    *,
    program: Program,
    token: str | None = None,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
) -> Cardholder:
    """A cardholder and their funding account (a ledger wallet) in the program's currency."""
    token = token or _new_token("user")
    try:
        with transaction.atomic():
            cardholder = Cardholder.objects.create(
                program=program,
                token=token,
                first_name=first_name,
                last_name=last_name,
                email=email,
            )
    except IntegrityError:
        raise TokenTaken(f"cardholder token {token!r} is already in use", token=token) from None
    FundingAccount.objects.create(
        cardholder=cardholder,
        currency_code=program.currency_code,
        wallet=ledger.open_wallet(book=program.book, holder_token=token),
    )
    return cardholder


def _expiry_date(today: date) -> date:
    return today.replace(year=today.year + CARD_LIFETIME_YEARS, day=1)


@transaction.atomic
def create_card(
    *,
    cardholder: Cardholder,
    token: str | None = None,
    last_four: str | None = None,
    expires_on: date | None = None,
) -> Card:
    """A new card, ACTIVE and usable at once."""
    if cardholder.status != Cardholder.Status.ACTIVE:
        raise CardholderNotActive(f"cardholder {cardholder.token} is {cardholder.status}")
    token = token or _new_token("card")
    try:
        with transaction.atomic():
            card = Card.objects.create(
                cardholder=cardholder,
                token=token,
                last_four=last_four or f"{secrets.randbelow(10_000):04d}",
                expires_on=expires_on or _expiry_date(date.today()),  # noqa: DTZ011
            )
    except IntegrityError:
        raise TokenTaken(f"card token {token!r} is already in use", token=token) from None
    announce_card_config_change(card_ids=[card.pk])  # usable at the gateway once committed
    return card


def deposit_funds(
    *, cardholder: Cardholder, amount_minor: int, idempotency_key: str, actor: str
) -> LedgerTransaction:
    """Load money for the cardholder; the same key again returns the first deposit."""
    if cardholder.status == Cardholder.Status.CLOSED:
        raise CardholderNotActive(f"cardholder {cardholder.token} is closed")
    return ledger.deposit(
        wallet=funding_account_for(cardholder=cardholder).wallet,
        amount_minor=amount_minor,
        idempotency_key=idempotency_key,
        actor=actor,
    )


@transaction.atomic
def set_card_state(
    *, card: Card, state: Card.State, actor: AbstractBaseUser | None, reason: str
) -> Card:
    """Suspend, reactivate or terminate a card; audited. Terminated is final."""
    card = Card.objects.select_for_update().get(pk=card.pk)
    if card.state == Card.State.TERMINATED and state != Card.State.TERMINATED:
        raise CardTerminated(f"card {card.token} is terminated")
    with audited(target=card, actor=actor, action="set_card_state", reason=reason):
        card.state = state
        card.save(update_fields=["state"])
    announce_card_config_change(card_ids=[card.pk])
    return card


@transaction.atomic
def set_cardholder_status(
    *, cardholder: Cardholder, status: Cardholder.Status, actor: Actor, reason: str
) -> Cardholder:
    """Suspend, reactivate or close a cardholder (all their cards follow); audited.

    Closed is final.
    """
    reason = reason_for(actor=actor, reason=reason)
    if status not in Cardholder.Status.values:
        raise ValueError(f"{status!r} is not a cardholder status")
    cardholder = Cardholder.objects.select_for_update().get(pk=cardholder.pk)
    if cardholder.status == Cardholder.Status.CLOSED and status != Cardholder.Status.CLOSED:
        raise CardholderClosed(f"cardholder {cardholder.token} is closed")
    with audited(target=cardholder, actor=actor, action="set_cardholder_status", reason=reason):
        cardholder.status = status
        cardholder.save(update_fields=["status"])
    announce_card_config_change(card_ids=card_ids_for_scope(cardholder=cardholder))
    return cardholder


# --- spend controls, velocity limits, fraud rules, fallback --------------------------------
# Each `set_*` validates (the `validate_*`/`clean_*` functions, also called by the admin
# forms' clean()), locks the scope's row so changes to one scope queue, writes the row and its
# audit event, and announces the cards whose cache records changed once the change commits.

MAX_COUNT = 2**31 - 1  # PositiveIntegerField


class SpendControlFields(TypedDict, total=False):
    max_transaction_minor: int | None
    mcc_allow: list[str]
    mcc_block: list[str]
    mcc_groups_allow: list[MccGroup]
    mcc_groups_block: list[MccGroup]
    blocked_countries: list[str]
    allowed_channels: list[str]


class VelocityLimitFields(TypedDict):
    window: str
    max_amount_minor: NotRequired[int | None]
    max_count: NotRequired[int | None]
    active: NotRequired[bool]


class FallbackPolicyFields(TypedDict, total=False):
    mode: str
    standin_max_transaction_minor: int
    standin_max_daily_per_card_minor: int
    standin_allowed_mccs: list[str]
    deadline_ms: int
    redis_timeout_ms: int
    breaker_failure_threshold: int
    breaker_reset_seconds: int


class CommandoModeRecordFields(TypedDict, total=False):
    program_gateway_funding_source_token: str
    auth_controls: list[dict[str, Any]]
    velocity_controls: list[dict[str, Any]]
    real_time_standin_enabled: bool
    include_connection_errors: bool
    include_response_timeouts: bool
    include_application_errors: bool
    notes: str


def reason_for(*, actor: Actor, reason: str) -> str:
    """People say why they change configuration; the system may stay silent."""
    reason = (reason or "").strip()
    if not reason and getattr(actor, "is_authenticated", False):
        raise ReasonRequired("say why: the reason is kept in the audit log")
    return reason


def _only_known(fields: Iterable[str], allowed: type) -> None:
    if unknown := set(fields) - set(allowed.__annotations__):
        raise TypeError(f"unknown {allowed.__name__}: {', '.join(sorted(unknown))}")


def clean_whole(value: object, *, low: int, high: int, error: type[DomainError], what: str) -> int:
    """A whole number in [low, high]; bools and strings are refused, not coerced."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise error(f"{what} must be a whole number from {low} to {high}", value=str(value))
    return value


def clean_amount(value: int | None, *, what: str) -> int | None:
    """An optional positive amount in minor units."""
    if value is None:
        return None
    return clean_whole(value, low=1, high=MAX_MINOR - 1, error=InvalidAmount, what=what)


def clean_codes(
    values: Iterable[str], *, pattern: str, error: type[DomainError], what: str
) -> list[str]:
    """Upper-cased, de-duplicated and sorted codes, each matching `pattern`."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise error(f"a list of codes is required, each {what}", value=str(values))
    codes = set()
    for value in values:
        code = value.strip().upper() if isinstance(value, str) else ""
        if not re.fullmatch(pattern, code):
            raise error(f"{value!r} is not {what}", value=str(value))
        codes.add(code)
    return sorted(codes)


def clean_mccs(values: Iterable[str], *, error: type[DomainError] = InvalidMcc) -> list[str]:
    return clean_codes(values, pattern=MCC_RE, error=error, what="a 4-digit MCC")


def _clean_channels(values: Iterable[str]) -> list[str]:
    chosen = clean_codes(
        values,
        pattern="|".join(Channel.values),
        error=InvalidChannel,
        what=f"a channel ({', '.join(Channel.values)})",
    )
    return [channel for channel in Channel.values if channel in chosen]


def _clean_groups(values: Iterable[MccGroup], *, program: Program) -> list[MccGroup]:
    groups = list(values)
    for group in groups:
        if not isinstance(group, MccGroup) or group.program_id != program.pk:
            raise InvalidMccGroup(f"{group} is not an MCC group of program {program.name}")
    return sorted(set(groups), key=lambda group: group.name)


_SPEND_CONTROL_CLEANERS: dict[str, Callable[[Any, Program], Any]] = {
    "max_transaction_minor": lambda value, _: clean_amount(value, what="max_transaction_minor"),
    "mcc_allow": lambda value, _: clean_mccs(value),
    "mcc_block": lambda value, _: clean_mccs(value),
    "mcc_groups_allow": lambda value, program: _clean_groups(value, program=program),
    "mcc_groups_block": lambda value, program: _clean_groups(value, program=program),
    "blocked_countries": lambda value, _: clean_codes(
        value, pattern=COUNTRY_RE, error=InvalidCountry, what="an ISO alpha-3 country code"
    ),
    "allowed_channels": lambda value, _: _clean_channels(value),
}
NO_SPEND_CONTROL: SpendControlFields = {
    "max_transaction_minor": None,
    "mcc_allow": [],
    "mcc_block": [],
    "mcc_groups_allow": [],
    "mcc_groups_block": [],
    "blocked_countries": [],
    "allowed_channels": [],
}


def validate_spend_control(
    *, scope_obj: ScopeObj, **fields: Unpack[SpendControlFields]
) -> SpendControlFields:
    """The fields, normalized (codes upper-cased, de-duplicated, sorted), or a DomainError."""
    _only_known(fields, SpendControlFields)
    scope_filter(scope_obj=scope_obj)  # InvalidScope
    program = program_of(scope_obj=scope_obj)
    return {name: _SPEND_CONTROL_CLEANERS[name](value, program) for name, value in fields.items()}


@transaction.atomic
def set_spend_control(
    *, scope_obj: ScopeObj, actor: Actor, reason: str, **fields: Unpack[SpendControlFields]
) -> SpendControl:
    """Create or change the scope's spend control; fields not given keep their value."""
    reason = reason_for(actor=actor, reason=reason)
    cleaned = validate_spend_control(scope_obj=scope_obj, **fields)
    scope = _lock_scope(scope_obj)
    control = SpendControl.objects.filter(**scope).first() or SpendControl(**scope)
    _save_config(
        row=control,
        fields=cleaned,
        actor=actor,
        reason=reason,
        action="set_spend_control",
        announce_to=scope,
    )
    return control


def validate_velocity_limit(
    *,
    window: str,
    max_amount_minor: int | None = None,
    max_count: int | None = None,
    active: bool = True,
) -> dict[str, Any]:
    if window not in VelocityWindow.values:
        raise InvalidWindow(
            f"window must be one of {', '.join(VelocityWindow.values)}", window=str(window)
        )
    if max_amount_minor is None and max_count is None:
        raise InvalidLimit("a limit caps an amount, a count or both")
    if not isinstance(active, bool):
        raise InvalidLimit("active is true or false")
    return {
        "max_amount_minor": clean_amount(max_amount_minor, what="max_amount_minor"),
        "max_count": None
        if max_count is None
        else clean_whole(max_count, low=1, high=MAX_COUNT, error=InvalidLimit, what="max_count"),
        "active": active,
    }


@transaction.atomic
def set_velocity_limit(
    *,
    scope_obj: ScopeObj,
    window: str,
    actor: Actor,
    reason: str,
    max_amount_minor: int | None = None,
    max_count: int | None = None,
    active: bool = True,
) -> VelocityLimit:
    """Create or replace the scope's limit for `window` (one limit per scope and window)."""
    reason = reason_for(actor=actor, reason=reason)
    cleaned = validate_velocity_limit(
        window=window, max_amount_minor=max_amount_minor, max_count=max_count, active=active
    )
    scope = _lock_scope(scope_obj)
    limit = VelocityLimit.objects.filter(**scope, window=window).first() or VelocityLimit(
        **scope, window=window
    )
    _save_config(
        row=limit,
        fields=cleaned,
        actor=actor,
        reason=reason,
        action="set_velocity_limit",
        announce_to=scope,
    )
    return limit


@transaction.atomic
def remove_velocity_limit(*, limit: VelocityLimit, actor: Actor, reason: str) -> None:
    """Delete a limit; the audit event keeps what it was."""
    reason = reason_for(actor=actor, reason=reason)
    scope = _lock_scope(limit.scope_obj)
    locked = VelocityLimit.objects.filter(pk=limit.pk).first()
    if locked is None:
        raise VelocityLimitNotFound(f"no velocity limit {limit.pk}", id=limit.pk)
    record_audit_event(
        actor=actor,
        action="remove_velocity_limit",
        target=locked,
        reason=reason,
        before=_config_snapshot(locked),
        after=None,
    )
    locked.delete()
    announce_card_config_change(card_ids=card_ids_for_scope(**scope))


@transaction.atomic
def replace_card_controls(
    *,
    card: Card,
    actor: Actor,
    reason: str,
    control: SpendControlFields,
    limits: Sequence[VelocityLimitFields],
) -> None:
    """Make the card's own control and limits exactly these (all or nothing)."""
    windows = [limit.get("window") for limit in limits]
    if len(set(windows)) != len(windows):
        raise InvalidLimit("give at most one limit per window", windows=[str(w) for w in windows])
    set_spend_control(scope_obj=card, actor=actor, reason=reason, **{**NO_SPEND_CONTROL, **control})
    for limit in limits:
        set_velocity_limit(scope_obj=card, actor=actor, reason=reason, **limit)
    for existing in velocity_limits_of(scope_obj=card):
        if existing.window not in windows:
            remove_velocity_limit(limit=existing, actor=actor, reason=reason)


def _clean_rule_mccs(value: object) -> list[str]:
    mccs = clean_mccs(value, error=InvalidRuleParams)
    if not mccs:
        raise InvalidRuleParams("mccs lists at least one MCC")
    return mccs


def _clean_rule_country(value: object) -> str:
    what = "an ISO alpha-3 country code such as USA"
    [country] = clean_codes([value], pattern=COUNTRY_RE, error=InvalidRuleParams, what=what)
    return country


def _rule_whole(low: int, high: int, what: str) -> Callable[[object], int]:
    return lambda value: clean_whole(value, low=low, high=high, error=InvalidRuleParams, what=what)


# One check per param name; which names a kind takes is `FRAUD_PARAM_KEYS` (the DB checks it).
_RULE_PARAM_CHECKS: dict[str, Callable[[object], object]] = {
    "mccs": _clean_rule_mccs,
    "home_country": _clean_rule_country,
    "count": _rule_whole(1, 10_000, "count"),
    "seconds": _rule_whole(1, 3_600, "seconds"),  # decide.lua keeps one hour of attempts
    "amount_minor": _rule_whole(1, MAX_MINOR - 1, "amount_minor"),
    "multiple": _rule_whole(2, 1_000, "multiple"),
    "min_history": _rule_whole(1, 10_000, "min_history"),
}


def validate_rule_params(*, kind: str, params: object) -> dict[str, Any]:
    """The params `kind` takes, checked and normalized; `InvalidRuleParams` otherwise."""
    expected = FRAUD_PARAM_KEYS.get(kind)
    if expected is None:
        raise InvalidFraudRule(f"kind must be one of {', '.join(FraudKind.values)}", kind=kind)
    if not isinstance(params, dict):
        raise InvalidRuleParams(f"{kind} params are a JSON object", kind=kind)
    if set(params) != set(expected):
        wanted = ", ".join(expected) or "no params"
        raise InvalidRuleParams(f"{kind} takes {wanted}; got {', '.join(params) or 'none'}")
    return {key: _RULE_PARAM_CHECKS[key](params[key]) for key in expected}


def validate_fraud_rule(
    *, name: str, kind: str, mode: str, action: str, params: object
) -> dict[str, Any]:
    name = name.strip() if isinstance(name, str) else ""
    if not 1 <= len(name) <= FraudRule._meta.get_field("name").max_length:
        raise InvalidFraudRule("a fraud rule needs a name of 1 to 80 characters")
    if mode not in FraudMode.values:
        raise InvalidFraudRule(f"mode must be one of {', '.join(FraudMode.values)}", mode=mode)
    if action not in FraudAction.values:
        raise InvalidFraudRule(f"action must be one of {', '.join(FraudAction.values)}")
    params = validate_rule_params(kind=kind, params=params)
    return {"name": name, "kind": kind, "mode": mode, "action": action, "params": params}


@transaction.atomic
def set_fraud_rule(
    *,
    program: Program,
    name: str,
    kind: str,
    actor: Actor,
    reason: str,
    mode: str = FraudMode.SHADOW,
    action: str = FraudAction.DECLINE,
    params: dict[str, Any] | None = None,
) -> FraudRule:
    """Create or replace the program's rule called `name`. New rules start in shadow mode:
    evaluated and recorded, never declining, until ops turn them on."""
    reason = reason_for(actor=actor, reason=reason)
    cleaned = validate_fraud_rule(
        name=name, kind=kind, mode=mode, action=action, params={} if params is None else params
    )
    scope = _lock_scope(program)
    rule = FraudRule.objects.filter(program=program, name=cleaned["name"]).first() or FraudRule(
        program=program
    )
    _save_config(
        row=rule,
        fields=cleaned,
        actor=actor,
        reason=reason,
        action="set_fraud_rule",
        announce_to=scope,
    )
    return rule


@transaction.atomic
def set_fraud_rule_mode(*, rule: FraudRule, mode: str, actor: Actor, reason: str) -> FraudRule:
    """Turn a rule on, to shadow mode or off."""
    reason = reason_for(actor=actor, reason=reason)
    if mode not in FraudMode.values:
        raise InvalidFraudRule(f"mode must be one of {', '.join(FraudMode.values)}", mode=mode)
    scope = _lock_scope(rule.program)
    rule = FraudRule.objects.get(pk=rule.pk)
    _save_config(
        row=rule,
        fields={"mode": mode},
        actor=actor,
        reason=reason,
        action="set_fraud_rule_mode",
        announce_to=scope,
    )
    return rule


def validate_fallback_policy(
    *, program: Program, **fields: Unpack[FallbackPolicyFields]
) -> FallbackPolicyFields:
    """Every field of the policy as it would be with `fields` applied, checked together."""
    _only_known(fields, FallbackPolicyFields)
    current = fallback_policy_for(program=program)
    merged = {name: getattr(current, name) for name in FallbackPolicyFields.__annotations__}
    merged.update(fields)

    def whole(name: str, low: int, high: int) -> int:
        return clean_whole(merged[name], low=low, high=high, error=InvalidFallbackPolicy, what=name)

    if merged["mode"] not in FallbackMode.values:
        raise InvalidFallbackPolicy(f"mode must be one of {', '.join(FallbackMode.values)}")
    max_txn = whole("standin_max_transaction_minor", 0, MAX_MINOR - 1)
    if merged["mode"] == FallbackMode.APPROVE_UP_TO and max_txn == 0:
        raise InvalidFallbackPolicy("APPROVE_UP_TO needs a stand-in maximum per transaction")
    deadline_ms = whole("deadline_ms", *FALLBACK_DEADLINE_MS)
    return {
        "mode": merged["mode"],
        "standin_max_transaction_minor": max_txn,
        # at least one stand-in transaction a day, or the per-transaction max means nothing
        "standin_max_daily_per_card_minor": whole(
            "standin_max_daily_per_card_minor", max_txn, MAX_MINOR - 1
        ),
        "standin_allowed_mccs": clean_mccs(merged["standin_allowed_mccs"]),
        "deadline_ms": deadline_ms,
        # Redis must answer in time to leave room for the rest of the request
        "redis_timeout_ms": whole("redis_timeout_ms", 1, deadline_ms - 1),
        "breaker_failure_threshold": whole("breaker_failure_threshold", *FALLBACK_BREAKER_FAILURES),
        "breaker_reset_seconds": whole("breaker_reset_seconds", *FALLBACK_BREAKER_RESET_SECONDS),
    }


@transaction.atomic
def set_fallback_policy(
    *, program: Program, actor: Actor, reason: str, **fields: Unpack[FallbackPolicyFields]
) -> FallbackPolicy:
    """Create or change the program's fallback policy; fields not given keep their value."""
    reason = reason_for(actor=actor, reason=reason)
    scope = _lock_scope(program)
    cleaned = validate_fallback_policy(program=program, **fields)
    policy = fallback_policy_for(program=program)
    _save_config(
        row=policy,
        fields=cleaned,
        actor=actor,
        reason=reason,
        action="set_fallback_policy",
        announce_to=scope,
    )
    return policy


def validate_commando_mode_record(**fields: Unpack[CommandoModeRecordFields]) -> dict[str, Any]:
    """Types as the model declares them; the control lists hold JSON objects, as Marqeta's."""
    _only_known(fields, CommandoModeRecordFields)
    for name, value in fields.items():
        field = CommandoModeRecord._meta.get_field(name)
        if isinstance(field, BooleanField) and not isinstance(value, bool):
            raise InvalidCommandoModeRecord(f"{name} is true or false")
        if isinstance(field, JSONField) and not (
            isinstance(value, list) and all(isinstance(item, dict) for item in value)
        ):
            raise InvalidCommandoModeRecord(f"{name} is a list of JSON objects")
        if isinstance(field, CharField | TextField) and (
            not isinstance(value, str) or len(value) > (field.max_length or len(value))
        ):
            limit = f" of at most {field.max_length} characters" if field.max_length else ""
            raise InvalidCommandoModeRecord(f"{name} is text{limit}")
    return dict(fields)


@transaction.atomic
def set_commando_mode_record(
    *, program: Program, actor: Actor, reason: str, **fields: Unpack[CommandoModeRecordFields]
) -> CommandoModeRecord:
    """Record the Commando Mode control set ops intend Marqeta to apply. Changes nothing at
    Marqeta and nothing in the gateway's cache."""
    reason = reason_for(actor=actor, reason=reason)
    cleaned = validate_commando_mode_record(**fields)
    scope = _lock_scope(program)
    record = CommandoModeRecord.objects.filter(**scope).first() or CommandoModeRecord(**scope)
    _save_config(
        row=record,
        fields=cleaned,
        actor=actor,
        reason=reason,
        action="set_commando_mode_record",
        announce_to=None,
    )
    return record


def _lock_scope(scope_obj: ScopeObj) -> dict[str, ScopeObj]:
    """Lock the scope's row, so two changes to one scope's configuration queue, not race."""
    scope = scope_filter(scope_obj=scope_obj)
    list(type(scope_obj).objects.select_for_update().filter(pk=scope_obj.pk).values_list("pk"))
    return scope


def _config_snapshot(row: Model) -> dict[str, Any]:
    """`snapshot`, with many-to-many fields as names (the audit log stores JSON)."""
    return snapshot(row) | {
        field.name: sorted(str(item) for item in getattr(row, field.name).all())
        for field in row._meta.many_to_many
    }


def _save_config(
    *,
    row: Model,
    fields: dict[str, Any],
    actor: Actor,
    reason: str,
    action: str,
    announce_to: dict[str, ScopeObj] | None,
) -> None:
    """Apply `fields` to the row, write it and its audit event; no-op when nothing changes."""
    many = {field.name for field in row._meta.many_to_many}

    def current(name: str) -> object:
        return set(getattr(row, name).all()) if name in many else getattr(row, name)

    if row.pk and all(
        current(name) == (set(value) if name in many else value) for name, value in fields.items()
    ):
        return
    before = _config_snapshot(row) if row.pk else None
    for name, value in fields.items():
        if name not in many:
            setattr(row, name, value)
    row.save()
    for name in many & fields.keys():
        getattr(row, name).set(fields[name])
    row.refresh_from_db()
    record_audit_event(
        actor=actor,
        action=action,
        target=row,
        reason=reason,
        before=before,
        after=_config_snapshot(row),
    )
    if announce_to is not None:
        announce_card_config_change(card_ids=card_ids_for_scope(**announce_to))


# --- staff groups ------------------------------------------------------------------------

OPS_PERMISSIONS = {
    "cards": [
        "program",
        "mccgroup",
        "cardholder",
        "card",
        "fundingaccount",
        "spendcontrol",
        "velocitylimit",
        "fraudrule",
        "fallbackpolicy",
        "commandomoderecord",
    ],
    "ledger": [
        "account",
        "book",
        "wallet",
        "ledgertransaction",
        "ledgerentry",
        "hold",
        "clearing",
        "holdrelease",
        "negativebalance",
        "manualadjustment",
        "auditevent",
    ],
    "jit": ["jitdecision"],
    "reconciliation": ["webhookevent", "reconciliationexception", "clearingfile", "clearingline"],
}
OPS_WRITABLE = {
    "program",
    "mccgroup",
    "cardholder",
    "card",
    "manualadjustment",
    "spendcontrol",
    "velocitylimit",
    "fraudrule",
    "fallbackpolicy",
    "commandomoderecord",
    "reconciliationexception",
}
EXTRA_OPS_CODENAMES = ["approve_manualadjustment", "deposit_funds"]


def _codenames_for(*, writable: bool) -> list[str]:
    names = []
    for models in OPS_PERMISSIONS.values():
        for model in models:
            names.append(f"view_{model}")
            if writable and model in OPS_WRITABLE:
                names += [f"add_{model}", f"change_{model}"]
    return names


def ensure_staff_groups() -> None:
    """Groups `Ops` (edits and approves) and `Support` (reads only); safe to run again."""
    apps = list(OPS_PERMISSIONS)
    for group_name, codenames in (
        ("Ops", _codenames_for(writable=True) + EXTRA_OPS_CODENAMES),
        ("Support", _codenames_for(writable=False)),
    ):
        group, _ = Group.objects.get_or_create(name=group_name)
        permissions = Permission.objects.filter(
            content_type__app_label__in=apps, codename__in=codenames
        )
        group.permissions.set(permissions)
