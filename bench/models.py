"""The naive design's holds: one row per approval, written in the request's transaction."""

from django.db import models


class NaiveHold(models.Model):
    account_id = models.BigIntegerField()  # ledger.Account (available) the hold was taken from
    jit_funding_token = models.CharField(max_length=36, unique=True)
    amount_minor = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"naive hold {self.jit_funding_token} {self.amount_minor}"
