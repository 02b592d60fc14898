"""Instance configuration: a name -> database URL, storage root and read-only flag.

Instances are recorded in ``$CELLREGISTRY_HOME/instances.toml`` (default home
``~/.cellregistry``). This module is pure configuration: it never imports Django, so
``import registry`` stays light. Turning a configuration into a live database
connection is the job of :mod:`registry.connection`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from registry.errors import (
    InstanceNotFoundError,
    InvalidDatabaseURLError,
    InvalidInstanceNameError,
)

EMBEDDED_NAME = "default"
#: what a read-only PostgreSQL session is started with (libpq ``options``)
PG_READ_ONLY_OPTION = "-c default_transaction_read_only=on"
_LOOPBACK_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
_selected: str | None = None  # set by registry.connect() for this process
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")


def home() -> Path:
    """The cellregistry home folder (``$CELLREGISTRY_HOME`` or ``~/.cellregistry``), absolute: a
    relative ``$CELLREGISTRY_HOME`` is taken from the working directory."""
    folder = os.environ.get("CELLREGISTRY_HOME") or Path.home() / ".cellregistry"
    return Path(folder).expanduser().resolve()


def config_path() -> Path:
    """Where instances are recorded."""
    return home() / "instances.toml"


@dataclass(frozen=True)
class InstanceConfig:
    """One named instance: where its metadata lives and where its bytes go by default."""

    name: str
    db: str
    storage: str
    read_only: bool = False
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def is_embedded(self) -> bool:
        """True when the database is a local SQLite file."""
        return self.db.startswith("sqlite:")


def embedded_config() -> InstanceConfig:
    """The instance used when nothing is configured: SQLite + a local folder under home."""
    root = home() / EMBEDDED_NAME
    return InstanceConfig(
        name=EMBEDDED_NAME,
        db=f"sqlite:///{root / 'registry.sqlite3'}",
        storage=str(root / "storage"),
    )


def _read() -> dict:
    path = config_path()
    if not path.exists():
        return {"instances": {}}
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    data.setdefault("instances", {})
    return data


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(str(value))


def _write(data: dict) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# cellregistry instances (written by registry.init; safe to edit by hand)"]
    if data.get("default"):
        lines += ["", "[settings]", f"default = {_toml_value(data['default'])}"]
    for name, entry in sorted(data["instances"].items()):
        lines += ["", f"[instances.{json.dumps(name)}]"]
        lines += [f"{key} = {_toml_value(val)}" for key, val in entry.items()]
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def _normalise(data: dict) -> dict:
    return {"default": data.get("settings", {}).get("default"), "instances": data["instances"]}


def known_instances() -> dict[str, InstanceConfig]:
    """All configured instances by name (the embedded default is always known)."""
    data = _read()
    configs = {EMBEDDED_NAME: embedded_config()}
    for name, entry in data["instances"].items():
        extra = {k: str(v) for k, v in entry.items() if k not in {"db", "storage", "read_only"}}
        configs[name] = InstanceConfig(
            name=name,
            db=entry["db"],
            storage=entry.get("storage", str(home() / name / "storage")),
            read_only=bool(entry.get("read_only", False)),
            extra=extra,
        )
    return configs


def instance_for_database(url: str) -> InstanceConfig | None:
    """The configured instance whose database ``url`` names, if any.

    URLs are compared by :func:`database_identity` (passwords and options do not matter). When
    several instances share the database, a read-only one wins: a URL never opens a writable
    door to the database of a read-only instance. Ties go to the first name in sort order.
    """
    identity = database_identity(url)
    matches = [
        config for config in known_instances().values() if _identity_or_none(config.db) == identity
    ]
    matches.sort(key=lambda config: (not config.read_only, config.name))
    return matches[0] if matches else None


def _identity_or_none(url: str) -> tuple | None:
    try:
        return database_identity(url)
    except InvalidDatabaseURLError:  # a hand-edited entry that is broken: it matches nothing
        return None


def get_instance(name: str) -> InstanceConfig:
    """Look up a configured instance by name.

    Raises:
        InstanceNotFoundError: the name is not configured; the message lists known names.
    """
    configs = known_instances()
    if name in configs:
        return configs[name]
    close = difflib.get_close_matches(name, list(configs), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise InstanceNotFoundError(
        f"Unknown instance {name!r}.{hint} Known instances: {', '.join(sorted(configs))} "
        f"(from {config_path()}). Create it with registry.init({name!r}, db=..., storage=...) "
        f"or `cellregistry init {name} --db ... --storage ...`."
    )


def save_instance(config: InstanceConfig, make_default: bool = False) -> None:
    """Record an instance in instances.toml (replacing an entry of the same name)."""
    validate_name(config.name)
    data = _normalise(_read())
    data["instances"][config.name] = {
        "db": config.db,
        "storage": config.storage,
        "read_only": config.read_only,
        **config.extra,
    }
    if make_default:
        data["default"] = config.name
    _write(data)


def set_default(name: str) -> None:
    """Make ``name`` the instance that ``import registry`` and ``manage.py`` use."""
    get_instance(name)
    data = _normalise(_read())
    data["default"] = name
    _write(data)


def stored_default() -> str | None:
    """The default instance recorded in instances.toml (``[settings] default``), if any."""
    return _read().get("settings", {}).get("default")


def default_instance() -> InstanceConfig:
    """The instance to use when none is named.

    Order: the instance chosen by ``registry.connect()`` in this process,
    ``$CELLREGISTRY_INSTANCE``, then ``[settings] default`` of instances.toml, then the
    embedded instance. ``$DATABASE_URL`` replaces the chosen instance's database.
    """
    name = _selected or os.environ.get("CELLREGISTRY_INSTANCE") or stored_default()
    config = get_instance(name) if name else embedded_config()
    url = os.environ.get("DATABASE_URL")
    if url:
        config = InstanceConfig(config.name, url, config.storage, config.read_only, config.extra)
    return config


def select(name: str | None) -> None:
    """Choose the default instance of this process (what ``registry.connect`` records)."""
    global _selected
    _selected = name


def validate_name(name: str) -> None:
    """Instance names are used in file names and config keys: keep them plain."""
    if not _NAME_PATTERN.match(name):
        raise InvalidInstanceNameError(
            f"Invalid instance name {name!r}: use letters, digits and '_', '-', '.', '/' "
            "(e.g. 'mylab' or 'laminlabs/cellxgene')."
        )


#: the page cache of a SQLite connection: 64 MiB at most, filled as pages are read (SQLite's
#: 2 MiB default holds little of a registry of ten releases, whose link indexes alone are
#: larger; a query probing them then reads its pages from the file again: seed query 0.51 ms
#: instead of 0.20 ms at ten releases)
SQLITE_CACHE = "PRAGMA cache_size=-65536;"
#: what a writable SQLite connection sets first (a read-only one cannot)
SQLITE_WRITE_PRAGMAS = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "


#: PostgreSQL: a statement run through a server-binding cursor with ``prepare=True``
#: (:func:`registry.databases.fetch_prepared`) is prepared at once and its plan reused by the
#: session (``ln.Cells`` questions, ``get()`` by plain fields: :mod:`registry.query.plain_get`).
#: Django's own queries bind on the client and are never prepared. Behind a pooler
#: that cannot keep prepared statements (PgBouncer in transaction mode before 1.21), add
#: ``?prepare_threshold=none`` to the URL.
PG_PREPARE_THRESHOLD = 5


def _pg_options(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The options of a PostgreSQL URL (``prepare_threshold``: a number, or none)."""
    options: dict[str, Any] = dict(pairs)
    if "prepare_threshold" in options:
        value = options["prepare_threshold"].strip().lower()
        options["prepare_threshold"] = None if value == "none" else int(value)
    return options


