"""The only writers of reconciliation state: Marqeta's webhook events and the exception queue.

Webhooks: `record_webhook_envelope` stores the events of one POST (a duplicate is a no-op) and
queues each new one on commit; `apply_webhook_event` applies one event exactly once through the
ledger's own services, under the keys the gateway's outbox uses (the Marqeta transaction
`token`), so a webhook and a JIT advice for the same event post once.

Exceptions: opened by the system (idempotent on `dedupe_key`), worked by people (assign,
start, note, release the linked hold, rematch a clearing to a chosen hold, resolve); each
change is audited in its transaction.
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
from ledger.audit import audited, record_audit_events, snapshot
from ledger.errors import (
    CurrencyMismatch,
    HoldNotFound,
    HoldNotOpen,
    HoldOfAnotherWallet,
    ReasonRequired,
)
from ledger.locks import lock_accounts, lock_hold_chain
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
    AlreadyRematched,
    ClearingAlreadyPosted,
    ExceptionAlreadyResolved,
    ExceptionHasNoHold,
    MissingEventToken,
    ParentNotYetKnown,
    RematchNotSupported,
    UnknownCardOrUser,
    UnknownExceptionKind,
    WrongHoldForRematch,
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
from reconciliation.models import ClearingLine, ReconciliationException, WebhookEvent
from reconciliation.models import ExceptionKind as Kind

logger = logging.getLogger("reconciliation")
MARQETA = ledger.MARQETA
Status = WebhookEvent.Status
STANDIN_CAPTURED_AT_ONCE = frozenset({"pgfs.auth_plus_capture.standin"})

# --- the exception queue ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExceptionSpec:
    """An exception to open: linked rows by id, so a batch can name rows it just wrote."""

    kind: str
    dedupe_key: str
    hold_id: int | None = None
    clearing_id: int | None = None
    ledger_transaction_id: int | None = None
    webhook_event_id: int | None = None
    card_token: str = ""
    user_token: str = ""
    amount_minor: int | None = None
    currency_code: str = ""
    details: dict[str, Any] | None = None

    def columns(self) -> dict[str, Any]:
        if self.kind not in Kind.values:
            raise UnknownExceptionKind(f"{self.kind!r} is not an exception kind", kind=self.kind)
        return {
            "kind": self.kind,
            "hold_id": self.hold_id,
            "clearing_id": self.clearing_id,
            "ledger_transaction_id": self.ledger_transaction_id,
            "webhook_event_id": self.webhook_event_id,
            "card_token": self.card_token[:64],
            "user_token": self.user_token[:64],
            "amount_minor": self.amount_minor,
            "currency_code": self.currency_code[:3],
            "details": _json_safe(self.details or {}),
        }


def _pk(instance: Any) -> int | None:
    return instance.pk if instance is not None else None


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
    spec = ExceptionSpec(
        kind=kind,
        dedupe_key=dedupe_key,
        hold_id=_pk(hold),
        clearing_id=_pk(clearing),
        ledger_transaction_id=_pk(ledger_transaction),
        webhook_event_id=_pk(webhook_event),
        card_token=card_token,
        user_token=user_token,
        amount_minor=amount_minor,
        currency_code=currency_code,
        details=details,
    )
    return open_exception_for(spec)


def open_exception_for(spec: ExceptionSpec) -> ReconciliationException:
    """`open_exception` from a spec: the row for its `dedupe_key`, opened if new."""
    columns = spec.columns()
    with transaction.atomic():
        exception, created = ReconciliationException.objects.get_or_create(
            dedupe_key=spec.dedupe_key[:200], defaults=columns
        )
        if created:
            _audit_opened([exception])
    return exception


def open_exceptions(specs: list[ExceptionSpec]) -> int:
    """`open_exception` for many (a clearing batch): three statements; returns how many opened.

    Keys already open, or repeated in `specs`, open nothing (the first spec wins). Call it
    inside the caller's transaction: a concurrent opener of the same key breaks the unique
    index and the caller retries, as for any other row of its batch.
    """
    wanted: dict[str, ExceptionSpec] = {}
    for spec in specs:
        wanted.setdefault(spec.dedupe_key[:200], spec)
    existing = set(
        ReconciliationException.objects.filter(dedupe_key__any=wanted).values_list(
            "dedupe_key", flat=True
        )
    )
    fresh = [
        ReconciliationException(dedupe_key=key, **spec.columns())
        for key, spec in wanted.items()
        if key not in existing
    ]
    _audit_opened(ReconciliationException.objects.bulk_create(fresh))
    return len(fresh)


def _audit_opened(exceptions: list[ReconciliationException]) -> None:
    record_audit_events(
        actor=None,
        action="open_exception",
        targets=exceptions,
        reasons=[exception.kind for exception in exceptions],
        afters=[snapshot(exception) for exception in exceptions],
    )
    for exception in exceptions:
        logger.warning(
            "exception #%s %s opened (%s)", exception.pk, exception.kind, exception.dedupe_key
        )


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


def _posted_hold(txn: MarqetaTransaction, account: CardAccount) -> Hold | None:
    """The hold a clearing of this token was already posted against (a file line, or ops'
    rematch): the webhook then replays that posting, whatever its links resolve to now."""
    posted = Clearing.objects.filter(clearing_key=txn.token, hold__isnull=False).first()
    return _ensure_wallet(txn, posted.hold, account) if posted is not None else None


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
    return _ensure_wallet(txn, hold, account)


def _ensure_wallet(txn: MarqetaTransaction, hold: Hold, account: CardAccount) -> Hold:
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
    open_exception_for(
        negative_balance_spec(
            wallet=wallet,
            available_minor=available,
            episode_id=episode.pk if episode else posting.pk,
            opened_by_id=episode.opened_by_id if episode else posting.pk,
            posting_key=posting.idempotency_key,
            card_token=card_token,
            webhook_event_id=_pk(webhook_event),
            details=details,
        )
    )


def negative_balance_spec(
    *,
    wallet: Wallet,
    available_minor: int,
    episode_id: int,
    opened_by_id: int,
    posting_key: str,
    card_token: str,
    webhook_event_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> ExceptionSpec:
    """The exception of a negative episode (webhooks, clearing files and the sweep alike)."""
    return ExceptionSpec(
        kind=Kind.NEGATIVE_BALANCE,
        dedupe_key=negative_balance_dedupe_key(pk=episode_id),
        ledger_transaction_id=opened_by_id,
        webhook_event_id=webhook_event_id,
        card_token=card_token,
        user_token=wallet.holder_token,
        amount_minor=available_minor,
        currency_code=wallet.currency_code,
        details={**(details or {}), "available_minor": available_minor, "posting": posting_key},
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
    hold = _posted_hold(txn, account) or _matched_hold(txn, account)
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


# --- rematching a clearing to a chosen hold ---------------------------------------------------

REMATCHABLE_KINDS = frozenset({Kind.UNMATCHED_CLEARING, Kind.OUT_OF_ORDER_UNRESOLVED})
NOT_POSTED = (ClearingLine.Outcome.EXCEPTION, ClearingLine.Outcome.REFUSED)


@dataclass(frozen=True, slots=True)
class UnpostedClearing:
    """A clearing Marqeta sent that moved no money: what a rematch posts, and for whom."""

    token: str  # Marqeta's transaction token: the clearing key, so a re-sent line replays
    wallet: Wallet  # the cardholder the line or event names, in its currency
    amount_minor: int
    is_final: bool
    merchant: ledger.Merchant
    source: str  # for people: "clearing file #3 line 2", "webhook txn-x-clr"
    marqeta_released_minor: int | None = None  # `amount_to_be_released`, when sent

    @property
    def currency_code(self) -> str:
        return self.wallet.currency_code


@dataclass(frozen=True, slots=True)
class Rematch:
    """What `rematch_clearing` did: the clearing it posted, or found posted by an earlier call."""

    exception: ReconciliationException
    clearing: Clearing
    replayed: bool  # True: rematched before to this hold; nothing changed now


def unposted_clearing_of(*, exception: ReconciliationException) -> UnpostedClearing:
    """The clearing an exception is about, if a rematch can post it (read only).

    `RematchNotSupported` for other kinds, or when the exception links no clearing line and
    no clearing webhook; `ClearingAlreadyPosted` when money already moved under its token.
    """
    if exception.kind not in REMATCHABLE_KINDS:
        raise RematchNotSupported(
            f"a {exception.kind} exception is not a clearing to rematch", kind=exception.kind
        )
    if exception.clearing_id is not None:
        raise _already_posted(exception.clearing)
    unposted = _unposted_from_line(exception) or _unposted_from_event(exception)
    if unposted is None:
        raise RematchNotSupported(
            f"exception #{exception.pk} links no clearing line and no clearing webhook"
        )
    _ensure_not_posted(unposted.token)
    return unposted


def _already_posted(clearing: Clearing) -> ClearingAlreadyPosted:
    held = format_money(clearing.amount_minor, clearing.currency_code)
    against = clearing.hold.authorization_key if clearing.hold_id else "no hold (force post)"
    return ClearingAlreadyPosted(
        f"{clearing.clearing_key} already charged {held} against {against}; a rematch would "
        "charge it twice: correct it with a manual adjustment (propose_adjustment, maker-checker)"
        " and resolve the exception with the reason",
        clearing_key=clearing.clearing_key,
    )


def _ensure_not_posted(token: str) -> None:
    clearing = Clearing.objects.select_related("hold").filter(clearing_key=token).first()
    if clearing is not None:
        raise _already_posted(clearing)


def _unposted_from_line(exception: ReconciliationException) -> UnpostedClearing | None:
    """A clearing file's line the ingestion queued without posting (details name it)."""
    file_id, number = exception.details.get("clearing_file"), exception.details.get("line_number")
    if file_id is None or number is None:
        return None
    line = ClearingLine.objects.filter(file_id=file_id, line_number=number).first()
    if line is None:
        return None
    source = f"clearing file #{file_id} line {number}"
    if line.clearing_id is not None:
        raise _already_posted(line.clearing)
    if line.outcome not in NOT_POSTED:
        raise ClearingAlreadyPosted(
            f"{source} is {line.outcome}: its money is in the ledger already"
        )
    if line.debit_credit != "D" or line.amount_minor is None or not line.transaction_token:
        raise RematchNotSupported(f"{source} is not a readable charge with a token")
    accounts = selectors.clearing_accounts(
        card_tokens={line.card_token} - {""}, user_tokens={line.user_token} - {""}
    )
    return UnpostedClearing(
        token=line.transaction_token,
        wallet=accounts.wallet_for(
            card_token=line.card_token, user_token=line.user_token, currency_code=line.currency_code
        ),
        amount_minor=line.amount_minor,
        is_final=line.is_final_clearing is not False,  # empty: final, as nothing else matched
        merchant=ledger.Merchant(
            card_token=line.card_token, mcc=line.mcc, merchant_name=line.merchant_name
        ),
        source=source,
        marqeta_released_minor=line.amount_to_be_released_minor,
    )


