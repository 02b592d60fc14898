"""Management commands of the registry app (``python manage.py <command>``)."""
