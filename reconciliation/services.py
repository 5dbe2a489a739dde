"""The only writers of reconciliation state: Marqeta's webhook events and the exception queue.

Webhooks: `record_webhook_envelope` stores the events of one POST (a duplicate is a no-op) and
queues each new one on commit; `apply_webhook_event` applies one event exactly once through the
ledger's own services, under the keys the gateway's outbox uses (the Marqeta transaction
`token`), so a webhook and a JIT advice for the same event post once.

Exceptions: opened by the system (idempotent on `dedupe_key`), worked by people (assign,
start, note, release the linked hold, resolve); each change is audited in its transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from cards.models import Card, Cardholder, Program
from cards.selectors import hold_expires_at
from config.errors import DomainError
from jit.methods import CAPTURED_AT_ONCE, RELEASE_METHODS
from jit.models import JitDecision
from ledger import services as ledger
from ledger.audit import audited, record_audit_event, snapshot
from ledger.errors import (
    CurrencyMismatch,
    HoldNotFound,
    HoldNotOpen,
    HoldOfAnotherWallet,
    ReasonRequired,
)
from ledger.models import (
    Clearing,
    Hold,
    HoldRelease,
    HoldStatus,
    LedgerTransaction,
    NegativeBalance,
    Wallet,
)
from ledger.money import CURRENCY_EXPONENTS, format_money
from ledger.selectors import wallet_balances
from reconciliation import selectors
from reconciliation.errors import (
    ExceptionAlreadyResolved,
    ExceptionHasNoHold,
    MissingEventToken,
    ParentNotYetKnown,
    UnknownCardOrUser,
    UnknownExceptionKind,
)
from reconciliation.marqeta import (
    ADVICE_TYPES,
    APPROVED_STATES,
    AUTH_TYPES,
    CLEARING_TYPES,
    EXPIRY_TYPES,
    NOT_APPROVED_STATES,
    PINGS,
    POSTED_STATES,
    REFUND_TYPES,
    RELEASE_TYPES,
    TRANSACTIONS,
    EnvelopeEvent,
    MarqetaTransaction,
    is_companion,
    parse_envelope,
)
from reconciliation.models import ExceptionKind as Kind
from reconciliation.models import ReconciliationException, WebhookEvent

logger = logging.getLogger("reconciliation")
MARQETA = ledger.MARQETA
Status = WebhookEvent.Status
STANDIN_CAPTURED_AT_ONCE = frozenset({"pgfs.auth_plus_capture.standin"})

# --- the exception queue ----------------------------------------------------------------------


def open_exception(
    *,
    kind: str,
    dedupe_key: str,
    hold: Hold | None = None,
    clearing: Clearing | None = None,
    ledger_transaction: LedgerTransaction | None = None,
    webhook_event: WebhookEvent | None = None,
    card_token: str = "",
    user_token: str = "",
    amount_minor: int | None = None,
    currency_code: str = "",
    details: dict[str, Any] | None = None,
) -> ReconciliationException:
    """Open a typed exception, or return the one already opened for `dedupe_key`."""
    if kind not in Kind.values:
        raise UnknownExceptionKind(f"{kind!r} is not an exception kind", kind=kind)
    with transaction.atomic():
        exception, created = ReconciliationException.objects.get_or_create(
            dedupe_key=dedupe_key[:200],
            defaults={
                "kind": kind,
                "hold": hold,
                "clearing": clearing,
                "ledger_transaction": ledger_transaction,
                "webhook_event": webhook_event,
                "card_token": card_token[:64],
                "user_token": user_token[:64],
                "amount_minor": amount_minor,
                "currency_code": currency_code[:3],
                "details": _json_safe(details or {}),
            },
        )
        if created:
            record_audit_event(
                actor=None,
                action="open_exception",
                target=exception,
                reason=kind,
                after=snapshot(exception),
            )
            logger.warning("exception #%s %s opened (%s)", exception.pk, kind, dedupe_key)
    return exception


def _json_safe(details: dict[str, Any]) -> dict[str, Any]:
    safe = (str, int, bool, type(None), list, dict)
    return {key: value if isinstance(value, safe) else str(value) for key, value in details.items()}


def _locked(exception: ReconciliationException) -> ReconciliationException:
    return ReconciliationException.objects.select_for_update().get(pk=exception.pk)


def _ensure_unresolved(exception: ReconciliationException) -> None:
    if exception.is_resolved:
        raise ExceptionAlreadyResolved(
            f"exception #{exception.pk} is already resolved", exception_id=exception.pk
        )


def _with_note(notes: str, *, actor: AbstractBaseUser, text: str) -> str:
    stamp = timezone.now().strftime("%Y-%m-%d %H:%M UTC")
    line = f"[{stamp} {actor.get_username()}] {text.strip()}"
    return f"{notes.rstrip()}\n{line}" if notes.strip() else line


@transaction.atomic
def assign_exception(
    *, exception: ReconciliationException, assignee: AbstractBaseUser, actor: AbstractBaseUser
) -> ReconciliationException:
    """Give an open exception to someone (ops assign to themselves from the admin)."""
    exception = _locked(exception)
    _ensure_unresolved(exception)
    reason = f"assigned to {assignee.get_username()}"
    with audited(target=exception, actor=actor, action="assign_exception", reason=reason):
        exception.assignee = assignee
        exception.save(update_fields=["assignee", "updated_at"])
    return exception


@transaction.atomic
def start_exception(
    *, exception: ReconciliationException, actor: AbstractBaseUser
) -> ReconciliationException:
    """Mark it in progress; whoever starts it becomes the assignee unless someone already is."""
    exception = _locked(exception)
    _ensure_unresolved(exception)
    with audited(target=exception, actor=actor, action="start_exception"):
        exception.state = ReconciliationException.State.IN_PROGRESS
        exception.assignee_id = exception.assignee_id or actor.pk
        exception.save(update_fields=["state", "assignee", "updated_at"])
    return exception


@transaction.atomic
def add_note(
    *, exception: ReconciliationException, actor: AbstractBaseUser, note: str
) -> ReconciliationException:
    """Append a signed, dated line to the exception's notes (resolved ones too)."""
    if not note.strip():
        raise ReasonRequired("a note needs some text")
    exception = _locked(exception)
    with audited(target=exception, actor=actor, action="add_exception_note", reason=note.strip()):
        exception.notes = _with_note(exception.notes, actor=actor, text=note)
        exception.save(update_fields=["notes", "updated_at"])
    return exception


