"""Benchmark of ``curate_release`` (issue 5, point 11) on a demo release, SQLite and PostgreSQL.

For each backend: a fresh instance, the CELLxGENE ontologies imported (not timed as part of the
curation), then timed: the curation of the release (``curate_release`` with the local process
pool), the obs scan alone (cells/s), and a no-op rerun. The measured per-cell (scan) and
per-dataset (the rest) costs are extrapolated to the real LTS release (162 M cells, 1,845
datasets). One JSON object on stdout. Build the release first (takes a few minutes), then::

    /tmp/venv0/bin/python -c "from demo.census.release import build_release; \\
        build_release('/tmp/bigbucket', '2025-11-08', n_datasets=1845, cells_per_dataset=1084)"
    /tmp/venv0/bin/python bench/curation_bench.py --source /tmp/bigbucket/cell-census/2025-11-08/
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

BENCH_HOME = Path(tempfile.mkdtemp(prefix="cellregistry-curation-bench-"))
os.environ["CELLREGISTRY_HOME"] = str(BENCH_HOME)
for _variable in ("CELLREGISTRY_INSTANCE", "DATABASE_URL"):
    os.environ.pop(_variable, None)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

import registry as ln  # noqa: E402

ln.setup()  # Django, before the curation modules (they import the models)

REAL_CELLS = 162_000_000
REAL_DATASETS = 1845
LAMINDB_HOURS = 24


def fresh_instance(backend: str, pg_url: str) -> ln.DB:
    """A new instance on the backend, with the guide's ontologies imported."""
    from ontologies.importers.guide import import_guide

    if backend == "postgresql":
        server, name = pg_url.rsplit("/", 1)
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db = ln.init("bench-pg", db=pg_url)
    else:
        db = ln.init("bench-sqlite", db=f"sqlite:///{BENCH_HOME / 'bench.sqlite3'}")
    import_guide(using=db.alias)
    return db


def run(backend: str, source: str, pg_url: str, workers: int) -> dict:
    """Curate, scan, rerun on one backend; the figures."""
    from curation.annotate import scan_store
    from curation.executors import make_executor
    from curation.manifest import ReleaseRoot
    from curation.steps import curate_release, release_storage
    from registry.accessors.backends import backend_for

    db = fresh_instance(backend, pg_url)
    started = time.perf_counter()
    summary = curate_release(source, using=db.alias, workers=workers)
    curate_s = time.perf_counter() - started
    root = ReleaseRoot.parse(source)
    storage_backend = backend_for(release_storage(root, db.alias))
    uri = storage_backend.uri(root.soma_key)
    with make_executor("local", workers=workers) as pool:
        started = time.perf_counter()
        counts = scan_store(uri, storage_backend.tiledb_config(), pool)
        cold_scan_s = time.perf_counter() - started  # includes starting the worker processes
        started = time.perf_counter()
        counts = scan_store(uri, storage_backend.tiledb_config(), pool)
        scan_s = time.perf_counter() - started
    cells = sum(
        sum(c.n_cells for c in dataset.get("organism", {}).values()) for dataset in counts.values()
    )
    started = time.perf_counter()
    again = curate_release(source, using=db.alias, workers=workers)
    rerun_s = time.perf_counter() - started
    assert again.already_curated
    per_cell = cold_scan_s / cells
    per_dataset = max(curate_s - scan_s, 0.0) / summary.added
    estimate_s = REAL_CELLS * per_cell + REAL_DATASETS * per_dataset
    return {
        "datasets": summary.added,
        "cells": cells,
        "links": sum(summary.links.values()),
        "problems": len(summary.problems),
        "curate_seconds": round(curate_s, 2),
        "scan_seconds": round(scan_s, 2),
        "scan_seconds_with_worker_start": round(cold_scan_s, 2),
        "scan_cells_per_second": round(cells / scan_s),
        "noop_rerun_seconds": round(rerun_s, 3),
        "per_cell_us": round(per_cell * 1e6, 3),
        "per_dataset_ms": round(per_dataset * 1e3, 2),
        "real_release_estimate_minutes": round(estimate_s / 60, 1),
        "targets": {
            "curate_seconds": 90 if backend == "sqlite" else 120,
            "rerun_seconds": 10,
            "scan_cells_per_second": 2_000_000,
        },  # fmt: skip
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, help="a release root, .../cell-census/<tag>/")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--pg-url", default="postgresql://postgres@127.0.0.1:5432/cellregistry_curation_bench"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "source": args.source,
        "workers": args.workers,
        "real_release": {"cells": REAL_CELLS, "datasets": REAL_DATASETS},
        "lamindb_reported_hours": LAMINDB_HOURS,
    }
    for backend in args.backends.split(","):
        print(f"== {backend}", file=sys.stderr)
        result[backend] = run(backend, args.source, args.pg_url, args.workers)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
