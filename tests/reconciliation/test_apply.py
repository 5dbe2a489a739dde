"""Applying Marqeta's events to the ledger: MARQETA.md §6 cases with the §11 worked example.

Decisions come from the real gateway and ledger writer; every money movement is asserted on
the ledger's balances (available, pending) and on what the program owes the network.
"""

from __future__ import annotations

import pytest

from jit import cache
from jit.outbox import drain_outbox
from ledger.models import (
    Clearing,
    Hold,
    HoldRelease,
    HoldStatus,
    LedgerTransaction,
)
from ledger.services import expire_hold
from reconciliation import services
from reconciliation.errors import ParentNotYetKnown
from reconciliation.models import ReconciliationException, WebhookEvent
from tests.ledger.helpers import assert_ledger_consistent, balances
from tests.reconciliation.conftest import (
    USER,
    approve,
    ask_gateway,
    receive,
    settled,
    store,
    transaction,
)

pytestmark = pytest.mark.django_db


def kinds() -> list[str]:
    return sorted(ReconciliationException.objects.values_list("kind", flat=True))


def timed_out(event: dict, *, state: str = "DECLINED") -> dict:
    """Marqeta's view after our answer came too late (MARQETA.md §4.8, §5)."""
    event["state"] = state
    log = event["gpa_order"]["funding"]["gateway_log"]
    log.update(timed_out=True, message="Operation timeout", duration=3000)
    log.pop("response", None)
    return event


def auth_c(client, jit_auth):
    return approve(
        client,
        jit_auth,
        txn="txn-c-auth",
        jit="jit-c-auth",
        amount="20.00",
        mcc="5812",
        merchant="BLUE BOTTLE COFFEE",
    )


def auth_a(client, jit_auth, amount: str = "150.00"):
    return approve(client, jit_auth, txn="txn-a-auth", jit="jit-a-auth", amount=amount)


def incremental_a(client, jit_auth):
    return approve(
        client,
        jit_auth,
        txn="txn-a-incr",
        jit="jit-a-incr",
        amount="50.00",
        method="pgfs.authorization.incremental",
        original="jit-a-auth",
        preceding="txn-a-auth",
    )


def clearing_of(auth_txn: str, *, token: str, amount: str, final: bool, **top) -> dict:
    jit_token = auth_txn.replace("txn-", "jit-")
    top.setdefault("amount_to_be_released", None)  # Marqeta sends it on some final clearings
    event = transaction(
        "webhook_clearing_2",
        token=token,
        preceding_related_transaction_token=auth_txn,
        amount=amount,
        is_final_clearing=final,
        jit={"token": f"jit-{token}", "amount": amount, "original_jit_funding_token": jit_token},
        **top,
    )
    return {key: value for key, value in event.items() if value is not None}


# --- authorizations ---------------------------------------------------------------------------


def test_given_our_approval_when_authorization_webhook_then_confirmed_and_nothing_moves(
    client, jit_auth, week_wallet
):
    # given
    auth_a(client, jit_auth)
    postings = LedgerTransaction.objects.count()
    # when
    event = receive(transaction("webhook_authorization"))
    # then
    assert (event.status, event.outcome, event.attempts) == ("applied", "confirmed", 1)
    assert balances(week_wallet) == (10_000, 15_000)
    assert LedgerTransaction.objects.count() == postings
    assert kinds() == []


def test_given_decision_still_in_outbox_when_authorization_webhook_then_waits_then_confirms(
    client, jit_auth, week_wallet
):
    # given: the gateway approved, the ledger writer has not written it yet
    assert ask_gateway(
        client, jit_auth, txn="txn-a-auth", jit="jit-a-auth", amount="150.00"
    ).status_code == (200)
    (event,) = store(transaction("webhook_authorization"))
    # when
    with pytest.raises(ParentNotYetKnown):
        services.apply_webhook_event(event=event)
    # then
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("waiting", 1)
    assert not Hold.objects.exists()
    # when the writer catches up and the task retries
    drain_outbox()
    event = services.apply_webhook_event(event=event)
    # then
    assert (event.status, event.outcome, event.attempts) == ("applied", "confirmed", 2)
    assert Hold.objects.count() == 1
    assert balances(week_wallet) == (10_000, 15_000)
    assert kinds() == []


