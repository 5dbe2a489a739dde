"""`POST /jit/marqeta/`: Marqeta waits on this at every swipe. Parse, decide, answer.

No database query and one Redis call (a test proves both). The body is read raw and parsed
once, with Decimal numbers; the answer is the `jit_funding` echo Marqeta expects.
"""

from __future__ import annotations

import logging

import simplejson
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cards.api.serializers import balances_out
from cards.selectors import card_by_token, cardholder_by_token
from config.errors import DomainError
from jit import metrics, services
from jit.api.openapi import JIT_SCHEMA
from jit.auth import MarqetaJitAuthentication
from jit.history import HistoryEntry, card_history
from jit.marqeta import parse_jit_request
from jit.selectors import live_balances, remaining_limits_now
from ledger.money import to_decimal

logger = logging.getLogger("jit")
JSON = "application/json"


def _refusal(code: str, message: str, status: int) -> HttpResponse:
    body = simplejson.dumps({"code": code, "message": message, "details": {}})
    return HttpResponse(body, status=status, content_type=JSON)


class JitFundingApi(APIView):
    authentication_classes = [MarqetaJitAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes: list = []  # the body is parsed once, by parse_jit_request

    @extend_schema(**JIT_SCHEMA)
    def post(self, request: Request) -> HttpResponse:
        received_at_us = services.now_us()
        try:
            jit_request = parse_jit_request(request.body)
        except DomainError as refusal:
            logger.warning("jit refused: %s %s", refusal.code, refusal.message)
            return _refusal(refusal.code, refusal.message, refusal.http_status)
        try:
            answer = services.decide_jit_funding(jit_request, received_at_us=received_at_us)
        except services.IdempotencyConflict:
            message = f"jit_funding.token {jit_request.jit_token} was used for another request"
            return _refusal("idempotency_conflict", message, 409)
        body = services.response_body(jit_request, answer)
        metrics.DECISION_SECONDS.observe((services.now_us() - received_at_us) / 1_000_000)
        metrics.DECISIONS.labels(
            outcome="approved" if answer.approved else "declined", reason=answer.reason_code
        ).inc()
        logger.info(
            "jit %s %s %s",
            jit_request.jit_token,
            "approved" if answer.approved else "declined",
            answer.reason_code,
            extra={
                "jit_token": jit_request.jit_token,
                "method": jit_request.method,
                "outcome": "approved" if answer.approved else "declined",
                "reason_code": answer.reason_code,
                "fallback": answer.is_fallback,
            },
        )

        return HttpResponse(body, status=answer.http_status, content_type=JSON)


class CardholderBalanceApi(APIView):
    """`GET /api/v1/cardholders/{token}/balance/`: available reflects every approval at once."""

    required_permissions = {"GET": "cards.view_cardholder"}

    @extend_schema(responses={200: dict})
    def get(self, request: Request, cardholder_token: str) -> Response:
        cardholder = cardholder_by_token(token=cardholder_token)
        balances, source = live_balances(cardholder=cardholder)
        body = balances_out(balances, cardholder_token=cardholder.token)
        return Response({**body, "source": source})


def _money(amount_minor: int | None, currency: str) -> str | None:
    return None if amount_minor is None else str(to_decimal(amount_minor, currency))


def history_out(entry: HistoryEntry, currency: str) -> dict:
    body = entry.as_dict()
    body["amount"] = _money(body.pop("amount_minor"), currency)
    body["available_after"] = _money(body.pop("available_after_minor"), currency)
    if body["hold"]:
        body["hold"]["remaining"] = _money(body["hold"].pop("remaining_minor"), currency)
    return body


class CardTransactionsApi(APIView):
    """`GET /api/v1/cards/{token}/transactions/`: the card's history, newest first, and the room
    left in each spend limit now."""

    required_permissions = {"GET": "cards.view_card"}

    @extend_schema(responses={200: dict})
    def get(self, request: Request, card_token: str) -> Response:
        card = card_by_token(token=card_token)
        currency = card.cardholder.program.currency_code
        balances, source = live_balances(cardholder=card.cardholder)
        return Response(
            {
                "card_token": card.token,
                "cardholder_token": card.cardholder.token,
                "state": card.state,
                "currency_code": currency,
                "available": _money(balances.available_minor, currency),
                "available_source": source,
                "limits": remaining_limits_now(card=card),
                "entries": [history_out(entry, currency) for entry in card_history(card=card)],
            }
        )
