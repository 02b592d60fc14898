"""The registry app: core registries, the query layer and the read-only guards."""

from typing import Any

from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Registry"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        """Connect the read-only guards: many-to-many changes through any related manager are
        refused on a read-only instance, its connections report the database's refusals as
        ReadOnlyInstanceError, and an admin login there does not write ``last_login``. After
        every ``migrate``, SQLite keeps its label counts (:func:`keep_label_counts`)."""
        from django.contrib.auth.signals import user_logged_in
        from django.db.backends.signals import connection_created
        from django.db.models.signals import m2m_changed, post_migrate

        from registry.admin import update_last_login_unless_read_only
        from registry.databases import guard_read_only_connection, refuse_many_to_many_change

        m2m_changed.connect(refuse_many_to_many_change, dispatch_uid="registry.read_only.m2m")
        connection_created.connect(
            guard_read_only_connection, dispatch_uid="registry.read_only.connection"
        )
        # the same dispatch_uid as Django's receiver, which it replaces
        user_logged_in.disconnect(dispatch_uid="update_last_login")
        user_logged_in.connect(update_last_login_unless_read_only, dispatch_uid="update_last_login")
        post_migrate.connect(keep_counts_after_migrate, dispatch_uid="registry.label_counts")


def keep_counts_after_migrate(sender: AppConfig, using: str, **kwargs: Any) -> None:
    """Once per ``migrate`` (for this app; every app's tables exist by then)."""
    from registry.query.links import keep_label_counts

    if sender.name == RegistryConfig.name:
        keep_label_counts(using)
