"""Benchmark of the obs scan of the annotate step (issue 5: the scan sustains >= 2 M cells/s).

Builds a demo release of about 2 M cells (``--datasets 200 --cells 10000``; a few minutes) into a
temporary folder, or reuses one (``--store``: a release folder ``.../cell-census/<tag>``, its
``soma`` folder, or a ``--dest`` folder holding one release), and times
``curation.annotate.scan_store`` with the local executor for each ``--workers`` count (the pool
is started and warmed before the clock starts).

Two layouts of the same cells are timed:

- ``as_built``: the store as the demo builder writes it (obs strings as plain ``large_string``,
  one obs fragment per write batch);
- ``census_format``: the counted obs columns rewritten the way Census builds since 2024-04-01
  store them (string columns as dictionaries, i.e. TileDB enumerations) in one fragment; only
  ``census_info/organisms`` and the experiments' obs are copied.

Both scans must give identical counts. One JSON object goes to stdout, progress to stderr. Run
from the repository root::

    /tmp/venv0/bin/python bench/obs_scan_bench.py [--store PATH] [--datasets 200] [--cells 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import tiledbsoma as soma  # noqa: E402

from curation.annotate import scan_store  # noqa: E402
from curation.executors import make_executor  # noqa: E402
from curation.features import DATASET_COLUMN, OBS_FEATURES, PRIMARY_COLUMN  # noqa: E402
from demo.census.release import build_release  # noqa: E402

TARGET = 2e6
TAG = "2025-01-30"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def find_soma(path: Path) -> Path:
    """The SOMA store under ``path`` (a soma folder, a release folder, or a dest folder)."""
    for candidate in (path, path / "soma", *sorted(path.glob("cell-census/*/soma"))):
        if (candidate / "census_info").exists():
            return candidate
    raise SystemExit(f"No SOMA store (census_info) found at or under {path}.")


def store_facts(uri: str) -> dict:
    """Cells, experiments and obs fragments of a store."""
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


def _write_frame(collection: soma.Collection, uri: str, key: str, table: pa.Table) -> None:
    """``table`` as a new SOMA DataFrame ``key`` of ``collection``.

    Created at its URI and then added: the dictionary values (enumerations) of a frame made
    with ``add_new_dataframe`` and written through that handle read back empty (tiledbsoma
    2.3).
    """
    domain = [(0, max(table.num_rows, 1) - 1)]
    soma.DataFrame.create(f"{uri}/{key}", schema=table.schema, domain=domain).close()
    with soma.DataFrame.open(f"{uri}/{key}", "w") as frame:
        frame.write(table)
    collection.set(key, soma.DataFrame.open(f"{uri}/{key}"), use_relative_uri=True)


def _as_dictionary(column: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A string column as a dictionary (int32 codes, as the Census builder writes them)."""
    if not pa.types.is_large_string(column.type):
        return column
    encoded = pc.dictionary_encode(column.combine_chunks())
    return pa.DictionaryArray.from_arrays(encoded.indices.cast(pa.int32()), encoded.dictionary)


def census_format_copy(source: str, dest: str) -> None:
    """``census_info/organisms`` and the counted obs columns of ``source``, string columns as
    dictionaries (TileDB enumerations), one fragment per experiment."""
    columns = ["soma_joinid", DATASET_COLUMN, PRIMARY_COLUMN, *(f.obs_column for f in OBS_FEATURES)]
    with soma.open(source) as census, soma.Collection.create(dest) as root:
        info = root.add_new_collection("census_info")
        organisms = census["census_info"]["organisms"].read().concat()
        _write_frame(info, f"{dest}/census_info", "organisms", organisms)
        data = root.add_new_collection("census_data")
        for name in census["census_data"]:
            obs = census["census_data"][name].obs.read(column_names=columns).concat()
            table = pa.table({c: _as_dictionary(obs.column(c)) for c in columns})
            experiment = data.add_new_collection(name, soma.Experiment)
            _write_frame(experiment, f"{dest}/census_data/{name}", "obs", table)


def time_scan(uri: str, workers: int, chunk_rows: int, repeats: int) -> tuple[dict, dict]:
    """Best wall-clock seconds of ``repeats`` scans on a warm local pool, and the counts.

    With one worker the scan runs in this process, so its CPU time (all threads) is the whole
    cost of the scan: cells per CPU-second do not depend on what else the machine runs.
    """
    best, cpu, counts = float("inf"), float("inf"), {}
    with make_executor("local", workers=workers) as executor:
        list(executor.map(abs, range(4 * workers)))  # start the processes before timing
        for _ in range(repeats):
            started, started_cpu = time.perf_counter(), time.process_time()
            counts = scan_store(uri, {}, executor, chunk_rows=chunk_rows)
            best = min(best, time.perf_counter() - started)
            cpu = min(cpu, time.process_time() - started_cpu)
    timing = {"seconds": round(best, 3)}
    if workers == 1:
        timing["cpu_seconds"] = round(cpu, 3)
    return timing, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, help="reuse this release instead of building one")
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--cells", type=int, default=10000, help="mean cells per dataset")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--chunk-rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the built release (printed)")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="obs-scan-bench-"))
    build_seconds = None
    load_before = os.getloadavg()[0]
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
        census_format = scratch / "census-format-soma"
        log(f"writing the census-format copy of {store} obs")
        census_format_copy(str(store), str(census_format))
        facts = store_facts(str(store))
        results, reference = [], None
        for layout, uri in (("as_built", str(store)), ("census_format", str(census_format))):
            for n in workers:
                timing, counts = time_scan(uri, n, args.chunk_rows, args.repeats)
                reference = reference if reference is not None else counts
                if counts != reference:
                    raise SystemExit(f"{layout} with {n} workers counted differently")
                rate = facts["cells"] / timing["seconds"]
                result = {"layout": layout, "workers": n, **timing, "cells_per_s": round(rate)}
                if "cpu_seconds" in timing:
                    result["cells_per_cpu_s"] = round(facts["cells"] / timing["cpu_seconds"])
                result["meets_target"] = rate >= TARGET
                results.append(result)
                log(json.dumps(results[-1]))
    finally:
        if args.keep and args.store is None:
            log(f"kept {scratch}")
            shutil.rmtree(scratch / "census-format-soma", ignore_errors=True)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                },
                "store": {**facts, "build_seconds": build_seconds},
                "chunk_rows": args.chunk_rows,
                "repeats": args.repeats,
                "target_cells_per_s": TARGET,
                "cells": facts["cells"],
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
