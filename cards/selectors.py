"""Reads of card-domain state."""

from __future__ import annotations

from datetime import datetime, timedelta

from cards.errors import CardholderNotFound, CardNotFound, NoProgram
from cards.models import Card, Cardholder, FundingAccount, Program
from ledger.selectors import Balances, wallet_balances


def cardholder_by_token(*, token: str) -> Cardholder:
    try:
        return Cardholder.objects.select_related("program").get(token=token)
    except Cardholder.DoesNotExist:
        raise CardholderNotFound(f"no cardholder {token!r}", token=token) from None


def card_by_token(*, token: str) -> Card:
    try:
        return Card.objects.select_related("cardholder__program").get(token=token)
    except Card.DoesNotExist:
        raise CardNotFound(f"no card {token!r}", token=token) from None


def funding_account_for(*, cardholder: Cardholder) -> FundingAccount:
    """The cardholder's funding account in the program's currency."""
    return FundingAccount.objects.select_related(
        "wallet__book__funding_bank",
        "wallet__book__settlement_payable",
        "wallet__book__adjustments",
        "wallet__available",
        "wallet__held",
    ).get(cardholder=cardholder, currency_code=cardholder.program.currency_code)


def cardholder_balances(*, cardholder: Cardholder) -> Balances:
    """Balances as the ledger knows them."""
    return wallet_balances(wallet=funding_account_for(cardholder=cardholder).wallet)


def hold_expiry_days(*, program: Program, mcc: str) -> int:
    """Days a hold for this MCC lives: the longest matching MCC-group override, else default."""
    overrides = [
        group.hold_expiry_days
        for group in program.mcc_groups.all()
        if group.hold_expiry_days and mcc in group.mccs
    ]
    return max(overrides, default=program.default_hold_expiry_days)


def hold_expires_at(*, program: Program, mcc: str, authorized_at: datetime) -> datetime:
    return authorized_at + timedelta(days=hold_expiry_days(program=program, mcc=mcc))


def default_program() -> Program:
    """The program API-created cardholders join: the first one (one program per deployment)."""
    program = Program.objects.select_related("book").order_by("pk").first()
    if program is None:
        raise NoProgram("no program is configured: run `manage.py seed_demo` or add one in admin")
    return program