def _unposted_from_event(exception: ReconciliationException) -> UnpostedClearing | None:
    """A clearing webhook that failed (its parent never came, or another wallet's hold)."""
    event = exception.webhook_event
    if event is None:
        return None
    txn = MarqetaTransaction.from_raw(event.raw)
    if event.category != TRANSACTIONS or txn.type not in CLEARING_TYPES:
        raise RematchNotSupported(f"webhook {event.token} is a {txn.type or event.category}")
    if txn.state not in POSTED_STATES or event.status != Status.FAILED:
        raise RematchNotSupported(f"webhook {event.token} is {txn.state} and {event.status}")
    wallet = _card_account(txn).wallet
    return UnpostedClearing(
        token=txn.token,
        wallet=wallet,
        amount_minor=txn.funding_amount_minor(wallet.currency_code),
        is_final=txn.is_final_clearing,
        merchant=_merchant(txn),
        source=f"webhook {event.token}",
        marqeta_released_minor=(
            txn.released_minor(wallet.currency_code) if txn.is_final_clearing else None
        ),
    )


def _ensure_rematchable(hold: Hold, unposted: UnpostedClearing) -> None:
    """Same currency, same wallet, and the chain's first authorization."""
    key = hold.authorization_key
    if hold.currency_code != unposted.currency_code:
        raise WrongHoldForRematch(
            f"{key} is in {hold.currency_code}; the clearing is in {unposted.currency_code}",
            why="other_currency",
        )
    if hold.wallet_id != unposted.wallet.pk:
        raise WrongHoldForRematch(
            f"{key} is another cardholder's hold; the clearing is {unposted.wallet.holder_token}'s",
            why="another_wallet",
        )
    if hold.original_id is not None:
        raise WrongHoldForRematch(
            f"{key} is an incremental: choose its authorization, {hold.original.authorization_key}",
            why="incremental",
        )


