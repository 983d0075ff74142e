"""Flowsite settings, read from the environment.

Every knob is an environment variable with a default that suits `make run` on a laptop
(SQLite, local files, the local Flow emulator). The README's configuration table lists them.
"""

import base64
import hashlib
import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in envstr(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", False)
SECRET_KEY = envstr("SECRET_KEY", "flowsite-insecure-development-key-change-me")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

# Everything the app writes (SQLite database, media) lives under one folder by default.
VAR_DIR = Path(envstr("FLOWSITE_VAR_DIR", str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    "generations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "flowsite.urls"
WSGI_APPLICATION = "flowsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "generations.context_processors.flowsite",
            ],
        },
    },
]

# SQLite by default, in WAL mode with IMMEDIATE transactions and a busy timeout, so the web
# process and the worker can write at the same time without "database is locked".
SQLITE_PATH = Path(envstr("SQLITE_PATH", str(VAR_DIR / "flowsite.sqlite3")))
DATABASE_URL = envstr("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    # Parameters sent apart from the SQL, so that the statements every page asks again and
    # again (the session, the user, the poll's) are the same text each time and psycopg
    # prepares them after a few uses: PostgreSQL then neither parses nor plans them again on
    # that connection. Off behind a pooler that cannot keep prepared statements (PgBouncer in
    # transaction mode before 1.21).
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and envbool(
        "DATABASE_PREPARED_STATEMENTS", True
    ):
        DATABASES["default"]["OPTIONS"] = {
            "server_side_binding": True,
            "prepare_threshold": 5,  # psycopg's own default, which Django turns off
            **DATABASES["default"].get("OPTIONS", {}),
        }
else:
    SQLITE_TEST_PATH = Path(envstr("SQLITE_TEST_PATH", str(VAR_DIR / "test.sqlite3")))
    # SQLite creates the file but not its folder: a fresh clone has no var/ yet.
    for folder in {SQLITE_PATH.parent, SQLITE_TEST_PATH.parent}:
        folder.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            # Kept open across requests like PostgreSQL's: opening one and running the PRAGMAs
            # below costs more than the page poll's own queries (benchmarks/page_poll.py).
            "CONN_MAX_AGE": 60,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": (
                    "PRAGMA journal_mode=WAL;"
                    "PRAGMA synchronous=NORMAL;"
                    "PRAGMA busy_timeout=20000;"
                    "PRAGMA foreign_keys=ON;"
                ),
            },
            "TEST": {"NAME": SQLITE_TEST_PATH},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "project-list"
LOGOUT_REDIRECT_URL = "login"

# How long an owner's invite link stays open.
FLOWSITE_INVITE_DAYS = envint("FLOWSITE_INVITE_DAYS", 7)

# An image uploaded with a scene form that failed (an empty prompt, say) is kept so the form
# can be sent again without picking it again; unused this long after its upload, it is removed.
FLOWSITE_KEPT_IMAGE_HOURS = envfloat("FLOWSITE_KEPT_IMAGE_HOURS", 24)

# Invites and password resets go out by email: printed on the console while developing, sent
# over SMTP otherwise (EMAIL_HOST ...). The owner sees an invite's link either way.
EMAIL_BACKEND_PATH = envstr(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
MAILERS = {
    "default": {
        "BACKEND": EMAIL_BACKEND_PATH,
        # Other backends refuse options they do not know.
        "OPTIONS": {
            "host": envstr("EMAIL_HOST", "localhost"),
            "port": envint("EMAIL_PORT", 25),
            "username": envstr("EMAIL_HOST_USER"),
            "password": envstr("EMAIL_HOST_PASSWORD"),
            "use_tls": envbool("EMAIL_USE_TLS", False),
            "use_ssl": envbool("EMAIL_USE_SSL", False),
            "timeout": envint("EMAIL_TIMEOUT", 10),
        }
        if EMAIL_BACKEND_PATH == "django.core.mail.backends.smtp.EmailBackend"
        else {},
    }
}
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "Flowsite <flowsite@localhost>")

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(BASE_DIR / "staticfiles")))

