"""The project's management commands: ``demo``."""
