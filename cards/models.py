"""Programs, cardholders, cards: the configuration the ledger and the gateway work for."""

from __future__ import annotations

from functools import reduce
from operator import or_

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Func, Q
from django.db.models.functions import Cast
from django.db.models.lookups import Exact, Regex

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

    class Meta:
        permissions = [("deposit_funds", "Can deposit funds for a cardholder (internal API)")]

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


# --- spend controls, velocity limits, fraud rules, fallback --------------------------------
# Each rule PostgreSQL can check is a constraint here; the services check the same rules
# first and raise a DomainError with a stable code.

MCC_RE = r"[0-9]{4}"
COUNTRY_RE = r"[A-Z]{3}"  # ISO 3166 alpha-3, as Marqeta sends card_acceptor.country_code


def _every_element_matches(field: str, element_re: str, *, name: str) -> models.CheckConstraint:
    """PostgreSQL prints a text[] of such elements as {a,b}: one regex checks every element."""
    array_re = rf"^\{{({element_re}(,{element_re})*)?\}}$"
    return models.CheckConstraint(
        condition=Regex(Cast(field, models.TextField()), array_re), name=name
    )


def _positive_or_null(field: str, *, name: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__gt": 0}), name=name
    )


def _in_range(field: str, bounds: tuple[int, int], *, name: str) -> models.CheckConstraint:
    low, high = bounds
    return models.CheckConstraint(
        condition=Q(**{f"{field}__gte": low, f"{field}__lte": high}), name=name
    )


def _jsonb_is_array(field: str) -> Exact:
    return Exact(Func(field, function="jsonb_typeof", output_field=models.TextField()), "array")


class Scope(models.TextChoices):
    """What a control or limit applies to; every scope's rules are checked, the strictest wins."""

    PROGRAM = "program"
    CARDHOLDER = "cardholder"
    CARD = "card"


class ScopedConfig(models.Model):
    """Configuration for exactly one program, one cardholder or one card."""

    program = models.ForeignKey(Program, models.CASCADE, null=True, blank=True)
    cardholder = models.ForeignKey(Cardholder, models.CASCADE, null=True, blank=True)
    card = models.ForeignKey(Card, models.CASCADE, null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.scope} {self.scope_obj}"

    @property
    def scope(self) -> str:
        """ "program", "cardholder" or "card": the one foreign key that is set."""
        return next(scope for scope in Scope.values if getattr(self, f"{scope}_id") is not None)

    @property
    def scope_obj(self) -> Program | Cardholder | Card:
        return getattr(self, self.scope)


def scope_constraints(prefix: str, *, unique_with: tuple[str, ...] = ()) -> list:
    """Exactly one scope set, and one row per scope object (and per `unique_with`)."""
    only = [Q(**{f"{name}__isnull": name != scope for name in Scope.values}) for scope in Scope]
    return [
        models.CheckConstraint(condition=reduce(or_, only), name=f"{prefix}_exactly_one_scope"),
        *(
            models.UniqueConstraint(
                fields=[scope, *unique_with],
                condition=Q(**{f"{scope}__isnull": False}),
                name=f"{prefix}_unique_per_{scope}",
            )
            for scope in Scope.values
        ),
    ]


class Channel(models.TextChoices):
    CARD_PRESENT = "CARD_PRESENT"
    ECOMMERCE = "ECOMMERCE"
    ATM = "ATM"


class SpendControl(ScopedConfig):
    """Per-transaction controls of one scope. An empty list means "no restriction"."""

    max_transaction_minor = models.BigIntegerField(null=True, blank=True)
    mcc_allow = ArrayField(models.CharField(max_length=4), default=list, blank=True)
    mcc_block = ArrayField(models.CharField(max_length=4), default=list, blank=True)
    mcc_groups_allow = models.ManyToManyField(MccGroup, blank=True, related_name="+")
    mcc_groups_block = models.ManyToManyField(MccGroup, blank=True, related_name="+")
    blocked_countries = ArrayField(models.CharField(max_length=3), default=list, blank=True)
    allowed_channels = ArrayField(
        models.CharField(max_length=12, choices=Channel.choices), default=list, blank=True
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            *scope_constraints("spend_control"),
            _positive_or_null("max_transaction_minor", name="spend_control_max_txn_positive"),
            _every_element_matches("mcc_allow", MCC_RE, name="spend_control_mcc_allow_format"),
            _every_element_matches("mcc_block", MCC_RE, name="spend_control_mcc_block_format"),
            _every_element_matches(
                "blocked_countries", COUNTRY_RE, name="spend_control_country_format"
            ),
            models.CheckConstraint(
                condition=Q(allowed_channels__contained_by=Channel.values),
                name="spend_control_known_channels",
            ),
        ]


