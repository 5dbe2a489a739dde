"""Internal REST API: parse, call one service, render."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cards.api.serializers import (
    CardholderIn,
    CardholderOut,
    CardIn,
    CardOut,
    DepositIn,
    balances_out,
    deposit_out,
)
from cards.errors import DepositCurrencyMismatch, IdempotencyKeyMissing
from cards.selectors import cardholder_balances, cardholder_by_token, default_program
from cards.services import create_card, create_cardholder, deposit_funds

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
    @extend_schema(request=CardholderIn, responses={201: CardholderOut})
    def post(self, request: Request) -> Response:
        body = CardholderIn(data=request.data)
        body.is_valid(raise_exception=True)
        cardholder = create_cardholder(program=default_program(), **body.validated_data)
        return Response(CardholderOut(cardholder).data, status=status.HTTP_201_CREATED)


class CardCreateApi(APIView):
    @extend_schema(request=CardIn, responses={201: CardOut})
    def post(self, request: Request) -> Response:
        body = CardIn(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        cardholder = cardholder_by_token(token=fields.pop("cardholder_token"))
        card = create_card(cardholder=cardholder, **fields)
        return Response(CardOut(card).data, status=status.HTTP_201_CREATED)


class DepositCreateApi(APIView):
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
            idempotency_key=f"api:{key}",
            actor=f"api:{request.user.get_username()}",
        )
        return Response(
            deposit_out(posted, cardholder_token=cardholder.token), status=status.HTTP_201_CREATED
        )


class BalanceApi(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request, cardholder_token: str) -> Response:
        cardholder = cardholder_by_token(token=cardholder_token)
        balances = cardholder_balances(cardholder=cardholder)
        return Response(balances_out(balances, cardholder_token=cardholder.token))
