"""The ledger writer: drains the decision streams into PostgreSQL, exactly once.

Each partition's outbox stream has a consumer group. A batch is applied in one database
transaction and acknowledged only after the commit: runs of first authorizations set-based
(`write_plain`), every other event in a savepoint of its own (`apply_event`). A writer killed
mid-batch leaves its events pending; on restart it reads its pending entries first, and the
unique keys (`JitDecision.jit_funding_token`, the ledger's idempotency keys) make the second
application a no-op.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

import redis
import simplejson
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from redis.cluster import RedisCluster

from cards.models import FundingAccount
from cards.selectors import hold_expires_at
from config.errors import DomainError
from jit import cache, keys
from jit.methods import Op
from jit.models import JitDecision
from jit.receivers import GATEWAY_ACTOR, STANDIN_ACTOR
from jit.redis_client import maintenance_redis
from ledger import services as ledger
from ledger.batch import LedgerBatch
from ledger.errors import HoldNotOpen
from ledger.models import Hold, HoldRelease, Wallet

logger = logging.getLogger("jit.outbox")
GROUP = "ledger-writer"


@dataclass(frozen=True)
class OutboxEvent:
    stream: str
    event_id: str
    fields: dict[str, str]

    @property
    def identity(self) -> tuple[str, str]:
        """Stream ids are unique in their stream only: two partitions can use the same one."""
        return self.stream, self.event_id

    @cached_property
    def meta(self) -> dict:
        """Parsed once: the writer reads it a few times per event (read-only, never changed)."""
        return simplejson.loads(self.fields.get("meta") or "{}")


def ensure_groups(client: redis.Redis) -> None:
    """Create the consumer group on every partition's stream (idempotent)."""
    for stream in keys.all_outbox_keys():
        try:
            client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise


def shard_streams(shard: int = 0, shards: int = 1) -> list[str]:
    """The outbox streams writer `shard` of `shards` owns. A partition (so a cardholder, so a
    hold chain) always goes to the same writer, in order."""
    return [keys.outbox_key(number) for number in range(shard, keys.PARTITIONS, shards)]


def read_batch(
    client: redis.Redis,
    *,
    consumer: str,
    count: int,
    block_ms: int,
    streams: list[str] | None = None,
) -> list:
    """This consumer's pending events first (after a crash), then new ones: up to `count` from
    each stream (XREADGROUP's COUNT is per stream), so write them with `write_batches`."""
    owned = streams or keys.all_outbox_keys()
    # One XREADGROUP can name keys of one cluster slot only: on a cluster, one call a stream.
    groups = [[key] for key in owned] if isinstance(client, RedisCluster) else [owned]
    events = []
    for streams in groups:
        pending = client.xreadgroup(GROUP, consumer, dict.fromkeys(streams, "0"), count=count)
        events += _flatten(pending)
    if not events:
        for streams in groups:
            fresh = client.xreadgroup(
                GROUP,
                consumer,
                dict.fromkeys(streams, ">"),
                count=count,
                block=(block_ms or None) if len(groups) == 1 else None,
            )
            events += _flatten(fresh)
    return events


def _flatten(reply: Iterable) -> list[OutboxEvent]:
    return [
        OutboxEvent(stream=stream, event_id=event_id, fields=fields)
        for stream, entries in (reply or [])
        for event_id, fields in entries
        if fields  # an entry deleted while pending comes back empty
    ]


def _at(microseconds: int) -> datetime:
    return datetime.fromtimestamp(microseconds / 1_000_000, tz=UTC)