def test_given_commando_standin_when_authorization_webhook_then_standin_hold_and_exception(
    week_wallet,
):
    # when
    event = receive(transaction("webhook_authorization_standin"))
    # then
    hold = Hold.objects.get(authorization_key="jit:jit-s-auth")
    assert (hold.amount_minor, hold.is_standin, hold.transaction_token) == (
        4_000,
        True,
        "txn-s-auth",
    )
    assert (hold.mcc, hold.card_token) == ("5411", "card_91b2")
    assert balances(week_wallet) == (21_000, 4_000)
    assert cache.cached_available(user_token=USER) == 21_000
    exception = ReconciliationException.objects.get()
    assert (exception.kind, exception.hold, exception.webhook_event) == (
        "standin_approval",
        hold,
        event,
    )
    assert (exception.amount_minor, exception.currency_code, exception.state) == (
        4_000,
        "USD",
        "open",
    )
    assert "standin_by=COMMANDO_AUTO" in exception.details["why"]
    assert event.status == "applied"


def test_given_standin_applied_when_applied_again_then_nothing_moves_twice(week_wallet):
    # given
    event = receive(transaction("webhook_authorization_standin"))
    postings = LedgerTransaction.objects.count()
    # when
    again = services.apply_webhook_event(event=event)
    # then
    assert (again.status, again.attempts) == ("applied", 1)
    assert LedgerTransaction.objects.count() == postings
    assert balances(week_wallet) == (21_000, 4_000)
    assert kinds() == ["standin_approval"]


def test_given_standin_over_the_balance_when_applied_then_held_anyway_and_negative_flagged(
    week_wallet,
):
    # when
    receive(transaction("webhook_authorization_standin", amount="300.00", jit={"amount": "300.00"}))
    # then
    assert balances(week_wallet) == (-5_000, 30_000)
    assert kinds() == ["negative_balance", "standin_approval"]
    negative = ReconciliationException.objects.get(kind="negative_balance")
    assert (negative.amount_minor, negative.user_token) == (-5_000, USER)
    assert_ledger_consistent()


def test_given_single_message_pin_debit_standin_when_applied_then_charged_at_once(week_wallet):
    # when
    receive(
        transaction(
            "webhook_authorization_standin",
            type="pindebit",
            state="COMPLETION",
            jit={"method": "pgfs.pindebit"},
        )
    )
    # then
    assert balances(week_wallet) == (21_000, 0)
    assert settled(week_wallet) == 4_000
    assert Clearing.objects.get().clearing_key == "txn-s-auth"
    assert kinds() == ["standin_approval"]


def test_given_marqeta_approval_we_never_decided_when_retries_run_out_then_held_and_flagged(
    week_wallet,
):
    # given: an approval with no sign of a stand-in and no decision of ours
    (event,) = store(transaction("webhook_authorization", token="txn-u", jit={"token": "jit-u"}))
    with pytest.raises(ParentNotYetKnown):
        services.apply_webhook_event(event=event)
    assert balances(week_wallet) == (25_000, 0)
    # when: the last attempt
    event = services.apply_webhook_event(event=event, last_attempt=True)
    # then
    assert event.status == "applied"
    hold = Hold.objects.get(authorization_key="jit:jit-u")
    assert hold.is_standin
    assert balances(week_wallet) == (10_000, 15_000)
    exception = ReconciliationException.objects.get()
    assert (exception.kind, exception.hold) == ("unknown_marqeta_approval", hold)


