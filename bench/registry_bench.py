"""Benchmark of the registry on the seeded synthetic CELLxGENE workload, on SQLite and PostgreSQL.

For each backend a fresh instance is created, the vocabulary of :mod:`demo.synthetic` is
written, and then these are timed (median of ``--repeats`` after ``--warmups``):

(a) registering and linking all artifacts, per record (``write_per_record``) and in bulk
    (``write_bulk``), each repetition starting from an empty artifact table;
(b) the seed query (``filter(...).order_by(...).to_dataframe(include=[...])``);
(c) ``CellType.lookup()``;
(d) the five-relation filter on the artifacts of the ``cellxgene-census`` collection;
(e) a plain and a joined ``count()``;
(f) ``artifact.describe(return_str=True)``.

The rows each query returns are checked against what the workload plan says they must be.
Every figure is the median of its repetitions; ``stats`` holds n, min, median, max, mean and
the raw values. One JSON object goes to stdout and to ``--out`` (default
``bench/results/registry-<date>.json``); progress goes to stderr. Run from the repository root::

    .venv/bin/python bench/registry_bench.py --backends sqlite,postgresql
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import pstats
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

# instances are recorded in $CELLREGISTRY_HOME/instances.toml: a throw-away one, set before
# registry is imported, so that the user's own instances are never read or changed
BENCH_HOME = common.isolate_home("registry-bench")

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connections, transaction  # noqa: E402

import registry as ln  # noqa: E402

ln.setup()  # Django, before the modules that import models

from demo import synthetic  # noqa: E402
from registry.models import Artifact, Collection, CollectionArtifact  # noqa: E402

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/cellregistry_bench"

#: the figures of the issue, in the order they are reported, with their units
FIGURES = {
    "create_bulk_s": "s for all artifacts",
    "create_per_record_ms": "ms per artifact",
    "seed_query_ms": "ms",
    "lookup_ms": "ms",
    "five_relation_ms": "ms",
    "count_simple_ms": "ms",
    "count_join_ms": "ms",
    "describe_ms": "ms",
}

#: the SQLite targets of the issue (same units as FIGURES)
TARGETS = {
    "create_bulk_s": 0.5,
    "create_per_record_ms": 3.0,
    "seed_query_ms": 2.0,
    "lookup_ms": 3.0,
    "five_relation_ms": 1.5,
    "count_simple_ms": 0.5,
    "count_join_ms": 0.5,
    "describe_ms": 5.0,
}


log = common.logger("bench")


# ---------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------
def profile(
    name: str, operation: Callable[[], Any], repeats: int, setup: Callable[[], None] | None
) -> None:
    """Run ``operation`` under cProfile and print the top functions to stderr."""
    profiler = cProfile.Profile()
    for _ in range(repeats):
        if setup is not None:
            setup()
        profiler.enable()
        operation()
        profiler.disable()
    log(f"profile of {name} ({repeats} runs), by cumulative time:")
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(15)


# ---------------------------------------------------------------------------------------------
# Instances
# ---------------------------------------------------------------------------------------------
def clear_artifacts(alias: str) -> None:
    """Delete every artifact with its label and collection links (between create repetitions)."""
    link_models = [relation.through for relation in Artifact.label_relations()]
    with transaction.atomic(using=alias):
        for model in [*link_models, CollectionArtifact]:
            model.objects.using(alias).all().delete()
        Artifact.objects.using(alias).all().delete()


class StatementCounter:
    """A Django execute wrapper counting SQL statements (unbounded, unlike the debug query log)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: dict) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


def count_statements(
    alias: str, operation: Callable[[], Any], setup: Callable[[], None] | None = None
) -> tuple[int, Any]:
    """Run ``operation`` once (untimed) and count the SQL statements it sends to ``alias``."""
    if setup is not None:
        setup()
    counter = StatementCounter()
    with connections[alias].execute_wrapper(counter):
        result = operation()
    return counter.count, result


