"""`POST /webhooks/marqeta/`: check who sent it, store the events, answer 200 at once.

Marqeta retries anything but a 200 for days (MARQETA.md §7.3), so the answer never waits on
the ledger: events are stored raw and applied by a Celery task queued on commit.
"""

from __future__ import annotations

import logging

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import DomainError
from jit.api.openapi import WEBHOOK_SCHEMA
from jit.auth import BasicSettingsAuthentication
from reconciliation import services
from reconciliation.errors import WebhookTooLarge
from reconciliation.marqeta import verify_signature

logger = logging.getLogger("reconciliation.webhooks")
SIGNATURE_HEADER = "X-Marqeta-Signature"


class MarqetaWebhookAuthentication(BasicSettingsAuthentication):
    realm = "webhooks"
    username_setting = "MARQETA_WEBHOOK_USERNAME"
    password_setting = "MARQETA_WEBHOOK_PASSWORD"  # noqa: S105 - a setting's name, not a secret


def raw_body(request: Request) -> bytes:
    """The body as received, read once, refused above `MARQETA_WEBHOOK_MAX_BYTES` (413)."""
    limit = settings.MARQETA_WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise WebhookTooLarge(f"the body is over {limit} bytes", limit=limit)
    stream = request.stream
    body = stream.read(limit + 1) if stream is not None else b""
    if len(body) > limit:
        raise WebhookTooLarge(f"the body is over {limit} bytes", limit=limit)
    return body


class WebhookReceiveApi(APIView):
    authentication_classes = [MarqetaWebhookAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes: list = []  # the raw bytes are signed: they are read and parsed once, here

    @extend_schema(**WEBHOOK_SCHEMA)
    def post(self, request: Request) -> Response:
        try:
            body = raw_body(request)
            if secret := settings.MARQETA_WEBHOOK_SECRET:
                signature = request.headers.get(SIGNATURE_HEADER, "")
                verify_signature(body=body, signature=signature, secret=secret)
            receipt = services.record_webhook_envelope(body=body)
        except DomainError as refusal:  # rendered by config.errors; nothing was stored
            logger.warning("webhook refused: %s %s", refusal.code, refusal.message)
            raise
        logger.info("webhook POST: %s event(s), %s new", receipt.received, len(receipt.stored))
        return Response({"received": receipt.received, "duplicates": receipt.duplicates})