def test_given_our_approval_timed_out_when_declined_webhook_then_our_hold_is_released(
    client, jit_auth, week_wallet
):
    # given
    decision = auth_a(client, jit_auth)
    assert cache.cached_available(user_token=USER) == 10_000
    # when
    event = receive(timed_out(transaction("webhook_authorization")))
    # then
    assert event.status == "applied"
    assert "timed out" in event.outcome
    assert balances(week_wallet) == (25_000, 0)
    assert cache.cached_available(user_token=USER) == 25_000
    release = HoldRelease.objects.get()
    assert (release.release_key, release.reason, release.amount_minor) == (
        "declined:txn-a-auth",
        "declined_by_network",
        15_000,
    )
    decision.hold.refresh_from_db()
    assert decision.hold.status == HoldStatus.CLOSED
    exception = ReconciliationException.objects.get()
    assert (exception.kind, exception.hold, exception.amount_minor) == (
        "unconfirmed_approval",
        decision.hold,
        15_000,
    )
    assert_ledger_consistent()


def test_given_declined_webhook_before_our_late_approval_is_written_then_waits_then_releases(
    client, jit_auth, week_wallet
):
    # given
    ask_gateway(client, jit_auth, txn="txn-a-auth", jit="jit-a-auth", amount="150.00")
    (event,) = store(timed_out(transaction("webhook_authorization")))
    # when
    with pytest.raises(ParentNotYetKnown):
        services.apply_webhook_event(event=event)
    drain_outbox()
    event = services.apply_webhook_event(event=event)
    # then
    assert event.status == "applied"
    assert balances(week_wallet) == (25_000, 0)
    assert HoldRelease.objects.get().reason == "declined_by_network"


def test_given_our_decline_when_declined_webhook_then_nothing_to_do(client, jit_auth, week_wallet):
    # given
    response = ask_gateway(client, jit_auth, txn="txn-b-auth", jit="jit-b-auth", amount="300.00")
    assert response.status_code == 402
    drain_outbox()
    event = transaction("webhook_authorization", token="txn-b-auth", state="DECLINED")
    event["gpa_order"]["jit_funding"].update(token="jit-b-auth", amount="300.00")
    event["gpa_order"]["funding"]["gateway_log"]["response"]["code"] = "402"
    # when
    stored = receive(event)
    # then
    assert (stored.status, stored.outcome) == ("applied", "declined: nothing of ours is held")
    assert balances(week_wallet) == (25_000, 0)
    assert kinds() == []


def test_given_declined_webhook_replayed_when_applied_again_then_released_once(
    client, jit_auth, week_wallet
):
    # given
    auth_a(client, jit_auth)
    event = receive(timed_out(transaction("webhook_authorization")))
    # when: Marqeta re-sends it (a new row is refused by the token) and the task runs again
    store(timed_out(transaction("webhook_authorization")))
    services.apply_webhook_event(event=event)
    # then
    assert WebhookEvent.objects.count() == 1
    assert HoldRelease.objects.count() == 1
    assert balances(week_wallet) == (25_000, 0)


# --- reversals and advices ----------------------------------------------------------------------


def test_given_auth_c_when_full_reversal_example_5_then_hold_released(
    client, jit_auth, week_wallet
):
    # given
    decision = auth_c(client, jit_auth)
    assert balances(week_wallet) == (23_000, 2_000)
    # when
    event = receive(transaction("webhook_reversal"))
    # then
    assert event.status == "applied"
    assert balances(week_wallet) == (25_000, 0)
    assert cache.cached_available(user_token=USER) == 25_000
    release = HoldRelease.objects.get()
    assert (release.release_key, release.amount_minor, release.hold) == (
        "txn-c-rev",
        2_000,
        decision.hold,
    )
    assert kinds() == []
    assert_ledger_consistent()


def test_given_auth_c_when_partial_reversal_then_part_released_and_rest_still_held(
    client, jit_auth, week_wallet
):
    # given
    auth_c(client, jit_auth)
    # when
    receive(
        transaction(
            "webhook_reversal",
            token="txn-c-prev",
            state="PENDING",
            amount="5.00",
            jit={"token": "jit-c-prev", "amount": "5.00"},
        )
    )
    # then
    assert balances(week_wallet) == (23_500, 1_500)
    hold = Hold.objects.get(authorization_key="jit:jit-c-auth")
    assert (hold.remaining_minor, hold.status) == (1_500, HoldStatus.OPEN)
    assert kinds() == []


