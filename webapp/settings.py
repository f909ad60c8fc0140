"""Django settings of the station: one schema and one web app for every service.

Everything machine-specific comes from the environment (webapp.env); nothing here is a
secret: the secret key is generated on first start under STATION_DATA_DIR.
"""

from __future__ import annotations

import os
import secrets

import dj_database_url

from webapp.env import REPO_ROOT, StationEnv

STATION_ENV = StationEnv.from_environ()
STATION_ENV.data_dir.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    path = STATION_ENV.data_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


BASE_DIR = REPO_ROOT
SECRET_KEY = _secret_key()
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"  # never on a station: it shows settings and code
# "*": a station is reached by an address its LAN hands out (DHCP), not known at install time.
# Checking Host would guard against DNS rebinding, which gains a foreign page nothing here: the
# session cookie is bound to the real host, and the HMI websocket checks the page's Origin.
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "*").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_rq",
    "ninja",  # serves Swagger UI's files itself: /api/docs works on a station without internet
    "webapp.station",
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

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"

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

DATABASES = {"default": dj_database_url.parse(STATION_ENV.database_url, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web app read while a worker writes; busy_timeout rides out short locks.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = STATION_ENV.data_dir / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns at every start when it is missing
STATICFILES_DIRS = [("hmi", REPO_ROOT / "hmi_static")]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# ---- browser security (README "Web security" says what an operator needs to know) ----------
SESSION_COOKIE_AGE = 12 * 3600  # s: a configurator login lasts one shift, then asks again
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"  # no other site can make a browser act with the login
CSRF_COOKIE_HTTPONLY = True  # the admin, the API docs and our pages put the token in the page
CSRF_COOKIE_SAMESITE = "Strict"
# WEB_HTTPS=1: a TLS proxy in front (on the station) serves the configurator; cookies are then
# never sent in clear, and the proxy's X-Forwarded-Proto tells Django the request was HTTPS.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = STATION_ENV.web_https
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if STATION_ENV.web_https else None
X_FRAME_OPTIONS = "DENY"  # no page, the kiosk's included, is meant to be shown inside another
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
LOGIN_URL = "admin:login"  # the configurator has one login: the admin's
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [STATION_ENV.redis_url],
            "prefix": os.environ.get("BUS_PREFIX", "station") + ":channels",
        },
    },
}

RQ_QUEUES = {"default": {"URL": STATION_ENV.redis_url, "DEFAULT_TIMEOUT": 600}}
RQ_SHOW_ADMIN_LINK = True