class VelocityWindow(models.TextChoices):
    """Calendar windows in the program's timezone; lifetime never resets."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    LIFETIME = "lifetime"


class VelocityLimit(ScopedConfig):
    """An amount and/or count cap per window. Program and cardholder limits count across all
    of the cardholder's cards; a card limit counts that card alone."""

    window = models.CharField(max_length=8, choices=VelocityWindow.choices)
    max_amount_minor = models.BigIntegerField(null=True, blank=True)
    max_count = models.PositiveIntegerField(null=True, blank=True)
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            *scope_constraints("velocity_limit", unique_with=("window",)),
            models.CheckConstraint(
                condition=Q(window__in=VelocityWindow.values), name="velocity_limit_known_window"
            ),
            _positive_or_null("max_amount_minor", name="velocity_limit_max_amount_positive"),
            _positive_or_null("max_count", name="velocity_limit_max_count_positive"),
            models.CheckConstraint(
                condition=Q(max_amount_minor__isnull=False) | Q(max_count__isnull=False),
                name="velocity_limit_has_a_max",
            ),
        ]

    @property
    def counter(self) -> str:
        """The Redis counter the limit reads: the cardholder's ("user") or the card's."""
        return "card" if self.scope == Scope.CARD else "user"

    @property
    def key(self) -> str:
        """The limit's id in compiled controls and decline details: "<scope>:<pk>:<window>"."""
        return f"{self.scope}:{self.pk}:{self.window}"


class FraudKind(models.TextChoices):
    CVV_MISMATCH = "cvv_mismatch"
    AVS_MISMATCH = "avs_mismatch"
    CARD_NOT_PRESENT = "card_not_present"
    HIGH_RISK_MCC = "high_risk_mcc"
    FOREIGN_COUNTRY = "foreign_country"
    BURST = "burst"
    AMOUNT_OVER = "amount_over"
    AMOUNT_OUTLIER = "amount_outlier"


class FraudMode(models.TextChoices):
    OFF = "off"
    SHADOW = "shadow", "shadow (evaluated and recorded, never declines)"
    ON = "on"


class FraudAction(models.TextChoices):
    DECLINE = "decline"
    FLAG = "flag"


# The keys each kind's params must have; the service checks their types and ranges.
FRAUD_PARAM_KEYS: dict[str, tuple[str, ...]] = {
    FraudKind.CVV_MISMATCH: (),
    FraudKind.AVS_MISMATCH: (),
    FraudKind.CARD_NOT_PRESENT: (),
    FraudKind.HIGH_RISK_MCC: ("mccs",),
    FraudKind.FOREIGN_COUNTRY: ("home_country",),
    FraudKind.BURST: ("count", "seconds"),
    FraudKind.AMOUNT_OVER: ("amount_minor",),
    FraudKind.AMOUNT_OUTLIER: ("multiple", "min_history"),
}


class FraudRule(models.Model):
    """A program's fraud rule. Shadow rules are evaluated and recorded but never decline."""

    Kind, Mode, Action = FraudKind, FraudMode, FraudAction

    program = models.ForeignKey(Program, models.CASCADE, related_name="fraud_rules")
    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=20, choices=FraudKind.choices)
    mode = models.CharField(max_length=6, choices=FraudMode.choices, default=FraudMode.SHADOW)
    action = models.CharField(
        max_length=7, choices=FraudAction.choices, default=FraudAction.DECLINE
    )
    params = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "name"], name="fraud_rule_unique_name"),
            models.CheckConstraint(
                condition=Q(mode__in=FraudMode.values), name="fraud_rule_known_mode"
            ),
            models.CheckConstraint(
                condition=Q(action__in=FraudAction.values), name="fraud_rule_known_action"
            ),
            models.CheckConstraint(
                condition=reduce(
                    or_,
                    (
                        Q(kind=kind, params__has_keys=list(keys)) if keys else Q(kind=kind)
                        for kind, keys in FRAUD_PARAM_KEYS.items()
                    ),
                ),
                name="fraud_rule_known_kind_with_params",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, {self.mode})"