def test_given_auth_c_when_advice_lowers_the_amount_then_the_difference_is_released(
    client, jit_auth, week_wallet
):
    # given
    auth_c(client, jit_auth)
    # when: the new total is 15.00; jit_funding.amount is the released 5.00 (MARQETA.md §6.4)
    receive(
        transaction(
            "webhook_reversal",
            type="authorization.advice",
            token="txn-c-adv",
            state="PENDING",
            amount="15.00",
            jit={"token": "jit-c-adv", "amount": "5.00"},
        )
    )
    # then
    assert balances(week_wallet) == (23_500, 1_500)
    assert HoldRelease.objects.get().release_key == "txn-c-adv"


def test_given_full_reversal_leaving_an_incremental_held_when_applied_then_amount_mismatch(
    client, jit_auth, week_wallet
):
    # given: A 150.00 + 50.00 incremental
    auth_a(client, jit_auth)
    incremental_a(client, jit_auth)
    # when: a full reversal for the first 150.00 only
    event = receive(
        transaction(
            "webhook_reversal",
            token="txn-a-rev",
            preceding_related_transaction_token="txn-a-auth",
            amount="150.00",
            jit={
                "token": "jit-a-rev",
                "amount": "150.00",
                "original_jit_funding_token": "jit-a-auth",
            },
        )
    )
    # then
    assert event.status == "applied"
    assert balances(week_wallet) == (20_000, 5_000)
    exception = ReconciliationException.objects.get()
    assert (exception.kind, exception.amount_minor) == ("amount_mismatch", 5_000)


def test_given_cleared_auth_when_reversal_arrives_then_exception_and_nothing_moves(
    client, jit_auth, week_wallet
):
    # given
    auth_c(client, jit_auth)
    receive(clearing_of("txn-c-auth", token="txn-c-clr", amount="20.00", final=True))
    before = (balances(week_wallet), settled(week_wallet), LedgerTransaction.objects.count())
    # when
    event = receive(transaction("webhook_reversal"))
    # then
    assert (event.status, event.error_code) == ("failed", "hold_not_open")
    assert (balances(week_wallet), settled(week_wallet), LedgerTransaction.objects.count()) == (
        before
    )
    exception = ReconciliationException.objects.get()
    assert (exception.kind, exception.webhook_event) == ("reversal_without_hold", event)
    assert (exception.amount_minor, exception.card_token) == (2_000, "card_91b2")
    # and a retry of the task changes nothing (the failure is the outcome)
    assert services.apply_webhook_event(event=event).status == "failed"
    assert ReconciliationException.objects.count() == 1


def test_given_hold_we_expired_when_issuer_expiration_arrives_then_nothing_left_and_no_exception(
    client, jit_auth, week_wallet
):
    # given
    decision = auth_c(client, jit_auth)
    expire_hold(hold=decision.hold)
    # when
    event = receive(
        transaction(
            "webhook_reversal",
            type="authorization.reversal.issuerexpiration",
            token="txn-c-exp",
            jit={"token": "jit-c-exp"},
        )
    )
    # then
    assert event.status == "applied"
    assert "already expired" in event.outcome
    assert balances(week_wallet) == (25_000, 0)
    assert kinds() == []


def test_given_reversal_before_its_hold_when_applied_then_waits_then_releases(
    client, jit_auth, week_wallet
):
    # given
    (event,) = store(transaction("webhook_reversal"))
    with pytest.raises(ParentNotYetKnown):
        services.apply_webhook_event(event=event)
    event.refresh_from_db()
    assert event.status == "waiting"
    # when
    auth_c(client, jit_auth)
    event = services.apply_webhook_event(event=event)
    # then
    assert event.status == "applied"
    assert balances(week_wallet) == (25_000, 0)


def test_given_gateway_already_applied_the_reversal_advice_when_webhook_arrives_then_once(
    client, jit_auth, week_wallet
):
    # given: the same reversal reached the gateway as a JIT advice and was written
    auth_c(client, jit_auth)
    approve(
        client,
        jit_auth,
        txn="txn-c-rev",
        jit="jit-c-rev",
        amount="20.00",
        method="pgfs.authorization.reversal",
        original="jit-c-auth",
    )
    assert balances(week_wallet) == (25_000, 0)
    # when
    event = receive(transaction("webhook_reversal"))
    # then
    assert event.status == "applied"
    assert HoldRelease.objects.count() == 1
    assert balances(week_wallet) == (25_000, 0)
    assert cache.cached_available(user_token=USER) == 25_000
    assert kinds() == []