def parse_database_url(url: str) -> dict:
    """Turn a database URL into a Django ``DATABASES`` entry.

    Supported: ``sqlite:///relative/path``, ``sqlite:////absolute/path``, ``sqlite://:memory:``,
    ``postgresql://user:password@host:port/dbname?option=value`` (also ``postgres://``).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = url[len("sqlite://") :]
        if path in {"", ":memory:", "/:memory:"}:
            name = ":memory:"
        else:
            # sqlite:////abs/path -> "/abs/path"; sqlite:///rel/path -> "rel/path" (from cwd)
            name = str(Path(path[1:]).expanduser().resolve())
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            "OPTIONS": {
                "init_command": SQLITE_WRITE_PRAGMAS + SQLITE_CACHE,
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    if scheme in {"postgresql", "postgres", "postgresql+psycopg", "psql"}:
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname:
            raise InvalidDatabaseURLError(
                f"Database URL {url!r} names no database: use postgresql://user@host:port/dbname"
            )
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": dbname,
            "USER": unquote(parts.username or "postgres"),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # a host that drops packets would otherwise hang until the operating system gives up
            "OPTIONS": {
                "connect_timeout": "10",
                "prepare_threshold": PG_PREPARE_THRESHOLD,
                **_pg_options(parse_qsl(parts.query)),
            },
        }
    raise InvalidDatabaseURLError(
        f"Unsupported database URL {url!r}: use sqlite:///path/to/file.sqlite3 or "
        "postgresql://user@host:port/dbname"
    )


def database_identity(url: str) -> tuple:
    """What a database URL points at, for comparing URLs written differently.

    SQLite: the resolved file path. PostgreSQL: host (the loopback names ``localhost``,
    ``127.0.0.1``, ``::1`` and the local socket count as one), port (default 5432), database and
    user; the password and options are not part of it.
    """
    entry = parse_database_url(url)
    if entry["ENGINE"].endswith("sqlite3"):
        return ("sqlite", entry["NAME"])
    host = entry["HOST"].lower()
    return (
        "postgresql",
        "localhost" if host in _LOOPBACK_HOSTS else host,
        entry["PORT"] or "5432",
        entry["NAME"],
        entry["USER"],
    )


def database_settings(config: InstanceConfig) -> dict:
    """The Django ``DATABASES`` entry of an instance: its URL's settings plus ``INSTANCE``,
    ``READ_ONLY`` and ``STORAGE``. A read-only instance gets a connection on which the
    database itself refuses writes (:func:`read_only_connection`)."""
    entry = parse_database_url(config.db)
    if config.read_only:
        entry = read_only_connection(entry)
    return {
        **entry,
        "INSTANCE": config.name,
        "READ_ONLY": config.read_only,
        "STORAGE": config.storage,
    }


def read_only_connection(entry: dict) -> dict:
    """Turn a ``DATABASES`` entry of :func:`parse_database_url` into one the database keeps
    from writing.

    SQLite: the file opens as a ``file:/path?mode=ro`` URI (Django's backend passes
    ``uri=True``), without the write pragmas and ``BEGIN IMMEDIATE`` a read-only connection
    cannot run; a missing file is an error instead of a new empty database. PostgreSQL: every
    transaction of the session is read-only (``default_transaction_read_only = on``, added to
    the URL's own ``options``). An in-memory SQLite database is left as it is.
    """
    options = dict(entry["OPTIONS"])
    if entry["ENGINE"].endswith("sqlite3"):
        if entry["NAME"] == ":memory:":
            return entry
        options["init_command"] = SQLITE_CACHE  # not the write pragmas
        options.pop("transaction_mode", None)
        return {**entry, "NAME": f"file:{quote(entry['NAME'])}?mode=ro", "OPTIONS": options}
    options["options"] = " ".join(filter(None, [options.get("options"), PG_READ_ONLY_OPTION]))
    return {**entry, "OPTIONS": options}


def is_in_memory(name: str) -> bool:
    """Whether a SQLite ``NAME`` setting is an in-memory database (``:memory:``, or a
    ``file:...?mode=memory`` URI such as the test database of pytest-django)."""
    return name == ":memory:" or (name.startswith("file:") and "mode=memory" in name)


def sqlite_path(name: str) -> str:
    """The file behind a SQLite ``NAME`` setting (a path, or a ``file:`` URI)."""
    if name.startswith("file:"):
        return unquote(name[len("file:") :].split("?", 1)[0])
    return name
