"""Reads for reconciliation: hold matching, decisions, the webhook backlog, the queue."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
    link = (preceding_token, original_jit_token)
    root_id = root_ids_for(links=[link])[link]
    return Hold.objects.get(pk=root_id) if root_id is not None else None


def root_ids_for(*, links: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int | None]:
    """`root_hold_for` for many (preceding token, original JIT token) links: root hold ids.

    Two queries per step of the longest chain walked (usually one step), not per link: a
    clearing batch resolves all its lines' links together.
    """
    links = set(links)
    found: dict[tuple[str, str], int] = {}
    walking = {link: link[0] for link in links if link[0]}  # link -> the token to look up
    seen: dict[tuple[str, str], set[str]] = {link: set() for link in walking}
    while walking:
        roots = root_ids_by_transaction_token(tokens=set(walking.values()))
        parents = dict(
            WebhookEvent.objects.filter(
                token__any=set(walking.values()) - roots.keys()
            ).values_list("token", "preceding_token")
        )
        step: dict[tuple[str, str], str] = {}
        for link, token in walking.items():
            seen[link].add(token)
            parent = parents.get(token, "")
            if token in roots:
                found[link] = roots[token]
            elif parent and parent not in seen[link] and len(seen[link]) < MAX_CHAIN_STEPS:
                step[link] = parent
        walking = step
    by_key = root_ids_by_authorization_key(
        keys={f"jit:{link[1]}" for link in links if link[1] and link not in found}
    )
    for link in links:
        if link not in found and (root_id := by_key.get(f"jit:{link[1]}")) is not None:
            found[link] = root_id
    return {link: found.get(link) for link in links}


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


def root_ids_by_authorization_key(*, keys: Iterable[str]) -> dict[str, int]:
    """The root hold id of each `authorization_key` (`jit:<token>`) found (one query)."""
    keys = {key for key in keys if key}
    if not keys:
        return {}
    rows = Hold.objects.filter(authorization_key__any=keys).values_list(
        "authorization_key", "pk", "original_id"
    )
    return {key: original_id or pk for key, pk, original_id in rows}


def root_ids_by_transaction_token(*, tokens: Iterable[str]) -> dict[str, int]:
    """The root hold id placed for each Marqeta transaction token (the first if several)."""
    tokens = {token for token in tokens if token}
    if not tokens:
        return {}
    found: dict[str, int] = {}
    rows = (
        Hold.objects.filter(transaction_token__any=tokens)
        .order_by("pk")
        .values_list("transaction_token", "pk", "original_id")
    )
    for token, pk, original_id in rows:
        found.setdefault(token, original_id or pk)
    return found


@dataclass(frozen=True, slots=True)
class FuzzyClearing:
    """What a clearing tells us of the authorization it names but we cannot find."""

    wallet_id: int
    card_token: str
    amount_minor: int
    mcc: str
    merchant_name: str
    settled_on: date

    @property
    def searchable(self) -> bool:
        return bool(self.card_token and (self.mcc or self.merchant_name))


def _window(settled_on: date, window_days: int) -> tuple[datetime, datetime]:
    start = datetime.combine(settled_on - timedelta(days=window_days), time.min, tzinfo=UTC)
    return start, datetime.combine(settled_on + timedelta(days=1), time.min, tzinfo=UTC)


def fuzzy_candidates(
    *, clearings: Iterable[FuzzyClearing], window_days: int
) -> dict[tuple[int, str], list[Hold]]:
    """Open root holds of the clearings' (wallet, card) pairs, oldest first (one query)."""
    clearings = [clearing for clearing in clearings if clearing.searchable]
    if not clearings:
        return {}
    start = min(_window(c.settled_on, window_days)[0] for c in clearings)
    end = max(_window(c.settled_on, window_days)[1] for c in clearings)
    pairs = {(c.wallet_id, c.card_token) for c in clearings}
    holds = Hold.objects.filter(  # cards, then their pairs here: one index scan, not an OR
        card_token__any={card_token for _, card_token in pairs},
        status=HoldStatus.OPEN,
        original__isnull=True,
        created_at__gte=start,
        created_at__lt=end,
    ).order_by("created_at", "pk")
    found: dict[tuple[int, str], list[Hold]] = {}
    for hold in holds:
        if (hold.wallet_id, hold.card_token) in pairs:
            found.setdefault((hold.wallet_id, hold.card_token), []).append(hold)
    return found


def pick_fuzzy_hold(
    clearing: FuzzyClearing,
    candidates: list[Hold],
    *,
    tolerance_percent: int,
    window_days: int,
    open_remaining: Callable[[Hold], int],
) -> Hold | None:
    """An open authorization that looks like the one a clearing names but we cannot find.

    Among `candidates` (from `fuzzy_candidates`, oldest first): the same MCC or merchant name,
    placed within `window_days` before the settlement date (or on it), its open amount (read
    by `open_remaining`: a clearing batch passes what its own postings left) within
    `tolerance_percent` of the cleared amount (tips, fuel). The closest amount wins, then the
    oldest. The caller flags the match for review.
    """
    if not clearing.searchable:
        return None
    start, end = _window(clearing.settled_on, window_days)
    merchant = clearing.merchant_name.upper()
    alike = [
        hold
        for hold in candidates
        if start <= hold.created_at < end
        and (
            (clearing.mcc and hold.mcc == clearing.mcc)
            or (merchant and hold.merchant_name.upper() == merchant)
        )
    ][:FUZZY_CANDIDATES]
    best: tuple[int, Hold] | None = None
    for hold in alike:
        open_minor = open_remaining(hold)
        difference = abs(clearing.amount_minor - open_minor)
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
    cards = dict(Card.objects.filter(token__any=card_tokens).values_list("token", "cardholder_id"))
    users = dict(Cardholder.objects.filter(token__any=user_tokens).values_list("token", "pk"))
    holder_ids = set(cards.values()) | set(users.values())
    funding = FundingAccount.objects.filter(cardholder_id__any=holder_ids).select_related(
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