class Wallets:
    """Wallet and program lookups, cached for one batch."""

    RELATED = (
        "cardholder__program",
        "wallet__available",
        "wallet__held",
        "wallet__book__settlement_payable",
        "wallet__book__funding_bank",
    )

    def __init__(self) -> None:
        self._by_holder: dict[tuple[str, str], FundingAccount] = {}

    def load(self, holders: Iterable[tuple[str, str]]) -> None:
        """Look up many (holder token, currency) pairs in one query; unknown ones stay unknown."""
        wanted = set(holders) - set(self._by_holder)
        if not wanted:
            return
        found = self._accounts().filter(wallet__holder_token__any={holder for holder, _ in wanted})
        for account in found:
            key = (account.wallet.holder_token, account.wallet.currency_code)
            if key in wanted:
                self._by_holder[key] = account

    def _accounts(self) -> QuerySet[FundingAccount]:
        """With the program's MCC groups, which every hold's expiry reads."""
        return FundingAccount.objects.select_related(*self.RELATED).prefetch_related(
            "cardholder__program__mcc_groups"
        )

    def knows(self, holder_token: str, currency_code: str) -> bool:
        return (holder_token, currency_code) in self._by_holder

    def funding_account(self, holder_token: str, currency_code: str) -> FundingAccount:
        key = (holder_token, currency_code)
        if key not in self._by_holder:
            self._by_holder[key] = self._accounts().get(
                wallet__holder_token=holder_token, wallet__currency_code=currency_code
            )
        return self._by_holder[key]


def _merchant(meta: dict) -> ledger.Merchant:
    return ledger.Merchant(
        card_token=meta.get("card", ""),
        mcc=meta.get("mcc", ""),
        merchant_name=meta.get("merchant", ""),
    )


def _root_hold(meta: dict, jit_token: str) -> Hold | None:
    root = meta.get("original") or jit_token
    return Hold.objects.filter(authorization_key=f"jit:{root}").first()


def hold_arguments(
    event: OutboxEvent, account: FundingAccount, decided_at: datetime, *, is_standin: bool
) -> dict:
    """What `place_hold` (one by one or in a `LedgerBatch`) needs to hold an approval."""
    meta, jit_token = event.meta, event.fields["jit"]
    return {
        "wallet": account.wallet,
        "amount_minor": int(event.fields["amount"]),
        "authorization_key": f"jit:{jit_token}",
        "expires_at": hold_expires_at(
            program=account.cardholder.program, mcc=meta.get("mcc", ""), authorized_at=decided_at
        ),
        "merchant": _merchant(meta),
        "transaction_token": meta.get("txn", ""),
        "jit_funding_token": jit_token,
        "is_standin": is_standin,
        "allow_overdraw": True,  # the approval was already sent: record it, flag any overdraft
    }


def _place_hold(
    event: OutboxEvent,
    account: FundingAccount,
    decided_at: datetime,
    *,
    actor: str,
    is_standin: bool,
) -> Hold:
    meta, jit_token = event.meta, event.fields["jit"]
    original = _root_hold(meta, jit_token) if meta.get("original") else None
    hold = ledger.place_hold(
        **hold_arguments(event, account, decided_at, is_standin=is_standin),
        original=original,
        actor=actor,
    )
    if meta.get("capture"):  # single-message: charged at once, no clearing follows
        ledger.clear_hold(
            hold=hold,
            amount_minor=hold.amount_minor,
            clearing_key=meta.get("txn") or jit_token,
            merchant=_merchant(meta),
            actor=actor,
        )
    return hold


def _apply_advice(event: OutboxEvent, wallet: Wallet, actor: str) -> None:
    """The same postings a webhook would make, under the same keys (so they happen once)."""
    meta, op, amount = event.meta, event.fields["op"], int(event.fields["amount"])
    key = meta.get("txn") or event.fields["jit"]
    if amount == 0:
        return
    hold = _root_hold(meta, event.fields["jit"]) if op in (Op.RELEASE, Op.CLEAR) else None
    if op == Op.RELEASE:
        if hold is None:
            raise HoldNotOpen(f"no hold for {meta.get('original')} to release")
        ledger.release_hold(hold=hold, release_key=key, amount_minor=amount, actor=actor)
    elif op == Op.CLEAR and hold is not None:
        ledger.clear_hold(
            hold=hold,
            amount_minor=amount,
            clearing_key=key,
            is_final=bool(meta.get("final", True)),
            merchant=_merchant(meta),
            actor=actor,
        )
    elif op in (Op.CLEAR, Op.FORCE):  # a clearing whose authorization never reached us: forced
        ledger.force_post(
            wallet=wallet,
            amount_minor=amount,
            clearing_key=key,
            merchant=_merchant(meta),
            actor=actor,
        )
    elif op == Op.CREDIT:
        ledger.refund(wallet=wallet, amount_minor=amount, refund_key=key, actor=actor)


