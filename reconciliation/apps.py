from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    """Webhooks, clearing files, matching and the exception queue."""

    name = "reconciliation"
    verbose_name = "Reconciliation"
