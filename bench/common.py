"""What the benchmarks of ``bench/`` share.

- :func:`isolate_home`: a throw-away ``$CELLREGISTRY_HOME``, set before :mod:`registry` is
  imported, so that a benchmark never reads or changes the user's instances or cache;
- :func:`measure` / :func:`summarize`: timed repetitions after warm-ups, and their statistics
  (``n``, ``min``, ``median``, ``max``, ``mean`` and the raw ``values``);
- :func:`timed_steps`: the seconds of each step of ``curation.steps.STEPS`` during a curation;
- :func:`fresh_instance` / :func:`copy_instance`: new instances on SQLite or PostgreSQL (the
  PostgreSQL database is dropped first), and copies of a prepared one (a file copy, or
  ``CREATE DATABASE ... TEMPLATE``);
- :func:`warm_scan`: the obs scan of the annotate step on a pool started before the clock;
- :class:`Report`: the JSON every benchmark prints and writes to ``--out`` (default
  ``bench/results/<bench>-<YYYY-MM-DD>.json``), with the command line, the machine, the versions,
  the source commit and the load average before and after.

The scripts run from the repository root (``python bench/<name>_bench.py``) and import this
module as ``bench.common``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    import registry as ln

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
#: the distributions whose versions every report records (absent ones are recorded as null)
DISTRIBUTIONS = (
    "django",
    "psycopg",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "anndata",
    "h5py",
    "tiledbsoma",
    "boto3",
    "moto",
    "cellxgene-ontology-guide",
    "cellxgene-schema",
)


#: the temporary homes of this process, removed when it exits (unless kept)
_HOMES: list[Path] = []


def isolate_home(prefix: str) -> Path:
    """Point ``$CELLREGISTRY_HOME`` at a new temporary folder and drop the variables that would
    select another instance or database; call it before :mod:`registry` is imported. The folder
    is removed when the process exits, unless :func:`keep_home` is called."""
    home = Path(tempfile.mkdtemp(prefix=f"cellregistry-{prefix}-"))
    os.environ["CELLREGISTRY_HOME"] = str(home)
    for variable in ("CELLREGISTRY_INSTANCE", "DATABASE_URL"):
        os.environ.pop(variable, None)
    if not _HOMES:
        atexit.register(_remove_homes)
    _HOMES.append(home)
    return home


def keep_home(home: Path) -> None:
    """Keep ``home`` (of :func:`isolate_home`) when the process exits."""
    if home in _HOMES:
        _HOMES.remove(home)


def _remove_homes() -> None:
    for home in _HOMES:
        shutil.rmtree(home, ignore_errors=True)


def logger(name: str) -> Callable[[str], None]:
    """A function printing progress lines on stderr (stdout carries only the JSON)."""

    def log(message: str) -> None:
        print(f"[{name} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    return log


# --- timings ---------------------------------------------------------------------------------


def _round(value: float) -> float:
    """Four significant digits."""
    return float(f"{value:.4g}")


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """``n``, ``min``, ``median``, ``max``, ``mean`` and the raw ``values`` (4 significant
    digits), in the unit of ``values``."""
    if not values:
        raise ValueError("summarize needs at least one value (were any repeats run?)")
    return {
        "n": len(values),
        "min": _round(min(values)),
        "median": _round(statistics.median(values)),
        "max": _round(max(values)),
        "mean": _round(statistics.fmean(values)),
        "values": [_round(v) for v in values],
    }


@dataclass
class Timing:
    """The durations (seconds) of the timed repetitions of one operation, and its last result."""

    seconds: list[float] = field(default_factory=list)
    result: Any = None

    def stats(self, scale: float = 1.0) -> dict[str, Any]:
        """:func:`summarize` of the durations in seconds times ``scale`` (1000: ms)."""
        return summarize([s * scale for s in self.seconds])

    def median(self, scale: float = 1.0) -> float:
        """The median duration in seconds times ``scale`` (4 significant digits)."""
        return _round(statistics.median(self.seconds) * scale)


def measure(
    operation: Callable[[], Any],
    repeats: int,
    warmups: int = 0,
    setup: Callable[[], None] | None = None,
) -> Timing:
    """Run ``operation`` ``warmups`` times untimed, then ``repeats`` times timed; ``setup`` runs
    untimed before every run (e.g. to empty a table)."""
    timing = Timing()
    for i in range(warmups + repeats):
        if setup is not None:
            setup()
        started = time.perf_counter()
        timing.result = operation()
        elapsed = time.perf_counter() - started
        if i >= warmups:
            timing.seconds.append(elapsed)
    return timing


@contextlib.contextmanager
def timed_steps() -> Iterator[dict[str, float]]:
    """Time every step of ``curation.steps.STEPS`` while the block runs: the steps are replaced
    by wrappers that record their seconds (by step name) in the dict yielded."""
    from curation import steps

    seconds: dict[str, float] = {}

    def timed(step: steps.Step) -> steps.Step:
        def run(context: steps.Context) -> dict[str, Any]:
            started = time.perf_counter()
            try:
                return step.run(context)
            finally:
                seconds[step.name] = time.perf_counter() - started

        return dataclasses.replace(step, run=run)

    original = steps.STEPS
    steps.STEPS = tuple(timed(step) for step in original)
    try:
        yield seconds
    finally:
        steps.STEPS = original


def same_in_every_repeat(name: str, values: Sequence[Any]) -> Any:
    """The value every repeat gave (e.g. bytes read, which must not vary between repeats).

    Raises:
        SystemExit: the repeats differ; naming ``name`` and the values.
    """
    if not values or len(set(values)) != 1:
        raise SystemExit(
            f"{name} differed between repeats ({list(values)}): the operation is not "
            "deterministic, so its figure means nothing; find out why before benchmarking it."
        )
    return values[0]


def check_repeats(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse ``--repeats`` below 1 and ``--warmups`` below 0 (where the parser has them)."""
    if getattr(args, "repeats", 1) < 1:
        parser.error(f"--repeats must be at least 1 (got {args.repeats}).")
    if getattr(args, "warmups", 0) < 0:
        parser.error(f"--warmups must be 0 or more (got {args.warmups}).")


