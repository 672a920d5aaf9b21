"""A minimal Django project for tests/test_django.py: settings, one app, SQLite in a temp dir."""
