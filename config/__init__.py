"""Project configuration: settings, URLs, Celery app, error base class."""

from config.celery_app import app as celery_app

__all__ = ["celery_app"]
