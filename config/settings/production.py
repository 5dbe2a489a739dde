"""Production: no defaults for secrets, HTTPS only."""

from config.settings.base import *  # noqa: F403
from config.settings.base import LOGGING, env

DEBUG = False
SECRET_KEY = env("SECRET_KEY")  # no default: a missing secret stops the process
MARQETA_JIT_USERNAME = env("MARQETA_JIT_USERNAME")
MARQETA_JIT_PASSWORD = env("MARQETA_JIT_PASSWORD")
MARQETA_WEBHOOK_USERNAME = env("MARQETA_WEBHOOK_USERNAME")
MARQETA_WEBHOOK_PASSWORD = env("MARQETA_WEBHOOK_PASSWORD")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
LOGGING["handlers"]["console"]["formatter"] = env("LOG_FORMAT", default="json")