def settle(alias: str) -> None:
    """Bring the database to the state a finished curation run leaves, before queries are timed.

    The create repetitions deleted and rewrote the artifact tables 2 x (warmups + repeats) times.
    PostgreSQL: ``VACUUM ANALYZE`` now, instead of autovacuum doing it (on 2 cores) while the
    queries are timed. SQLite: ``VACUUM`` only; no ``ANALYZE``, since nothing in the registry runs
    it, so the planner works as on a user's file.
    """
    with connections[alias].cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connections[alias].vendor == "postgresql" else "VACUUM")


def table_counts(alias: str) -> dict[str, int]:
    """Rows of the artifact, link and collection tables (shows the workload size)."""
    models = [Artifact, Collection, CollectionArtifact]
    models += [relation.through for relation in Artifact.label_relations()]
    counts = {model.__name__: model.objects.using(alias).count() for model in models}
    return {name: count for name, count in counts.items() if count}


# ---------------------------------------------------------------------------------------------
# What the queries must return, computed from the plan alone
# ---------------------------------------------------------------------------------------------
def expected_rows(plan: synthetic.Plan) -> dict[str, int]:
    """Rows of each query, from the workload plan (independent of the registry code)."""
    organisms = list(synthetic.ORGANISMS)
    seed = five = simple = join = 0
    for spec in plan.artifacts:  # the newest census collection holds every artifact
        cells = {plan.cell_types[i][0] for i in spec.cell_types}
        tissues = {plan.tissues[i][0] for i in spec.tissues}
        seed += (
            "immune" in spec.description
            and spec.size > 1e9
            and bool(cells & {"B cell", "T cell"})
            and synthetic.USERS[spec.user] == "sunnyosun"
        )
        simple += spec.size > 1e6
        join += "B cell" in cells
        five += (
            organisms[spec.organism] == "human"
            and bool(cells & {"dendritic cell", "neutrophil"})
            and "kidney" in tissues
            and synthetic.SUSPENSION_TYPES[spec.suspension_type] == "cell"
            and plan.assays[spec.assay][0] == "10x 3' v2"
        )
    return {
        "seed_query": seed,
        "lookup": len(plan.cell_types),
        "five_relation": five,
        "count_simple": simple,
        "count_join": join,
    }


def workload_queries(db: ln.DB) -> dict[str, Callable[[], Any]]:
    """The timed queries of the workload on ``db``, by figure key. The records and lookups they
    refer to are fetched here, once, outside the timed parts."""
    users = db.User.lookup()
    organisms = db.bionty.Organism.lookup()
    cell_types = db.bionty.CellType.lookup()
    tissues = db.bionty.Tissue.lookup()
    suspension_types = db.ULabel.filter(type__name="SuspensionType").lookup()
    experimental_factors = db.bionty.ExperimentalFactor.lookup()
    census = db.Collection.get(key="cellxgene-census", version="2025-01-30")
    kidney_artifact = db.Artifact.get(description="Mature kidney dataset: immune")
    # lookups read a record when its name is first used; do that here, not in a timed run
    for lookup, name in [
        (users, "sunnyosun"),
        (organisms, "human"),
        (cell_types, "dendritic_cell"),
        (cell_types, "neutrophil"),
        (tissues, "kidney"),
        (suspension_types, "cell"),
        (experimental_factors, "ln_10x_3_v2"),
    ]:
        getattr(lookup, name)

    def seed_query() -> Any:
        return (
            db.Artifact.filter(
                suffix=".h5ad",
                description__contains="immune",
                size__gt=1e9,
                cell_types__name__in=["B cell", "T cell"],
                created_by=users.sunnyosun,
            )
            .order_by("created_at")
            .to_dataframe(include=["cell_types__name", "created_by__handle"])
        )

    def five_relation_filter(collection: Any) -> list:
        return list(
            collection.artifacts.filter(
                organisms=organisms.human,
                cell_types__in=[cell_types.dendritic_cell, cell_types.neutrophil],
                tissues=tissues.kidney,
                ulabels=suspension_types.cell,
                experimental_factors=experimental_factors.ln_10x_3_v2,
            ).order_by("size")
        )

    def five_relation_with_get() -> list:
        collection = db.Collection.get(key="cellxgene-census", version="2025-01-30")
        return five_relation_filter(collection)

    return {
        "seed_query_ms": seed_query,
        "lookup_ms": lambda: db.bionty.CellType.lookup(),
        "five_relation_ms": lambda: five_relation_filter(census),
        "five_relation_with_get_ms": five_relation_with_get,
        "count_simple_ms": lambda: db.Artifact.filter(suffix=".h5ad", size__gt=1e6).count(),
        "count_join_ms": lambda: db.Artifact.filter(cell_types__name="B cell").count(),
        "describe_ms": lambda: kidney_artifact.describe(return_str=True),
    }


