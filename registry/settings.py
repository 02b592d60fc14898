"""Django settings, built from the instance configuration.

The ``default`` database is the default instance (see :func:`registry.instances.default_instance`);
other instances are added as extra database aliases at run time by :mod:`registry.connection`.
"""

from __future__ import annotations

import os

from registry.instances import database_settings, default_instance

DEFAULT_INSTANCE = default_instance()

SECRET_KEY = os.environ.get("CELLREGISTRY_SECRET_KEY", "cellregistry-local-only-insecure-key")
DEBUG = os.environ.get("CELLREGISTRY_DEBUG", "") == "1"
ALLOWED_HOSTS = [
    h for h in os.environ.get("CELLREGISTRY_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "registry",
    "ontologies",
    "curation",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "registry.urls"

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
            ]
        },
    }
]

DATABASES = {"default": database_settings(DEFAULT_INSTANCE)}

# Admin logins write nothing to the database, so that they work on read-only instances too:
# sessions live in signed cookies (signed with SECRET_KEY), ``last_login`` is not updated on a
# read-only instance (registry.apps) and a password hash is never rewritten there (the backend).
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
AUTHENTICATION_BACKENDS = ["registry.admin.InstanceModelBackend"]

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("CELLREGISTRY_STATIC_ROOT", str(DEFAULT_INSTANCE.storage) + "/.static")
