"""Factories build configuration only; ledger state comes from calling services."""

from __future__ import annotations

import factory

from cards import services
from cards.models import (
    Card,
    Cardholder,
    FraudRule,
    Program,
    SpendControl,
    VelocityLimit,
    VelocityWindow,
)


class ProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Program

    name = factory.Sequence(lambda n: f"program-{n}")
    currency_code = "USD"
    timezone = "UTC"
    default_hold_expiry_days = 7

    @classmethod
    def _create(cls, model_class: type, *args: object, **kwargs: object) -> Program:
        return services.create_program(
            name=kwargs["name"],
            currency_code=kwargs["currency_code"],
            timezone_name=kwargs["timezone"],
            default_hold_expiry_days=kwargs["default_hold_expiry_days"],
        )


class CardholderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cardholder

    program = factory.SubFactory(ProgramFactory)
    token = factory.Sequence(lambda n: f"user_{n:06d}")
    first_name = "Ada"
    last_name = factory.Sequence(lambda n: f"Holder{n}")
    email = factory.LazyAttribute(lambda o: f"{o.token}@example.com")

    @classmethod
    def _create(cls, model_class: type, *args: object, **kwargs: object) -> Cardholder:
        return services.create_cardholder(**kwargs)


class CardFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Card

    cardholder = factory.SubFactory(CardholderFactory)
    token = factory.Sequence(lambda n: f"card_{n:06d}")
    last_four = factory.Sequence(lambda n: f"{n % 10_000:04d}")

    @classmethod
    def _create(cls, model_class: type, *args: object, **kwargs: object) -> Card:
        return services.create_card(**kwargs)


class SpendControlFactory(factory.django.DjangoModelFactory):
    """A card's spend control by default; pass program= or cardholder= (and card=None)."""

    class Meta:
        model = SpendControl
        skip_postgeneration_save = True

    card = factory.SubFactory(CardFactory)

    @factory.post_generation
    def mcc_groups_allow(self, create: bool, groups: list | None) -> None:
        if create and groups:
            self.mcc_groups_allow.set(groups)

    @factory.post_generation
    def mcc_groups_block(self, create: bool, groups: list | None) -> None:
        if create and groups:
            self.mcc_groups_block.set(groups)


class VelocityLimitFactory(factory.django.DjangoModelFactory):
    """A card's daily amount limit by default; pass program= or cardholder= (and card=None)."""

    class Meta:
        model = VelocityLimit

    card = factory.SubFactory(CardFactory)
    window = VelocityWindow.DAY
    max_amount_minor = 50_000
    max_count = None


class FraudRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FraudRule

    program = factory.SubFactory(ProgramFactory)
    name = factory.Sequence(lambda n: f"rule-{n}")
    kind = FraudRule.Kind.CVV_MISMATCH
    mode = FraudRule.Mode.SHADOW
    action = FraudRule.Action.DECLINE
    params = factory.LazyFunction(dict)