BACKENDS = ("sqlite", "postgresql")


def parse_backends(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """The backends of a ``--backends sqlite,postgresql`` option (an unknown one is refused)."""
    backends = [b.strip() for b in text.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown or not backends:
        parser.error(
            f"--backends takes sqlite and/or postgresql, comma-separated (got {text!r}; unknown: "
            f"{', '.join(unknown) or 'none'})."
        )
    return backends


def parse_worker_counts(parser: argparse.ArgumentParser, option: str, text: str) -> list[int]:
    """The worker counts of an option like ``--workers 1,2`` (each at least 1)."""
    try:
        counts = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        parser.error(f"{option} takes worker counts of at least 1 like 1,2 (got {text!r}).")
    return counts


# --- instances ---------------------------------------------------------------------------------


def _server_params(url: str) -> dict[str, str]:
    """Connection parameters of the server behind a PostgreSQL URL (without the database)."""
    from registry.instances import parse_database_url

    entry = parse_database_url(url)
    params = {
        "host": entry["HOST"],
        "port": entry["PORT"],
        "user": entry["USER"],
        "password": entry["PASSWORD"],
    }
    return {key: value for key, value in params.items() if value}


def database_name(url: str) -> str:
    """The database a PostgreSQL URL names."""
    from registry.instances import parse_database_url

    return parse_database_url(url)["NAME"]


@contextlib.contextmanager
def postgres_admin(url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the ``postgres`` database of the server behind ``url``.

    Raises:
        psycopg.OperationalError: the server cannot be reached.
    """
    import psycopg

    params = _server_params(url)
    with psycopg.connect(dbname="postgres", connect_timeout=5, autocommit=True, **params) as conn:
        yield conn


def drop_database(url: str) -> None:
    """Drop the PostgreSQL database of ``url`` if it exists (closing its sessions)."""
    from psycopg import sql

    with postgres_admin(url) as conn:
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(statement.format(sql.Identifier(database_name(url))))


def postgres_version(url: str) -> str:
    """The server version behind ``url``, or why it could not be read."""
    import psycopg

    try:
        with postgres_admin(url) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])
    except psycopg.OperationalError as exc:
        return f"not reachable: {str(exc).strip()}"


def _sqlite_path(workdir: Path, name: str) -> Path:
    """The SQLite file of instance ``name`` in ``workdir``, with its WAL files removed."""
    path = workdir / f"{name}.sqlite3"
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    return path


def fresh_instance(backend: str, name: str, pg_url: str, workdir: Path) -> ln.DB:
    """A new, empty, migrated instance ``name`` (the default instance of this process).

    SQLite: a file in ``workdir`` (removed first); PostgreSQL: the database of ``pg_url``,
    dropped first. The storage root is a folder in ``workdir``.

    Raises:
        psycopg.OperationalError: the PostgreSQL server cannot be reached.
    """
    import registry as ln

    storage = workdir / f"storage-{name}"
    if backend == "sqlite":
        return ln.init(name, db=f"sqlite:///{_sqlite_path(workdir, name)}", storage=storage)
    drop_database(pg_url)
    return ln.init(name, db=pg_url, storage=storage)


def copy_instance(template: ln.DB, name: str, workdir: Path, pg_url: str = "") -> ln.DB:
    """A new instance ``name`` holding a copy of ``template``'s database (as it is now).

    SQLite: the file is checkpointed and copied into ``workdir``. PostgreSQL: ``pg_url`` (its
    database dropped first) is created with ``CREATE DATABASE ... TEMPLATE`` of the template's
    database. This process's connections are closed first (PostgreSQL copies only a database
    nobody is connected to; the template may be open under two aliases, its own and
    ``default``).
    """
    from django.db import connections
    from psycopg import sql

    import registry as ln

    connection = connections[template.alias]
    storage = workdir / f"storage-{name}"
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connections.close_all()
        path = _sqlite_path(workdir, name)
        shutil.copyfile(connection.settings_dict["NAME"], path)
        return ln.init(name, db=f"sqlite:///{path}", storage=storage, make_default=False)
    connections.close_all()
    drop_database(pg_url)
    with postgres_admin(pg_url) as conn:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(database_name(pg_url)),
            sql.Identifier(connection.settings_dict["NAME"]),
        )
        conn.execute(statement)
    return ln.init(name, db=pg_url, storage=storage, make_default=False)


def close_instance(db: ln.DB) -> None:
    """Close this process's connection to ``db`` (before its database is dropped or copied)."""
    from django.db import connections

    connections[db.alias].close()


def database_version(alias: str) -> str:
    """The version of the database server (or SQLite library) behind a Django alias."""
    from django.db import connections

    with connections[alias].cursor() as cursor:
        postgres = connections[alias].vendor == "postgresql"
        cursor.execute("SHOW server_version" if postgres else "SELECT sqlite_version()")
        return str(cursor.fetchone()[0])


# --- the obs scan ------------------------------------------------------------------------------


@dataclass
class ScanTiming:
    """Warm scans of one store with one worker count: wall and CPU seconds, and the counts."""

    workers: int
    seconds: list[float]
    cpu_seconds: list[float]
    counts: dict

    @property
    def cells(self) -> int:
        """Cells counted (every cell has exactly one organism)."""
        return sum(
            sum(c.n_cells for c in by_feature.get("organism", {}).values())
            for by_feature in self.counts.values()
        )

    def figures(self) -> dict[str, Any]:
        """Seconds and cells/s (median, with their statistics); with one worker the scan runs
        in this process, so its CPU seconds are the whole cost and cells per CPU-second hardly
        depend on what else the machine runs."""
        cells = self.cells
        rates = [cells / s for s in self.seconds]
        out: dict[str, Any] = {
            "workers": self.workers,
            "cells": cells,
            "seconds": _round(statistics.median(self.seconds)),
            "cells_per_s": round(statistics.median(rates)),
            "stats": {"seconds": summarize(self.seconds), "cells_per_s": summarize(rates)},
        }
        if self.workers == 1:
            cpu_rates = [cells / s for s in self.cpu_seconds]
            out["cells_per_cpu_s"] = round(statistics.median(cpu_rates))
            out["stats"]["cells_per_cpu_s"] = summarize(cpu_rates)
        return out


def warm_scan(
    uri: str,
    tiledb_config: dict[str, str],
    workers: int,
    repeats: int,
    warmups: int = 1,
    chunk_rows: int | None = None,
) -> ScanTiming:
    """``curation.annotate.scan_store`` of ``uri`` ``repeats`` times on one local pool of
    ``workers``, after ``warmups`` untimed scans on the same pool (processes started, modules
    imported, the store's metadata read once)."""
    from curation.annotate import DEFAULT_CHUNK_ROWS, scan_store
    from curation.executors import make_executor

    rows = chunk_rows or DEFAULT_CHUNK_ROWS
    wall, cpu, counts = [], [], {}
    with make_executor("local", workers=workers) as pool:
        for i in range(warmups + repeats):
            started, started_cpu = time.perf_counter(), time.process_time()
            counts = scan_store(uri, tiledb_config, pool, chunk_rows=rows)
            if i >= warmups:
                wall.append(time.perf_counter() - started)
                cpu.append(time.process_time() - started_cpu)
    return ScanTiming(workers, wall, cpu, counts)


# --- the report --------------------------------------------------------------------------------


def default_out(bench: str) -> Path:
    """``bench/results/<bench>-<YYYY-MM-DD>.json`` (today, local time)."""
    return RESULTS / f"{bench}-{datetime.date.today().isoformat()}.json"


def add_out_argument(parser: argparse.ArgumentParser, bench: str) -> None:
    """``--out PATH``: where the JSON goes besides stdout."""
    parser.add_argument(
        "--out",
        type=Path,
        default=default_out(bench),
        help=f"write the JSON here too (default: {default_out(bench).relative_to(REPO)})",
    )


def _git(*args: str) -> str | None:
    """Output of a read-only git command in the repository, or None."""
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=REPO, capture_output=True, text=True
        )
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def source_state() -> dict[str, Any]:
    """The commit measured and whether the working tree differed from it (which files)."""
    changed = [line[3:] for line in (_git("status", "--porcelain") or "").splitlines()]
    commit = (_git("rev-parse", "HEAD") or "").strip() or None
    return {
        "commit": commit,
        "commit_short": commit[:7] if commit else None,
        "dirty": bool(changed),
        "uncommitted_files": changed,
    }


def cpu_model() -> str:
    """The CPU model as /proc/cpuinfo names it (or what ``platform`` knows)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ram_gib() -> float | None:
    """Total RAM in GiB (/proc/meminfo), or None where it cannot be read."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "nproc": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model(),
        "ram_gib": ram_gib(),
        "platform": platform.platform(),
    }


