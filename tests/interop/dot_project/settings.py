"""Django settings for the django-oauth-toolkit test server.

Read from the environment by ``serve.py``: ``INTEROP_DB`` (the SQLite file),
``INTEROP_ACCESS_TTL`` (access token lifetime in whole seconds) and ``INTEROP_ORIGIN``
(the server's own origin, for the device flow's verification URI).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ORIGIN = os.environ.get("INTEROP_ORIGIN", "http://127.0.0.1")

SECRET_KEY = secrets.token_urlsafe(32)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.interop.dot_project.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).parent / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
LOGIN_URL = "/accounts/login/"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("INTEROP_DB", ":memory:"),
        # Many threads at once: WAL lets readers run beside the writer, IMMEDIATE
        # transactions take the write lock up front instead of failing half-way.
        "OPTIONS": {
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        },
    }
}

# DOT hashes client secrets with Django's password hasher. PBKDF2's million rounds cost
# ~0.5 s of CPU per client authentication on a shared 2-CPU machine; MD5 keeps the
# secret hashed (the difference under test) at a test suite's speed.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(os.environ.get("INTEROP_ACCESS_TTL", "60")),
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "PKCE_REQUIRED": True,
    "SCOPES": {"read": "Read", "write": "Write"},
    "DEFAULT_SCOPES": ["read"],
    "DEVICE_FLOW_INTERVAL": 1,
    "OAUTH_DEVICE_VERIFICATION_URI": ORIGIN + "/o/device/",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    # Refused tokens are the point of the tests: do not log each 401 and 403.
    "loggers": {"django.request": {"level": "ERROR"}},
}
