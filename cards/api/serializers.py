"""API shapes. Serializers convert types; they hold no business rules and read no database."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cards.models import Card, Cardholder, SpendControl, VelocityLimit
from ledger.models import LedgerTransaction
from ledger.money import to_decimal, to_minor
from ledger.selectors import Balances

TOKEN_RE = r"^[A-Za-z0-9_\-.]{1,36}$"  # noqa: S105 - a pattern, not a secret


@extend_schema_field(
    {"type": "string", "format": "decimal", "pattern": r"^[0-9]+(\.[0-9]+)?$", "example": "12.34"}
)
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
        fields = [
            "token",
            "first_name",
            "last_name",
            "email",
            "status",
            "program",
            "currency_code",
            "created_at",
        ]


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


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def deposit_out(posted: LedgerTransaction, *, cardholder_token: str) -> dict[str, Any]:
    """The deposit as the API shows it; built only from the posting, so a replay is identical."""
    entry = next(e for e in posted.entries.all() if e.amount_minor < 0)
    return {
        "id": posted.pk,
        "cardholder_token": cardholder_token,
        "amount": str(to_decimal(-entry.amount_minor, entry.currency_code)),
        "currency_code": entry.currency_code,
        "created_at": _iso(posted.created_at),
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


# --- card controls -----------------------------------------------------------------------


class SpendControlIn(serializers.Serializer):
    """The card's own spend control; a field left out means "no restriction"."""

    max_transaction = MoneyField(required=False, allow_null=True, default=None)
    mcc_allow = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    mcc_block = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    mcc_groups_allow = serializers.ListField(
        child=serializers.CharField(), required=False, default=list
    )
    mcc_groups_block = serializers.ListField(
        child=serializers.CharField(), required=False, default=list
    )
    blocked_countries = serializers.ListField(
        child=serializers.CharField(), required=False, default=list
    )
    allowed_channels = serializers.ListField(
        child=serializers.CharField(), required=False, default=list
    )


class VelocityLimitIn(serializers.Serializer):
    window = serializers.CharField()
    max_amount = MoneyField(required=False, allow_null=True, default=None)
    max_count = serializers.IntegerField(required=False, allow_null=True, default=None)
    active = serializers.BooleanField(required=False, default=True)


class CardControlsIn(serializers.Serializer):
    """PUT replaces the card's own control and limits; both keys are required so that a
    forgotten one is an error, not a silent wipe. Amounts are in the card's currency."""

    control = SpendControlIn()
    limits = VelocityLimitIn(many=True)
    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=500)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Edge conversion only: decimal amounts -> minor units, refusing extra precision."""
        currency = self.context["currency_code"]

        def minor(amount: Decimal | None) -> int | None:
            return None if amount is None else to_minor(amount, currency)

        control = attrs["control"]
        control["max_transaction_minor"] = minor(control.pop("max_transaction"))
        for limit in attrs["limits"]:
            limit["max_amount_minor"] = minor(limit.pop("max_amount"))
        return attrs


def card_controls_out(
    *,
    card: Card,
    control: SpendControl | None,
    limits: list[VelocityLimit],
    effective: dict[str, Any],
) -> dict[str, Any]:
    """The card's own control and limits (decimal strings), and `effective`: what the gateway
    applies, every scope combined, exactly as the gateway's cache holds it (minor units)."""
    currency = card.cardholder.program.currency_code

    def money(amount_minor: int | None) -> str | None:
        return None if amount_minor is None else str(to_decimal(amount_minor, currency))

    def group_names(relation: str) -> list[str]:
        return sorted(group.name for group in getattr(control, relation).all()) if control else []

    own = control or SpendControl()  # no row yet: no restriction of the card's own
    return {
        "card_token": card.token,
        "currency_code": currency,
        "control": {
            "max_transaction": money(own.max_transaction_minor),
            "mcc_allow": own.mcc_allow,
            "mcc_block": own.mcc_block,
            "mcc_groups_allow": group_names("mcc_groups_allow"),
            "mcc_groups_block": group_names("mcc_groups_block"),
            "blocked_countries": own.blocked_countries,
            "allowed_channels": own.allowed_channels,
            "updated_at": _iso(control.updated_at) if control else None,
        },
        "limits": [
            {
                "window": limit.window,
                "max_amount": money(limit.max_amount_minor),
                "max_count": limit.max_count,
                "active": limit.active,
            }
            for limit in limits
        ],
        "effective": effective,
    }