def test_given_gateway_released_another_amount_under_the_key_when_webhook_then_refused_whole(
    client, jit_auth, week_wallet
):
    # given: the gateway's advice released 5.00 under txn-c-rev
    auth_c(client, jit_auth)
    approve(
        client,
        jit_auth,
        txn="txn-c-rev",
        jit="jit-c-rev",
        amount="5.00",
        method="pgfs.authorization.reversal",
        original="jit-c-auth",
    )
    before = (balances(week_wallet), LedgerTransaction.objects.count())
    # when: the webhook says 20.00
    event = receive(transaction("webhook_reversal"))
    # then
    assert (event.status, event.error_code) == ("failed", "idempotency_conflict")
    assert (balances(week_wallet), LedgerTransaction.objects.count()) == before
    assert kinds() == ["duplicate"]


# --- clearings ----------------------------------------------------------------------------------


def test_given_auth_a_with_incremental_when_multi_clearing_example_6_then_final_releases_rest(
    client, jit_auth, week_wallet
):
    # given
    auth_a(client, jit_auth)
    incremental_a(client, jit_auth)
    assert balances(week_wallet) == (5_000, 20_000)
    # when: 6a, 120.00 of 2
    first = receive(transaction("webhook_clearing_1"))
    # then
    assert first.status == "applied"
    assert balances(week_wallet) == (5_000, 8_000)
    assert settled(week_wallet) == 12_000
    # when: 6b, 60.00, final, amount_to_be_released 20.00
    second = receive(transaction("webhook_clearing_2"))
    # then
    assert second.status == "applied"
    assert balances(week_wallet) == (7_000, 0)
    assert settled(week_wallet) == 18_000
    clearing = Clearing.objects.get(clearing_key="txn-a-clr2")
    assert (clearing.released_minor, clearing.is_final) == (2_000, True)
    assert set(Hold.objects.values_list("status", flat=True)) == {HoldStatus.CLOSED}
    assert kinds() == []
    assert_ledger_consistent()


def test_given_amount_to_be_released_differs_when_final_clearing_then_ours_released_and_flagged(
    client, jit_auth, week_wallet
):
    # given
    auth_a(client, jit_auth)
    incremental_a(client, jit_auth)
    receive(transaction("webhook_clearing_1"))
    # when: Marqeta says 35.00 is released; our remainder is 20.00
    event = receive(transaction("webhook_clearing_2", amount_to_be_released="35.00"))
    # then
    assert event.status == "applied"
    assert balances(week_wallet) == (7_000, 0)
    exception = ReconciliationException.objects.get()
    assert exception.kind == "amount_mismatch"
    assert exception.amount_minor == 1_500
    assert exception.details == {"amount_to_be_released_minor": 3_500, "released_minor": 2_000}
    assert exception.clearing == Clearing.objects.get(clearing_key="txn-a-clr2")


@pytest.mark.parametrize(
    ("amount", "final", "expected_balances", "expected_settled"),
    [
        ("150.00", True, (10_000, 0), 15_000),  # exact
        ("100.00", True, (15_000, 0), 10_000),  # partial, final: the rest is released
        ("100.00", False, (10_000, 5_000), 10_000),  # partial, more to come
        ("180.00", True, (7_000, 0), 18_000),  # over-clearing (tip): the excess from available
    ],
)
def test_given_auth_a_when_cleared_then_charged_per_case(
    client, jit_auth, week_wallet, amount, final, expected_balances, expected_settled
):
    # given
    auth_a(client, jit_auth)
    # when
    event = receive(clearing_of("txn-a-auth", token="txn-a-clr", amount=amount, final=final))
    # then
    assert event.status == "applied"
    assert balances(week_wallet) == expected_balances
    assert settled(week_wallet) == expected_settled
    assert kinds() == []
    assert_ledger_consistent()


