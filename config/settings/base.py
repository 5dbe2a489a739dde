"""Settings shared by every environment. Only `config/` reads the environment."""

from datetime import timedelta

from config.env import BASE_DIR, env

SECRET_KEY = env("SECRET_KEY")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "ledger",
    "cards",
    "jit",
    "reconciliation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # the admin's CSS/JS, served by gunicorn
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL")}  # postgres:// runs on psycopg 3
DATABASES["default"]["ATOMIC_REQUESTS"] = False  # services own transactions; JIT opens none
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Bad input gets a 4xx, never a 500: bodies above this size are refused with a 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BYTES", default=64 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "config.permissions.MethodPermission",
    ],
    "DEFAULT_PARSER_CLASSES": ["config.parsers.DecimalJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Card program internal API",
    "DESCRIPTION": "Cardholders, cards, deposits and balances. Money is a decimal string.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

CELERY_BROKER_URL = env("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True  # a killed worker's task runs again, so tasks are re-runnable
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}
CELERY_TIMEZONE = "UTC"

MARQETA_JIT_USERNAME = env("MARQETA_JIT_USERNAME", default="")
MARQETA_JIT_PASSWORD = env("MARQETA_JIT_PASSWORD", default="")
MARQETA_WEBHOOK_USERNAME = env("MARQETA_WEBHOOK_USERNAME", default="")
MARQETA_WEBHOOK_PASSWORD = env("MARQETA_WEBHOOK_PASSWORD", default="")
MARQETA_WEBHOOK_SECRET = env("MARQETA_WEBHOOK_SECRET", default="")
MARQETA_API_URL = env("MARQETA_API_URL", default="")
MARQETA_API_USERNAME = env("MARQETA_API_USERNAME", default="")
MARQETA_API_PASSWORD = env("MARQETA_API_PASSWORD", default="")
CLEARING_INBOX_URL = env("CLEARING_INBOX_URL", default=f"file://{BASE_DIR / 'var/clearing/inbox'}")

# Holds with no clearing are released after this many days unless the program says otherwise.
DEFAULT_HOLD_EXPIRY = timedelta(days=7)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env("LOG_FORMAT", default="plain"),  # "json" in production
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # A 402 is an everyday JIT decline, logged by the gateway itself; keep 5xx from Django.
    "loggers": {"django.request": {"level": "ERROR"}},
}

# The JIT gateway's Redis: short timeouts so a slow Redis trips the breaker, not Marqeta's 3 s.
JIT_REDIS_TIMEOUT_MS = env.int("JIT_REDIS_TIMEOUT_MS", default=150)
JIT_REDIS_CLUSTER = env.bool("JIT_REDIS_CLUSTER", default=False)
# How long a JIT answer is replayable and a hold/applied marker kept in Redis: longer than
# the longest hold (30 days for lodging) would be costly; 14 days outlives Marqeta's webhook
# retries (12 days) and any JIT retry. Open holds older than this are reloaded by a rebuild.
JIT_IDEMPOTENCY_TTL_SECONDS = env.int("JIT_IDEMPOTENCY_TTL_SECONDS", default=14 * 24 * 3600)
JIT_STANDIN_SPOOL = env(
    "JIT_STANDIN_SPOOL", default=str(BASE_DIR / "var" / "spool" / "standin.jsonl")
)
JIT_POLICY_REFRESH_SECONDS = env.int("JIT_POLICY_REFRESH_SECONDS", default=5)

# Reconciliation (reconciliation/): Marqeta webhooks, applied by tasks on the `webhooks` queue.
MARQETA_WEBHOOK_MAX_BYTES = env.int("MARQETA_WEBHOOK_MAX_BYTES", default=1024 * 1024)
WEBHOOK_MAX_RETRIES = env.int("WEBHOOK_MAX_RETRIES", default=8)  # then out_of_order_unresolved
WEBHOOK_RETRY_BACKOFF_SECONDS = env.int("WEBHOOK_RETRY_BACKOFF_SECONDS", default=5)  # 5, 10, 20 …
WEBHOOK_RETRY_BACKOFF_MAX_SECONDS = env.int("WEBHOOK_RETRY_BACKOFF_MAX_SECONDS", default=600)
# Longer than the longest backoff, so a live retry chain is never queued twice by beat.
WEBHOOK_REQUEUE_AFTER_MINUTES = env.int("WEBHOOK_REQUEUE_AFTER_MINUTES", default=15)
CELERY_TASK_ROUTES = {
    "reconciliation.tasks.apply_webhook_event_task": {"queue": "webhooks"},
    "reconciliation.tasks.retry_waiting_webhooks": {"queue": "webhooks"},
}
CELERY_BEAT_SCHEDULE["reconciliation.retry_waiting_webhooks"] = {
    "task": "reconciliation.tasks.retry_waiting_webhooks",
    "schedule": timedelta(minutes=5),
}

# The gateway's periodic upkeep (jit/tasks.py).
CELERY_BEAT_SCHEDULE |= {
    "replay-standin-spool": {"task": "jit.tasks.replay_standin_spool_task", "schedule": 60.0},
    "refresh-card-records": {"task": "jit.tasks.refresh_card_records_task", "schedule": 86_400.0},
}
CELERY_BEAT_SCHEDULE["reconciliation.check_cache_drift"] = {
    "task": "reconciliation.tasks.check_cache_drift_task",
    "schedule": 600.0,
}

# Clearing files (reconciliation/clearing.py, docs/clearing-files.md).
# CLEARING_INBOX_URL (above) is any fsspec URL: a local directory by default; sftp:// needs
# `sshfs` and s3:// needs `s3fs` installed (not in requirements.txt).
CLEARING_BATCH_LINES = env.int("CLEARING_BATCH_LINES", default=5000)  # lines per transaction
CLEARING_FUZZY_TOLERANCE_PERCENT = env.int("CLEARING_FUZZY_TOLERANCE_PERCENT", default=20)
CLEARING_FUZZY_WINDOW_DAYS = env.int("CLEARING_FUZZY_WINDOW_DAYS", default=7)
CLEARING_STALL_MINUTES = env.int("CLEARING_STALL_MINUTES", default=15)  # then queued again
HOLD_EXPIRY_BATCH = env.int("HOLD_EXPIRY_BATCH", default=500)
STALE_HOLD_WARNING_HOURS = env.int("STALE_HOLD_WARNING_HOURS", default=24)  # before expiry
STALE_HOLD_OVERDUE_HOURS = env.int("STALE_HOLD_OVERDUE_HOURS", default=6)  # still open after
CELERY_TASK_ROUTES |= {
    "reconciliation.tasks.ingest_clearing_file_task": {"queue": "clearing"},
    "reconciliation.tasks.pull_clearing_files_task": {"queue": "clearing"},
    "reconciliation.tasks.expire_holds_task": {"queue": "clearing"},
}
CELERY_BEAT_SCHEDULE["reconciliation.pull_clearing_files"] = {
    "task": "reconciliation.tasks.pull_clearing_files_task",
    "schedule": timedelta(minutes=5),
}
CELERY_BEAT_SCHEDULE["reconciliation.expire_holds"] = {
    "task": "reconciliation.tasks.expire_holds_task",
    "schedule": timedelta(hours=1),
}
CELERY_BEAT_SCHEDULE["reconciliation.flag_negative_balances"] = {
    "task": "reconciliation.tasks.flag_negative_balances_task",
    "schedule": 300.0,
}