@transaction.atomic
def resolve_exception(
    *, exception: ReconciliationException, actor: AbstractBaseUser, resolution: str
) -> ReconciliationException:
    """Close the exception, saying how it was resolved (required)."""
    if not resolution.strip():
        raise ReasonRequired("say how the exception was resolved")
    exception = _locked(exception)
    _ensure_unresolved(exception)
    with audited(
        target=exception, actor=actor, action="resolve_exception", reason=resolution.strip()
    ):
        exception.state = ReconciliationException.State.RESOLVED
        exception.resolved_at, exception.resolved_by = timezone.now(), actor
        exception.resolution = resolution.strip()
        exception.save(
            update_fields=["state", "resolved_at", "resolved_by", "resolution", "updated_at"]
        )
    return exception


@transaction.atomic
def release_hold_for_exception(
    *, exception: ReconciliationException, actor: AbstractBaseUser, reason: str
) -> HoldRelease:
    """Ops give back what the linked hold still reserves (once: key `exception:<pk>`)."""
    if not reason.strip():
        raise ReasonRequired("say why the hold is released")
    exception = _locked(exception)
    _ensure_unresolved(exception)
    if exception.hold_id is None:
        raise ExceptionHasNoHold(f"exception #{exception.pk} links no hold")
    release_key = f"exception:{exception.pk}"
    if replay := HoldRelease.objects.filter(release_key=release_key).first():
        return replay
    with audited(
        target=exception, actor=actor, action="release_hold_for_exception", reason=reason.strip()
    ):
        release = ledger.release_hold(
            hold=exception.hold,
            release_key=release_key,
            reason=HoldRelease.Reason.OPS,
            actor=f"ops:{actor.get_username()}",
        )
        released = format_money(release.amount_minor, exception.hold.currency_code)
        text = f"released {released} of {exception.hold.authorization_key}: {reason}"
        exception.notes = _with_note(exception.notes, actor=actor, text=text)
        exception.details = {**exception.details, "release_id": release.pk}
        exception.save(update_fields=["notes", "details", "updated_at"])
    return release