def test_given_clearing_without_is_final_when_applied_then_treated_as_final(
    client, jit_auth, week_wallet
):
    auth_a(client, jit_auth)
    event = clearing_of("txn-a-auth", token="txn-a-clr", amount="100.00", final=True)
    del event["is_final_clearing"]
    receive(event)
    assert balances(week_wallet) == (15_000, 0)


def test_given_expired_hold_when_clearing_arrives_then_still_charged(client, jit_auth, week_wallet):
    # given
    decision = auth_a(client, jit_auth)
    expire_hold(hold=decision.hold)
    assert balances(week_wallet) == (25_000, 0)
    # when
    event = receive(clearing_of("txn-a-auth", token="txn-a-clr", amount="150.00", final=True))
    # then
    assert event.status == "applied"
    assert balances(week_wallet) == (10_000, 0)
    assert settled(week_wallet) == 15_000
    clearing = Clearing.objects.get()
    assert (clearing.from_hold_minor, clearing.excess_minor) == (0, 15_000)


def test_given_clearing_before_authorization_when_applied_then_waits_then_applies_once(
    client, jit_auth, week_wallet
):
    # given
    (event,) = store(clearing_of("txn-a-auth", token="txn-a-clr", amount="150.00", final=True))
    # when
    with pytest.raises(ParentNotYetKnown):
        services.apply_webhook_event(event=event)
    # then
    event.refresh_from_db()
    assert (event.status, event.applied_at) == ("waiting", None)
    assert "txn-a-auth" in event.outcome
    assert balances(week_wallet) == (25_000, 0)
    # when the authorization is known and the task runs (twice)
    auth_a(client, jit_auth)
    first = services.apply_webhook_event(event=event)
    second = services.apply_webhook_event(event=event)
    # then
    assert (first.status, second.status, second.attempts) == ("applied", "applied", 2)
    assert Clearing.objects.count() == 1
    assert balances(week_wallet) == (10_000, 0)
    assert settled(week_wallet) == 15_000


def test_given_clearing_following_an_advice_when_applied_then_matched_through_the_advice(
    client, jit_auth, week_wallet
):
    # given: C, an advice lowering it to 15.00, then a clearing that names the advice
    auth_c(client, jit_auth)
    receive(
        transaction(
            "webhook_reversal",
            type="authorization.advice",
            token="txn-c-adv",
            state="PENDING",
            amount="15.00",
            jit={"token": "jit-c-adv", "amount": "5.00"},
        )
    )
    clearing = clearing_of("txn-c-adv", token="txn-c-clr", amount="15.00", final=True)
    clearing["gpa_order"]["jit_funding"].pop("original_jit_funding_token")
    # when
    event = receive(clearing)
    # then
    assert event.status == "applied"
    assert Clearing.objects.get().hold.authorization_key == "jit:jit-c-auth"
    assert balances(week_wallet) == (23_500, 0)


# --- force posts and refunds --------------------------------------------------------------------


def test_given_funded_card_when_force_post_example_7_then_charged_from_available(week_wallet):
    # when
    event = receive(transaction("webhook_force_post"))
    # then
    assert (event.status, event.outcome) == ("applied", "force posted 12.00 USD")
    assert balances(week_wallet) == (23_800, 0)
    assert settled(week_wallet) == 1_200
    assert Clearing.objects.get().hold is None
    assert cache.cached_available(user_token=USER) == 23_800
    assert kinds() == []


def test_given_force_post_over_the_balance_when_applied_then_negative_balance_exception(
    week_wallet,
):
    # when
    event = receive(transaction("webhook_force_post", amount="300.00", jit={"amount": "300.00"}))
    # then
    assert event.status == "applied"
    assert balances(week_wallet) == (-5_000, 0)
    exception = ReconciliationException.objects.get()
    assert (exception.kind, exception.amount_minor, exception.webhook_event) == (
        "negative_balance",
        -5_000,
        event,
    )
    assert exception.ledger_transaction.idempotency_key == "clearing:txn-d-force"
    # a second force post in the same negative episode opens nothing new
    receive(transaction("webhook_force_post", token="txn-d-force2", jit={"token": "jit-d-f2"}))
    assert kinds() == ["negative_balance"]
    assert_ledger_consistent()


