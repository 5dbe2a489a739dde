"""Reads for reconciliation: hold matching, decisions, the webhook backlog, the queue."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q, Sum
from django.utils import timezone

from cards.models import Card, Cardholder, FundingAccount
from jit.models import JitDecision
from ledger.models import Hold, HoldStatus
from reconciliation.models import ReconciliationException, WebhookEvent

MAX_CHAIN_STEPS = 10  # auth -> incrementals / advices -> clearing: a handful at most


def root_hold_for(*, preceding_token: str, original_jit_token: str) -> Hold | None:
    """The first hold of the chain an event follows (MARQETA.md §8.4, §10).

    Walk `preceding_related_transaction_token`: a hold placed for that transaction, else a
    webhook we stored for it (an advice, say) and the transaction that one follows. Then
    `jit:<original_jit_funding_token>`. The answer is the chain's root (`hold.original`).
    """
    token, seen = preceding_token, set()
    while token and token not in seen and len(seen) < MAX_CHAIN_STEPS:
        seen.add(token)
        hold = (
            Hold.objects.select_related("original")
            .filter(transaction_token=token)
            .order_by("pk")
            .first()
        )
        if hold is not None:
            return hold.original or hold
        parent = WebhookEvent.objects.filter(token=token).only("preceding_token").first()
        token = parent.preceding_token if parent else ""
    if original_jit_token:
        hold = (
            Hold.objects.select_related("original")
            .filter(authorization_key=f"jit:{original_jit_token}")
            .first()
        )
        if hold is not None:
            return hold.original or hold
    return None


def open_remaining_minor(*, hold: Hold) -> int:
    """What the hold's chain (the root and its incrementals) still holds."""
    root_id = hold.original_id or hold.pk
    chain = Hold.objects.filter(Q(pk=root_id) | Q(original_id=root_id), status=HoldStatus.OPEN)
    return chain.aggregate(total=Sum("remaining_minor"))["total"] or 0


def card_named(*, token: str) -> Card | None:
    return Card.objects.select_related("cardholder__program").filter(token=token).first()


def cardholder_named(*, token: str) -> Cardholder | None:
    return Cardholder.objects.select_related("program").filter(token=token).first()


def funding_account_of(
    *, cardholder: Cardholder, currency_code: str | None
) -> FundingAccount | None:
    """The cardholder's funding account in that currency (any one when None)."""
    accounts = FundingAccount.objects.select_related(
        "wallet__book__settlement_payable",
        "wallet__book__funding_bank",
        "wallet__available",
        "wallet__held",
    ).filter(cardholder=cardholder)
    if currency_code is not None:
        accounts = accounts.filter(currency_code=currency_code)
    return accounts.order_by("pk").first()


def decision_for(*, jit_funding_token: str) -> JitDecision | None:
    """Our recorded answer to a JIT funding message, once the ledger writer has written it."""
    if not jit_funding_token:
        return None
    return (
        JitDecision.objects.select_related("hold")
        .filter(jit_funding_token=jit_funding_token)
        .first()
    )


def stalled_webhook_event_ids(*, idle_for: timedelta, limit: int = 1000) -> list[int]:
    """Events still to apply whose last attempt (or arrival) is older than `idle_for`."""
    cutoff = timezone.now() - idle_for
    pending = WebhookEvent.objects.filter(
        status__in=[WebhookEvent.Status.RECEIVED, WebhookEvent.Status.WAITING],
        received_at__lt=cutoff,
    ).filter(Q(last_attempt_at__isnull=True) | Q(last_attempt_at__lt=cutoff))
    return list(pending.order_by("received_at").values_list("pk", flat=True)[:limit])


def open_exceptions(*, kind: str | None = None) -> list[ReconciliationException]:
    """The queue: open and in-progress exceptions, oldest first."""
    rows = ReconciliationException.objects.exclude(state=ReconciliationException.State.RESOLVED)
    if kind:
        rows = rows.filter(kind=kind)
    return list(rows.order_by("created_at", "pk"))
