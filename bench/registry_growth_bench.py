"""The registry workload at 1,000 artifacts and after ten releases, on SQLite and PostgreSQL
(issue 10, point 7: the same queries take at most twice their time at ten releases).

Per backend, two fresh instances: ``base``, the workload of ``bench/registry_bench.py``
(:mod:`demo.synthetic`, 1,000 artifacts), and ``grown``, ten releases of LTS shape
(:mod:`demo.synthetic_releases`: 18,450 artifacts as versions of ~2,800 datasets, ~550,000
counted label links, ten versions of the ``cellxgene-census`` collection). Both are settled as
``registry_bench.py`` settles its instance, then the queries of
:func:`bench.registry_bench.workload_queries` are timed on each (``--repeats`` after
``--warmups``), alternating between the two instances per repetition block so that both see the
same machine. A ratio is ``grown`` median / ``base`` median; the rows each query returns at both
sizes are recorded beside it.

From the repository root::

    .venv/bin/python bench/registry_growth_bench.py --backends sqlite,postgresql

(``--releases 3 --per-release 300`` for a quick check.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

BENCH_HOME = common.isolate_home("registry-growth-bench")

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connections  # noqa: E402

import registry as ln  # noqa: E402

ln.setup()

from bench.registry_bench import settle, table_counts, workload_queries  # noqa: E402
from demo import synthetic, synthetic_releases  # noqa: E402

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/cellregistry_growth"
#: the figures compared, and the ratio issue 10 allows
FIGURES = (
    "seed_query_ms",
    "lookup_ms",
    "five_relation_ms",
    "count_simple_ms",
    "count_join_ms",
    "describe_ms",
)
MAX_RATIO = 2.0

log = common.logger("growth")


def rows_of(result: Any) -> int | None:
    """Rows a query returned (a count is its own figure)."""
    if isinstance(result, int):
        return result
    return len(result) if hasattr(result, "__len__") else None


def build(backend: str, size: str, args: argparse.Namespace) -> ln.DB:
    """A fresh instance holding the ``base`` or the ``grown`` workload."""
    name = f"growth-{backend}-{size}"
    storage = BENCH_HOME / f"storage-{name}"
    if backend == "sqlite":
        url = f"sqlite:///{BENCH_HOME / f'{name}.sqlite3'}"
    else:
        url = f"{args.pg_url}_{size}"
        common.drop_database(url)
    # not the default instance: both sizes stay open side by side under their own aliases
    db = ln.init(name, db=url, storage=storage, make_default=False)
    started = time.perf_counter()
    if size == "base":
        synthetic.build(n_artifacts=1000, seed=args.seed, using=db.alias)
    else:
        plan = synthetic_releases.make_plan(args.releases, args.per_release, args.seed)
        synthetic_releases.write(plan, using=db.alias, progress=lambda m: log(f"    {m}"))
    settle(db.alias)
    log(f"  {backend}/{size}: written in {time.perf_counter() - started:.1f} s")
    return db


def bench_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    dbs = {size: build(backend, size, args) for size in ("base", "grown")}
    queries = {size: workload_queries(db) for size, db in dbs.items()}
    seconds: dict[str, dict[str, list[float]]] = {s: {k: [] for k in FIGURES} for s in dbs}
    rows: dict[str, dict[str, Any]] = {s: {} for s in dbs}
    for key in FIGURES:
        log(f"  {key}: {args.warmups} + {args.repeats} runs at each size")
        for size in dbs:
            for _ in range(args.warmups):
                rows[size][key] = rows_of(queries[size][key]())
        for block in range(0, args.repeats, 5):  # alternate sizes every 5 runs
            for size in dbs:
                for _ in range(min(5, args.repeats - block)):
                    started = time.perf_counter()
                    result = queries[size][key]()
                    seconds[size][key].append(time.perf_counter() - started)
                    rows[size].setdefault(key, rows_of(result))  # without warm-ups too
    entry: dict[str, Any] = {"tables": {s: table_counts(db.alias) for s, db in dbs.items()}}
    figures = {}
    for key in FIGURES:
        stats = {s: common.summarize([v * 1000 for v in seconds[s][key]]) for s in dbs}
        ratio = stats["grown"]["median"] / stats["base"]["median"]
        figures[key] = {
            "base_ms": stats["base"],
            "grown_ms": stats["grown"],
            "ratio": round(ratio, 3),
            "within_2x": ratio <= MAX_RATIO,
            "rows": {s: rows[s][key] for s in dbs},
        }
    entry["figures"] = figures
    entry["database_version"] = common.database_version(dbs["base"].alias)
    for size, db in dbs.items():
        common.close_instance(db)
        if backend == "postgresql":  # the bench's databases go with it (SQLite: its temp home)
            common.drop_database(f"{args.pg_url}_{size}")
    return entry


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per query and size")
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument("--releases", type=int, default=len(synthetic_releases.RELEASE_TAGS))
    parser.add_argument("--per-release", type=int, default=synthetic_releases.DATASETS_PER_RELEASE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="prefix of two databases")
    common.add_out_argument(parser, "registry-growth")
    args = parser.parse_args(argv)
    args.backends = common.parse_backends(parser, args.backends)
    common.check_repeats(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pg_url = f"{args.pg_url}_base" if "postgresql" in args.backends else None
    report = common.Report("registry-growth", args.out, pg_url)
    plan = synthetic_releases.make_plan(args.releases, args.per_release, args.seed)
    results: dict[str, Any] = {
        "workload": {
            "base": {"artifacts": 1000, "generator": "demo.synthetic", "seed": args.seed},
            "grown": {
                "generator": "demo.synthetic_releases",
                "releases": args.releases,
                "per_release": args.per_release,
                "artifacts": plan.n_artifacts,
                "datasets": len(plan.datasets),
                "seed": args.seed,
            },
            "max_ratio": MAX_RATIO,
        }
    }
    failed = False
    try:
        for backend in args.backends:
            log(f"{backend}:")
            try:
                results[backend] = bench_backend(backend, args)
            except (psycopg.OperationalError, ConnectionError) as exc:
                results[backend] = {"error": f"not reachable: {exc}"}
                failed = True
    finally:
        if settings.configured:
            connections.close_all()
    report.finish(results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
