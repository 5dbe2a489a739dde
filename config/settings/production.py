"""Production: secrets only from the real environment, HTTPS only, no debug.

`config/env.py` also reads `.env`, which `scripts/bootstrap.sh` makes from `.env.example`:
a secret whose value is the one `.env.example` ships (known to everyone who has the
repository) is refused, so a box bootstrapped like a laptop cannot start with it.
`manage.py check --deploy` is clean with these settings (tests/security proves it).
"""

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import LOGGING, env
from config.settings.shipped import shipped_values


def required(name: str) -> str:
    """A setting from the environment with no default that may not be empty."""
    value = env(name)  # ImproperlyConfigured when it is not set at all
    if not value:
        raise ImproperlyConfigured(f"{name} is empty: set it in the environment")
    return value


def secret(name: str, *, optional: bool = False) -> str:
    """A secret from the environment, never the value `.env.example` ships."""
    value = env(name, default="") if optional else required(name)
    if value and value == shipped_values().get(name):
        raise ImproperlyConfigured(
            f"{name} is the development value of .env.example: set the production one "
            "in the environment"
        )
    return value


DEBUG = False
SECRET_KEY = secret("SECRET_KEY")
MARQETA_JIT_USERNAME = required("MARQETA_JIT_USERNAME")
MARQETA_JIT_PASSWORD = secret("MARQETA_JIT_PASSWORD")
MARQETA_WEBHOOK_USERNAME = required("MARQETA_WEBHOOK_USERNAME")
MARQETA_WEBHOOK_PASSWORD = secret("MARQETA_WEBHOOK_PASSWORD")
MARQETA_WEBHOOK_SECRET = secret("MARQETA_WEBHOOK_SECRET", optional=True)
MARQETA_API_PASSWORD = secret("MARQETA_API_PASSWORD", optional=True)

# HTTPS only behind the TLS-terminating proxy; the probes stay plain HTTP for the balancer.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
LOGGING["handlers"]["console"]["formatter"] = env("LOG_FORMAT", default="json")
