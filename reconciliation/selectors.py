"""Reads for reconciliation: hold matching, decisions, the webhook backlog, the queue."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Q, Sum
from django.utils import timezone

from cards.models import Card, Cardholder, FundingAccount
from jit.models import JitDecision
from ledger.errors import CurrencyMismatch
from ledger.models import Hold, HoldStatus, LedgerTransaction, Wallet
from reconciliation.errors import UnknownCardOrUser
from reconciliation.models import ClearingFile, ReconciliationException, WebhookEvent

MAX_CHAIN_STEPS = 10  # auth -> incrementals / advices -> clearing: a handful at most
FUZZY_CANDIDATES = 20  # open holds of one card and merchant within a week: a few at most


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


# --- clearing files -----------------------------------------------------------------------------


def holds_by_authorization_key(*, keys: Iterable[str]) -> dict[str, Hold]:
    """Holds by `authorization_key` (`jit:<token>`), the chain's root where there is one."""
    keys = {key for key in keys if key}
    if not keys:
        return {}
    holds = Hold.objects.select_related("original").filter(authorization_key__in=keys)
    return {hold.authorization_key: hold.original or hold for hold in holds}


def holds_by_transaction_token(*, tokens: Iterable[str]) -> dict[str, Hold]:
    """The root hold placed for each Marqeta transaction token (the first if several)."""
    tokens = {token for token in tokens if token}
    if not tokens:
        return {}
    found: dict[str, Hold] = {}
    holds = Hold.objects.select_related("original").filter(transaction_token__in=tokens)
    for hold in holds.order_by("pk"):
        found.setdefault(hold.transaction_token, hold.original or hold)
    return found


def fuzzy_hold_for(
    *,
    wallet: Wallet,
    card_token: str,
    amount_minor: int,
    mcc: str,
    merchant_name: str,
    settled_on: date,
    tolerance_percent: int,
    window_days: int,
) -> Hold | None:
    """An open authorization that looks like the one a clearing names but we cannot find.

    Same wallet and card, still holding money, the same MCC or merchant name, placed within
    `window_days` before the settlement date (or on it), its open amount within
    `tolerance_percent` of the cleared amount (tips, fuel). The closest amount wins, then the
    oldest. The caller flags the match for review.
    """
    if not card_token or not (mcc or merchant_name):
        return None
    same_merchant = Q()
    if mcc:
        same_merchant |= Q(mcc=mcc)
    if merchant_name:
        same_merchant |= Q(merchant_name__iexact=merchant_name)
    start = datetime.combine(settled_on - timedelta(days=window_days), time.min, tzinfo=UTC)
    end = datetime.combine(settled_on + timedelta(days=1), time.min, tzinfo=UTC)
    roots = (
        Hold.objects.filter(
            wallet=wallet,
            card_token=card_token,
            status=HoldStatus.OPEN,
            original__isnull=True,
            created_at__gte=start,
            created_at__lt=end,
        )
        .filter(same_merchant)
        .order_by("created_at", "pk")[:FUZZY_CANDIDATES]
    )
    best: tuple[int, Hold] | None = None
    for hold in roots:
        open_minor = open_remaining_minor(hold=hold)
        difference = abs(amount_minor - open_minor)
        if open_minor <= 0 or difference * 100 > open_minor * tolerance_percent:
            continue
        if best is None or difference < best[0]:
            best = (difference, hold)
    return best[1] if best else None


def refund_amount_minor(*, posting: LedgerTransaction) -> int:
    """What a refund posting credited the cardholder (its debit side)."""
    total = posting.entries.filter(amount_minor__gt=0).aggregate(total=Sum("amount_minor"))
    return total["total"] or 0


def stalled_clearing_file_ids(*, idle_minutes: int) -> list[int]:
    """Files received or mid-ingestion with no batch committed for `idle_minutes`."""
    cutoff = timezone.now() - timedelta(minutes=idle_minutes)
    stalled = ClearingFile.objects.filter(
        status__in=[ClearingFile.Status.RECEIVED, ClearingFile.Status.INGESTING]
    ).filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, received_at__lt=cutoff))
    return list(stalled.order_by("pk").values_list("pk", flat=True))


@dataclass(frozen=True, slots=True)
class ClearingAccounts:
    """Cards, cardholders and wallets named by one batch, loaded together."""

    cardholder_of_card: dict[str, int]
    cardholder_of_user: dict[str, int]
    wallets: dict[tuple[int, str], Wallet]
    with_accounts: frozenset[int]

    def wallet_for(self, *, card_token: str, user_token: str, currency_code: str) -> Wallet:
        """The cardholder's wallet in the line's currency, as the webhook path finds it."""
        cardholder_id = None
        if card_token:
            cardholder_id = self.cardholder_of_card.get(card_token)
            if cardholder_id is None:
                raise UnknownCardOrUser(f"no card {card_token!r}", card_token=card_token)
        if user_token:
            cardholder_id = self.cardholder_of_user.get(user_token)
            if cardholder_id is None:
                raise UnknownCardOrUser(f"no cardholder {user_token!r}", user_token=user_token)
        if cardholder_id is None:
            raise UnknownCardOrUser("the line names no card and no user")
        wallet = self.wallets.get((cardholder_id, currency_code))
        if wallet is not None:
            return wallet
        if cardholder_id in self.with_accounts:
            raise CurrencyMismatch(
                f"the line is in {currency_code}; the cardholder has no wallet in it",
                line_currency=currency_code,
            )
        raise UnknownCardOrUser("the cardholder has no funding account")


def clearing_accounts(*, card_tokens: set[str], user_tokens: set[str]) -> ClearingAccounts:
    """The cards, cardholders and wallets a batch of clearing lines names (four queries)."""
    cards = dict(Card.objects.filter(token__in=card_tokens).values_list("token", "cardholder_id"))
    users = dict(Cardholder.objects.filter(token__in=user_tokens).values_list("token", "pk"))
    holder_ids = set(cards.values()) | set(users.values())
    funding = FundingAccount.objects.filter(cardholder_id__in=holder_ids).select_related(
        "wallet__book__settlement_payable", "wallet__available", "wallet__held"
    )
    wallets = {
        (account.cardholder_id, account.currency_code): account.wallet for account in funding
    }
    return ClearingAccounts(
        cardholder_of_card=cards,
        cardholder_of_user=users,
        wallets=wallets,
        with_accounts=frozenset(holder for holder, _ in wallets),
    )
