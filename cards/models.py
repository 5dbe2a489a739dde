"""Programs, cardholders, cards: the configuration the ledger and the gateway work for."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from ledger.models import Book, Wallet


class Program(models.Model):
    """A card program: one currency, one timezone (for calendar limits), its own books."""

    name = models.CharField(max_length=80, unique=True)
    currency_code = models.CharField(max_length=3)
    timezone = models.CharField(max_length=64, default="UTC")
    default_hold_expiry_days = models.PositiveSmallIntegerField(default=7)
    book = models.OneToOneField(Book, models.PROTECT, related_name="program")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(default_hold_expiry_days__gte=1, default_hold_expiry_days__lte=60),
                name="program_hold_expiry_in_range",
            )
        ]

    def __str__(self) -> str:
        return self.name


class MccGroup(models.Model):
    """A named set of merchant category codes, e.g. "lodging" or "car_rental".

    Used by hold expiry (lodging and car rental holds live longer) and by spend controls.
    """

    program = models.ForeignKey(Program, models.CASCADE, related_name="mcc_groups")
    name = models.SlugField(max_length=40)
    mccs = ArrayField(models.CharField(max_length=4), default=list)
    hold_expiry_days = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "MCC group"
        constraints = [
            models.UniqueConstraint(fields=["program", "name"], name="mcc_group_unique_name"),
            models.CheckConstraint(
                condition=Q(hold_expiry_days__isnull=True)
                | Q(hold_expiry_days__gte=1, hold_expiry_days__lte=60),
                name="mcc_group_hold_expiry_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.program.name}/{self.name}"


class Cardholder(models.Model):
    """A person on the program. `token` is Marqeta's `user_token`."""

    class Status(models.TextChoices):
        ACTIVE = "ACTIVE"
        SUSPENDED = "SUSPENDED"
        CLOSED = "CLOSED"

    program = models.ForeignKey(Program, models.PROTECT, related_name="cardholders")
    token = models.CharField(max_length=36, unique=True)
    first_name = models.CharField(max_length=80, blank=True)
    last_name = models.CharField(max_length=80, blank=True)
    email = models.EmailField(blank=True, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return f"{name} ({self.token})" if name else self.token


class FundingAccount(models.Model):
    """The cardholder's money in one currency: a ledger wallet (available + held)."""

    cardholder = models.ForeignKey(Cardholder, models.PROTECT, related_name="funding_accounts")
    currency_code = models.CharField(max_length=3)
    wallet = models.OneToOneField(Wallet, models.PROTECT, related_name="funding_account")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cardholder", "currency_code"], name="funding_account_one_per_currency"
            )
        ]

    def __str__(self) -> str:
        return f"{self.cardholder.token} {self.currency_code}"


class Card(models.Model):
    """A card. Only ACTIVE cards can be authorized."""

    class State(models.TextChoices):
        ACTIVE = "ACTIVE"
        SUSPENDED = "SUSPENDED"
        TERMINATED = "TERMINATED"

    cardholder = models.ForeignKey(Cardholder, models.PROTECT, related_name="cards")
    token = models.CharField(max_length=36, unique=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    last_four = models.CharField(max_length=4, db_index=True)
    expires_on = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(last_four__regex=r"^[0-9]{4}$"), name="card_last_four_digits"
            )
        ]

    def __str__(self) -> str:
        return f"{self.token} ****{self.last_four} ({self.state})"