def _decision_row(event: OutboxEvent) -> JitDecision:
    fields, meta = event.fields, event.meta
    decided_us = int(fields["decided_us"])
    decided_at, received_at = _at(decided_us), _at(int(meta.get("received_us") or decided_us))
    return JitDecision(
        jit_funding_token=fields["jit"],
        method=meta.get("method", ""),
        op=fields["op"],
        transaction_token=meta.get("txn", ""),
        original_jit_funding_token=meta.get("original", ""),
        user_token=meta.get("user", ""),
        card_token=meta.get("card", ""),
        amount_minor=int(fields["amount"]),
        currency_code=meta.get("currency", ""),
        outcome=fields["outcome"],
        decline_reason=fields.get("decline", ""),
        reason_code=fields.get("reason", ""),
        rule_hits=fields.get("rules", ""),
        limits_left=fields.get("limits", ""),
        available_after_minor=int(fields["available"]) if fields.get("available") else None,
        mcc=meta.get("mcc", ""),
        merchant_name=meta.get("merchant", ""),
        country=meta.get("country", ""),
        channel=meta.get("channel", ""),
        received_at=received_at,
        decided_at=decided_at,
        latency_us=max(0, int((decided_at - received_at) / timedelta(microseconds=1))),
    )


def apply_event(
    event: OutboxEvent, wallets: Wallets, *, actor: str = GATEWAY_ACTOR, is_fallback: bool = False
) -> JitDecision:
    """Record one decision and post what it means to the ledger; a replay changes nothing.

    `actor` tells the cache sync whether the cache already reflects the posting: the gateway's
    own events did; stand-ins replayed from the spool did not.
    """
    if existing := JitDecision.objects.filter(jit_funding_token=event.fields["jit"]).first():
        if existing.outcome != event.fields["outcome"] and event.fields["op"] == Op.AUTH:
            _settle_disagreement(existing, event, wallets, is_fallback=is_fallback)
        return existing
    decision = _decision_row(event)
    decision.is_fallback = is_fallback
    op = event.fields["op"]
    try:
        with transaction.atomic():
            account = wallets.funding_account(decision.user_token, decision.currency_code)
            if (
                decision.outcome == "approved"
                and op in (Op.AUTH, Op.STANDIN)
                and decision.amount_minor
            ):
                decision.hold = _place_hold(
                    event,
                    account,
                    decision.decided_at,
                    actor=actor,
                    is_standin=is_fallback or op == Op.STANDIN,
                )
            elif op in (Op.RELEASE, Op.CLEAR, Op.FORCE, Op.CREDIT):
                _apply_advice(event, account.wallet, actor)
    except (DomainError, FundingAccount.DoesNotExist) as error:
        decision.ledger_error = f"{getattr(error, 'code', 'unknown_account')}: {error}"[:200]
        logger.error("outbox %s: ledger refused: %s", decision.jit_funding_token, error)
    decision.save()
    return decision


