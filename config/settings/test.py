"""The test suite: real PostgreSQL and real Redis, on a Redis DB index of its own."""

from config.settings.base import *  # noqa: F403
from config.settings.base import CACHES, DATABASES, MIDDLEWARE, env

REDIS_URL = env("TEST_REDIS_URL", default="redis://127.0.0.1:56379/2")
# Two suites on one machine must not share a test database (pytest-django drops it).
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME", default="test_cardprogram")}
CACHES["default"]["LOCATION"] = REDIS_URL
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test logins only
MARQETA_JIT_USERNAME = "marqeta_jit_test"
MARQETA_JIT_PASSWORD = "Jit-Test-Password-2026!"  # noqa: S105 - test-only
MARQETA_WEBHOOK_USERNAME = "marqeta_webhook_test"
MARQETA_WEBHOOK_PASSWORD = "Webhook-Test-Password-2026!"  # noqa: S105 - test-only
JIT_POLICY_REFRESH_SECONDS = 0  # tests install the policy themselves
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# No collectstatic before tests: the test server serves static files itself.
MIDDLEWARE = [name for name in MIDDLEWARE if not name.startswith("whitenoise.")]
# Tasks queued by tests go to a broker database of their own (a dev worker never sees them).
CELERY_BROKER_URL = env("TEST_CELERY_BROKER_URL", default="redis://127.0.0.1:56379/3")
# A loaded CI box can stall a 50 ms Redis call; tests of the fallback stop Redis outright.
JIT_REDIS_TIMEOUT_MS = 1_000