# --- receiving webhooks -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookReceipt:
    """What one POST brought: the events stored now (to apply), and how many it carried."""

    stored: list[WebhookEvent]
    received: int

    @property
    def duplicates(self) -> int:
        """Events we already had (Marqeta retries and replays) or that repeated in the body."""
        return self.received - len(self.stored)


def _recorded_only(event: EnvelopeEvent) -> str:
    if event.category == PINGS:
        return "ping answered"
    if event.category != TRANSACTIONS:
        return f"{event.category}: recorded only"
    return "companion funding event: recorded only (MARQETA.md §7.4)"


def _new_event(event: EnvelopeEvent, *, received_at: datetime) -> WebhookEvent:
    ignored = event.is_recorded_only
    return WebhookEvent(
        token=event.token,
        category=event.category,
        event_type=event.event_type,
        state=event.state,
        card_token=event.card_token,
        user_token=event.user_token,
        preceding_token=event.preceding_token,
        raw=event.raw,
        received_at=received_at,
        status=Status.IGNORED if ignored else Status.RECEIVED,
        outcome=_recorded_only(event) if ignored else "",
    )


def _enqueue_apply(event_id: int) -> None:
    from reconciliation.tasks import apply_webhook_event_task

    apply_webhook_event_task.delay(event_id)


@transaction.atomic
def record_webhook_envelope(*, body: bytes) -> WebhookReceipt:
    """Store a POST's events in one transaction; each new one is queued for applying on commit.

    An event whose token is already stored is a duplicate and changes nothing. Pings and
    events we only record (other categories, companion funding events) are stored as ignored.
    `MalformedWebhook` (400) when the body is not an envelope: then nothing is stored.
    """
    envelope = parse_envelope(body)
    tokens = [event.token for event in envelope.events]
    known = set(WebhookEvent.objects.filter(token__in=tokens).values_list("token", flat=True))
    received_at = timezone.now()
    fresh = [
        _new_event(event, received_at=received_at)
        for event in envelope.events
        if event.token not in known
    ]
    WebhookEvent.objects.bulk_create(fresh, ignore_conflicts=True)  # a concurrent twin: no-op
    stored = list(
        WebhookEvent.objects.filter(
            token__in=[event.token for event in fresh], received_at=received_at
        ).order_by("pk")
    )
    for event in stored:
        if event.status == Status.RECEIVED:
            transaction.on_commit(partial(_enqueue_apply, event.pk), robust=True)
    return WebhookReceipt(stored=stored, received=envelope.count)


# --- applying webhooks ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What applying an event did: its new status, a short text, the refusal's code."""

    status: str
    text: str
    error_code: str = ""


def applied(text: str) -> Outcome:
    return Outcome(Status.APPLIED, text)


def ignored(text: str) -> Outcome:
    return Outcome(Status.IGNORED, text)


@dataclass(frozen=True, slots=True)
class CardAccount:
    """Who an event is about: the cardholder, their wallet in the event's currency, the card."""

    cardholder: Cardholder
    program: Program
    wallet: Wallet
    card: Card | None