def _settle_disagreement(
    existing: JitDecision, event: OutboxEvent, wallets: Wallets, *, is_fallback: bool
) -> None:
    """A Redis call that timed out may still have run: the script decided one thing, the
    stand-in policy answered another. What Marqeta was told (the stand-in's answer) wins.

    - The script's event arrives after the stand-in's row: the ledger already follows the
      answer; only the cache moved for an approval nobody was told of, so give it back.
    - The stand-in's row arrives after the script's: post the answer over the decision.
    """
    if not is_fallback:
        if existing.is_fallback and existing.outcome == "declined":
            cache.apply_available_delta(
                user_token=existing.user_token,
                ledger_key=f"void:jit:{existing.jit_funding_token}",
                delta_minor=int(event.fields["amount"]),
            )
        return
    if existing.outcome == "approved" and existing.hold is not None:
        ledger.release_hold(
            hold=existing.hold,
            release_key=f"answered-declined:{existing.jit_funding_token}",
            reason=HoldRelease.Reason.DECLINED_BY_NETWORK,
            actor=STANDIN_ACTOR,
        )
    elif existing.outcome == "declined" and int(event.fields["amount"]):
        account = wallets.funding_account(existing.user_token, existing.currency_code)
        existing.hold = _place_hold(
            event, account, existing.decided_at, actor=STANDIN_ACTOR, is_standin=True
        )
    existing.outcome = event.fields["outcome"]
    existing.decline_reason = event.fields.get("decline", "")
    existing.reason_code = event.fields.get("reason", "")
    existing.is_fallback = True
    existing.ledger_error = "the gateway timed out after deciding; the stand-in answer stands"
    existing.save()


def write_batch(client: redis.Redis, events: list[OutboxEvent]) -> int:
    """Apply a batch in one transaction, then acknowledge (and delete) it.

    First authorizations are written set-based (`write_plain`), every other event through
    `apply_event` in its own savepoint, in waves (`_waves`) that keep each cardholder's order.
    """
    if not events:
        return 0
    wallets = Wallets()
    with transaction.atomic():
        plain = plain_events(events, wallets)
        for run, singles in _waves(events, plain):
            write_plain_run(run, wallets)
            for event in singles:
                apply_in_savepoint(event, wallets)
    acknowledge(client, events)
    return len(events)


def _waves(
    events: list[OutboxEvent], plain: set[tuple[str, str]]
) -> Iterator[tuple[list[OutboxEvent], list[OutboxEvent]]]:
    """(set-based run, events one by one) pairs: each cardholder's leading first
    authorizations go in the run, then each cardholder's next other event, and so on.

    Order matters within a cardholder only (an incremental or a reversal after its
    authorization); cardholders' wallets are disjoint. So a few other events in a batch no
    longer cut it into many small runs: there are as many waves as the busiest cardholder has
    other events.
    """
    queues: dict[str, deque[OutboxEvent]] = defaultdict(deque)
    for event in events:
        queues[event.meta.get("user", "")].append(event)
    while queues:
        run, singles = [], []
        for queue in queues.values():
            while queue and queue[0].identity in plain:
                run.append(queue.popleft())
            if queue:
                singles.append(queue.popleft())
        queues = {user: queue for user, queue in queues.items() if queue}
        yield run, singles


def write_batches(client: redis.Redis, events: list[OutboxEvent], *, size: int) -> int:
    """What one read returned, `size` events a transaction (each stream's order kept)."""
    return sum(
        write_batch(client, events[start : start + size]) for start in range(0, len(events), size)
    )


def acknowledge(client: redis.Redis, events: list[OutboxEvent]) -> None:
    """Written: acknowledge and delete the events (only ever after the commit)."""
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xack(event.stream, GROUP, event.event_id)
        pipe.xdel(event.stream, event.event_id)
    pipe.execute()


def apply_in_savepoint(event: OutboxEvent, wallets: Wallets) -> None:
    """`apply_event` in a savepoint of its own: a unique key another writer took first
    undoes this event only."""
    try:
        with transaction.atomic():
            apply_event(event, wallets)
    except IntegrityError:  # another writer applied it first: the unique keys held
        logger.info("outbox %s: already applied elsewhere", event.fields.get("jit"))