# Media is private: no MEDIA_URL is ever routed. Every file is served by a view that checks
# project membership first.
MEDIA_ROOT = Path(envstr("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = None

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Object storage (optional): with a bucket named, clips, posters and start images live in S3
# (or any S3-compatible store at FLOWSITE_S3_ENDPOINT_URL) instead of MEDIA_ROOT, so web and
# worker containers need no shared volume. The bucket stays private (no ACL is ever sent); the
# media views check membership and then redirect to a presigned URL valid this many seconds.
# Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a role).
FLOWSITE_S3_BUCKET = envstr("FLOWSITE_S3_BUCKET")
FLOWSITE_S3_ENDPOINT_URL = envstr("FLOWSITE_S3_ENDPOINT_URL")
FLOWSITE_S3_URL_SECONDS = envint("FLOWSITE_S3_URL_SECONDS", 60)
# Downloads are written whole to this local folder first, then uploaded and removed.
FLOWSITE_STAGING_DIR = Path(envstr("FLOWSITE_STAGING_DIR", str(VAR_DIR / "staging")))
if FLOWSITE_S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": FLOWSITE_S3_BUCKET,
            "endpoint_url": FLOWSITE_S3_ENDPOINT_URL or None,
            "region_name": envstr("FLOWSITE_S3_REGION") or None,
            # S3-compatible stores (MinIO, moto, Ceph) mostly want path-style addressing.
            "addressing_style": "path" if FLOWSITE_S3_ENDPOINT_URL else None,
            "signature_version": "s3v4",
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": FLOWSITE_S3_URL_SECONDS,
            # Names are per take and per upload; a retried download replaces its own object.
            "file_overwrite": True,
        },
    }

# --- Flow, the upstream -------------------------------------------------------------------

# The local emulator stands in for Google: both base URLs then point at it.
FLOWSITE_EMULATOR = envbool("FLOWSITE_EMULATOR", DEBUG)
FLOW_EMULATOR_HOST = envstr("FLOW_EMULATOR_HOST", "127.0.0.1")
FLOW_EMULATOR_PORT = envint("FLOW_EMULATOR_PORT", 8765)
FLOW_EMULATOR_URL = f"http://{FLOW_EMULATOR_HOST}:{FLOW_EMULATOR_PORT}"
# The credentials the emulator accepts; `make run` puts them on the demo account.
FLOW_EMULATOR_TOKEN = envstr("FLOW_EMULATOR_TOKEN", "ya29.emulator-token")
FLOW_EMULATOR_SESSION_COOKIE = envstr("FLOW_EMULATOR_SESSION_COOKIE", "emulator-session")

if FLOWSITE_EMULATOR:
    FLOW_API_BASE_URL = FLOW_EMULATOR_URL
    FLOW_LABS_BASE_URL = FLOW_EMULATOR_URL
else:
    FLOW_API_BASE_URL = envstr("FLOW_API_BASE_URL", "https://aisandbox-pa.googleapis.com")
    FLOW_LABS_BASE_URL = envstr("FLOW_LABS_BASE_URL", "https://labs.google")

FLOW_MEDIA_HOSTS = envlist("FLOW_MEDIA_HOSTS", "storage.googleapis.com,flow-content.google")
# An entry without a port allows 443 only (generations/engines/download.py): the emulator's
# media links are on its own port, so that port is named.
_EMULATOR_ORIGIN = (
    f"[{FLOW_EMULATOR_HOST}]:{FLOW_EMULATOR_PORT}"
    if ":" in FLOW_EMULATOR_HOST
    else f"{FLOW_EMULATOR_HOST}:{FLOW_EMULATOR_PORT}"
)
if FLOWSITE_EMULATOR and _EMULATOR_ORIGIN not in FLOW_MEDIA_HOSTS:
    FLOW_MEDIA_HOSTS.append(_EMULATOR_ORIGIN)

# --- Vertex AI, the documented route to the same Veo models -------------------------------

