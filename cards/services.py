"""The only writers of card-domain state."""

from __future__ import annotations

import secrets
import uuid
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group, Permission
from django.db import IntegrityError, transaction

from cards.errors import CardholderNotActive, CardTerminated, InvalidTimezone, TokenTaken
from cards.models import Card, Cardholder, FundingAccount, MccGroup, Program
from cards.selectors import funding_account_for
from ledger import services as ledger
from ledger.audit import audited
from ledger.models import LedgerTransaction
from ledger.money import currency_exponent

CARD_LIFETIME_YEARS = 4


@transaction.atomic
def create_program(
    *,
    name: str,
    currency_code: str,
    timezone_name: str = "UTC",
    default_hold_expiry_days: int = 7,
) -> Program:
    """A program with its own books (funding bank, settlement payable, adjustments)."""
    currency_exponent(currency_code)  # UnknownCurrency
    try:
        ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTimezone(f"{timezone_name!r} is not an IANA timezone") from None
    return Program.objects.create(
        name=name,
        currency_code=currency_code,
        timezone=timezone_name,
        default_hold_expiry_days=default_hold_expiry_days,
        book=ledger.open_book(name=name, currency_code=currency_code),
    )


def set_mcc_group(
    *, program: Program, name: str, mccs: list[str], hold_expiry_days: int | None = None
) -> MccGroup:
    """Create or replace a named MCC group of the program."""
    group, _ = MccGroup.objects.update_or_create(
        program=program, name=name, defaults={"mccs": mccs, "hold_expiry_days": hold_expiry_days}
    )
    return group


def _new_token(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


@transaction.atomic
def create_cardholder(
    *,
    program: Program,
    token: str | None = None,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
) -> Cardholder:
    """A cardholder and their funding account (a ledger wallet) in the program's currency."""
    token = token or _new_token("user")
    try:
        with transaction.atomic():
            cardholder = Cardholder.objects.create(
                program=program, token=token, first_name=first_name, last_name=last_name,
                email=email,
            )  # fmt: skip
    except IntegrityError:
        raise TokenTaken(f"cardholder token {token!r} is already in use", token=token) from None
    FundingAccount.objects.create(
        cardholder=cardholder,
        currency_code=program.currency_code,
        wallet=ledger.open_wallet(book=program.book, holder_token=token),
    )
    return cardholder


def _expiry_date(today: date) -> date:
    return today.replace(year=today.year + CARD_LIFETIME_YEARS, day=1)


@transaction.atomic
def create_card(
    *,
    cardholder: Cardholder,
    token: str | None = None,
    last_four: str | None = None,
    expires_on: date | None = None,
) -> Card:
    """A new card, ACTIVE and usable at once."""
    if cardholder.status != Cardholder.Status.ACTIVE:
        raise CardholderNotActive(f"cardholder {cardholder.token} is {cardholder.status}")
    token = token or _new_token("card")
    try:
        with transaction.atomic():
            return Card.objects.create(
                cardholder=cardholder,
                token=token,
                last_four=last_four or f"{secrets.randbelow(10_000):04d}",
                expires_on=expires_on or _expiry_date(date.today()),  # noqa: DTZ011
            )
    except IntegrityError:
        raise TokenTaken(f"card token {token!r} is already in use", token=token) from None


def deposit_funds(
    *, cardholder: Cardholder, amount_minor: int, idempotency_key: str, actor: str
) -> LedgerTransaction:
    """Load money for the cardholder; the same key again returns the first deposit."""
    if cardholder.status == Cardholder.Status.CLOSED:
        raise CardholderNotActive(f"cardholder {cardholder.token} is closed")
    return ledger.deposit(
        wallet=funding_account_for(cardholder=cardholder).wallet,
        amount_minor=amount_minor,
        idempotency_key=idempotency_key,
        actor=actor,
    )


@transaction.atomic
def set_card_state(
    *, card: Card, state: Card.State, actor: AbstractBaseUser | None, reason: str
) -> Card:
    """Suspend, reactivate or terminate a card; audited. Terminated is final."""
    card = Card.objects.select_for_update().get(pk=card.pk)
    if card.state == Card.State.TERMINATED and state != Card.State.TERMINATED:
        raise CardTerminated(f"card {card.token} is terminated")
    with audited(target=card, actor=actor, action="set_card_state", reason=reason):
        card.state = state
        card.save(update_fields=["state"])
    return card


# --- staff groups ------------------------------------------------------------------------

OPS_PERMISSIONS = {
    "cards": ["program", "mccgroup", "cardholder", "card", "fundingaccount"],
    "ledger": [
        "account", "book", "wallet", "ledgertransaction", "ledgerentry", "hold", "clearing",
        "holdrelease", "negativebalance", "manualadjustment", "auditevent",
    ],
}  # fmt: skip
OPS_WRITABLE = {"program", "mccgroup", "cardholder", "card", "manualadjustment"}
EXTRA_OPS_CODENAMES = ["approve_manualadjustment"]


def _codenames_for(*, writable: bool) -> list[str]:
    names = []
    for models in OPS_PERMISSIONS.values():
        for model in models:
            names.append(f"view_{model}")
            if writable and model in OPS_WRITABLE:
                names += [f"add_{model}", f"change_{model}"]
    return names


def ensure_staff_groups() -> None:
    """Groups `Ops` (edits and approves) and `Support` (reads only); safe to run again."""
    apps = list(OPS_PERMISSIONS)
    for group_name, codenames in (
        ("Ops", _codenames_for(writable=True) + EXTRA_OPS_CODENAMES),
        ("Support", _codenames_for(writable=False)),
    ):
        group, _ = Group.objects.get_or_create(name=group_name)
        permissions = Permission.objects.filter(
            content_type__app_label__in=apps, codename__in=codenames
        )
        group.permissions.set(permissions)
