"""pobsync's one settings module, configured only by environment variables.

Every variable is documented in docs/configuration.md. Nothing here reads a file
except the secret key fallback (see _secret_key) and POBSYNC_SECRET_KEY_FILE.
"""

from __future__ import annotations

import secrets
import warnings
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from pobsync_models.dburl import parse_database_url
from pobsync_models.env import env_bool, env_ciphers, env_int, env_list, env_secret, env_str

# shared/pobsync_models/settings.py -> the checkout root (for the var/ default)
BASE_DIR = Path(__file__).resolve().parents[2]

POBSYNC_HOME = Path(env_str("POBSYNC_HOME", str(BASE_DIR / "var"))).resolve()
POBSYNC_SSH_DIR = Path(env_str("POBSYNC_SSH_DIR", str(POBSYNC_HOME / "ssh")))
POBSYNC_SSH_CIPHERS = env_ciphers("POBSYNC_SSH_CIPHERS")  # pobsync_runner.ssh.cipher_options

DEBUG = env_bool("POBSYNC_DEBUG", False)


def _secret_key() -> str:
    """The configured key, else one generated once and kept in POBSYNC_HOME.

    A local `manage.py runserver` must work without configuration (the brief's local
    development steps set nothing); a generated, persisted key keeps sessions valid
    across restarts without ever shipping a known default.
    """
    configured = env_secret("POBSYNC_SECRET_KEY")
    if configured:
        return configured
    key_file = POBSYNC_HOME / "secret_key"
    try:
        return key_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    try:
        POBSYNC_HOME.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        with open(key_file, "x", encoding="utf-8") as fh:
            key_file.chmod(0o600)
            fh.write(key)
        return key
    except FileExistsError:
        return key_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"set POBSYNC_SECRET_KEY (cannot create {key_file}: {exc.strerror})"
        ) from None


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("POBSYNC_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("POBSYNC_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "pobsync_models",
    "pobsync_web",
    "pobsync_scheduler",
    "pobsync_runner",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pobsync_web.urls"
WSGI_APPLICATION = "pobsync_web.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

_default_db = POBSYNC_HOME / "pobsync.sqlite3"
DATABASE_URL = env_str("DATABASE_URL", "") or f"sqlite:///{_default_db}"
DATABASES = {
    "default": parse_database_url(
        DATABASE_URL, conn_max_age=env_int("POBSYNC_CONN_MAX_AGE", 60, minimum=0)
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The default SQLite file lives in POBSYNC_HOME; create the directory so the
    # brief's `manage.py migrate` works before anyone thinks of `mkdir -p var`.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
STATIC_ROOT = Path(env_str("POBSYNC_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Serve from the apps' static folders when collectstatic has not run (dev, tests);
# whitenoise then warns that STATIC_ROOT is missing, which is expected there.
WHITENOISE_USE_FINDERS = True
warnings.filterwarnings("ignore", message="No directory at: ", category=UserWarning)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGIN_URL = "admin:login"

# Production hardening that does not depend on TLS. The TLS-only settings
# (SECURE_SSL_REDIRECT, SECURE_HSTS_SECONDS, *_COOKIE_SECURE) are opt-in via
# POBSYNC_HTTPS because pobsync is usually reached on a private network or behind a
# TLS-terminating proxy; docs/security.md says which `check --deploy` warnings remain.
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
if env_bool("POBSYNC_HTTPS", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("POBSYNC_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("POBSYNC_HSTS_PRELOAD", False)

LOG_LEVEL = env_str("POBSYNC_LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"POBSYNC_LOG_LEVEL={LOG_LEVEL!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "pobsync": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}

# The job queue (docs/queue.md). A runner renews its lease every heartbeat interval; a
# lease not renewed for the TTL is reaped (job requeued, host freed). Cancelling a
# running job takes effect within one cancel poll (below).
POBSYNC_LEASE_TTL = env_int("POBSYNC_LEASE_TTL", 300, minimum=2)
POBSYNC_HEARTBEAT_INTERVAL = env_int("POBSYNC_HEARTBEAT_INTERVAL", 60, minimum=1)
if POBSYNC_HEARTBEAT_INTERVAL * 2 > POBSYNC_LEASE_TTL:
    raise ImproperlyConfigured(
        f"POBSYNC_HEARTBEAT_INTERVAL={POBSYNC_HEARTBEAT_INTERVAL} must be at most half of "
        f"POBSYNC_LEASE_TTL={POBSYNC_LEASE_TTL} so one missed heartbeat does not lose the lease"
    )
# Between lease renewals a runner reads (never writes) its job's cancel flag this often,
# so `pobsync cancel` stops rsync within seconds without more lease writes.
POBSYNC_CANCEL_POLL_INTERVAL = env_int("POBSYNC_CANCEL_POLL_INTERVAL", 1, minimum=1)
# What a runner calls for a claimed job: the engine's run_backup (contract 1). Tests and
# the queue benchmark point it at a stand-in so protocol load tests need no rsync.
POBSYNC_RUNNER_EXECUTOR = env_str("POBSYNC_RUNNER_EXECUTOR", "pobsync_runner.backup.run_backup")

# Notifications (docs/alerts.md, docs/configuration.md). Email goes through Django's SMTP
# backend; the POBSYNC_EMAIL_* variables fill Django's EMAIL_* settings.
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env_str("POBSYNC_EMAIL_HOST") or "localhost"  # empty (compose) = default
EMAIL_PORT = env_int("POBSYNC_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("POBSYNC_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = env_secret("POBSYNC_EMAIL_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("POBSYNC_EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("POBSYNC_NOTIFY_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("POBSYNC_EMAIL_FROM") or "pobsync@localhost"
POBSYNC_BASE_URL = (env_str("POBSYNC_BASE_URL") or "http://127.0.0.1:8010").rstrip("/")
POBSYNC_NOTIFY_TIMEOUT = EMAIL_TIMEOUT
POBSYNC_NOTIFY_MAX_ATTEMPTS = env_int("POBSYNC_NOTIFY_MAX_ATTEMPTS", 10, minimum=1)

# Restores (docs/restore.md): the dashboard's restore-to-host form is off unless the
# site allows restoring from a browser; even then only staff with the
# pobsync_models.add_restorerequest permission see and may use it.
POBSYNC_WEB_RESTORE = env_bool("POBSYNC_WEB_RESTORE", False)
