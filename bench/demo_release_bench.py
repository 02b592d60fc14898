"""Benchmark of the demo release builder (issue 4: 100 datasets x 2,000 cells in <= 2 min).

Builds a first release and then the next one (``--previous``) into a temporary local folder
with the default number of worker processes, and reports wall-clock times, cells, bytes and the
per-dataset and per-cell costs. One JSON object goes to stdout. Run from the repository root::

    /tmp/venv0/bin/python bench/demo_release_bench.py [--datasets 100] [--cells 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")

from demo.census.release import build_release  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--cells", type=int, default=2000, help="mean cells per dataset")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dest = Path(tempfile.mkdtemp(prefix="demo-release-bench-"))
    try:
        first = build_release(
            str(dest),
            "2024-07-01",
            n_datasets=args.datasets,
            cells_per_dataset=args.cells,
            seed=args.seed,
            workers=args.workers,
        )
        second = build_release(str(dest), "2025-01-30", previous="2024-07-01", workers=args.workers)
        soma_bytes = sum(
            p.stat().st_size for p in (dest / "cell-census" / "2025-01-30" / "soma").rglob("*")
        )
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "workers": args.workers or os.cpu_count(),
        "first_release": {
            "datasets": first.n_datasets,
            "cells": first.n_cells,
            "h5ad_mb": round(first.h5ad_bytes / 1e6, 1),
            "seconds": round(first.seconds, 2),
            "ms_per_dataset": round(1000 * first.seconds / first.n_datasets, 1),
            "us_per_cell": round(1e6 * first.seconds / first.n_cells, 2),
            "target_seconds": 120,
        },
        "next_release": {
            "datasets": second.n_datasets,
            "cells": second.n_cells,
            "copied_h5ads": second.copied,
            "seconds": round(second.seconds, 2),
            "soma_mb": round(soma_bytes / 1e6, 1),
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