# Empty: each account's regional endpoint, https://REGION-aiplatform.googleapis.com. Set for
# a private endpoint (Private Service Connect) or, as the emulator does, for tests.
VERTEX_API_BASE_URL = envstr("VERTEX_API_BASE_URL", FLOW_EMULATOR_URL if FLOWSITE_EMULATOR else "")
# Where clips written to a gs:// results prefix are fetched (Cloud Storage's JSON API).
GOOGLE_STORAGE_BASE_URL = envstr(
    "GOOGLE_STORAGE_BASE_URL",
    FLOW_EMULATOR_URL if FLOWSITE_EMULATOR else "https://storage.googleapis.com",
)
# Vertex AI has no batch status call: a polling pass asks about each operation on its own,
# with at most this many calls in flight per account.
VERTEX_MAX_CONCURRENT_POLLS = envint("VERTEX_MAX_CONCURRENT_POLLS", 8)
# US dollars per second of output, per Vertex AI model, as MODEL=PRICE pairs; MODEL@1080p=PRICE
# or MODEL+audio=PRICE override where Google prices a resolution or sound differently. The
# defaults are third-party quotes (March 2026), not Google's price page: set your own. A model
# without a price shows no cost.
VERTEX_PRICES = envlist("VERTEX_PRICES", "veo-3.1-generate-001=0.40,veo-3.1-fast-generate-001=0.15")

FLOW_CONNECT_TIMEOUT = envfloat("FLOW_CONNECT_TIMEOUT", 10.0)
FLOW_READ_TIMEOUT = envfloat("FLOW_READ_TIMEOUT", 60.0)
FLOW_CALL_DEADLINE = envfloat("FLOW_CALL_DEADLINE", 90.0)
FLOW_STATUS_BATCH_SIZE = envint("FLOW_STATUS_BATCH_SIZE", 50)
FLOW_SUBMIT_BATCH_SIZE = envint("FLOW_SUBMIT_BATCH_SIZE", 4)
FLOW_DOWNLOAD_MAX_BYTES = envint("FLOW_DOWNLOAD_MAX_BYTES", 512 * 1024 * 1024)
FLOW_DOWNLOAD_DEADLINE = envfloat("FLOW_DOWNLOAD_DEADLINE", 300.0)

# How often the worker asks Flow about clips in flight, and how often a page asks Flowsite.
FLOWSITE_POLL_INTERVAL = envfloat("FLOWSITE_POLL_INTERVAL", 5.0)


def _poll_seconds(name: str, default: float) -> float:
    # A zero, negative or unreadable value would make every open page poll as fast as the
    # browser can (htmx reads "every 0s" as no delay): refuse to start instead.
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw.strip() else default
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"{name} must be a number of seconds above 0 (e.g. 1 or 0.5); got {raw!r}."
        )
    return value


# While takes are in flight. A finished clip reaches its card within about the worker's
# interval + the download + this; each tick costs every open page a signed-in request (the
# session, the user and one query when nothing changed).
FLOWSITE_PAGE_POLL_SECONDS = _poll_seconds("FLOWSITE_PAGE_POLL_SECONDS", 2.0)
# With nothing in flight a page still polls, slowly, so a teammate's new, moved or deleted
# scene or their Generate reaches it without a reload; the poll that learns of takes in flight
# switches the page to FLOWSITE_PAGE_POLL_SECONDS.
FLOWSITE_IDLE_POLL_SECONDS = _poll_seconds("FLOWSITE_IDLE_POLL_SECONDS", 10.0)
# How often a film page asks for its render's progress while one is queued or rendering.
FLOWSITE_FILM_POLL_SECONDS = _poll_seconds("FLOWSITE_FILM_POLL_SECONDS", 1.0)
# A render whose worker has not reported for this long is presumed dead (killed, crashed): it
# is marked failed, its temporary file removed, and the film may be rendered again. The worker
# reports at least every few seconds while it renders.
FLOWSITE_FILM_STALE_SECONDS = envint("FLOWSITE_FILM_STALE_SECONDS", 120)
# A take Flow is still rendering this many seconds after its submit is given up as stuck.
FLOWSITE_STUCK_AFTER = envint("FLOWSITE_STUCK_AFTER", 20 * 60)
# How long a worker holds the takes it works on (and the pump its lease) without renewing them
# before another worker presumes it dead (crashed, killed) and takes over; a take it left
# "submitting" then becomes uncertain. A live worker renews them every few seconds. Seconds;
# 0 keeps the defaults (generations/pipeline/policy.py, generations/tasks.py).
FLOWSITE_SUBMIT_LEASE = envfloat("FLOWSITE_SUBMIT_LEASE", 0.0)
FLOWSITE_CHECK_LEASE = envfloat("FLOWSITE_CHECK_LEASE", 0.0)
FLOWSITE_DOWNLOAD_LEASE = envfloat("FLOWSITE_DOWNLOAD_LEASE", 0.0)
FLOWSITE_PUMP_LEASE = envfloat("FLOWSITE_PUMP_LEASE", 0.0)
# A cluster whose workers have run nothing for this long is stalled: `manage.py flowsite_worker`
# restarts it, and the project page and the admin say the worker is not running. Workers beat
# every minute (the watchdog schedule), so a few minutes is never a healthy pause. Seconds; 0
# keeps the default (generations/heartbeat.py: 300).
FLOWSITE_WORKER_STALE = envfloat("FLOWSITE_WORKER_STALE", 0.0)
# Downloads a worker runs at once, beside its submitting and polling.
FLOWSITE_DOWNLOAD_SLOTS = envint("FLOWSITE_DOWNLOAD_SLOTS", 3)

