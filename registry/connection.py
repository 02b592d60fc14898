"""Live instances: Django setup, one database alias per instance, write guards, ``DB`` handles.

The ``default`` alias is the default instance (``registry.connect``); every other instance opened
with ``DB(name)`` gets an alias of its own, so several instances can be queried side by side in one
process. Each alias carries its instance name, storage root and read-only flag in its settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connections

import registry.instances as instances
from registry.database_errors import ensure_reachable
from registry.databases import default_storage, forget_user_ids
from registry.errors import InstanceConnectionError
from registry.locks import file_lock
from registry.query import namespace_name, registry_name


@dataclass(frozen=True)
class InstanceSettings:
    """The default instance as ``ln.setup.settings.instance`` shows it."""

    name: str
    db: str  # the database URL, without its password
    storage: str  # the default storage root
    read_only: bool


class Settings:
    """``ln.setup.settings``: the default instance of this process and its default storage."""

    @property
    def instance(self) -> InstanceSettings:
        from registry.database_errors import database_url

        entry = connections.settings["default"]
        return InstanceSettings(
            entry["INSTANCE"],
            database_url("default"),
            entry["STORAGE"],
            bool(entry.get("READ_ONLY")),
        )

    @property
    def storage(self) -> Any:
        """The Storage record of the default storage root (recorded by ``init``; on first use
        for an instance made before it did). A read-only instance without one: an unsaved
        record naming the root."""
        from registry.databases import configured_read_only, default_storage

        if configured_read_only("default"):
            root = connections.settings["default"]["STORAGE"]
            model = apps.get_model("registry", "Storage")
            found = model.objects.filter(root=root).first()
            return found if found is not None else model(root=root)
        return default_storage("default")

    def __repr__(self) -> str:
        instance = self.instance
        mode = "read-only" if instance.read_only else "read-write"
        return (
            f"instance: {instance.name} ({mode})\ndatabase: {instance.db}\n"
            f"storage:  {instance.storage}"
        )


class Setup:
    """``ln.setup()`` configures Django for the default instance once per process (cheap when
    already done); ``ln.setup.settings`` shows the default instance and its storage."""

    def __call__(self) -> None:
        if not settings.configured:
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
        if not apps.ready:
            django.setup()
            create_embedded_if_missing()

    @property
    def settings(self) -> Settings:
        self()
        return Settings()


setup = Setup()


def create_embedded_if_missing() -> None:
    """The embedded default instance works without any set-up: made on first use (under a file
    lock, so that two processes starting together do not both create it)."""
    entry = connections.settings["default"]
    if entry.get("INSTANCE") != instances.EMBEDDED_NAME or not entry["ENGINE"].endswith("sqlite3"):
        return
    if entry.get("READ_ONLY") or instances.is_in_memory(entry["NAME"]):  # not for a reader
        return
    path = Path(entry["NAME"])
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.parent / f".{path.name}.create.lock"):
        if not path.exists():
            Path(entry["STORAGE"]).mkdir(parents=True, exist_ok=True)
            migrate("default")
            default_storage("default")


def _register_alias(alias: str, config: instances.InstanceConfig) -> None:
    """Point ``alias`` at the database of ``config`` (replacing an earlier connection)."""
    entry = instances.database_settings(config)
    connections.configure_settings({"default": entry})  # fills Django's defaults into entry
    for conn in connections.all(initialized_only=True):
        if conn.alias == alias:
            conn.close()
            del connections[alias]
    connections.settings[alias] = entry
    settings.DATABASES[alias] = entry
    forget_user_ids(alias)


def alias_for(config: instances.InstanceConfig) -> str:
    """The database alias of an instance, registering it on first use."""
    setup()
    for alias, entry in connections.settings.items():
        if entry.get("INSTANCE") == config.name:
            return alias
    alias = f"instance:{config.name}"
    _register_alias(alias, config)
    return alias


def _create_postgres_database(entry: dict[str, Any]) -> None:
    """Create the database of a PostgreSQL URL if the server does not have it yet."""
    import psycopg
    from psycopg import sql

    params = {
        "host": entry.get("HOST") or None,
        "port": entry.get("PORT") or None,
        "user": entry.get("USER") or None,
        "password": entry.get("PASSWORD") or None,
        "dbname": "postgres",
        "connect_timeout": 10,
    }
    try:
        with psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (entry["NAME"],)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(entry["NAME"])))
    except psycopg.OperationalError as exc:
        raise InstanceConnectionError(
            f"Cannot connect to PostgreSQL at {params['host'] or 'localhost'}:"
            f"{params['port'] or 5432} to create database {entry['NAME']!r}: "
            f"{str(exc).strip()}. Check that the server is running and the URL is right."
        ) from exc


def migrate(alias: str, verbosity: int = 0) -> None:
    """Bring the schema of an instance up to date."""
    call_command("migrate", database=alias, verbosity=verbosity, interactive=False)


def init(
    name: str,
    db: str | None = None,
    storage: str | os.PathLike | None = None,
    read_only: bool = False,
    make_default: bool = True,
) -> DB:
    """Create (or update) an instance, migrate its database and (by default) connect to it.

    Args:
        name: instance name, e.g. ``"mylab"``.
        db: database URL; default: a SQLite file under ``$CELLREGISTRY_HOME/<name>/``.
            A relative SQLite path is recorded as an absolute one.
        storage: default storage root (local folder or ``s3://bucket/prefix``), recorded as a
            Storage (``ln.setup.settings.storage``): ``Artifact(data).save()`` writes there.
        read_only: mark the instance read-only (a public mirror): from then on its connections
            are read-only in the database too. The database is still created and migrated
            here if it needs it (the one write init makes); an up-to-date database is left
            untouched, so a read-only database role is enough to register a mirror.
        make_default: record it as the default instance and connect to it; with ``False`` the
            default stays as it was and a handle on the new instance is returned.

    Returns:
        A handle on the instance.
    """
    instances.validate_name(name)
    folder = instances.home() / name
    db = db or f"sqlite:///{folder / 'registry.sqlite3'}"
    storage = str(storage) if storage is not None else str(folder / "storage")
    if "://" not in storage:
        storage = str(Path(storage).expanduser().resolve())
        Path(storage).mkdir(parents=True, exist_ok=True)
    entry = instances.parse_database_url(db)
    if entry["ENGINE"].endswith("sqlite3") and entry["NAME"] != ":memory:":
        db = f"sqlite:///{entry['NAME']}"  # absolute: later processes may run elsewhere
        Path(entry["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    elif entry["ENGINE"].endswith("postgresql"):
        _create_postgres_database(entry)
    config = instances.InstanceConfig(name=name, db=db, storage=storage, read_only=read_only)
    instances.save_instance(config, make_default=make_default)
    writable = instances.InstanceConfig(name=name, db=db, storage=storage, read_only=False)
    alias = alias_for(writable)
    _register_alias(alias, writable)  # the URL may have changed since the alias was made
    ensure_reachable(alias)
    migrate(alias)
    if not read_only:  # a mirror's database is left as it is
        default_storage(alias)
    _register_alias(alias, config)  # now apply the read-only flag
    return connect(name) if make_default else DB(name)


def connect(name: str) -> DB:
    """Make ``name`` the default instance of this process (``ln.Artifact`` etc. query it)."""
    config = instances.get_instance(name)
    instances.select(name)
    setup()
    if connections.settings["default"].get("INSTANCE") != config.name:
        _register_alias("default", config)
    ensure_reachable("default")
    return DB(name)


class Namespace:
    """Registries of one app bound to one database alias (``db.ontologies``)."""

    def __init__(self, alias: str | None, models: dict[str, type]) -> None:
        self._alias = alias
        self._models = models

    def __getattr__(self, name: str) -> Any:
        model = self._models.get(registry_name(name))
        if model is None:
            raise AttributeError(
                f"No registry {name!r}; available: {', '.join(sorted(self._models))}"
            )
        return model if self._alias is None else model.objects.db_manager(self._alias)

    def __dir__(self) -> list[str]:
        return sorted(self._models)


def app_registries(app_label: str) -> dict[str, type]:
    """The concrete registries of an app by class name (link tables excluded)."""
    return {
        model.__name__: model
        for model in apps.get_app_config(app_label).get_models()
        if not getattr(model, "is_link_table", False)
    }


def namespaces() -> dict[str, dict[str, type]]:
    """The registries of the apps that offer a namespace on ``DB`` handles and on the package
    (``db.ontologies``, ``ln.ontologies``): an app says so with ``registry_namespace = NAME`` on
    its AppConfig, so this app needs to know none of them."""
    setup()
    return {
        config.registry_namespace: app_registries(config.label)
        for config in apps.get_app_configs()
        if getattr(config, "registry_namespace", None)
    }


class DB:
    """A handle on one instance: ``db.Artifact``, ``db.Collection``, ``db.ontologies.CellType``.

    Args:
        instance: an instance name from instances.toml, or a database URL. A URL of the database
            of a configured instance opens that instance (its name, storage and read-only flag;
            a read-only one wins when several share the database); any other URL opens an
            unnamed, writable instance with storage under ``$CELLREGISTRY_HOME/adhoc``.
    """

    def __init__(self, instance: str) -> None:
        setup()
        if "://" in instance:
            config = instances.instance_for_database(instance) or instances.InstanceConfig(
                name=instance, db=instance, storage=str(instances.home() / "adhoc")
            )
        else:
            config = instances.get_instance(instance)
        self.alias = alias_for(config)  # "default" when it is the default instance
        self.config = config
        ensure_reachable(self.alias)
        self._core = Namespace(self.alias, app_registries("registry"))
        self._namespaces = {
            name: Namespace(self.alias, models) for name, models in namespaces().items()
        }

    @property
    def name(self) -> str:
        """The instance name."""
        return self.config.name

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        namespace = self._namespaces.get(namespace_name(name))  # db.ontologies, db.bionty
        if namespace is not None:
            return namespace
        from registry import APP_REGISTRIES

        if name in APP_REGISTRIES:  # db.Cells, as ln.Cells
            return apps.get_model(*APP_REGISTRIES[name]).objects.db_manager(self.alias)
        return getattr(self._core, name)

    def __repr__(self) -> str:
        mode = "read-only" if self.config.read_only else "read-write"
        return f"DB({self.config.name!r}, {mode}, storage={self.config.storage!r})"