def write_plain_run(run: list[OutboxEvent], wallets: Wallets) -> None:
    """A run of plain authorizations, set-based; one by one if the database refuses the set
    (another writer recorded one of them meanwhile) or the ledger refuses one of them."""
    if not run:
        return
    try:
        with transaction.atomic():
            write_plain(run, wallets)
    except (IntegrityError, DomainError) as error:
        logger.info("outbox: %s plain events one by one (%s)", len(run), error)
        for event in run:
            apply_in_savepoint(event, wallets)


# --- the set-based path ------------------------------------------------------------------
# Most events are first authorizations, approved or declined. `apply_event` posts each one
# through the services (about twenty statements); a run of them is written here with one
# `LedgerBatch` (transactions, entries and holds by COPY, one UPDATE of the accounts) and one
# INSERT of their decisions. Incrementals, captures, advices, replays and stand-in
# disagreements still go through `apply_event`.


def _is_first_authorization(event: OutboxEvent) -> bool:
    if event.fields["op"] not in (Op.AUTH, Op.STANDIN):
        return False
    meta = event.meta
    return not meta.get("original") and not meta.get("capture")


def plain_events(events: list[OutboxEvent], wallets: Wallets) -> set[tuple[str, str]]:
    """Identities of the events `write_plain` may write: first authorizations not recorded
    yet, their token once in the batch, no hold under their key, their wallet known (three
    queries)."""
    candidates = [event for event in events if _is_first_authorization(event)]
    tokens = Counter(event.fields["jit"] for event in candidates)
    recorded = set(
        JitDecision.objects.filter(jit_funding_token__any=tokens).values_list(
            "jit_funding_token", flat=True
        )
    )
    held = set(
        Hold.objects.filter(
            authorization_key__any=[f"jit:{token}" for token in tokens]
        ).values_list("authorization_key", flat=True)
    )
    holders = [(event.meta.get("user", ""), event.meta.get("currency", "")) for event in candidates]
    wallets.load(holders)
    return {
        event.identity
        for event, holder in zip(candidates, holders, strict=True)
        if tokens[token := event.fields["jit"]] == 1
        and token not in recorded
        and f"jit:{token}" not in held
        and wallets.knows(*holder)
    }


def write_plain(events: list[OutboxEvent], wallets: Wallets) -> None:
    """Record first authorizations and hold the approved ones, set-based (`plain_events`)."""
    decisions, batch = [], LedgerBatch()
    approved = [event for event in events if _approved_amount(event)]
    batch.lock(wallets=[_account_of(event, wallets).wallet for event in approved], settlement=False)
    for event in events:
        decision = _decision_row(event)
        if _approved_amount(event):
            planned = batch.place_hold(
                **hold_arguments(
                    event,
                    _account_of(event, wallets),
                    decision.decided_at,
                    is_standin=event.fields["op"] == Op.STANDIN,
                ),
                actor=GATEWAY_ACTOR,
            )
            decision.hold = planned.hold
        decisions.append(decision)
    batch.flush()
    JitDecision.objects.bulk_create(decisions)


def _approved_amount(event: OutboxEvent) -> int:
    """The amount an approval holds (0 for a decline or a zero-amount approval)."""
    return int(event.fields["amount"]) if event.fields["outcome"] == "approved" else 0


def _account_of(event: OutboxEvent, wallets: Wallets) -> FundingAccount:
    meta = event.meta
    return wallets.funding_account(meta.get("user", ""), meta.get("currency", ""))


def drain_outbox(*, consumer: str = "writer-1", count: int = 500, max_batches: int = 1000) -> int:
    """Write everything now in the outbox (tests, rebuild, the command's loop)."""
    client = maintenance_redis()
    ensure_groups(client)
    written = 0
    for _ in range(max_batches):
        events = read_batch(client, consumer=consumer, count=count, block_ms=0)
        if not events:
            break
        written += write_batches(client, events, size=count)
    return written


def outbox_lag(client: redis.Redis) -> int:
    """Events not yet written to the ledger, over every partition."""
    pipe = client.pipeline(transaction=False)
    for stream in keys.all_outbox_keys():
        pipe.xlen(stream)
    return sum(pipe.execute())
