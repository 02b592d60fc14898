"""Benchmark of ``curate_release`` (issue 5, point 11) on a demo release, SQLite and PostgreSQL.

Measured, with ``--repeats`` timed runs after ``--warmups`` untimed ones:

- the obs scan alone (``curation.annotate.scan_store``, no database) on a warm local pool of 1
  and 2 workers (the pool started and used once before the timed scans), in cells/s; the counts
  must be identical for every worker count;
- per backend: the whole ``curate_release`` of the release on a fresh instance with the
  ontologies (a copy of one instance into which the CELLxGENE ontologies were imported once, not
  timed: a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL), each step of
  ``curation.steps.STEPS`` timed on its own (``check_files``: the h5ad header probes;
  ``annotate``: the obs scan including the start of the worker pool), and then the no-op rerun
  (``--noop-repeats`` times).

From these come the per-dataset cost (the curation minus its annotate step, divided by the
datasets), the per-cell scan cost (the annotate step divided by the cells; warm: 1 / the warm
rate) and the extrapolation to the real LTS release (162 M cells, 1,845 datasets). Every timing
has n, min, median, max, mean and its raw values under ``stats``; flat keys are medians.

One JSON object goes to stdout and to ``--out`` (default ``bench/results/curation-<date>.json``),
progress to stderr. Build the LTS-size release once (about 10 minutes), then, from the
repository root::

    CELLREGISTRY_HOME=$(mktemp -d) .venv/bin/python manage.py build_demo_release \\
        --dest /tmp/bigbucket --tag 2025-11-08 --datasets 1845 --cells-per-dataset 1084
    .venv/bin/python bench/curation_bench.py --source /tmp/bigbucket/cell-census/2025-11-08/

Without ``--source`` a release of ``--datasets`` x ``--cells`` is built into a temporary folder
first (for quick checks: ``--datasets 20 --cells 200 --repeats 1``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Only light imports at the top: the worker processes of the curation's pool are spawned, and
# each imports this file again (as __mp_main__); Django and the curation modules are imported by
# the functions that use them, after main() has set up a throw-away home.
from bench import common  # noqa: E402

if TYPE_CHECKING:
    import registry as ln

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/cellregistry_curation_bench"
REAL_CELLS = 162_000_000
REAL_DATASETS = 1845
LAMINDB_HOURS = 24
BUILD_TAG = "2025-11-08"

log = common.logger("curation-bench")


def scan_figures(uri: str, config: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """The warm obs scan for each worker count; the counts must agree."""
    figures, reference = [], None
    for workers in args.scan_workers:
        log(f"warm obs scan, {workers} worker(s): 1 + {args.scan_repeats} scans")
        timing = common.warm_scan(uri, config, workers, args.scan_repeats)
        if reference is not None and timing.counts != reference:
            raise SystemExit(
                f"The obs scan of {uri} counted differently with {workers} workers than with "
                f"{args.scan_workers[0]}: a bug in curation.annotate; rerun with --scan-workers 1 "
                "to compare."
            )
        reference = timing.counts
        figures.append(timing.figures())
        log(f"  median {figures[-1]['cells_per_s']:,} cells/s")
    return {
        "cells": figures[0]["cells"],
        "datasets": len(reference or {}),
        "by_workers": figures,
        "identical_counts_across_workers": True,
    }


def curate_once(db: ln.DB, source: str, workers: int, noop_repeats: int) -> dict[str, Any]:
    """``curate_release`` on ``db`` with each step timed, then the no-op reruns."""
    from curation import steps

    started = time.perf_counter()
    with common.timed_steps() as step_seconds:
        summary = steps.curate_release(source, using=db.alias, workers=workers)
    curate_s = time.perf_counter() - started
    expected = [step.name for step in steps.STEPS]
    if list(step_seconds) != expected:
        raise SystemExit(
            f"Timed steps {list(step_seconds)} of curate_release on instance {db.name!r} are not "
            f"curation.steps.STEPS {expected}: curate_release no longer runs the steps from "
            "that module-level list, so update timed_steps() in bench/common.py."
        )
    noop = common.measure(
        lambda: steps.curate_release(source, using=db.alias, workers=workers), noop_repeats
    )
    if not noop.result.already_curated:
        raise SystemExit(
            f"The rerun of curate_release on instance {db.name!r} for {source} did not find "
            "the release curated: the no-op rerun is broken (see curation.steps._open_run)."
        )
    return {
        "curate_s": curate_s,
        "steps_s": dict(step_seconds),
        "noop_s": noop.seconds,
        "datasets": summary.added,
        "links": sum(summary.links.values()),
        "collections": summary.collections,
        "problems": summary.problems,
    }


def drop_copy(db: ln.DB, pg_url: str) -> None:
    """Close and remove a copied instance (its database)."""
    from registry.instances import parse_database_url

    common.close_instance(db)
    if pg_url:
        common.drop_database(pg_url)
    else:
        Path(parse_database_url(db.config.db)["NAME"]).unlink(missing_ok=True)


def per_repeat(run: dict[str, Any], cells: int) -> dict[str, float]:
    """The derived figures of one curation run."""
    annotate = run["steps_s"]["annotate"]
    datasets = run["datasets"] or 1
    return {
        "per_dataset_ms": (run["curate_s"] - annotate) / datasets * 1e3,
        "per_cell_us": annotate / cells * 1e6,
        "check_files_per_dataset_ms": run["steps_s"]["check_files"] / datasets * 1e3,
    }


def backend_figures(
    backend: str, source: str, args: argparse.Namespace, scan: dict[str, Any], workdir: Path
) -> dict[str, Any]:
    """Curations of the release on copies of one instance with ontologies; the figures."""
    from ontologies.importers.guide import import_guide

    pg_url = args.pg_url if backend == "postgresql" else ""
    template = common.fresh_instance(backend, f"curation-bench-{backend}", pg_url, workdir)
    log(f"{backend}: importing the ontologies into the template instance (not timed)")
    imported = common.measure(lambda: import_guide(using=template.alias), 1)
    runs = []
    for i in range(args.warmups + args.repeats):
        copy_url = f"{pg_url}_r{i}" if pg_url else ""
        copy = common.copy_instance(template, f"curation-bench-{backend}-{i}", workdir, copy_url)
        what = "warm-up" if i < args.warmups else f"repeat {i - args.warmups + 1}"
        log(f"{backend}: curate_release ({what}) on a copy")
        run = curate_once(copy, source, args.workers, args.noop_repeats)
        log(f"  {run['curate_s']:.2f} s; steps {_rounded(run['steps_s'])}")
        drop_copy(copy, copy_url)
        if i >= args.warmups:
            runs.append(run)
    cells = scan["cells"]
    derived = [per_repeat(run, cells) for run in runs]
    stats: dict[str, Any] = {
        "curate_seconds": common.summarize([run["curate_s"] for run in runs]),
        "noop_rerun_seconds": common.summarize([s for run in runs for s in run["noop_s"]]),
        "steps_seconds": {
            name: common.summarize([run["steps_s"][name] for run in runs])
            for name in runs[0]["steps_s"]
        },
        "outside_steps_seconds": common.summarize(
            [run["curate_s"] - sum(run["steps_s"].values()) for run in runs]
        ),
        **{key: common.summarize([d[key] for d in derived]) for key in derived[0]},
    }
    warm = scan["by_workers"][-1]
    per_cell_us = stats["per_cell_us"]["median"]
    per_dataset_ms = stats["per_dataset_ms"]["median"]
    warm_us = 1e6 / warm["cells_per_s"]
    last = runs[-1]
    return {
        "database": common.database_version(template.alias),
        "ontology_import_seconds_untimed": round(imported.seconds[0], 1),
        "datasets": last["datasets"],
        "cells": cells,
        "links": last["links"],
        "collections": last["collections"],
        "problems": len(last["problems"]),
        "problem_examples": last["problems"][:5],
        "curate_seconds": stats["curate_seconds"]["median"],
        "steps_seconds": {name: s["median"] for name, s in stats["steps_seconds"].items()},
        "check_files_seconds": stats["steps_seconds"]["check_files"]["median"],
        "check_files_per_dataset_ms": stats["check_files_per_dataset_ms"]["median"],
        "scan_seconds": warm["seconds"],
        "scan_seconds_with_worker_start": stats["steps_seconds"]["annotate"]["median"],
        "scan_cells_per_second": warm["cells_per_s"],
        "noop_rerun_seconds": stats["noop_rerun_seconds"]["median"],
        "per_cell_us": per_cell_us,
        "per_cell_us_warm": round(warm_us, 4),
        "per_dataset_ms": per_dataset_ms,
        "real_release_estimate_minutes": round(
            (REAL_CELLS * per_cell_us * 1e-6 + REAL_DATASETS * per_dataset_ms * 1e-3) / 60, 1
        ),
        "real_release_estimate_minutes_warm_scan": round(
            (REAL_CELLS * warm_us * 1e-6 + REAL_DATASETS * per_dataset_ms * 1e-3) / 60, 1
        ),
        "targets": targets(backend),
        "repeats": args.repeats,
        "warmups": args.warmups,
        "stats": stats,
    }


def targets(backend: str) -> dict[str, int]:
    """The targets of issue 5 (point 11) on ``backend``."""
    return {
        "curate_seconds": 90 if backend == "sqlite" else 120,
        "rerun_seconds": 10,
        "scan_cells_per_second": 2_000_000,
    }


def _rounded(seconds: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 2) for name, value in seconds.items()}


def release_source(args: argparse.Namespace, scratch: Path) -> tuple[str, dict[str, Any]]:
    """The release to curate (``--source``, or one built into ``scratch``) and what it is."""
    from demo.census.release import build_release, release_root

    if args.source:
        return args.source, {"source": args.source, "built": False}
    log(f"building {args.datasets} datasets x ~{args.cells} cells into {scratch}")
    built = build_release(
        str(scratch), BUILD_TAG, n_datasets=args.datasets, cells_per_dataset=args.cells
    )
    source = release_root(str(scratch), BUILD_TAG) + "/"
    return source, {
        "source": source,
        "built": True,
        "build_seconds": round(built.seconds, 1),
        "datasets": built.n_datasets,
        "cells": built.n_cells,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="a release root, .../cell-census/<tag>/")
    parser.add_argument("--datasets", type=int, default=20, help="without --source: datasets")
    parser.add_argument("--cells", type=int, default=200, help="without --source: mean cells")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help="template database; copies get _r<i> appended"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3, help="timed curations per backend")
    parser.add_argument("--warmups", type=int, default=1, help="untimed curations first")
    parser.add_argument("--noop-repeats", type=int, default=3, help="no-op reruns per curation")
    parser.add_argument("--scan-workers", default="1,2", help="worker counts of the warm scan")
    parser.add_argument("--scan-repeats", type=int, default=5, help="timed warm scans per count")
    common.add_out_argument(parser, "curation")
    args = parser.parse_args()
    common.check_repeats(parser, args)
    for option in ("noop_repeats", "scan_repeats", "workers"):
        if getattr(args, option) < 1:
            flag = "--" + option.replace("_", "-")
            parser.error(f"{flag} must be at least 1 (got {getattr(args, option)}).")
    args.scan_workers = common.parse_worker_counts(parser, "--scan-workers", args.scan_workers)
    args.backends = common.parse_backends(parser, args.backends)
    return args


def main() -> None:
    args = parse_args()
    home = common.isolate_home("curation-bench")
    import registry as ln

    ln.setup()  # Django, before the curation modules (they import the models)
    from django.db import connections

    from curation import steps
    from curation.manifest import ReleaseRoot
    from registry.accessors.backends import backend_for

    pg_url = args.pg_url if "postgresql" in args.backends else None
    report = common.Report("curation", args.out, pg_url)
    scratch = home / "release"
    try:
        source, release = release_source(args, scratch)
        root = ReleaseRoot.parse(source)
        backend = backend_for(steps.source_storage(root))
        scan = scan_figures(backend.uri(root.soma_key), backend.tiledb_config(), args)
        result: dict[str, Any] = {
            "release": {**release, "cells": scan["cells"], "datasets": scan["datasets"]},
            "workers": args.workers,
            "real_release": {"cells": REAL_CELLS, "datasets": REAL_DATASETS},
            "lamindb_reported_hours": LAMINDB_HOURS,
            "obs_scan_warm": scan,
            "method": {
                "fresh_instance": "a copy of an instance with the ontologies imported (untimed)",
                "steps": "curation.steps.STEPS replaced by timing wrappers during the call",
                "per_dataset_ms": "(curate_release - its annotate step) / datasets",
                "per_cell_us": "annotate step (scan incl. worker start) / cells",
                "per_cell_us_warm": "1 / warm scan rate with the most workers",
            },
        }
        for name in args.backends:
            log(f"== {name}")
            result[name] = backend_figures(name, source, args, scan, home)
    finally:
        connections.close_all()
        if pg_url:  # the template and any copy a failure left behind
            for suffix in ["", *(f"_r{i}" for i in range(args.warmups + args.repeats))]:
                try:
                    common.drop_database(f"{pg_url}{suffix}")
                except Exception as exc:  # noqa: BLE001 - said, and the run's own error wins
                    log(f"could not drop {pg_url}{suffix}: {exc}; drop it by hand (psql)")
    report.finish(result)


if __name__ == "__main__":
    main()