# Behind nginx: a path prefix such as "/protected/" mapped by an `internal` location to
# MEDIA_ROOT. The media views then check access and hand the bytes (and Range) to nginx with
# X-Accel-Redirect instead of streaming them through Python. Empty: Django streams the files.
FLOWSITE_X_ACCEL_REDIRECT = envstr("FLOWSITE_X_ACCEL_REDIRECT")

# Start images: refused above this many bytes (checked before decoding) or pixels (checked
# from the header, which stops decompression bombs).
FLOWSITE_MAX_IMAGE_BYTES = envint("FLOWSITE_MAX_IMAGE_BYTES", 20 * 1024 * 1024)
FLOWSITE_MAX_IMAGE_PIXELS = envint("FLOWSITE_MAX_IMAGE_PIXELS", 40_000_000)

# --- Browser security -----------------------------------------------------------------------
#
# With DEBUG off (production) the defaults are the strict ones: HTTPS only, secure cookies,
# HSTS for a year. Each can be turned off from the environment for a deployment that needs it
# (the README's table). SECURITY.md explains what each one protects.

_PRODUCTION = not DEBUG


# With an object store the media views redirect the browser to a presigned URL in the bucket, so
# the bucket's origin must be allowed for clips and pictures (only the bucket's own host, never
# all of S3: any other bucket could be anyone's). FLOWSITE_CSP_MEDIA_ORIGINS overrides the guess,
# e.g. for a CDN in front of the bucket.
def _object_store_origins() -> list[str]:
    if not FLOWSITE_S3_BUCKET:
        return []
    if FLOWSITE_S3_ENDPOINT_URL:
        endpoint = urlsplit(FLOWSITE_S3_ENDPOINT_URL)
        return [f"{endpoint.scheme}://{endpoint.netloc}"]
    region = envstr("FLOWSITE_S3_REGION")
    if "." in FLOWSITE_S3_BUCKET:
        # A dotted name cannot be a TLS host name, so boto3 addresses it by path.
        hosts = ["s3.amazonaws.com", *([f"s3.{region}.amazonaws.com"] if region else [])]
        return [f"https://{host}/{FLOWSITE_S3_BUCKET}/" for host in hosts]
    hosts = [f"{FLOWSITE_S3_BUCKET}.s3.amazonaws.com"]
    if region:
        hosts.append(f"{FLOWSITE_S3_BUCKET}.s3.{region}.amazonaws.com")
    return [f"https://{host}" for host in hosts]


FLOWSITE_CSP_MEDIA_ORIGINS = envlist("FLOWSITE_CSP_MEDIA_ORIGINS") or _object_store_origins()

