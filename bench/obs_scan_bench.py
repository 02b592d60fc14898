"""Benchmark of the obs scan of the annotate step (issue 5: the scan sustains >= 2 M cells/s).

Builds a demo release of about 2 M cells (``--datasets 200 --cells 10000``; a few minutes) into a
temporary folder, or reuses one (``--store``: a release folder ``.../cell-census/<tag>``, its
``soma`` folder, or a folder holding one release), and times ``curation.annotate.scan_store`` of
the store as built (its obs strings dictionary-encoded, as Census builds store them) on a warm
local pool for each ``--workers`` count: the pool is started and used for ``--warmups`` untimed
scans, then ``--repeats`` scans are timed. Every scan must give the same counts.

Each result has the median seconds and cells/s (and, with one worker, cells per CPU-second: that
scan runs in this process) and their n, min, median, max, mean and raw values under ``stats``.
One JSON object goes to stdout and to ``--out`` (default ``bench/results/obs_scan-<date>.json``),
progress to stderr. Run from the repository root::

    .venv/bin/python bench/obs_scan_bench.py [--store PATH] [--datasets 200] [--cells 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Only light imports at the top: the scan's worker processes are spawned, and each imports this
# file again (as __mp_main__); the rest is imported by the functions that use it.
from bench import common  # noqa: E402

TARGET = 2e6
TAG = "2025-01-30"

log = common.logger("obs-scan-bench")


def find_soma(path: Path) -> Path:
    """The SOMA store under ``path`` (a soma folder, a release folder, or a dest folder)."""
    for candidate in (path, path / "soma", *sorted(path.glob("cell-census/*/soma"))):
        if (candidate / "census_info").exists():
            return candidate
    raise SystemExit(
        f"No SOMA store (census_info) found at or under {path}: pass --store a release folder "
        "(.../cell-census/<tag>), its soma folder, or a folder holding one release."
    )


def store_facts(uri: str) -> dict:
    """Cells, experiments and obs fragments of a store."""
    import tiledbsoma as soma

    cells, fragments, experiments = 0, 0, []
    with soma.open(uri) as census:
        for name in census["census_data"]:
            obs = census["census_data"][name].obs
            cells += obs.count
            experiments.append(name)
            fragments += len(list((Path(uri) / "census_data" / name / "obs").glob("__fragments/*")))
        datasets = census["census_info"]["datasets"].count
    return {
        "cells": cells,
        "datasets": datasets,
        "experiments": experiments,
        "obs_fragments": fragments,
    }


def obs_column_types(uri: str) -> dict[str, str]:
    """The arrow types of the counted obs columns of the first experiment (dictionary-encoded
    strings show as ``dictionary<values=string, indices=int32>``)."""
    import tiledbsoma as soma

    from curation.features import DATASET_COLUMN, OBS_FEATURES, PRIMARY_COLUMN

    columns = [DATASET_COLUMN, PRIMARY_COLUMN, *(f.obs_column for f in OBS_FEATURES)]
    with soma.open(uri) as census:
        first = next(iter(census["census_data"]))
        schema = census["census_data"][first].obs.schema
    return {name: str(schema.field(name).type) for name in columns if name in schema.names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="reuse this release instead of building one")
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--cells", type=int, default=10000, help="mean cells per dataset")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--chunk-rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5, help="timed scans per worker count")
    parser.add_argument("--warmups", type=int, default=1, help="untimed scans on the pool first")
    parser.add_argument("--keep", action="store_true", help="keep the built release (printed)")
    common.add_out_argument(parser, "obs_scan")
    args = parser.parse_args()
    common.check_repeats(parser, args)
    workers = common.parse_worker_counts(parser, "--workers", args.workers)
    common.isolate_home("obs-scan-bench")  # no instance is needed; never the user's
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
    from demo.census.release import build_release

    report = common.Report("obs_scan", args.out)
    scratch = Path(tempfile.mkdtemp(prefix="obs-scan-bench-"))
    build_seconds = None
    try:
        if args.store is None:
            log(f"building {args.datasets} datasets x ~{args.cells} cells into {scratch}")
            summary = build_release(
                str(scratch), TAG, n_datasets=args.datasets, cells_per_dataset=args.cells
            )
            build_seconds = round(summary.seconds, 1)
            store = find_soma(scratch)
        else:
            store = find_soma(args.store)
        facts = store_facts(str(store))
        types = obs_column_types(str(store))
        results, reference = [], None
        for n in workers:
            log(f"{n} worker(s): {args.warmups} + {args.repeats} scans of {store}")
            timing = common.warm_scan(
                str(store), {}, n, args.repeats, args.warmups, args.chunk_rows
            )
            if reference is not None and timing.counts != reference:
                raise SystemExit(
                    f"The scan of {store} with {n} workers counted differently than with "
                    f"{workers[0]}: a bug in curation.annotate."
                )
            reference = timing.counts
            figures = timing.figures()
            if figures["cells"] != facts["cells"]:
                raise SystemExit(
                    f"The scan of {store} counted {figures['cells']} cells, the store holds "
                    f"{facts['cells']}: a bug in curation.annotate."
                )
            results.append(
                {"layout": "as_built", **figures, "meets_target": figures["cells_per_s"] >= TARGET}
            )
            log(f"  median {figures['seconds']} s, {figures['cells_per_s']:,} cells/s")
    finally:
        if args.keep and args.store is None:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    report.finish(
        {
            "store": {
                **facts,
                "path": str(store) if args.store is not None else None,
                "build_seconds": build_seconds,
                "obs_column_types": types,
                "plain_string_columns": [
                    name for name, kind in types.items() if kind in ("string", "large_string")
                ],
            },
            "chunk_rows": args.chunk_rows,
            "repeats": args.repeats,
            "warmups": args.warmups,
            "target_cells_per_s": TARGET,
            "cells": facts["cells"],
            "identical_counts_across_workers": True,
            "results": results,
        }
    )


if __name__ == "__main__":
    main()