# ---------------------------------------------------------------------------------------------
# One backend
# ---------------------------------------------------------------------------------------------
def bench_backend(db: ln.DB, args: argparse.Namespace) -> dict[str, Any]:
    """Build the workload in ``db`` and time every figure; return the backend's JSON entry."""
    alias = db.alias
    plan = synthetic.make_plan(args.artifacts, args.seed)
    vocab = synthetic.write_vocabulary(plan, using=alias)
    n_artifacts = len(plan.artifacts)
    create_repeats = args.create_repeats if args.create_repeats is not None else args.repeats
    timings: dict[str, common.Timing] = {}
    scales: dict[str, float] = {}
    statements: dict[str, int] = {}

    def reset() -> None:
        clear_artifacts(alias)

    def per_record() -> list:
        return synthetic.write_per_record(plan, vocab, using=alias)

    def bulk() -> list:
        return synthetic.write_bulk(plan, vocab, using=alias)

    # (a) registering and linking; the bulk way runs last so that its artifacts stay
    creates = {"create_per_record_ms": (per_record, 1000 / n_artifacts), "create_bulk_s": (bulk, 1)}
    for key, (operation, scale) in creates.items():
        log(f"  (a) {key}: {args.warmups} + {create_repeats} runs of {n_artifacts} artifacts")
        timings[key] = common.measure(operation, create_repeats, args.warmups, reset)
        scales[key] = scale
        log(f"      median {statistics.median(timings[key].seconds):.3f} s per run")
        statements[key], artifacts = count_statements(alias, operation, reset)
    synthetic.write_collections(artifacts, using=alias)
    settle(alias)

    queries = workload_queries(db)
    for key, query in queries.items():
        log(f"  {key}: {args.warmups} + {args.repeats} runs")
        timings[key] = common.measure(query, args.repeats, args.warmups)
        scales[key] = 1000
        statements[key], _ = count_statements(alias, query)

    seed_frame = timings["seed_query_ms"].result
    got = {
        "seed_query": len(seed_frame),
        "lookup": len(timings["lookup_ms"].result),
        "five_relation": len(timings["five_relation_ms"].result),
        "count_simple": timings["count_simple_ms"].result,
        "count_join": timings["count_join_ms"].result,
    }
    expected = expected_rows(plan)
    mismatches = {k: {"got": got[k], "expected": expected[k]} for k in got if got[k] != expected[k]}
    if not seed_frame.index.is_unique:
        mismatches["seed_query_unique_ids"] = {"got": False, "expected": True}
    for key, problem in mismatches.items():
        log(f"  WRONG RESULT {key}: {problem}")

    stats = {key: timing.stats(scales[key]) for key, timing in timings.items()}
    entry: dict[str, Any] = {key: stats[key]["median"] for key in FIGURES}
    entry.update(
        {
            "five_relation_with_get_ms": stats["five_relation_with_get_ms"]["median"],
            "create_repeats": create_repeats,
            "repeats": args.repeats,
            "warmups": args.warmups,
            "rows": got,
            "results_match_plan": not mismatches,
            "mismatches": mismatches,
            "sql_statements": statements,
            "describe_chars": len(timings["describe_ms"].result),
            "tables": table_counts(alias),
            "database_version": common.database_version(alias),
            "stats": stats,
        }
    )
    if connections[alias].vendor == "sqlite":
        entry["targets"] = {
            key: {"target": target, "met": entry[key] <= target} for key, target in TARGETS.items()
        }
    # profiles last: profiling the creates empties the artifact table the queries need
    for key in sorted(args.profile, key=lambda k: (k in creates, k == "create_bulk_s")):
        if key in creates:
            profile(key, creates[key][0], 1, reset)
        else:
            profile(key, queries[key], args.repeats, None)
    return entry