# Scripts only from our own origin, plus the per-response nonce Django puts on htmx's script
# tag; no inline styles or scripts anywhere, so htmx runs with eval and its injected indicator
# styles switched off (see the htmx-config meta tag in templates/base.html).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:", *FLOWSITE_CSP_MEDIA_ORIGINS],
    "media-src": [CSP.SELF, *FLOWSITE_CSP_MEDIA_ORIGINS],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", _PRODUCTION)
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", _PRODUCTION)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", _PRODUCTION)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if _PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _PRODUCTION)
# The preload flag alone changes nothing until someone submits the domain to hstspreload.org.
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", _PRODUCTION)
# Behind a TLS-terminating proxy Django sees plain HTTP: trust the proxy's X-Forwarded-Proto
# (only when the proxy always sets it, or a client could claim HTTPS), else the redirect loops.
if envbool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# No script reads the CSRF cookie: htmx sends the token from the page (hx-headers in base.html).
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# The DEBUG error page and error e-mails hide session cookies and URLs with passwords too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "flowsite.error_reports.FlowsiteExceptionReporterFilter"

# Sign-in throttling (generations/throttle.py): attempts are counted in the database, before
# the password is checked, so every web process sees the same counts. The per-account limit is
# per (username, address): someone else failing as alice does not lock alice out.
FLOWSITE_SIGNIN_WINDOW_MINUTES = envint("FLOWSITE_SIGNIN_WINDOW_MINUTES", 15)
FLOWSITE_SIGNIN_FAILURES_PER_ACCOUNT = envint("FLOWSITE_SIGNIN_FAILURES_PER_ACCOUNT", 5)
FLOWSITE_SIGNIN_FAILURES_PER_ADDRESS = envint("FLOWSITE_SIGNIN_FAILURES_PER_ADDRESS", 20)
# A username failing from many addresses is slowed down, never locked: past this many failures
# in the window, one attempt for it every FLOWSITE_SIGNIN_SLOWDOWN_SECONDS.
FLOWSITE_SIGNIN_SLOWDOWN_AFTER = envint("FLOWSITE_SIGNIN_SLOWDOWN_AFTER", 10)
FLOWSITE_SIGNIN_SLOWDOWN_SECONDS = envint("FLOWSITE_SIGNIN_SLOWDOWN_SECONDS", 10)
# The password-reset form: requests per client address, and emails per address typed, within
# the window (generations/reset_throttle.py).
FLOWSITE_RESET_WINDOW_MINUTES = envint("FLOWSITE_RESET_WINDOW_MINUTES", 60)
FLOWSITE_RESET_REQUESTS_PER_ADDRESS = envint("FLOWSITE_RESET_REQUESTS_PER_ADDRESS", 10)
FLOWSITE_RESET_EMAILS_PER_ADDRESS = envint("FLOWSITE_RESET_EMAILS_PER_ADDRESS", 3)
# How many proxies in front of Flowsite append to X-Forwarded-For. 0: the client address is
# the connection's. Behind one nginx: 1 (the last address nginx appended is the client's).
FLOWSITE_TRUSTED_PROXIES = envint("FLOWSITE_TRUSTED_PROXIES", 0)

# --- Secrets at rest ------------------------------------------------------------------------

# Fernet keys (comma-separated, newest first) that encrypt Flow tokens and session cookies in
# the database. Required in production (a system check stops the app without one); with DEBUG on
# a key derived from SECRET_KEY stands in so `make run` needs no setup.
FLOWSITE_FERNET_KEYS = envlist("FLOWSITE_FERNET_KEYS")
if not FLOWSITE_FERNET_KEYS and DEBUG:
    _digest = hashlib.sha256(b"flowsite-fernet:" + SECRET_KEY.encode()).digest()
    FLOWSITE_FERNET_KEYS = [base64.urlsafe_b64encode(_digest).decode()]

# --- Background work (django-q2) ----------------------------------------------------------

Q_CLUSTER = {
    # Also the Redis queue's key: two sites sharing one Redis need different names. Read here
    # because django-q2 crashes when only its own Q_CLUSTER_NAME variable differs from this.
    "name": envstr("Q_CLUSTER_NAME", "flowsite"),
    "workers": envint("Q_WORKERS", 2),
    # timeout < retry, so a task is never handed out again while it may still be running.
    "timeout": envint("Q_TIMEOUT", 600),
    "retry": envint("Q_RETRY", 660),
    "max_attempts": envint("Q_MAX_ATTEMPTS", 3),
    "catch_up": False,
    "save_limit": 500,
    "poll": 0.2,
    "orm": "default",
    "ack_failures": True,
}
if envstr("Q_REDIS_URL"):
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = envstr("Q_REDIS_URL")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
