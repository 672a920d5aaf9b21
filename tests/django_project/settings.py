"""Settings of the test project. Storages are set per test (``override_settings``), on the
backend under test; the database is SQLite in a temporary directory of this process."""

import os
import tempfile

SECRET_KEY = "test-only-not-a-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.django_project.urls"
ALLOWED_HOSTS = ["testserver"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "tests.django_project.app",
]
MIDDLEWARE = ["perceptra_storage.contrib.django.ProfileMiddleware"]
PERCEPTRA_STORAGE_PROFILE_FOR_REQUEST = "tests.django_project.app.views.tenant_of"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(tempfile.mkdtemp(prefix="perceptra-django-"), "db.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
STATIC_URL = "/static/"
STATICFILES_DIRS = [os.path.join(os.path.dirname(__file__), "static")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
}
