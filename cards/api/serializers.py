"""API shapes. Serializers convert types; they hold no business rules and read no database."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from cards.models import Card, Cardholder
from ledger.models import LedgerTransaction
from ledger.money import to_decimal, to_minor
from ledger.selectors import Balances

TOKEN_RE = r"^[A-Za-z0-9_\-.]{1,36}$"  # noqa: S105 - a pattern, not a secret


class MoneyField(serializers.Field):
    """A decimal string (or JSON number parsed as Decimal), never a float."""

    default_error_messages = {"invalid": 'a decimal amount such as "12.34" is required'}

    def to_internal_value(self, data: Any) -> Decimal:  # noqa: ANN401
        if isinstance(data, bool) or not isinstance(data, str | int | Decimal):
            self.fail("invalid")
        try:
            return Decimal(str(data).strip())
        except ArithmeticError:
            self.fail("invalid")

    def to_representation(self, value: Decimal) -> str:
        return str(value)


class CardholderIn(serializers.Serializer):
    token = serializers.RegexField(TOKEN_RE, required=False)
    first_name = serializers.CharField(max_length=80, required=False, default="")
    last_name = serializers.CharField(max_length=80, required=False, default="")
    email = serializers.EmailField(required=False, default="")


class CardholderOut(serializers.ModelSerializer):
    program = serializers.CharField(source="program.name")
    currency_code = serializers.CharField(source="program.currency_code")

    class Meta:
        model = Cardholder
        fields = ["token", "first_name", "last_name", "email", "status", "program",
                  "currency_code", "created_at"]  # fmt: skip


class CardIn(serializers.Serializer):
    cardholder_token = serializers.RegexField(TOKEN_RE)
    token = serializers.RegexField(TOKEN_RE, required=False)
    last_four = serializers.RegexField(r"^[0-9]{4}$", required=False)


class CardOut(serializers.ModelSerializer):
    cardholder_token = serializers.CharField(source="cardholder.token")

    class Meta:
        model = Card
        fields = ["token", "cardholder_token", "state", "last_four", "expires_on", "created_at"]


class DepositIn(serializers.Serializer):
    amount = MoneyField()
    currency_code = serializers.RegexField(r"^[A-Z]{3}$")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Edge conversion only: Decimal -> minor units, refusing extra precision."""
        attrs["amount_minor"] = to_minor(attrs["amount"], attrs["currency_code"])
        return attrs


def deposit_out(posted: LedgerTransaction, *, cardholder_token: str) -> dict[str, Any]:
    """The deposit as the API shows it; built only from the posting, so a replay is identical."""
    entry = next(e for e in posted.entries.all() if e.amount_minor < 0)
    return {
        "id": posted.pk,
        "cardholder_token": cardholder_token,
        "amount": str(to_decimal(-entry.amount_minor, entry.currency_code)),
        "currency_code": entry.currency_code,
        "created_at": posted.created_at.isoformat().replace("+00:00", "Z"),
    }


def balances_out(balances: Balances, *, cardholder_token: str) -> dict[str, Any]:
    currency = balances.currency_code
    return {
        "cardholder_token": cardholder_token,
        "currency_code": currency,
        "available": str(to_decimal(balances.available_minor, currency)),
        "pending": str(to_decimal(balances.pending_minor, currency)),
        "ledger": str(to_decimal(balances.ledger_minor, currency)),
    }