class FallbackMode(models.TextChoices):
    DECLINE_ALL = "DECLINE_ALL", "decline everything (fraud first)"
    APPROVE_UP_TO = "APPROVE_UP_TO", "approve up to the stand-in limits (availability first)"


FALLBACK_DEADLINE_MS = (20, 2500)  # well under Marqeta's timeout (3 s by default, 1 s at least)
FALLBACK_REDIS_TIMEOUT_MS = (1, 2499)  # and below the deadline, checked on the row
FALLBACK_BREAKER_FAILURES = (1, 1000)
FALLBACK_BREAKER_RESET_SECONDS = (1, 3600)


class FallbackPolicy(models.Model):
    """What the gateway answers when Redis is unreachable or the deadline runs out."""

    Mode = FallbackMode

    program = models.OneToOneField(Program, models.CASCADE, related_name="fallback_policy")
    mode = models.CharField(
        max_length=13, choices=FallbackMode.choices, default=FallbackMode.DECLINE_ALL
    )
    standin_max_transaction_minor = models.BigIntegerField(default=0)
    standin_max_daily_per_card_minor = models.BigIntegerField(default=0)
    standin_allowed_mccs = ArrayField(models.CharField(max_length=4), default=list, blank=True)
    deadline_ms = models.PositiveIntegerField(default=250)
    redis_timeout_ms = models.PositiveIntegerField(default=150)  # as JIT_REDIS_TIMEOUT_MS
    breaker_failure_threshold = models.PositiveIntegerField(default=5)
    breaker_reset_seconds = models.PositiveIntegerField(default=10)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "fallback policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(mode__in=FallbackMode.values), name="fallback_known_mode"
            ),
            models.CheckConstraint(
                condition=Q(
                    standin_max_transaction_minor__gte=0,
                    standin_max_daily_per_card_minor__gte=F("standin_max_transaction_minor"),
                ),
                name="fallback_standin_limits_ordered",
            ),
            models.CheckConstraint(
                condition=Q(mode=FallbackMode.DECLINE_ALL) | Q(standin_max_transaction_minor__gt=0),
                name="fallback_approve_up_to_has_limit",
            ),
            _every_element_matches(
                "standin_allowed_mccs", MCC_RE, name="fallback_standin_mcc_format"
            ),
            _in_range("deadline_ms", FALLBACK_DEADLINE_MS, name="fallback_deadline_in_range"),
            _in_range(
                "redis_timeout_ms", FALLBACK_REDIS_TIMEOUT_MS, name="fallback_redis_timeout_range"
            ),
            models.CheckConstraint(
                condition=Q(redis_timeout_ms__lt=F("deadline_ms")),
                name="fallback_redis_timeout_within_deadline",
            ),
            _in_range(
                "breaker_failure_threshold",
                FALLBACK_BREAKER_FAILURES,
                name="fallback_breaker_failures_in_range",
            ),
            _in_range(
                "breaker_reset_seconds",
                FALLBACK_BREAKER_RESET_SECONDS,
                name="fallback_breaker_reset_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.program.name}: {self.mode}"


class CommandoModeRecord(models.Model):
    """The Commando Mode control set we intend Marqeta to apply when our gateway fails.

    A record ops hand to Marqeta (and `marqeta_configure` compares), not a switch we flip.
    """

    program = models.OneToOneField(Program, models.CASCADE, related_name="commando_mode_record")
    program_gateway_funding_source_token = models.CharField(max_length=36, blank=True)
    auth_controls = models.JSONField(default=list, blank=True)
    velocity_controls = models.JSONField(default=list, blank=True)
    real_time_standin_enabled = models.BooleanField(default=False)
    include_connection_errors = models.BooleanField(default=False)
    include_response_timeouts = models.BooleanField(default=False)
    include_application_errors = models.BooleanField(default=False)
    notes = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Commando Mode record"
        constraints = [
            models.CheckConstraint(
                condition=Q(_jsonb_is_array("auth_controls"))
                & Q(_jsonb_is_array("velocity_controls")),
                name="commando_controls_are_lists",
            )
        ]

    def __str__(self) -> str:
        return f"Commando Mode record for {self.program.name}"