def run_backend(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Create the instance of one backend and benchmark it; an unreachable server is reported."""
    log(f"{name}: creating a fresh instance")
    try:
        db = common.fresh_instance(name, f"bench-{name}", args.pg_url, workdir)
    except (psycopg.OperationalError, ConnectionError) as exc:
        log(f"{name}: not reachable: {exc}")
        return {"error": f"not reachable: {str(exc).strip()}"}
    started = time.perf_counter()
    load_before = common.load_average()
    if load_before[0] > 0.5:
        log(f"{name}: load average {load_before[0]:.2f}: other processes may skew the timings")
    try:
        entry = bench_backend(db, args)
    except Exception as exc:  # reported in the JSON and on stderr; the exit status says failure
        traceback.print_exc(file=sys.stderr)
        return {"error": f"{type(exc).__name__}: {exc}"}
    entry["wall_s"] = round(time.perf_counter() - started, 1)
    load_after = common.load_average()
    entry["load_average"] = {
        "before_1min": load_before[0],
        "after_1min": load_after[0],
        "after_5min": load_after[1],
    }
    log(f"{name}: done in {entry['wall_s']} s")
    return entry


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
def per_record_defaults() -> dict[str, Any]:
    """The keyword defaults of ``write_per_record`` (e.g. which API it links labels with)."""
    skip = {"plan", "vocab", "using", "progress"}
    parameters = inspect.signature(synthetic.write_per_record).parameters.values()
    return {
        p.name: p.default for p in parameters if p.name not in skip and p.default is not p.empty
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; see ``--help``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="comma-separated: sqlite,postgresql"
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed repetitions per figure")
    parser.add_argument("--warmups", type=int, default=2, help="untimed repetitions first")
    parser.add_argument(
        "--create-repeats",
        type=int,
        default=None,
        help="timed repetitions of (a) only (default: --repeats)",
    )
    parser.add_argument("--artifacts", type=int, default=1000, help="artifacts in the workload")
    parser.add_argument("--seed", type=int, default=0, help="seed of the workload generator")
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL database (dropped and recreated)"
    )
    parser.add_argument(
        "--profile",
        default="",
        help="comma-separated figure keys (e.g. seed_query_ms) to run under cProfile afterwards; "
        "the profile goes to stderr",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary folder (SQLite file, instances.toml)",
    )
    common.add_out_argument(parser, "registry")
    args = parser.parse_args(argv)
    args.backends = common.parse_backends(parser, args.backends)
    args.profile = [k.strip() for k in args.profile.split(",") if k.strip()]
    known = set(FIGURES) | {"five_relation_with_get_ms"}
    if set(args.profile) - known:
        parser.error(f"--profile takes figure keys: {', '.join(sorted(known))}")
    common.check_repeats(parser, args)
    if args.create_repeats is not None and args.create_repeats < 1:
        parser.error(f"--create-repeats must be at least 1 (got {args.create_repeats}).")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the JSON and write it to ``--out``; exit status 1 if a backend
    failed or a query returned other rows than the plan says."""
    args = parse_args(argv)
    pg_url = args.pg_url if "postgresql" in args.backends else None
    report = common.Report("registry", args.out, pg_url)
    results: dict[str, Any] = {
        "workload": {
            "artifacts": args.artifacts,
            "seed": args.seed,
            "generator": "demo.synthetic",
            "write_per_record_defaults": per_record_defaults(),
        },
        "units": {
            **FIGURES,
            "sql_statements": "statements sent by one run of the operation (create: all artifacts)",
            "stats": "per figure: n, min, median, max, mean and the raw values, in its unit",
        },
    }
    failed = False
    try:
        for backend in args.backends:
            results[backend] = run_backend(backend, args, BENCH_HOME)
            failed = (
                failed or "error" in results[backend] or not results[backend]["results_match_plan"]
            )
    finally:
        if settings.configured:  # not yet when the only backend was unreachable
            connections.close_all()
        if args.keep:
            common.keep_home(BENCH_HOME)
            log(f"kept {BENCH_HOME}")
    report.finish(results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