def _earlier_rematch(exception: ReconciliationException, *, hold: Hold) -> Rematch | None:
    """A second call: the first answer when it names the same hold; refused for another."""
    done = exception.details.get("rematch")
    if not done:
        return None
    if done["hold_id"] != hold.pk:
        raise AlreadyRematched(
            f"exception #{exception.pk} was rematched to {done['authorization_key']} already",
            hold_id=done["hold_id"],
        )
    return Rematch(exception=exception, clearing=exception.clearing, replayed=True)


def _record_rematch(
    exception: ReconciliationException,
    *,
    clearing: Clearing,
    unposted: UnpostedClearing,
    actor: AbstractBaseUser,
    reason: str,
) -> None:
    """Kept on the exception (links, notes, `details["rematch"]`): `ClearingLine` rows are
    the ingestion's immutable record of what the file did, so they are not rewritten."""
    key = clearing.hold.authorization_key
    charged = format_money(clearing.amount_minor, clearing.currency_code)
    text = f"rematched {unposted.source} ({charged}) to {key}: {reason}"
    exception.hold_id, exception.clearing = clearing.hold_id, clearing
    exception.ledger_transaction_id = clearing.posted_by_id
    exception.notes = _with_note(exception.notes, actor=actor, text=text)
    exception.details = {
        **exception.details,
        "rematch": {
            "hold_id": clearing.hold_id,
            "authorization_key": key,
            "clearing_id": clearing.pk,
            "clearing_key": clearing.clearing_key,
            "source": unposted.source,
            "from_hold_minor": clearing.from_hold_minor,
            "excess_minor": clearing.excess_minor,
            "released_minor": clearing.released_minor,
            "marqeta_released_minor": unposted.marqeta_released_minor,
        },
    }
    exception.save(
        update_fields=["hold", "clearing", "ledger_transaction", "notes", "details", "updated_at"]
    )