@dataclass(frozen=True, slots=True)
class Step:
    """One attempt at applying one event."""

    event: WebhookEvent
    txn: MarqetaTransaction
    last_attempt: bool

    def money(self, amount_minor: int, currency_code: str) -> str:
        return format_money(amount_minor, currency_code)


def apply_webhook_event(*, event: WebhookEvent, last_attempt: bool = False) -> WebhookEvent:
    """Apply one stored event to the ledger, once; safe to call again (returns the first outcome).

    Refusals (`DomainError`) are recorded on the event (failed + `error_code`) and open an
    exception; the ledger changes of a refused event are rolled back (savepoint). A parent not
    stored yet leaves the event waiting and raises `ParentNotYetKnown` (after the commit) so
    the task retries; on the `last_attempt` it opens `out_of_order_unresolved` instead.
    """
    with transaction.atomic(durable=True):
        event = WebhookEvent.objects.select_for_update().get(pk=event.pk)
        if event.status in WebhookEvent.FINAL:
            return event
        now = timezone.now()
        event.attempts += 1
        event.last_attempt_at = now
        outcome = _apply_in_savepoint(event, last_attempt=last_attempt)
        event.status, event.outcome = outcome.status, outcome.text[:200]
        event.error_code = outcome.error_code
        event.applied_at = now if outcome.status == Status.APPLIED else None
        event.save(
            update_fields=[
                "attempts",
                "last_attempt_at",
                "status",
                "outcome",
                "error_code",
                "applied_at",
            ]
        )
    logger.info("webhook %s %s: %s %s", event.token, event.event_type, event.status, event.outcome)
    if event.status == Status.WAITING:
        raise ParentNotYetKnown(event.outcome, token=event.token)
    return event


def _apply_in_savepoint(event: WebhookEvent, *, last_attempt: bool) -> Outcome:
    try:
        with transaction.atomic():
            return _apply(event, last_attempt=last_attempt)
    except ParentNotYetKnown as waiting:
        if not last_attempt:
            return Outcome(Status.WAITING, waiting.message)
        _open_for_event(
            event,
            Kind.OUT_OF_ORDER_UNRESOLVED,
            details={"waited_for": waiting.message, "attempts": event.attempts},
        )
        text = f"gave up after {event.attempts} attempts: {waiting.message}"
        return Outcome(Status.FAILED, text, waiting.code)
    except DomainError as refusal:
        _open_for_event(
            event,
            _kind_for(refusal, event_type=event.event_type),
            details={"error_code": refusal.code, "message": refusal.message, **refusal.details},
        )
        logger.warning("webhook %s refused: %s %s", event.token, refusal.code, refusal.message)
        return Outcome(Status.FAILED, refusal.message, refusal.code)


KIND_FOR_CODE = {
    "unknown_card": Kind.UNKNOWN_CARD,
    "currency_mismatch": Kind.CURRENCY_MISMATCH,
    "idempotency_conflict": Kind.DUPLICATE,
    "hold_not_open": Kind.REVERSAL_WITHOUT_HOLD,
    "hold_not_found": Kind.REVERSAL_WITHOUT_HOLD,
}


def _kind_for(refusal: DomainError, *, event_type: str) -> str:
    if kind := KIND_FOR_CODE.get(refusal.code):
        return kind
    if event_type in RELEASE_TYPES | EXPIRY_TYPES | ADVICE_TYPES:
        return Kind.REVERSAL_WITHOUT_HOLD
    if event_type in AUTH_TYPES:
        return Kind.UNKNOWN_MARQETA_APPROVAL
    return Kind.UNMATCHED_CLEARING


def _best_effort_amount(event: WebhookEvent) -> tuple[int | None, str]:
    if event.category != TRANSACTIONS:
        return None, ""
    txn = MarqetaTransaction.from_raw(event.raw)
    if txn.currency_code not in CURRENCY_EXPONENTS:
        return None, ""
    try:
        return txn.funding_amount_minor(txn.currency_code), txn.currency_code
    except DomainError:
        return None, txn.currency_code


