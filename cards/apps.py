from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CardsConfig(AppConfig):
    """Programs, cardholders, cards and their configuration."""

    name = "cards"
    verbose_name = "Cards"

    def ready(self) -> None:
        from cards.services import ensure_staff_groups

        def _groups(**_: object) -> None:
            ensure_staff_groups()

        # Permissions exist only after every app migrated, so groups are made after migrate.
        post_migrate.connect(_groups, dispatch_uid="cards.ensure_staff_groups", weak=False)
