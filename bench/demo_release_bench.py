"""Benchmark of the demo release builder (issue 4: 100 datasets x 2,000 cells in <= 2 min).

``--repeats`` times, each into a new temporary local folder: a first release is built, then the
next one (``--previous``), with the default number of worker processes; wall-clock times,
cells, bytes and the per-dataset and per-cell costs are reported. Flat keys are medians; ``stats``
holds n, min, median, max, mean and the raw values. One JSON object goes to stdout and to
``--out`` (default ``bench/results/demo_release-<date>.json``). Run from the repository root::

    .venv/bin/python bench/demo_release_bench.py [--datasets 100] [--cells 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Only light imports at the top: the builder's worker processes are spawned, and each imports
# this file again (as __mp_main__); the builder is imported where it is used.
from bench import common  # noqa: E402

if TYPE_CHECKING:
    from demo.census.release import ReleaseSummary

FIRST, NEXT = "2024-07-01", "2025-01-30"

log = common.logger("demo-release-bench")


def build_both(args: argparse.Namespace) -> tuple[ReleaseSummary, ReleaseSummary, int]:
    """The first and the next release in a new folder; and the next release's SOMA bytes."""
    from demo.census.release import build_release

    dest = Path(tempfile.mkdtemp(prefix="demo-release-bench-"))
    try:
        first = build_release(
            str(dest),
            FIRST,
            n_datasets=args.datasets,
            cells_per_dataset=args.cells,
            seed=args.seed,
            workers=args.workers,
        )
        second = build_release(str(dest), NEXT, previous=FIRST, workers=args.workers)
        soma = dest / "cell-census" / NEXT / "soma"
        soma_bytes = sum(p.stat().st_size for p in soma.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    return first, second, soma_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--cells", type=int, default=2000, help="mean cells per dataset")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="builds of both releases")
    common.add_out_argument(parser, "demo_release")
    args = parser.parse_args()
    common.check_repeats(parser, args)
    common.isolate_home("demo-release-bench")  # no instance is needed; never the user's
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
    report = common.Report("demo_release", args.out)
    builds = []
    for i in range(args.repeats):
        log(f"repeat {i + 1} of {args.repeats}: {args.datasets} datasets x ~{args.cells} cells")
        builds.append(build_both(args))
        log(f"  first {builds[-1][0].seconds:.1f} s, next {builds[-1][1].seconds:.1f} s")
    first, second, soma_bytes = builds[-1]
    first_s = common.summarize([b[0].seconds for b in builds])
    next_s = common.summarize([b[1].seconds for b in builds])
    result: dict[str, Any] = {
        "workers": args.workers or os.cpu_count(),
        "repeats": args.repeats,
        "first_release": {
            "datasets": first.n_datasets,
            "cells": first.n_cells,
            "h5ad_mb": round(first.h5ad_bytes / 1e6, 1),
            "seconds": first_s["median"],
            "ms_per_dataset": round(1000 * first_s["median"] / first.n_datasets, 1),
            "us_per_cell": round(1e6 * first_s["median"] / first.n_cells, 2),
            "target_seconds": 120,
            "stats": {"seconds": first_s},
        },
        "next_release": {
            "datasets": second.n_datasets,
            "cells": second.n_cells,
            "copied_h5ads": second.copied,
            "seconds": next_s["median"],
            "soma_mb": round(soma_bytes / 1e6, 1),
            "stats": {"seconds": next_s},
        },
        "identical_builds": len({(b[0].n_cells, b[1].n_cells, b[1].copied) for b in builds}) == 1,
    }
    report.finish(result)


if __name__ == "__main__":
    main()
