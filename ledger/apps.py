from django.apps import AppConfig


class LedgerConfig(AppConfig):
    """The double-entry ledger: the source of truth for every cent."""

    name = "ledger"
    verbose_name = "Ledger"

    def ready(self) -> None:
        from config.lookups import register

        register()  # `field__any=[...]` for the batch lookups of thousands of keys