@transaction.atomic
def rematch_clearing(
    *,
    exception: ReconciliationException,
    hold: Hold,
    actor: AbstractBaseUser,
    reason: str,
) -> Rematch:
    """Post an unmatched clearing against the hold ops chose, and resolve the exception.

    The clearing key is Marqeta's transaction token, as the file and webhook paths use, so the
    line re-sent or the webhook retried later replays instead of charging again. Only a
    clearing that moved no money can be rematched (`unposted_clearing_of`); a second call with
    the same hold returns the first result (`replayed`), with another hold `AlreadyRematched`.
    """
    if not reason.strip():
        raise ReasonRequired("say why this hold is the clearing's authorization")
    exception = _locked(exception)
    if replay := _earlier_rematch(exception, hold=hold):
        return replay
    _ensure_unresolved(exception)
    unposted = unposted_clearing_of(exception=exception)
    _ensure_rematchable(hold, unposted)
    lock_hold_chain(hold=hold)  # the ledger's order: chain, then accounts; then check the key
    lock_accounts(ids=[unposted.wallet.available_id, unposted.wallet.held_id])
    _ensure_not_posted(unposted.token)
    with audited(target=exception, actor=actor, action="rematch_clearing", reason=reason.strip()):
        clearing = ledger.clear_hold(
            hold=hold,
            amount_minor=unposted.amount_minor,
            clearing_key=unposted.token,
            is_final=unposted.is_final,
            merchant=unposted.merchant,
            actor=f"ops:{actor.get_username()}",
        )
        _record_rematch(
            exception, clearing=clearing, unposted=unposted, actor=actor, reason=reason.strip()
        )
    flag_negative_balance(
        wallet=unposted.wallet, posting=clearing.posted_by, card_token=unposted.merchant.card_token
    )
    resolution = f"rematched to {hold.authorization_key}: {reason.strip()}"
    exception = resolve_exception(exception=exception, actor=actor, resolution=resolution)
    return Rematch(exception=exception, clearing=clearing, replayed=False)
