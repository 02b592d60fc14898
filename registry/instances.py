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
from urllib.parse import parse_qsl, unquote, urlsplit

from registry.errors import InstanceNotFoundError, InvalidDatabaseURLError

EMBEDDED_NAME = "default"
_selected: str | None = None  # set by registry.connect() for this process
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")


def home() -> Path:
    """The cellregistry home folder (``$CELLREGISTRY_HOME`` or ``~/.cellregistry``)."""
    return Path(os.environ.get("CELLREGISTRY_HOME") or Path.home() / ".cellregistry").expanduser()


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
        f"(from {config_path()}). Create it with registry.init({name!r}, db=..., storage=...)."
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


def default_instance() -> InstanceConfig:
    """The instance to use when none is named.

    Order: the instance chosen by ``registry.connect()`` in this process,
    ``$CELLREGISTRY_INSTANCE``, then ``[settings] default`` of instances.toml, then the
    embedded instance. ``$DATABASE_URL`` replaces the chosen instance's database.
    """
    name = (
        _selected
        or os.environ.get("CELLREGISTRY_INSTANCE")
        or _read().get("settings", {}).get("default")
    )
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
        raise ValueError(
            f"Invalid instance name {name!r}: use letters, digits and '_', '-', '.', '/' "
            "(e.g. 'mylab' or 'laminlabs/cellxgene')."
        )


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
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
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
            "OPTIONS": dict(parse_qsl(parts.query)),
        }
    raise InvalidDatabaseURLError(
        f"Unsupported database URL {url!r}: use sqlite:///path/to/file.sqlite3 or "
        "postgresql://user@host:port/dbname"
    )
