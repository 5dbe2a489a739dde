"""The two comparison endpoints of `make bench-jit` (bench settings only).

- `POST /bench/bare/`: the framework ceiling. Plain Django view, same server and middleware:
  parse the same body (stdlib json, Decimal numbers), answer 200 with a small echo.
- `POST /bench/lean/`: `/jit/marqeta/`'s own handler behind a plain Django view (no DRF).
- `POST /bench/naive/`: the naive design, deciding inside PostgreSQL. Same DRF view class,
  Basic auth, parser and answer as `/jit/marqeta/`; only the decision differs: one transaction
  that locks the cardholder's ledger available account (`SELECT ... FOR UPDATE`), checks the
  balance, inserts a hold row and lowers the balance. 200 or 402.
"""

from __future__ import annotations

import json
from decimal import Decimal

import simplejson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from bench.models import NaiveHold
from config.errors import DomainError
from jit import services
from jit.api import views as jit_views
from jit.auth import MarqetaJitAuthentication, credentials_match
from jit.marqeta import JitRequest, parse_jit_request
from ledger.models import Account, Wallet

JSON = "application/json"
# The gateway's DRF view, if it still is one (docs/benchmarks.md, proposal 1 would remove it).
_GATEWAY_API = getattr(jit_views, "JitFundingApi", None)


def _refusal(code: str, message: str, status: int) -> HttpResponse:
    body = simplejson.dumps({"code": code, "message": message, "details": {}})
    return HttpResponse(body, status=status, content_type=JSON)


@csrf_exempt
@require_POST
def bare(request: HttpRequest) -> HttpResponse:
    try:
        document = json.loads(request.body, parse_float=Decimal)
        funding = document["gpa_order"]["jit_funding"]
        echo = {"token": funding["token"], "amount": str(funding["amount"]), "ok": True}
    except (ValueError, KeyError, TypeError):
        return HttpResponse(b'{"code":"malformed"}', status=400, content_type=JSON)
    return HttpResponse(json.dumps({"jit_funding": echo}), content_type=JSON)


def decide_in_postgres(jit_request: JitRequest) -> services.JitAnswer:
    """Lock the account row, check, insert the hold, lower the balance, commit."""
    with transaction.atomic():
        wallet = (
            Wallet.objects.select_related("available")
            .select_for_update(of=("available",))
            .get(holder_token=jit_request.user_token, currency_code=jit_request.currency_code)
        )
        available = wallet.available.balance_minor
        if jit_request.amount_minor > available:
            return services.JitAnswer(False, "INSUFFICIENT_FUNDS", "BALANCE", available)
        NaiveHold.objects.create(
            account_id=wallet.available_id,
            jit_funding_token=jit_request.jit_token,
            amount_minor=jit_request.amount_minor,
        )
        Account.objects.filter(pk=wallet.available_id).update(
            balance_minor=F("balance_minor") - jit_request.amount_minor
        )
        return services.JitAnswer(True, "", "APPROVED", available - jit_request.amount_minor)


class NaiveJitApi(APIView):
    authentication_classes = [MarqetaJitAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes: list = []

    def post(self, request: Request) -> HttpResponse:
        try:
            jit_request = parse_jit_request(request.body)
        except DomainError as refusal:
            return _refusal(refusal.code, refusal.message, refusal.http_status)
        try:
            answer = decide_in_postgres(jit_request)
        except Wallet.DoesNotExist:
            answer = services.JitAnswer(False, "NO_CHECKING_ACCOUNT", "ACCOUNT_UNKNOWN", None)
        except IntegrityError:  # the token was seen: the naive design has no replay, refuse
            return _refusal("idempotency_conflict", "jit_funding.token already used", 409)
        body = services.response_body(jit_request, answer)
        return HttpResponse(body, status=answer.http_status, content_type=JSON)


@csrf_exempt
@require_POST
def lean(request: HttpRequest) -> HttpResponse:
    """`/jit/marqeta/`'s own `post()`, run by a plain Django view: what DRF's dispatch costs.

    Same Basic auth check, parser, decision, answer, metrics and log line; no `APIView`
    (no DRF request wrapper, authentication loop, content negotiation, finalize_response).
    """
    header = request.META.get("HTTP_AUTHORIZATION", "").encode("latin-1")
    if not credentials_match(
        header, username=settings.MARQETA_JIT_USERNAME, password=settings.MARQETA_JIT_PASSWORD
    ):
        return _refusal("not_authenticated", "missing or wrong Basic credentials", 401)
    if _GATEWAY_API is None:  # the gateway is a plain view already: lean is the gateway
        return jit_views.jit_funding(request)
    return _GATEWAY_API.post(_GATEWAY_API(), request)