def _open_for_event(
    event: WebhookEvent, kind: str, *, details: dict[str, Any]
) -> ReconciliationException:
    amount_minor, currency_code = _best_effort_amount(event)
    return open_exception(
        kind=kind,
        dedupe_key=f"{kind}:{event.token}",
        webhook_event=event,
        card_token=event.card_token,
        user_token=event.user_token,
        amount_minor=amount_minor,
        currency_code=currency_code,
        details=details,
    )


def _apply(event: WebhookEvent, *, last_attempt: bool) -> Outcome:
    if event.category != TRANSACTIONS:
        return ignored(f"{event.category}: recorded only")
    if is_companion(event.event_type):
        return ignored("companion funding event: recorded only (MARQETA.md §7.4)")
    txn = MarqetaTransaction.from_raw(event.raw)
    if not txn.token:
        raise MissingEventToken("the transaction has no token: it cannot be applied exactly once")
    handler = _handler_for(txn)
    if handler is None:
        return ignored(f"{txn.type or 'untyped'} {txn.state}: nothing to post")
    return handler(Step(event=event, txn=txn, last_attempt=last_attempt))


def _handler_for(txn: MarqetaTransaction) -> Callable[[Step], Outcome] | None:
    kind, state = txn.type, txn.state
    if kind in REFUND_TYPES:
        return _apply_refund if state in POSTED_STATES else None
    if kind in RELEASE_TYPES | EXPIRY_TYPES or (
        kind in ADVICE_TYPES and txn.jit_method in RELEASE_METHODS
    ):
        return _apply_release if state in APPROVED_STATES else None
    if kind in CLEARING_TYPES:
        return _apply_clearing if state in POSTED_STATES else None
    if kind in AUTH_TYPES:
        return _apply_authorization
    return None


def _card_account(txn: MarqetaTransaction) -> CardAccount:
    """The cardholder the event funds; `UnknownCardOrUser` / `CurrencyMismatch` otherwise."""
    card = selectors.card_named(token=txn.card_token) if txn.card_token else None
    if txn.card_token and card is None:
        raise UnknownCardOrUser(f"no card {txn.card_token!r}", card_token=txn.card_token)
    if txn.user_token:
        cardholder = selectors.cardholder_named(token=txn.user_token)
    else:
        cardholder = card.cardholder if card else None
    if cardholder is None:
        raise UnknownCardOrUser(f"no cardholder {txn.user_token!r}", user_token=txn.user_token)
    currency_code = txn.currency_code or cardholder.program.currency_code
    funding = selectors.funding_account_of(cardholder=cardholder, currency_code=currency_code)
    if funding is None:
        if selectors.funding_account_of(cardholder=cardholder, currency_code=None) is None:
            raise UnknownCardOrUser(f"{cardholder.token} has no funding account")
        raise CurrencyMismatch(
            f"the event is in {currency_code}; {cardholder.token} has no wallet in it",
            event_currency=currency_code,
        )
    wallet = funding.wallet
    return CardAccount(cardholder=cardholder, program=cardholder.program, wallet=wallet, card=card)


def _merchant(txn: MarqetaTransaction) -> ledger.Merchant:
    return ledger.Merchant(card_token=txn.card_token, mcc=txn.mcc, merchant_name=txn.merchant_name)


def _matched_hold(txn: MarqetaTransaction, account: CardAccount) -> Hold:
    """The root hold the event follows; `ParentNotYetKnown` while it may still come."""
    hold = selectors.root_hold_for(
        preceding_token=txn.preceding_token, original_jit_token=txn.original_jit_token
    )
    if hold is None:
        if txn.has_parent_link:
            parent = txn.preceding_token or f"jit:{txn.original_jit_token}"
            raise ParentNotYetKnown(f"no hold yet for {parent}", parent=parent)
        raise HoldNotFound(f"{txn.type} {txn.token} names no authorization")
    if hold.wallet_id != account.wallet.pk:
        raise HoldOfAnotherWallet(f"{txn.token} names {hold.authorization_key} of another wallet")
    return hold


