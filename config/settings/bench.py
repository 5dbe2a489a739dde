"""`make bench-jit`: production-like (DEBUG off) on a database and Redis DB of its own.

Never the dev database, never Redis DB 0-8: the bench drops and recreates its database and
flushes its Redis DB on every run. Adds the `bench` app (two comparison endpoints and the
naive design's hold table) and its URL map, which also serves everything in `config.urls`.
"""

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import BASE_DIR, CACHES, DATABASES, INSTALLED_APPS, env

DEBUG = False

BENCH_DATABASE_NAME = env("BENCH_DATABASE_NAME", default="cardprogram_bench")
if "bench" not in BENCH_DATABASE_NAME:
    raise ImproperlyConfigured("BENCH_DATABASE_NAME must contain 'bench' (it is dropped)")
DATABASES["default"]["NAME"] = BENCH_DATABASE_NAME

REDIS_URL = env(
    "BENCH_REDIS_URL", default=f"redis://127.0.0.1:{env('REDIS_PORT', default=56379)}/9"
)
if int((urlsplit(REDIS_URL).path or "/0").lstrip("/") or 0) < 9:
    raise ImproperlyConfigured("BENCH_REDIS_URL must use Redis DB 9 or above (it is flushed)")
CACHES["default"]["LOCATION"] = REDIS_URL
CELERY_BROKER_URL = REDIS_URL

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
ROOT_URLCONF = "bench.urls"

# Bench-only credentials, so the load generator never reads the real ones.
MARQETA_JIT_USERNAME = "marqeta_jit_bench"
MARQETA_JIT_PASSWORD = "Jit-Bench-Password-2026!"  # noqa: S105 - bench-only
JIT_POLICY_REFRESH_SECONDS = 0  # the default policy; no refresher thread per worker
JIT_STANDIN_SPOOL = str(BASE_DIR / "var" / "bench" / "standin.jsonl")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
