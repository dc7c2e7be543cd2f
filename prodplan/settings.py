"""Django settings for PRODPLAN, read from the environment (12-factor) with embedded defaults."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from celery.schedules import crontab
from django.utils.translation import gettext_lazy as _

from prodplan.database import database_from_url, embedded_database

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PRODPLAN_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
# Prometheus multiprocess mode (deploy/gunicorn.conf.py, prodplan/worker_metrics.py): every process writes its
# samples into this directory, which must exist before the first metric is created.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "django-insecure-dev-only-set-DJANGO_SECRET_KEY-in-production"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django_prometheus",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "psqlextra",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "corsheaders",
    "axes",
    "prodplan",
    "orders",
    "quality",
    "inventory",
    "whatif",
    "mlops",
    "ingestion",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "prodplan.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "prodplan.response_cache.ResponseCacheMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "prodplan.middleware.DatabaseUnavailableMiddleware",
    "axes.middleware.AxesMiddleware",  # answers the lockout page for a locked-out login attempt
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "prodplan.urls"
WSGI_APPLICATION = "prodplan.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: PostgreSQL 15+ only -------------------------------------------------------
# Without DATABASE_URL: the project's own PostgreSQL (pgserver) in VAR_DIR/pgdata, started by the first
# connection (prodplan.embedded_psqlextra), never by importing these settings.
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
EMBEDDED_DATABASE = not DATABASE_URL
DATABASES = {"default": embedded_database(VAR_DIR / "pgdata") if EMBEDDED_DATABASE else database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
POSTGRES_EXTRA_AUTO_EXTENSION_SET_UP = False
PSQLEXTRA_PARTITIONING_MANAGER = "orders.partitioning.manager"
PARTITION_MONTHS_AHEAD = int(os.environ.get("PARTITION_MONTHS_AHEAD", "6"))

# --- Cache and Celery: Redis when REDIS_URL is set, in-process otherwise --------------------
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL:
    CACHES = {
        "default": {
            # Redis down: each process caches in its own memory until Redis answers again (prodplan.cache_backend);
            # /api/health reports the cache as failing.
            "BACKEND": "prodplan.cache_backend.RedisWithLocalFallback",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "prodplan"),
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient", "SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "prodplan"}}
CACHE_ENABLED = env_bool("PRODPLAN_CACHE", True)
# Rendered responses of the data-versioned API GETs (prodplan.response_cache); PRODPLAN_CACHE=0 turns both off.
RESPONSE_CACHE_ENABLED = env_bool("PRODPLAN_RESPONSE_CACHE", True)
CACHE_TTL_SECONDS = int(os.environ.get("CACHE_TTL_SECONDS", "3600"))

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
# A task whose worker died (OOM, SIGKILL) goes back to the queue instead of being acknowledged as done; the
# long tasks are idempotent (an ingestion run that already started is not run twice).
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 3600
CELERY_TIMEZONE = "Europe/Lisbon"
# The one place the schedule lives. Every task is idempotent and guarded against a second copy.
CELERY_BEAT_SCHEDULE = {
    "ingest-inbox-workbook": {
        "task": "ingestion.tasks.ingest_inbox_task",
        "schedule": float(os.environ.get("INBOX_POLL_SECONDS", "300")),
    },
    "maintain-partitions": {"task": "orders.maintain_partitions", "schedule": crontab(minute=15, hour=2)},
    "refresh-aggregates": {"task": "orders.refresh_aggregates", "schedule": crontab(minute=0)},
    "nightly-model-training": {"task": "mlops.tasks.train_all_models_task", "schedule": crontab(minute=30, hour=3)},
    "prune-uploads": {"task": "ingestion.tasks.prune_uploads_task", "schedule": crontab(minute=45, hour=2)},
}

# --- Auth, i18n, static ----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "pt-pt"
LANGUAGES = [("pt-pt", _("Portuguese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/Lisbon"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("PRODPLAN_STATIC_ROOT", VAR_DIR / "staticfiles"))
# WhiteNoise serves static files in every mode (DEBUG=0 included: the HTMX widgets need htmx.js).
# After `collectstatic` (the compose web runs it) files get hashed names and gzip copies, cached forever;
# without a collected manifest (tests, a first `make serve`) they are served from the app folders.
STATIC_MANIFEST = STATIC_ROOT / "staticfiles.json"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "prodplan.static_storage.CollectedOrSourceStaticStorage"},
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST.exists()
# Before collectstatic STATIC_ROOT does not exist and the finders serve the files: not worth a warning.
warnings.filterwarnings("ignore", message="No directory at: ")
MEDIA_ROOT = VAR_DIR / "media"
UPLOAD_DIR = VAR_DIR / "uploads"
# The Celery ingestion runs each workbook in a child process under this address-space limit (ingestion.isolation).
INGEST_IN_CHILD_PROCESS = env_bool("PRODPLAN_INGEST_CHILD_PROCESS", True)
INGEST_MEMORY_LIMIT_MB = int(os.environ.get("PRODPLAN_INGEST_MEMORY_LIMIT_MB", "12288"))
# Stored uploads are deleted this long after they were saved (never while their run is pending or running).
UPLOAD_RETENTION_HOURS = float(os.environ.get("PRODPLAN_UPLOAD_RETENTION_HOURS", str(7 * 24)))
INBOX_DIR = Path(os.environ.get("PRODPLAN_INBOX_DIR", VAR_DIR / "inbox"))
# A file written less than this ago may still be being copied into the inbox: the watch waits for it.
INBOX_SETTLE_SECONDS = float(os.environ.get("INBOX_SETTLE_SECONDS", "30"))
# A workbook whose run failed is tried again only after this long (a broken export would fail every poll).
INBOX_RETRY_FAILED_AFTER_SECONDS = float(os.environ.get("INBOX_RETRY_FAILED_AFTER_SECONDS", "3600"))
MODEL_ARTIFACT_DIR = Path(os.environ.get("PRODPLAN_MODEL_DIR", VAR_DIR / "models"))
MAX_UPLOAD_BYTES = int(os.environ.get("PRODPLAN_MAX_UPLOAD_BYTES", str(200 * 1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Factory data needs a login or an API key; PRODPLAN_PUBLIC_READS=1 opens the API's GETs (closed networks only).
PUBLIC_READS = env_bool("PRODPLAN_PUBLIC_READS", False)
# /metrics answers these networks, or anyone with `Authorization: Bearer <PRODPLAN_METRICS_TOKEN>`.
METRICS_ALLOWED_NETWORKS = env_list("PRODPLAN_METRICS_ALLOWED_NETWORKS", "127.0.0.1/32,::1/128")
METRICS_TOKEN = os.environ.get("PRODPLAN_METRICS_TOKEN", "")

# Reverse proxies in front of the app that append to X-Forwarded-For (0: none; the client is REMOTE_ADDR).
TRUSTED_PROXIES = int(os.environ.get("PRODPLAN_TRUSTED_PROXIES", "0"))

# --- Login attempts (django-axes) -------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out username or address before the password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("PRODPLAN_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("PRODPLAN_LOGIN_COOLOFF_HOURS", "0.25"))  # hours
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]  # either one over the limit locks
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False  # no username or address in the log on each attempt
AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXIES or None
AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if TRUSTED_PROXIES else ["REMOTE_ADDR"]

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "prodplan.api_keys.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["prodplan.api_keys.ReadsFactoryData"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PARSER_CLASSES": [  # DRF's, with JSON nested too deep a 400 (prodplan.parsers)
        "prodplan.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "prodplan.throttling.ApiKeyRateThrottle",
        "prodplan.throttling.SessionRateThrottle",
        "prodplan.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "api_key": os.environ.get("THROTTLE_API_KEY", "6000/min"),
        "session": os.environ.get("THROTTLE_SESSION", "3000/min"),
        "anon": os.environ.get("THROTTLE_ANON", "3000/min"),
    },
    # X-Forwarded-For is trusted only for this many proxies in front of the app (0: the socket's address):
    # without it, a client rotating the header got a fresh per-IP allowance on every request.
    "NUM_PROXIES": TRUSTED_PROXIES,
    "EXCEPTION_HANDLER": "prodplan.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PRODPLAN API",
    "DESCRIPTION": "Production planning for a composite kayak and canoe factory. Every analytic figure "
    "carries its basis (observed / theoretical / imputed) and coverage; 'now' is the workbook's as-of date.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema needs a login or a key like the data; the docs pages a login; their assets are served here.
    "SERVE_PERMISSIONS": ["prodplan.api_keys.ReadsFactoryData"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.choices.OrderStatus",
        "IngestionRunStatusEnum": "ingestion.choices.RunStatus",
        "TriageStatusEnum": "ingestion.choices.TriageStatus",
        "WhatIfRunStatusEnum": "whatif.choices.RunStatus",
        "PriorityRuleEnum": "whatif.choices.PriorityRule",
        "OrderStateEnum": "orders.choices.OrderState",
        "PlacementBasisEnum": "orders.choices.PlacementBasis",
        "PhaseExecutionStateEnum": ["done", "in_progress", "not_started"],
        "SeverityEnum": "quality.choices.Severity",
        "NotSupportedStatusEnum": ["NOT_SUPPORTED_BY_DATA"],
        "SupportedStatusEnum": ["OK"],
        "UnavailableStatusEnum": ["unavailable"],
        "PendingStatusEnum": ["pending"],
        "StalledStatusEnum": ["stalled"],
    },
}

CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_HEADERS = ("accept", "content-type", "authorization", "x-api-key", "x-csrftoken", "x-request-id")

# --- Domain thresholds -----------------------------------------------------------------------
ORDER_AT_RISK_PERCENTILE = float(os.environ.get("ORDER_AT_RISK_PERCENTILE", "0.75"))
ORDER_LATE_PERCENTILE = float(os.environ.get("ORDER_LATE_PERCENTILE", "0.90"))
MIN_HISTORY_FOR_PRODUCT_PERCENTILE = int(os.environ.get("MIN_HISTORY_FOR_PRODUCT_PERCENTILE", "10"))
# An open order with no event for longer than max(this floor, p99 of the gaps at its phase) is stalled.
ORDER_STALLED_FLOOR_DAYS = float(os.environ.get("ORDER_STALLED_FLOOR_DAYS", "7"))
EMPLOYEE_MATCH_RATE_GATE = float(os.environ.get("EMPLOYEE_MATCH_RATE_GATE", "0.90"))
BENCH_RESULTS_DIR = Path(os.environ.get("PRODPLAN_BENCH_RESULTS", BASE_DIR / "bench" / "results"))
RELEASE_BLOCKED_PATH = Path(os.environ.get("PRODPLAN_RELEASE_BLOCKED_PATH", BASE_DIR / "docs" / "RELEASE_BLOCKED.md"))
INGEST_MAX_SHRINK_FRACTION = float(os.environ.get("INGEST_MAX_SHRINK_FRACTION", "0.05"))

# --- Security (production values when DEBUG is off) ----------------------------------------
SECURE_HTTPS = env_bool("DJANGO_SECURE_HTTPS", False)
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_SSL_REDIRECT = SECURE_HTTPS
# Prometheus scrapes and health probes speak plain HTTP inside the network: never redirect them.
SECURE_REDIRECT_EXEMPT = [r"^metrics$", r"^api/health(/|$)"]
SECURE_HSTS_SECONDS = 31536000 if SECURE_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HTTPS
SECURE_HSTS_PRELOAD = SECURE_HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE_HTTPS else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# --- Logging: JSON lines with the request id, no personal data ---------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "prodplan.logging.RequestIdFilter"}},
    "formatters": {"json": {"()": "prodplan.logging.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": "INFO"},
        "pgserver": {"level": "WARNING"},
    },
}

# --- URL wiring: apps that expose an API (<app>/api/urls.py) and pages (<app>/urls.py) -----------
PRODPLAN_API_APPS = ["orders", "quality", "inventory", "whatif", "mlops", "ingestion"]
PRODPLAN_PAGE_APPS = ["orders", "quality", "inventory", "whatif", "mlops", "ingestion"]
