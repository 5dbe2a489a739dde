"""The day's clearing file is in this project's layout (MARQETA.md §12), trailer included."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal

from jit.simulator.clearing_file import COLUMNS, inbox_path, next_name, write_clearing_file
from jit.simulator.model import APPROVED, AuthMessage, Chain
from jit.simulator.payloads import MarqetaOutcome, SimCard
from jit.simulator.scenario import PARTIAL, Shares, Tokens, WebhookPlanner, new_facts, seeded
from tests.simulator.conftest import merchant

CARD = SimCard(0, "user_7f3a", "card_91b2", "6491", "USD", "demo", "VISA", "1 MAIN ST", "94607")


def day_events():
    """A 150.00 authorization partly cleared, a force post and a refund, as the planner makes."""
    tokens = Tokens("file01")
    facts = new_facts(seeded(3), card=CARD, merchant=merchant("7512"), funding_source_token="pgfs")
    message = tokens.message(type="authorization", method="pgfs.authorization",
                             amount_minor=15_000)  # fmt: skip
    chain = Chain(facts=facts, kind="purchase")
    chain.messages.append(AuthMessage(message=message, ours=APPROVED, marqeta=MarqetaOutcome(True)))
    chain.hold(15_000)
    chain.fate = PARTIAL
    planner = WebhookPlanner(seeded(4), tokens=tokens,
                             shares=Shares(force_post=0.5, refund=0.5, unknown_card=0),
                             authorizations=1, funding_source_token="pgfs")  # fmt: skip
    planner.follow_ups(chain)
    planner.force_posts([CARD], [])
    planner.refunds([CARD])
    return [e for e in planner.plan.events if e.in_file]


def test_given_the_days_clearings_when_written_then_the_layout_and_trailer_of_section_12(tmp_path):
    # given
    events = day_events()
    # when
    written = write_clearing_file(
        events, inbox=tmp_path, program="demo", settlement_date=date(2026, 5, 9),
        currency_code="USD",
    )  # fmt: skip
    # then
    assert written.path.name == "clearing_demo_20260509_001.csv"
    raw = written.path.read_bytes()
    assert b"\r\n" not in raw  # LF line ends
    rows = list(csv.DictReader(raw.decode().splitlines()))
    assert tuple(rows[0]) == COLUMNS
    clearing, force_post, refund, trailer = rows
    assert clearing["record_type"] == "authorization.clearing"
    assert clearing["debit_credit"] == "D"
    assert clearing["is_final_clearing"] == "true"
    assert Decimal(clearing["amount"]) + Decimal(clearing["amount_to_be_released"]) == Decimal(
        "150.00"
    )
    assert clearing["preceding_related_transaction_token"].startswith("sim-file01-t")
    assert clearing["original_jit_funding_token"].startswith("sim-file01-j")
    assert (clearing["mcc"], clearing["merchant_name"]) == ("7512", "SUNSET CAR RENTAL")
    assert force_post["preceding_related_transaction_token"] == ""
    assert force_post["is_final_clearing"] == ""
    assert (refund["record_type"], refund["debit_credit"]) == ("refund", "C")
    net = Decimal(clearing["amount"]) + Decimal(force_post["amount"]) - Decimal(refund["amount"])
    assert trailer["record_type"] == "TRAILER"
    assert trailer["transaction_token"] == "3"
    assert Decimal(trailer["amount"]) == abs(net)
    assert trailer["debit_credit"] == ("D" if net >= 0 else "C")
    assert written.net == net
    assert all(len(row["amount"].split(".")[1]) == 2 for row in rows)


def test_given_files_of_the_day_already_there_or_archived_when_written_then_the_next_seq(tmp_path):
    (tmp_path / "processed").mkdir()
    (tmp_path / "clearing_demo_20260509_001.csv").write_text("x")
    (tmp_path / "processed" / "clearing_demo_20260509_002.csv.ab12.2026").write_text("x")
    name = next_name(tmp_path, program="demo", settlement_date=date(2026, 5, 9))
    assert name == "clearing_demo_20260509_003.csv"


def test_given_an_inbox_url_when_resolved_then_a_local_directory(tmp_path):
    assert inbox_path("file://./var/clearing/inbox", base_dir=tmp_path) == (
        tmp_path / "var/clearing/inbox"
    )
    assert inbox_path(f"file://{tmp_path}/in", base_dir=tmp_path) == tmp_path / "in"
    assert inbox_path("var/in", base_dir=tmp_path) == tmp_path / "var/in"
