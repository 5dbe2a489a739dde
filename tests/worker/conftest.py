"""The worker lane reuses the reconciliation fixtures (MARQETA.md §11's card)."""

from tests.reconciliation.conftest import week_card, week_wallet  # noqa: F401
