"""Transfer of a whole release collection into a lab's instance (issue 11, point 4: ≤ 30 s on
SQLite for LTS shape; a rerun writes 0 rows).

The source is one release of LTS shape (:mod:`demo.synthetic_releases`: 1,845 artifacts,
~55,000 counted label links, the ``cellxgene-census`` collection), opened read-only as a public
mirror is. Each repeat transfers the collection into a fresh, empty instance (the default one):
``public.Collection.get(key="cellxgene-census").save()``, then again (the rerun), recording the
rows every table gained each time.

From the repository root::

    .venv/bin/python bench/transfer_bench.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

BENCH_HOME = common.isolate_home("transfer-bench")

from django.db import connections  # noqa: E402

import registry as ln  # noqa: E402

ln.setup()

from bench.registry_bench import settle, table_counts  # noqa: E402
from demo import synthetic_releases  # noqa: E402

log = common.logger("transfer")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/cellregistry_transfer"
BUDGET_S = 30.0


def all_rows(alias: str) -> dict[str, int]:
    """Rows of every table of the instance's database."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        counts = {}
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


def gained(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {t: after[t] - before.get(t, 0) for t in after if after[t] != before.get(t, 0)}


def source_instance(args: argparse.Namespace) -> tuple[ln.DB, str]:
    """The release, written once, opened read-only; its tag."""
    plan = synthetic_releases.make_plan(1, args.per_release, args.seed)
    url = f"sqlite:///{BENCH_HOME / 'source.sqlite3'}"
    writer = ln.init("source-writer", db=url, storage=BENCH_HOME / "source", make_default=False)
    started = time.perf_counter()
    synthetic_releases.write(plan, using=writer.alias)
    settle(writer.alias)
    log(f"source written in {time.perf_counter() - started:.1f} s: {table_counts(writer.alias)}")
    connections[writer.alias].close()
    public = ln.init("public", db=url, read_only=True, make_default=False)
    release = public.Collection.filter(key="cellxgene-census").order_by("-version").first()
    return public, release.version


def bench_backend(backend: str, public: ln.DB, tag: str, args: argparse.Namespace) -> dict:
    seconds: dict[str, list[float]] = {"transfer_s": [], "rerun_s": []}
    rows: dict[str, list[str]] = {"transfer": [], "rerun": []}  # JSON of the rows gained
    for repeat in range(args.repeats):
        target = common.fresh_instance(backend, f"lab{repeat}", args.pg_url, BENCH_HOME)
        for kind in ("transfer", "rerun"):
            before = all_rows("default")
            started = time.perf_counter()
            public.Collection.get(key="cellxgene-census", version=tag).save()
            seconds[f"{kind}_s"].append(time.perf_counter() - started)
            rows[kind].append(json.dumps(gained(before, all_rows("default")), sort_keys=True))
            log(f"  {backend} repeat {repeat + 1} {kind}: {seconds[f'{kind}_s'][-1]:.2f} s")
        common.close_instance(target)
        if backend == "postgresql":
            common.drop_database(args.pg_url)
    transferred = common.same_in_every_repeat("rows of a transfer", rows["transfer"])
    rerun = common.same_in_every_repeat("rows of a rerun", rows["rerun"])
    transfer_stats = common.summarize(seconds["transfer_s"])
    return {
        "transfer_s": transfer_stats,
        "rerun_s": common.summarize(seconds["rerun_s"]),
        "rows_written": json.loads(transferred),
        "rows_written_by_rerun": json.loads(rerun),
        "within_budget": transfer_stats["max"] <= BUDGET_S if backend == "sqlite" else None,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmups", type=int, default=0)
    parser.add_argument("--per-release", type=int, default=synthetic_releases.DATASETS_PER_RELEASE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="the target database")
    common.add_out_argument(parser, "transfer")
    args = parser.parse_args(argv)
    args.backends = common.parse_backends(parser, args.backends)
    common.check_repeats(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = common.Report(
        "transfer", args.out, args.pg_url if "postgresql" in args.backends else None
    )
    public, tag = source_instance(args)
    results: dict[str, Any] = {
        "workload": {
            "source": "demo.synthetic_releases, one release, read-only",
            "per_release": args.per_release,
            "seed": args.seed,
            "source_tables": table_counts(public.alias),
            "budget_s": BUDGET_S,
        }
    }
    try:
        for backend in args.backends:
            log(f"{backend}:")
            results[backend] = bench_backend(backend, public, tag, args)
    finally:
        connections.close_all()
    report.finish(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