def negative_balance_dedupe_key(*, pk: int) -> str:
    """One exception per negative episode (the ledger's NegativeBalance flag), whoever opens it."""
    return f"negative_balance:{pk}"


def flag_negative_balance(
    *,
    wallet: Wallet,
    posting: LedgerTransaction,
    card_token: str,
    webhook_event: WebhookEvent | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """A posting that leaves available below zero opens one exception per negative episode."""
    available = wallet_balances(wallet=wallet).available_minor
    if available >= 0:
        return
    episode = (
        NegativeBalance.objects.filter(account_id=wallet.available_id, resolved_at__isnull=True)
        .order_by("pk")
        .first()
    )
    open_exception(
        kind=Kind.NEGATIVE_BALANCE,
        dedupe_key=negative_balance_dedupe_key(pk=episode.pk if episode else posting.pk),
        ledger_transaction=episode.opened_by if episode else posting,
        webhook_event=webhook_event,
        card_token=card_token,
        user_token=wallet.holder_token,
        amount_minor=available,
        currency_code=wallet.currency_code,
        details={
            **(details or {}),
            "available_minor": available,
            "posting": posting.idempotency_key,
        },
    )


def _flag_negative(step: Step, wallet: Wallet, posting: LedgerTransaction) -> None:
    flag_negative_balance(
        wallet=wallet, posting=posting, card_token=step.txn.card_token, webhook_event=step.event
    )


# authorizations -------------------------------------------------------------------------------


def _apply_authorization(step: Step) -> Outcome:
    txn = step.txn
    decision = selectors.decision_for(jit_funding_token=txn.jit_token)
    ours_approved = decision is not None and decision.outcome == JitDecision.Outcome.APPROVED
    if txn.is_approved:
        if ours_approved:
            return _confirm(step, decision)
        if signs := txn.standin_signs:
            return _hold_marqeta_approval(step, kind=Kind.STANDIN_APPROVAL, why=", ".join(signs))
        if decision is None and txn.jit_token and not step.last_attempt:
            # the ledger writer may not have written our decision yet: it may hold this itself
            raise ParentNotYetKnown(f"no decision recorded for jit_funding {txn.jit_token} yet")
        why = "we declined it" if decision else "no decision of ours"
        return _hold_marqeta_approval(step, kind=Kind.UNKNOWN_MARQETA_APPROVAL, why=why)
    if txn.state in NOT_APPROVED_STATES:
        if ours_approved:
            return _release_declined(step, decision)
        may_be_ours = txn.timed_out or txn.gateway_response_code == "200"
        if decision is None and txn.jit_token and may_be_ours and not step.last_attempt:
            raise ParentNotYetKnown(f"waiting for our decision on {txn.jit_token}: it may be held")
        return applied(f"{txn.state.lower()}: nothing of ours is held")
    return ignored(f"authorization {txn.state or 'without a state'}: nothing to post")


def _confirm(step: Step, decision: JitDecision) -> Outcome:
    """Marqeta approved what we approved: the hold is already there; check the amount."""
    txn = step.txn
    currency_code = txn.currency_code or decision.currency_code
    amount_minor = txn.funding_amount_minor(currency_code)
    if amount_minor != decision.amount_minor:
        open_exception(
            kind=Kind.AMOUNT_MISMATCH,
            dedupe_key=f"amount_mismatch:{txn.token}",
            hold=decision.hold,
            webhook_event=step.event,
            card_token=txn.card_token,
            user_token=txn.user_token,
            amount_minor=amount_minor - decision.amount_minor,
            currency_code=currency_code,
            details={"marqeta_amount_minor": amount_minor, "decided_minor": decision.amount_minor},
        )
        return applied(f"confirmed; Marqeta's amount differs from our {decision.amount_minor}")
    return applied("confirmed")


def _authorized_at(txn: MarqetaTransaction) -> datetime:
    when = txn.created_time or timezone.now()
    return when if timezone.is_aware(when) else timezone.make_aware(when, UTC)


def _hold_marqeta_approval(step: Step, *, kind: str, why: str) -> Outcome:
    """Marqeta approved without us (stand-in) or without a decision we know: hold it, flag it."""
    txn = step.txn
    account = _card_account(txn)
    amount_minor = txn.funding_amount_minor(account.wallet.currency_code)
    original = _matched_hold(txn, account) if txn.has_parent_link else None
    hold = ledger.place_hold(
        wallet=account.wallet,
        amount_minor=amount_minor,
        authorization_key=f"jit:{txn.jit_token}" if txn.jit_token else f"marqeta:{txn.token}",
        expires_at=hold_expires_at(
            program=account.program, mcc=txn.mcc, authorized_at=_authorized_at(txn)
        ),
        original=original,
        merchant=_merchant(txn),
        transaction_token=txn.token,
        jit_funding_token=txn.jit_token,
        is_standin=True,
        allow_overdraw=True,  # Marqeta has approved: record the promise, flag any overdraft
        actor=MARQETA,
    )
    if txn.jit_method in CAPTURED_AT_ONCE | STANDIN_CAPTURED_AT_ONCE:
        ledger.clear_hold(  # single-message: no clearing will follow
            hold=hold,
            amount_minor=amount_minor,
            clearing_key=txn.token,
            merchant=_merchant(txn),
            actor=MARQETA,
        )
    currency_code = account.wallet.currency_code
    open_exception(
        kind=kind,
        dedupe_key=f"{kind}:{txn.token}",
        hold=hold,
        ledger_transaction=hold.placed_by,
        webhook_event=step.event,
        card_token=txn.card_token,
        user_token=account.cardholder.token,
        amount_minor=amount_minor,
        currency_code=currency_code,
        details={"why": why, "jit_funding_token": txn.jit_token},
    )
    _flag_negative(step, account.wallet, hold.placed_by)
    return applied(f"held {step.money(amount_minor, currency_code)}: {kind} ({why})")


def _release_declined(step: Step, decision: JitDecision) -> Outcome:
    """We approved, Marqeta declined (our answer timed out): no phantom hold stays behind."""
    txn, hold = step.txn, decision.hold
    if hold is None:
        return applied(f"{txn.state.lower()}: our approval held nothing")
    try:
        release = ledger.release_hold(
            hold=hold,
            release_key=f"declined:{txn.token}",
            amount_minor=hold.amount_minor,
            reason=HoldRelease.Reason.DECLINED_BY_NETWORK,
            actor=MARQETA,
        )
    except HoldNotOpen:
        return applied(f"{txn.state.lower()}: our hold was already released")
    why = "timed out" if txn.timed_out else txn.state.lower()
    released = step.money(release.amount_minor, hold.currency_code)
    open_exception(
        kind=Kind.UNCONFIRMED_APPROVAL,
        dedupe_key=f"unconfirmed_approval:{decision.jit_funding_token}",
        hold=hold,
        ledger_transaction=release.posted_by,
        webhook_event=step.event,
        card_token=txn.card_token,
        user_token=decision.user_token,
        amount_minor=release.amount_minor,
        currency_code=hold.currency_code,
        details={"why": why, "released_minor": release.amount_minor, "released_by": "webhook"},
    )
    return applied(f"released {released}: our approval {why} at Marqeta")


# reversals and advices ------------------------------------------------------------------------


def _apply_release(step: Step) -> Outcome:
    txn = step.txn
    account = _card_account(txn)
    currency_code = account.wallet.currency_code
    hold = _matched_hold(txn, account)
    expiry = txn.type in EXPIRY_TYPES
    amount_minor = None if expiry else txn.funding_amount_minor(currency_code)
    if amount_minor == 0:
        return applied("nothing to release (amount 0)")
    try:
        release = ledger.release_hold(
            hold=hold,
            release_key=txn.token,
            amount_minor=amount_minor,
            reason=HoldRelease.Reason.EXPIRY if expiry else HoldRelease.Reason.REVERSAL,
            actor=MARQETA,
        )
    except HoldNotOpen:
        hold.refresh_from_db(fields=["status"])
        if hold.status == HoldStatus.EXPIRED:
            return applied(f"{hold.authorization_key} had already expired: nothing left to release")
        raise
    text = f"released {step.money(release.amount_minor, currency_code)} of {hold.authorization_key}"
    left_minor = selectors.open_remaining_minor(hold=hold)
    if txn.state == "CLEARED" and left_minor:  # a full reversal that leaves money held
        open_exception(
            kind=Kind.AMOUNT_MISMATCH,
            dedupe_key=f"amount_mismatch:{txn.token}",
            hold=hold,
            ledger_transaction=release.posted_by,
            webhook_event=step.event,
            card_token=txn.card_token,
            user_token=account.cardholder.token,
            amount_minor=left_minor,
            currency_code=currency_code,
            details={"still_held_minor": left_minor, "released_minor": release.amount_minor},
        )
        text += f"; {step.money(left_minor, currency_code)} still held after a full reversal"
    return applied(text)


# clearings and force posts --------------------------------------------------------------------


def _apply_clearing(step: Step) -> Outcome:
    txn = step.txn
    account = _card_account(txn)
    currency_code = account.wallet.currency_code
    amount_minor = txn.funding_amount_minor(currency_code)
    if not txn.has_parent_link:  # a force post: no authorization to clear (§11 Example 7)
        clearing = ledger.force_post(
            wallet=account.wallet,
            amount_minor=amount_minor,
            clearing_key=txn.token,
            merchant=_merchant(txn),
            actor=MARQETA,
        )
        _flag_negative(step, account.wallet, clearing.posted_by)
        return applied(f"force posted {step.money(amount_minor, currency_code)}")
    hold = _matched_hold(txn, account)
    clearing = ledger.clear_hold(  # an expired hold still charges (from available)
        hold=hold,
        amount_minor=amount_minor,
        clearing_key=txn.token,
        is_final=txn.is_final_clearing,
        merchant=_merchant(txn),
        actor=MARQETA,
    )
    text = f"cleared {step.money(amount_minor, currency_code)} of {hold.authorization_key}"
    if clearing.released_minor:
        text += f", released {step.money(clearing.released_minor, currency_code)}"
    marqeta_released = txn.released_minor(currency_code) if txn.is_final_clearing else None
    if marqeta_released is not None and marqeta_released != clearing.released_minor:
        open_exception(
            kind=Kind.AMOUNT_MISMATCH,
            dedupe_key=f"amount_mismatch:{txn.token}",
            hold=hold,
            clearing=clearing,
            ledger_transaction=clearing.posted_by,
            webhook_event=step.event,
            card_token=txn.card_token,
            user_token=account.cardholder.token,
            amount_minor=marqeta_released - clearing.released_minor,
            currency_code=currency_code,
            details={
                "amount_to_be_released_minor": marqeta_released,
                "released_minor": clearing.released_minor,
            },
        )
        text += "; amount_to_be_released differs from what we released"
    _flag_negative(step, account.wallet, clearing.posted_by)
    return applied(text)


# refunds --------------------------------------------------------------------------------------


def _apply_refund(step: Step) -> Outcome:
    txn = step.txn
    account = _card_account(txn)
    currency_code = account.wallet.currency_code
    amount_minor = txn.funding_amount_minor(currency_code)
    ledger.refund(
        wallet=account.wallet,
        amount_minor=amount_minor,
        refund_key=txn.token,
        actor=MARQETA,
        memo=f"refund {txn.merchant_name}".strip(),
    )
    return applied(f"refunded {step.money(amount_minor, currency_code)}")