def versions(pg_url: str | None = None) -> dict[str, Any]:
    """Python, SQLite, PostgreSQL (when ``pg_url`` is given) and the distributions of
    :data:`DISTRIBUTIONS` (null when not installed)."""
    found: dict[str, Any] = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    if pg_url:
        found["postgresql"] = postgres_version(pg_url)
    for name in DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


class Report:
    """The JSON of one benchmark run: started when made, written by :meth:`finish`."""

    def __init__(self, bench: str, out: Path, pg_url: str | None = None) -> None:
        self.bench = bench
        self.out = Path(out)
        self.pg_url = pg_url
        self.started = time.perf_counter()
        self.header: dict[str, Any] = {
            "benchmark": f"bench/{bench}_bench.py",
            "command": " ".join([sys.executable, *sys.argv]),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "source": source_state(),
            "machine": {**machine(), "load_average_before": load_average()},
        }

    def finish(self, results: dict[str, Any]) -> dict[str, Any]:
        """Add the results, the load average after and the wall time; print the JSON on stdout
        and write it to :attr:`out`.

        Raises:
            ValueError: a key of ``results`` is one of the report's own (``command``, ...).
            SystemExit: the file cannot be written (the JSON was printed already).
        """
        report = dict(self.header)
        report["machine"]["load_average_after"] = load_average()
        report["versions"] = versions(self.pg_url)
        report["wall_s"] = round(time.perf_counter() - self.started, 1)
        clash = sorted(set(results) & set(report))
        if clash:
            raise ValueError(
                f"Result keys {clash} would replace the report's own keys of the same names: "
                "rename them in the benchmark."
            )
        report.update(results)
        text = json.dumps(report, indent=2, default=str)
        print(text, flush=True)
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.write_text(text + "\n")
        except OSError as exc:
            raise SystemExit(
                f"Cannot write the results to {self.out}: {exc.strerror or exc}. The JSON is on "
                "stdout above; pass --out PATH to write it elsewhere."
            ) from exc
        print(f"[{self.bench}] results written to {self.out}", file=sys.stderr, flush=True)
        return report
