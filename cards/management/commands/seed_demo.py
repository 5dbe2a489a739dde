"""A demo program to click through: cardholders, cards, money, an ops and a support user."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from cards import services
from cards.models import Cardholder, Program

DEMO_PROGRAM = "demo"
DEMO_CARDHOLDERS = [
    # token, first, last, email, card token, last four, deposit (minor units)
    ("user_7f3a", "Ada", "Lovelace", "ada@example.com", "card_91b2", "6491", 25_000),
    ("user_b0b0", "Bob", "Marley", "bob@example.com", "card_b0b0", "1234", 10_000),
    ("user_c4r0", "Carol", "Shaw", "carol@example.com", "card_c4r0", "4321", 500_00),
]
DEMO_USERS = [
    # username, password, group, superuser
    ("ops", "ops-demo-password", "Ops", False),
    ("ops2", "ops2-demo-password", "Ops", False),
    ("support", "support-demo-password", "Support", False),
    ("admin", "admin-demo-password", None, True),
]
MCC_GROUPS = [
    ("lodging", ["3501", "3502", "3503", "7011"], 30),
    ("car_rental", ["3351", "3352", "7512", "7513"], 30),
]


class Command(BaseCommand):
    help = "Create the demo program, cardholders, cards, deposits and staff users (idempotent)."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        program = self._program()
        for row in DEMO_CARDHOLDERS:
            self._cardholder(program, *row)
        services.ensure_staff_groups()
        self._users()

    def _program(self) -> Program:
        program = Program.objects.filter(name=DEMO_PROGRAM).first() or services.create_program(
            name=DEMO_PROGRAM, currency_code="USD", timezone_name="America/New_York"
        )
        for name, mccs, days in MCC_GROUPS:
            services.set_mcc_group(program=program, name=name, mccs=mccs, hold_expiry_days=days)
        return program

    def _cardholder(
        self,
        program: Program,
        token: str,
        first: str,
        last: str,
        email: str,
        card_token: str,
        last_four: str,
        deposit_minor: int,
    ) -> None:
        cardholder = Cardholder.objects.filter(token=token).first()
        if cardholder is None:
            cardholder = services.create_cardholder(
                program=program, token=token, first_name=first, last_name=last, email=email
            )
            services.create_card(cardholder=cardholder, token=card_token, last_four=last_four)
        services.deposit_funds(
            cardholder=cardholder,
            amount_minor=deposit_minor,
            idempotency_key=f"seed:{token}",
            actor="seed_demo",
        )

    def _users(self) -> None:
        user_model = get_user_model()
        self.stdout.write("Demo users (change these passwords outside a demo):")
        for username, password, group, superuser in DEMO_USERS:
            user, created = user_model.objects.get_or_create(
                username=username, defaults={"is_staff": True, "is_superuser": superuser}
            )
            if created:
                user.set_password(password)
                user.save()
            if group:
                user.groups.add(Group.objects.get(name=group))
            self.stdout.write(f"  {username:8} / {password:24} {group or 'superuser'}")
        token, _ = Token.objects.get_or_create(user=user_model.objects.get(username="admin"))
        self.stdout.write(f"API token (Authorization: Token ...): {token.key}")
