"""The cache drift check's outcome reaches the ops queue as `cache_drift` exceptions."""

from __future__ import annotations

from django.utils import timezone

from jit.drift import find_drift
from reconciliation.services import negative_balance_dedupe_key, open_exception


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


def record_negative_balances() -> int:
    """Every open overdraft flag of the ledger (force posts, over-clearings, stand-ins, late
    approvals) becomes a `negative_balance` exception, once per flag."""
    from ledger.models import NegativeBalance, Wallet

    flags = NegativeBalance.objects.filter(resolved_at__isnull=True).select_related("account")
    holders = dict(
        Wallet.objects.filter(available_id__in=[flag.account_id for flag in flags]).values_list(
            "available_id", "holder_token"
        )
    )
    for flag in flags:
        open_exception(
            kind="negative_balance",
            dedupe_key=negative_balance_dedupe_key(pk=flag.pk),
            ledger_transaction=flag.opened_by,
            user_token=holders.get(flag.account_id, ""),
            amount_minor=flag.balance_minor,
            currency_code=flag.account.currency_code,
            details={"account": flag.account.code, "opened_at": flag.opened_at.isoformat()},
        )
    return len(flags)