def test_given_refund_webhook_when_applied_then_credited(week_wallet):
    # when
    event = receive(transaction("webhook_refund"))
    # then
    assert (event.status, event.outcome) == ("applied", "refunded 25.00 USD")
    assert balances(week_wallet) == (27_500, 0)
    assert settled(week_wallet) == -2_500
    assert LedgerTransaction.objects.get(kind="refund").idempotency_key == "refund:txn-e-refund"


def test_given_pending_refund_authorization_when_applied_then_recorded_only(week_wallet):
    event = receive(transaction("webhook_refund", type="refund.authorization", state="PENDING"))
    assert event.status == "ignored"
    assert balances(week_wallet) == (25_000, 0)


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "kind"),
    [
        ({"card_token": "card_nobody"}, "unknown_card"),
        ({"user_token": "user_nobody", "jit": {"user_token": "user_nobody"}}, "unknown_card"),
        ({"currency_code": "EUR"}, "currency_mismatch"),
        ({"amount": "12.345", "jit": {"amount": "12.345"}}, "unmatched_clearing"),
    ],
)
def test_given_unusable_force_post_when_applied_then_failed_with_exception_and_nothing_moves(
    week_wallet, override, kind
):
    # given
    jit = override.pop("jit", None)
    before = (balances(week_wallet), LedgerTransaction.objects.count())
    # when
    event = receive(transaction("webhook_force_post", jit=jit, **override))
    # then
    assert event.status == "failed"
    assert event.error_code
    assert (balances(week_wallet), LedgerTransaction.objects.count()) == before
    exception = ReconciliationException.objects.get()
    assert (exception.kind, exception.webhook_event) == (kind, event)
    assert exception.details["error_code"] == event.error_code


def test_given_companion_and_unknown_types_when_applied_then_ignored(week_wallet):
    # given
    events = store(
        transaction("webhook_gpa_credit"),
        transaction("webhook_force_post", token="txn-x", type="balanceinquiry", state="PENDING"),
    )
    # when
    outcomes = [services.apply_webhook_event(event=event).status for event in events]
    # then
    assert outcomes == ["ignored", "ignored"]
    assert balances(week_wallet) == (25_000, 0)


# --- the week -----------------------------------------------------------------------------------


def test_given_the_week_of_marqeta_md_section_11_when_replayed_then_available_is_58(
    client, jit_auth, week_wallet
):
    # 1. auth A 150.00 approved, and Marqeta's authorization webhook confirms it
    auth_a(client, jit_auth)
    assert receive(transaction("webhook_authorization")).outcome == "confirmed"
    # 2. incremental A +50.00
    incremental_a(client, jit_auth)
    # 3. auth B 75.00 declined (50.00 available)
    response = ask_gateway(client, jit_auth, txn="txn-b-auth", jit="jit-b-auth", amount="75.00")
    assert response.status_code == 402
    # 4. auth C 20.00
    auth_c(client, jit_auth)
    assert balances(week_wallet) == (3_000, 22_000)
    # 5. full reversal of C (Example 5)
    receive(transaction("webhook_reversal"))
    assert balances(week_wallet) == (5_000, 20_000)
    # 6. clearing A 1 of 2 (Example 6a)
    receive(transaction("webhook_clearing_1"))
    assert (balances(week_wallet), settled(week_wallet)) == ((5_000, 8_000), 12_000)
    # 7. clearing A 2 of 2, final, releases 20.00 (Example 6b)
    receive(transaction("webhook_clearing_2"))
    assert (balances(week_wallet), settled(week_wallet)) == ((7_000, 0), 18_000)
    # 8. force post 12.00 (Example 7)
    receive(transaction("webhook_force_post"))
    # then: 250.00 - 192.00 = 58.00
    assert (balances(week_wallet), settled(week_wallet)) == ((5_800, 0), 19_200)
    assert cache.cached_available(user_token=USER) == 5_800
    assert kinds() == []
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"applied"}
    assert_ledger_consistent()
