"""Internal REST API: parse, call one service, render."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cards.api.serializers import (
    CardControlsIn,
    CardholderIn,
    CardholderOut,
    CardIn,
    CardOut,
    DepositIn,
    card_controls_out,
    deposit_out,
)
from cards.controls import effective_controls
from cards.errors import DepositCurrencyMismatch, IdempotencyKeyMissing
from cards.models import Card
from cards.selectors import (
    card_by_token,
    cardholder_by_token,
    default_program,
    mcc_groups_by_name,
    spend_control_of,
    velocity_limits_of,
)
from cards.services import create_card, create_cardholder, deposit_funds, replace_card_controls

IDEMPOTENCY_KEY_MAX = 120


def idempotency_key_from(request: Request) -> str:
    """The client's `Idempotency-Key` header; a deposit without one is refused."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX:
        raise IdempotencyKeyMissing(
            f"send an Idempotency-Key header of 1 to {IDEMPOTENCY_KEY_MAX} characters"
        )
    return key


class CardholderCreateApi(APIView):
    required_permissions = {"POST": "cards.add_cardholder"}

    @extend_schema(request=CardholderIn, responses={201: CardholderOut})
    def post(self, request: Request) -> Response:
        body = CardholderIn(data=request.data)
        body.is_valid(raise_exception=True)
        cardholder = create_cardholder(program=default_program(), **body.validated_data)
        return Response(CardholderOut(cardholder).data, status=status.HTTP_201_CREATED)


class CardCreateApi(APIView):
    required_permissions = {"POST": "cards.add_card"}

    @extend_schema(request=CardIn, responses={201: CardOut})
    def post(self, request: Request) -> Response:
        body = CardIn(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        cardholder = cardholder_by_token(token=fields.pop("cardholder_token"))
        card = create_card(cardholder=cardholder, **fields)
        return Response(CardOut(card).data, status=status.HTTP_201_CREATED)


class DepositCreateApi(APIView):
    required_permissions = {"POST": "cards.deposit_funds"}

    @extend_schema(
        request=DepositIn,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, True)],
        responses={201: dict},
    )
    def post(self, request: Request, cardholder_token: str) -> Response:
        key = idempotency_key_from(request)
        body = DepositIn(data=request.data)
        body.is_valid(raise_exception=True)
        cardholder = cardholder_by_token(token=cardholder_token)
        if body.validated_data["currency_code"] != cardholder.program.currency_code:
            raise DepositCurrencyMismatch(
                f"this cardholder's account is in {cardholder.program.currency_code}"
            )
        posted = deposit_funds(
            cardholder=cardholder,
            amount_minor=body.validated_data["amount_minor"],
            idempotency_key=f"api:{request.user.pk}:{key}",  # each client its own key space
            actor=f"api:{request.user.get_username()}",
        )
        return Response(
            deposit_out(posted, cardholder_token=cardholder.token), status=status.HTTP_201_CREATED
        )


def _card_controls_response(card: Card) -> Response:
    return Response(
        card_controls_out(
            card=card,
            control=spend_control_of(scope_obj=card),
            limits=velocity_limits_of(scope_obj=card),
            effective=effective_controls(card=card),
        )
    )


class CardControlsApi(APIView):
    """The card's own spend control and velocity limits, and the effective combination of
    every scope (program, cardholder, card) that the gateway applies."""

    required_permissions = {"GET": "cards.view_spendcontrol", "PUT": "cards.change_spendcontrol"}

    @extend_schema(responses={200: dict})
    def get(self, request: Request, card_token: str) -> Response:
        return _card_controls_response(card_by_token(token=card_token))

    @extend_schema(request=CardControlsIn, responses={200: dict})
    def put(self, request: Request, card_token: str) -> Response:
        card = card_by_token(token=card_token)
        program = card.cardholder.program
        body = CardControlsIn(data=request.data, context={"currency_code": program.currency_code})
        body.is_valid(raise_exception=True)
        control = dict(body.validated_data["control"])
        for groups in ("mcc_groups_allow", "mcc_groups_block"):
            control[groups] = mcc_groups_by_name(program=program, names=control[groups])
        replace_card_controls(
            card=card,
            actor=request.user,
            reason=body.validated_data["reason"]
            or f"changed through the API by {request.user.get_username()}",
            control=control,
            limits=body.validated_data["limits"],
        )
        return _card_controls_response(card)
