"""The cache drift check's outcome reaches the ops queue as `cache_drift` exceptions."""

from __future__ import annotations

from django.utils import timezone

from jit.drift import find_drift
from reconciliation.services import open_exception


def record_cache_drift(*, settle_seconds: float = 2.0) -> int:
    """Open one exception per drifting account per day (the dedupe key holds the date)."""
    today = timezone.now().date().isoformat()
    drifts = find_drift(settle_seconds=settle_seconds)
    for drift in drifts:
        open_exception(
            kind="cache_drift",
            dedupe_key=f"cache_drift:{drift.user_token}:{today}",
            user_token=drift.user_token,
            amount_minor=drift.difference_minor,
            currency_code=drift.currency_code,
            details={"cached_minor": drift.cached_minor, "ledger_minor": drift.expected_minor},
        )
    return len(drifts)
