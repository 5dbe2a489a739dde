"""A card's history for support: one timeline of decisions and money, newest first.

Built from the ledger (every posting on the cardholder's available and held accounts, with the
running available balance after each) and the gateway's decisions (declines, and the decision
behind each hold). A fixed number of queries whatever the length: no N+1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Case, IntegerField, Sum, When

from cards.models import Card
from cards.selectors import funding_account_for
from jit.models import JitDecision
from jit.reasons import in_words
from ledger.models import HoldStatus, Kind, LedgerEntry, LedgerTransaction

KIND_WORDS = {
    Kind.DEPOSIT: "deposit",
    Kind.WITHDRAWAL: "withdrawal",
    Kind.CLEARING: "clearing",
    Kind.FORCE_POST: "force post (cleared without an authorization)",
    Kind.REFUND: "refund",
    Kind.ADJUSTMENT: "manual adjustment",
    Kind.REVERSAL: "correction",
}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: datetime
    kind: str
    description: str
    amount_minor: int
    card_token: str
    available_after_minor: int | None
    reference: str
    decision: dict[str, Any] | None = None
    hold: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _decision_view(decision: JitDecision) -> dict[str, Any]:
    words = in_words(
        reason_code=decision.reason_code,
        limits_left=decision.limits_left,
        currency_code=decision.currency_code or "USD",
    )
    return {
        "jit_funding_token": decision.jit_funding_token,
        "method": decision.method,
        "outcome": decision.outcome,
        "decline_reason": decision.decline_reason,
        "reason_code": decision.reason_code,
        "explanation": f"{decision.outcome}: {words}",
        "latency_us": decision.latency_us,
        "is_fallback": decision.is_fallback,
        "rule_hits": decision.rule_hits,
        "merchant_name": decision.merchant_name,
        "mcc": decision.mcc,
    }


def _available_deltas(available_id: int, held_id: int, limit: int) -> list[tuple[int, int]]:
    """(transaction id, natural delta on available), newest first."""
    rows = (
        LedgerEntry.objects.filter(account_id__in=[available_id, held_id])
        .values("transaction_id")
        .annotate(
            signed=Sum(
                Case(
                    When(account_id=available_id, then="amount_minor"),
                    default=0,
                    output_field=IntegerField(),
                )
            )
        )
        .order_by("-transaction_id")[:limit]
    )
    return [(row["transaction_id"], -row["signed"]) for row in rows]  # a liability: credit up


def _posting_entry(
    posting: LedgerTransaction, available_after: int, decisions: dict[int, JitDecision]
) -> HistoryEntry:
    hold = getattr(posting, "hold", None)
    clearing = getattr(posting, "clearing", None)
    release = getattr(posting, "release", None)
    card_token, details, hold_view, decision = "", {}, None, None
    if hold is not None:
        kind = "incremental authorization" if hold.original_id else "authorization"
        amount, card_token = hold.amount_minor, hold.card_token
        decision = decisions.get(hold.pk)
        hold_view = {
            "status": hold.status,
            "remaining_minor": hold.remaining_minor,
            "expires_at": hold.expires_at if hold.status == HoldStatus.OPEN else None,
            "is_standin": hold.is_standin,
        }
        description = f"{kind} held at {hold.merchant_name or 'merchant'}".strip()
    elif clearing is not None:
        kind = KIND_WORDS[Kind(posting.kind)]
        amount, card_token = clearing.amount_minor, clearing.card_token
        details = {
            "from_hold_minor": clearing.from_hold_minor,
            "excess_minor": clearing.excess_minor,
            "released_minor": clearing.released_minor,
            "is_final": clearing.is_final,
        }
        description = f"{kind} {clearing.merchant_name}".strip()
    elif release is not None:
        kind = "hold expired" if release.reason == "expiry" else f"hold released ({release.reason})"
        amount, card_token = release.amount_minor, release.hold.card_token
        description = f"{kind} of {release.hold.merchant_name or release.hold.authorization_key}"
    else:
        kind = KIND_WORDS.get(Kind(posting.kind), posting.kind)
        amount = abs(sum(e.amount_minor for e in posting.entries.all() if e.amount_minor > 0))
        description = f"{kind}: {posting.memo}" if posting.memo else kind
    return HistoryEntry(
        at=decision.decided_at if decision else posting.created_at,  # the swipe, not the write
        kind=kind, description=description, amount_minor=amount,
        card_token=card_token, available_after_minor=available_after,
        reference=posting.idempotency_key, decision=_decision_view(decision) if decision else None,
        hold=hold_view, details=details,
    )  # fmt: skip


def card_history(*, card: Card, limit: int = 500) -> list[HistoryEntry]:
    """Newest first: the postings of the cardholder's wallet and this card's declines."""
    wallet = funding_account_for(cardholder=card.cardholder).wallet
    deltas = _available_deltas(wallet.available_id, wallet.held_id, limit)
    postings = {
        posting.pk: posting
        for posting in LedgerTransaction.objects.filter(pk__in=[pk for pk, _ in deltas])
        .select_related("hold", "clearing", "release__hold")
        .prefetch_related("entries")
    }
    hold_ids = [p.hold.pk for p in postings.values() if getattr(p, "hold", None) is not None]
    decisions = {d.hold_id: d for d in JitDecision.objects.filter(hold_id__in=hold_ids)}
    entries, balance = [], wallet.available.balance_minor
    for posting_id, delta in deltas:  # walk back from today's balance
        entries.append(_posting_entry(postings[posting_id], balance, decisions))
        balance -= delta
    declines = JitDecision.objects.filter(card_token=card.token, outcome="declined").order_by(
        "-decided_at"
    )[:limit]
    entries += [
        HistoryEntry(
            at=decline.decided_at,
            kind="declined authorization",
            description=f"declined at {decline.merchant_name or 'merchant'}",
            amount_minor=decline.amount_minor,
            card_token=decline.card_token,
            available_after_minor=decline.available_after_minor,
            reference=decline.jit_funding_token,
            decision=_decision_view(decline),
        )  # fmt: skip
        for decline in declines
    ]
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries[:limit]
