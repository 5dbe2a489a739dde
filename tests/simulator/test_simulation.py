"""A small simulated day end to end: real HTTP to a live server, the ledger writer's and the
webhook worker's work done inline, then the simulator's own check of the platform."""

from __future__ import annotations

import csv
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cards.models import Cardholder
from cards.services import deposit_funds
from jit.management.commands.simulate_marqeta import Command
from tests.ledger.helpers import assert_ledger_consistent
from tests.simulator.conftest import InlinePlatform

pytestmark = pytest.mark.django_db(transaction=True)  # flushed after: groups are made again


class PlantedDifference(InlinePlatform):
    """Someone moves money the fake Marqeta knows nothing about: the check must notice."""

    def wait_for_ledger_writer(self, *, timeout: float) -> None:
        super().wait_for_ledger_writer(timeout=timeout)
        cardholder = Cardholder.objects.filter(token__startswith="sim-").order_by("token").first()
        deposit_funds(cardholder=cardholder, amount_minor=100, idempotency_key="planted", actor="t")


def simulate(live_server, tmp_path, *extra: str) -> tuple[str, CommandError | None]:
    """Run the command; its report and the error it ended with (None: exit 0)."""
    out = StringIO()
    args = ["--base-url", live_server.url, "--cards", "2", "--authorizations", "40"]
    args += ["--seed", "7", "--inbox", str(tmp_path / "inbox"), "--settle-timeout", "30"]
    try:
        call_command("simulate_marqeta", *args, "--no-progress", *extra, stdout=out)
    except CommandError as error:
        return out.getvalue(), error
    finally:
        print(out.getvalue())  # shown when a test fails
    return out.getvalue(), None


@pytest.fixture
def inline(monkeypatch, program):
    monkeypatch.setattr(Command, "platform_class", InlinePlatform)


def test_given_a_small_day_when_simulated_then_the_platform_shows_exactly_what_marqeta_did(
    live_server, inline, tmp_path
):
    # when
    output, error = simulate(live_server, tmp_path, "--share-out-of-order", "0.1")
    # then
    assert error is None
    assert "Check: OK, the platform shows exactly what Marqeta did." in output
    for sent in (
        "authorization (confirmed)",
        "authorization (timed out: declined by Marqeta)",
        "authorization.standin (stand-in NETWORK)",
        "before its authorization",
        "companion funding event",
        "force post (unknown card)",
        "refund",
        "reversal after clearing",
        "wrong amount_to_be_released",
    ):
        assert sent in output
    assert "unconfirmed_approval 1" in output
    assert_ledger_consistent()
    (clearing_file,) = (tmp_path / "inbox").rglob("clearing_demo_*_001.csv")
    rows = list(csv.DictReader(clearing_file.open(newline="")))
    assert rows[-1]["record_type"] == "TRAILER"
    assert int(rows[-1]["transaction_token"]) == len(rows) - 1


def test_given_commando_mode_when_answers_are_late_then_stand_ins_and_still_exact(
    live_server, inline, tmp_path
):
    output, error = simulate(
        live_server, tmp_path, "--commando", "--share-timeout", "0.2", "--seed", "8"
    )
    assert error is None
    assert "Commando Mode on" in output
    assert "stand-in approval" in output
    assert "unconfirmed_approval" not in output  # Marqeta approved what timed out
    assert "Check: OK" in output
    assert_ledger_consistent()


def test_given_a_planted_difference_when_checked_then_listed_and_the_command_fails(
    live_server, monkeypatch, program, tmp_path
):
    # given: 1.00 deposited behind the fake's back
    monkeypatch.setattr(Command, "platform_class", PlantedDifference)
    # when
    output, error = simulate(live_server, tmp_path, "--no-file")
    # then
    assert error is not None
    assert error.returncode == 1
    assert "differs from what Marqeta did" in str(error)
    first = Cardholder.objects.filter(token__startswith="sim-").order_by("token").first().token
    differences = output.split("difference(s):")[1]
    assert f"{first} balance API: available" in differences
    assert f"{first} ledger:" in differences
