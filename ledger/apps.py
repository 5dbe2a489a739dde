from django.apps import AppConfig


class LedgerConfig(AppConfig):
    """The double-entry ledger: the source of truth for every cent."""

    name = "ledger"
    verbose_name = "Ledger"
