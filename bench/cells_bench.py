"""Benchmark of the cell-level summary, ``ln.Cells`` (issue 10, point 6), SQLite and PostgreSQL.

On a curated demo release (the full CELLxGENE ontologies imported, untimed; the curation itself
timed step by step), per backend:

- the question "primary cells of T cell or any subtype, in lung, by dataset" answered by
  ``ln.Cells`` (``CellType.get`` + ``descendants`` + ``filter`` + ``summarize(by=["dataset"])``,
  all timed) and, in the same run, the Census way: a SOMA obs ``value_filter`` scan of every
  experiment listing the subtypes' ids (the list computed untimed; the store opened once,
  untimed), then a pandas group-by, the two ways alternating in blocks of 5 runs (the first
  ``ln.Cells`` answer after a scan also reported alone). Both answers must be equal (the bench
  stops otherwise);
- the summary table's rows and bytes (table and indexes: SQLite ``dbstat``, PostgreSQL
  ``pg_relation_size``), and their extrapolation to the real LTS release (162 M cells);
- ``to_anndata`` of a selection of about 1% of the human cells (see
  :func:`one_percent_selection`), with the bytes the process reads (``rchar``: all of the call,
  and the X part alone) against the X array's bytes on disk.

Once per run (no database): the rows of the summary with and without ``donor_id`` (a pandas
group-by over the store's obs, which must equal the rows curation wrote) and how rows grow with
the cells (subsamples of 1/8, 1/4, 1/2 and all cells), for the extrapolation.

One JSON object goes to stdout and to ``--out`` (default ``bench/results/cells-<date>.json``),
progress to stderr. Build the LTS-size release once (about 10 minutes), then, from the
repository root::

    .venv/bin/python manage.py build_demo_release --dest /tmp/cells-bucket --tag 2025-11-08 \\
        --datasets 1845 --cells-per-dataset 1084
    .venv/bin/python bench/cells_bench.py --source /tmp/cells-bucket/cell-census/2025-11-08/

Without ``--source`` a release of ``--datasets`` x ``--cells`` is built into a temporary folder
first (a quick check: ``--datasets 20 --cells 200 --repeats 3 --backends sqlite``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Light imports only: the curation's worker processes are spawned and import this file again.
from bench import common  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/cellregistry_cells_bench"
REAL_CELLS = 162_000_000
REAL_DATASETS = 1845
BUILD_TAG = "2025-11-08"
CELL_TYPE, TISSUE = "T cell", "lung"
TARGETS_MS = {"sqlite": 20, "postgresql": 40}
TARGET_SPEEDUP = 50
TARGET_X_READ_FRACTION = 0.05
SELECTION_FRACTION = 0.01
#: runs of one way before the other way runs (the timed answers alternate in blocks)
BLOCK = 5
#: obs columns of a combination (the summarized features; the rows are also counted without
#: donor_id, for the decision to keep it)
COMBINATION_COLUMNS = (
    "dataset_id",
    "is_primary_data",
    "cell_type_ontology_term_id",
    "tissue_ontology_term_id",
    "tissue_general_ontology_term_id",
    "disease_ontology_term_id",
    "assay_ontology_term_id",
    "development_stage_ontology_term_id",
    "self_reported_ethnicity_ontology_term_id",
    "sex_ontology_term_id",
    "suspension_type",
    "tissue_type",
    "donor_id",
)

log = common.logger("cells-bench")


# --- the two ways of answering the question -----------------------------------------------------


def question_ln() -> dict[str, int]:
    """``ln.Cells``: primary cells of T cell or any subtype, in lung, by dataset."""
    import registry as ln

    t_cells = ln.bionty.CellType.get(name=CELL_TYPE).descendants(include_self=True)
    cells = ln.Cells.filter(cell_type__in=t_cells, tissue__name=TISSUE, is_primary_data=True)
    frame = cells.summarize(by=["dataset"])
    return dict(zip(frame["dataset"], frame["n_cells"].tolist(), strict=True))


def census_filter() -> str:
    """The Census way's obs filter: the subtypes' ids listed, lung, primary."""
    import registry as ln

    t_cells = ln.bionty.CellType.get(name=CELL_TYPE).descendants(include_self=True)
    ids = sorted(t_cells.values_list("ontology_id", flat=True))
    lung = ln.bionty.Tissue.get(name=TISSUE).ontology_id
    return (
        f"cell_type_ontology_term_id in {ids} and tissue_ontology_term_id == '{lung}' "
        "and is_primary_data == True"
    )


def question_census(experiments: list[Any], value_filter: str) -> dict[str, int]:
    """The Census way: an obs scan of every experiment with the filter, then a group-by."""
    import pandas as pd

    frames = [
        experiment.obs.read(value_filter=value_filter, column_names=["dataset_id"])
        .concat()
        .to_pandas()
        for experiment in experiments
    ]
    obs = pd.concat(frames, ignore_index=True)
    counts = obs.groupby("dataset_id", observed=True).size()
    return {str(k): int(v) for k, v in counts.items()}


def questions(args: argparse.Namespace, uri: str, config: dict[str, str]) -> dict[str, Any]:
    """Both ways, ``--repeats`` times each after ``--warmups``, in alternating blocks of
    :data:`BLOCK` runs (as the growth bench alternates its sizes): each way is timed as it runs
    in a loop, the machine's drift is shared. The first ``ln.Cells`` answer of each block, right
    after a Census scan (a hundred MB of obs through the caches), is also reported alone:
    ``ln_cells_after_scan_ms``. Equal answers."""
    import tiledbsoma

    value_filter = census_filter()
    context = tiledbsoma.SOMATileDBContext(tiledb_config=config)
    with tiledbsoma.open(uri, context=context) as census:
        experiments = [census["census_data"][name] for name in census["census_data"]]
        ours, theirs, after_scan = common.Timing(), common.Timing(), common.Timing()
        for _ in range(args.warmups):
            ours.result = question_ln()
            theirs.result = question_census(experiments, value_filter)
        for block in range(0, args.repeats, BLOCK):
            runs = min(BLOCK, args.repeats - block)
            for timing, run in (
                (ours, question_ln),
                (theirs, lambda: question_census(experiments, value_filter)),
            ):
                for i in range(runs):
                    started = time.perf_counter()
                    timing.result = run()
                    timing.seconds.append(time.perf_counter() - started)
                    if timing is ours and i == 0:
                        after_scan.seconds.append(timing.seconds[-1])
    if ours.result != theirs.result:
        raise SystemExit(
            f"ln.Cells and the Census scan disagree on '{CELL_TYPE} in {TISSUE}': "
            f"{len(ours.result)} vs {len(theirs.result)} datasets, {sum(ours.result.values())} "
            f"vs {sum(theirs.result.values())} cells. A bug in the summary or its query."
        )
    return {
        "ln_cells_ms": ours.median(1000),
        "census_scan_ms": theirs.median(1000),
        "speedup": round(theirs.median() / ours.median(), 1),
        "ln_cells_after_scan_ms": after_scan.median(1000),
        "speedup_after_scan": round(theirs.median() / after_scan.median(), 1),
        "block": BLOCK,
        "datasets": len(ours.result),
        "cells": sum(ours.result.values()),
        "same_numbers": True,
        "census_value_filter_chars": len(value_filter),
        "stats": {
            "ln_cells_ms": ours.stats(1000),
            "census_scan_ms": theirs.stats(1000),
            "ln_cells_after_scan_ms": after_scan.stats(1000),
        },
    }


# --- the table --------------------------------------------------------------------------------


def table_bytes(alias: str) -> dict[str, int]:
    """Bytes of the summary table and of its indexes."""
    from django.db import connections

    from ontologies.models import Cells

    table = Cells._meta.db_table
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_relation_size(%s), pg_indexes_size(%s)", [table, table])
            data, indexes = cursor.fetchone()
        else:
            cursor.execute(
                "SELECT name, SUM(pgsize) FROM dbstat WHERE name = %s OR name IN "
                "(SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = %s) "
                "GROUP BY name",
                [table, table],
            )
            sizes = dict(cursor.fetchall())
            data = sizes.pop(table, 0)
            indexes = sum(sizes.values())
    return {"table_bytes": int(data), "index_bytes": int(indexes), "bytes": int(data + indexes)}


# --- to_anndata of ~1% --------------------------------------------------------------------------


def one_percent_selection() -> tuple[Any, str]:
    """About 1% of the human cells: the issue's question (primary T cells of lung) when it
    holds 0.5-2% of them; else, of the human cells of one disease, tissue, assay or development
    stage holding 0.5-2%, the one whose datasets hold the fewest cells (X is stored dataset by
    dataset: a selection spread over many datasets reads many tiles)."""
    import registry as ln

    human = {"organism__ontology_id": "NCBITaxon:9606"}
    datasets = ln.Cells.filter(**human).summarize(by=["dataset"])
    total = int(datasets["n_cells"].sum())
    size = dict(zip(datasets["dataset"], datasets["n_cells"], strict=True))
    t_cells = ln.bionty.CellType.get(name=CELL_TYPE).descendants(include_self=True)
    question = ln.Cells.filter(
        cell_type__in=t_cells, tissue__name=TISSUE, is_primary_data=True, **human
    )
    share = question.count() / total
    if 0.005 <= share <= 0.02:
        return question, f"primary human {CELL_TYPE} or any subtype, in {TISSUE}"
    candidates = []
    for field in ("disease", "tissue", "assay", "development_stage"):
        path = f"{field}__ontology_id"
        frame = ln.Cells.filter(**human).summarize(by=[path, "dataset"]).dropna()
        for term, group in frame.groupby(path):
            fraction = group["n_cells"].sum() / total
            spread = sum(size[d] for d in group["dataset"]) / total
            candidates.append((not 0.005 <= fraction <= 0.02, spread, field, term, fraction))
    _, spread, field, term, fraction = min(candidates)
    selection = ln.Cells.filter(**{f"{field}__ontology_id": term}, **human)
    return selection, (
        f"human cells of {field} {term} ({fraction:.2%} of the human cells, in datasets holding "
        f"{spread:.2%}; the issue's question holds {share:.2%})"
    )


def x_bytes_on_disk(store: Path, organism: str = "homo_sapiens") -> int:
    folder = store / "census_data" / organism / "ms" / "RNA" / "X" / "raw"
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def bytes_read() -> int:
    """Bytes this process has read so far (``rchar`` of /proc/self/io: every read call)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "rchar":
            return int(value)
    raise SystemExit("/proc/self/io has no rchar: bytes read cannot be measured here.")


def to_anndata_figures(store: Path, uri: str, config: dict[str, str]) -> dict[str, Any]:
    """``to_anndata`` of about 1% of the human cells: time, cells, and the bytes read."""
    import tiledbsoma

    from ontologies.cells import _read_frame, _read_rows

    selection, name = one_percent_selection()
    expected = selection.count()
    before = bytes_read()
    started = time.perf_counter()
    adata = selection.to_anndata()
    seconds = time.perf_counter() - started
    total_read = bytes_read() - before
    # X alone: the selection's rows of X, read as to_anndata reads them
    context = tiledbsoma.SOMATileDBContext(tiledb_config=config)
    with tiledbsoma.open(uri, context=context) as census:
        experiment = census["census_data"]["homo_sapiens"]
        obs = _read_frame(experiment.obs, selection.obs_value_filter(), ["soma_joinid"])
        var = _read_frame(experiment.ms["RNA"].var, None, ["soma_joinid"])
        before = bytes_read()
        matrix = _read_rows(experiment.ms["RNA"].X["raw"], obs["soma_joinid"].to_numpy(), var)
        x_read = bytes_read() - before
        n_human = experiment.obs.count
    x_disk = x_bytes_on_disk(store)
    if adata.n_obs != expected:
        raise SystemExit(f"to_anndata gave {adata.n_obs} cells, count() {expected}.")
    return {
        "selection": name,
        "cells": int(adata.n_obs),
        "fraction_of_human_cells": round(adata.n_obs / n_human, 4),
        "nnz": int(matrix.nnz),
        "seconds": round(seconds, 3),
        "x_bytes_on_disk": x_disk,
        "bytes_read_total": total_read,
        "bytes_read_x": x_read,
        "x_read_fraction": round(x_read / x_disk, 4),
        "total_read_fraction_of_x": round(total_read / x_disk, 4),
        "target_x_read_fraction": TARGET_X_READ_FRACTION,
    }


# --- rows: with and without donor, growth with cells ------------------------------------------


def store_obs(uri: str, config: dict[str, str]) -> pd.DataFrame:
    """The combination columns and donor_id of every cell of the store (all experiments)."""
    import pandas as pd
    import tiledbsoma

    context = tiledbsoma.SOMATileDBContext(tiledb_config=config)
    frames = []
    with tiledbsoma.open(uri, context=context) as census:
        for name in census["census_data"]:
            obs = census["census_data"][name].obs
            columns = [c for c in COMBINATION_COLUMNS if c in obs.schema.names]
            frame = obs.read(column_names=columns).concat().to_pandas()
            frame["organism"] = name
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def row_figures(obs: pd.DataFrame, seed: int) -> dict[str, Any]:
    """Combinations with and without donor_id, and their growth with the cells."""
    import numpy as np

    columns = [*COMBINATION_COLUMNS, "organism"]
    codes = obs[columns].apply(lambda c: c.astype("category").cat.codes)

    def rows(frame: pd.DataFrame, with_donor: bool) -> int:
        keys = columns if with_donor else [c for c in columns if c != "donor_id"]
        return int(frame.groupby(keys, sort=False).ngroups)

    rng = np.random.default_rng(seed)
    growth = []
    for fraction in (0.125, 0.25, 0.5, 1.0):
        sample = codes if fraction == 1.0 else codes[rng.random(len(codes)) < fraction]
        growth.append(
            {
                "fraction": fraction,
                "cells": len(sample),
                "rows": rows(sample, False),
                "rows_with_donor": rows(sample, True),
            }
        )
    first, last = growth[0], growth[-1]
    ratio = np.log(last["cells"] / first["cells"])
    exponent = float(np.log(last["rows_with_donor"] / first["rows_with_donor"]) / ratio)
    return {
        "rows_without_donor": last["rows"],
        "rows_with_donor": last["rows_with_donor"],
        "donor_factor": round(last["rows_with_donor"] / last["rows"], 3),
        "growth": growth,
        "growth_exponent": round(exponent, 3),
    }


def extrapolation(rows: int, cells: int, datasets: int, bytes_: int, exponent: float) -> dict:
    """The summary of the real LTS release (162 M cells in 1,845 datasets) from this one."""
    per_row = bytes_ / rows
    per_dataset_scale = (REAL_CELLS / REAL_DATASETS) / (cells / datasets)
    fitted = rows * REAL_DATASETS / datasets * per_dataset_scale**exponent
    linear = rows * REAL_CELLS / cells
    return {
        "bytes_per_row": round(per_row, 1),
        "rows_fitted": round(fitted),
        "bytes_fitted": round(fitted * per_row),
        "rows_linear_upper_bound": round(linear),
        "bytes_linear_upper_bound": round(linear * per_row),
        "method": "rows per dataset grow like (cells per dataset)^growth_exponent (fitted on "
        "subsamples of this release's cells): rows x 1845 / datasets x (87,805 / cells per "
        "dataset)^exponent; the upper bound grows rows like the cells (rows x 162 M / cells)",
    }


# --- per backend --------------------------------------------------------------------------------


def backend_figures(
    backend: str, source: str, args: argparse.Namespace, workdir: Path, rows_check: int
) -> dict[str, Any]:
    from curation import steps
    from curation.manifest import ReleaseRoot
    from ontologies.importers.guide import import_guide
    from ontologies.models import Cells
    from registry.accessors.backends import backend_for

    pg_url = args.pg_url if backend == "postgresql" else ""
    db = common.fresh_instance(backend, f"cells-bench-{backend}", pg_url, workdir)
    log(f"{backend}: importing the ontologies (not timed)")
    import_guide(using=db.alias)
    log(f"{backend}: curate_release")
    started = time.perf_counter()
    with common.timed_steps() as step_seconds:
        summary = steps.curate_release(source, using=db.alias, workers=args.workers)
    curate_s = time.perf_counter() - started
    root = ReleaseRoot.parse(source)
    storage = backend_for(steps.source_storage(root))
    uri, config = storage.uri(root.soma_key), storage.tiledb_config()
    rows = Cells.objects.filter().n_rows()
    if rows != rows_check:
        raise SystemExit(f"The summary has {rows} rows, the obs has {rows_check} combinations.")
    log(f"{backend}: {rows:,} summary rows; the question, {args.repeats} repeats")
    result: dict[str, Any] = {
        "database": common.database_version(db.alias),
        "datasets": summary.added,
        "curate_seconds": round(curate_s, 2),
        "steps_seconds": {k: round(v, 2) for k, v in step_seconds.items()},
        "summary_rows": rows,
        **table_bytes(db.alias),
        "question": questions(args, uri, config),
    }
    result["question"]["target_ms"] = TARGETS_MS[backend]
    result["question"]["target_speedup"] = TARGET_SPEEDUP
    if backend == args.backends[0] and root.storage_root.startswith("/"):
        log(f"{backend}: to_anndata of ~1% of the human cells")
        result["to_anndata_1pct"] = to_anndata_figures(Path(source) / "soma", uri, config)
    common.close_instance(db)
    if pg_url:
        common.drop_database(pg_url)
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="a local release root, .../cell-census/<tag>/")
    parser.add_argument("--datasets", type=int, default=20, help="without --source: datasets")
    parser.add_argument("--cells", type=int, default=200, help="without --source: mean cells")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="dropped and recreated")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=20, help="timed answers per way")
    parser.add_argument("--warmups", type=int, default=2, help="untimed answers first")
    parser.add_argument("--seed", type=int, default=0, help="of the subsamples")
    common.add_out_argument(parser, "cells")
    args = parser.parse_args()
    common.check_repeats(parser, args)
    args.backends = common.parse_backends(parser, args.backends)
    return args


def main() -> None:
    args = parse_args()
    home = common.isolate_home("cells-bench")
    import registry as ln

    ln.setup()
    from django.db import connections

    from curation import steps
    from curation.manifest import ReleaseRoot
    from demo.census.release import build_release, release_root
    from registry.accessors.backends import backend_for

    pg_url = args.pg_url if "postgresql" in args.backends else None
    report = common.Report("cells", args.out, pg_url)
    source = args.source
    release: dict[str, Any] = {"source": source, "built": False}
    if not source:
        log(f"building {args.datasets} datasets x ~{args.cells} cells")
        built = build_release(
            str(home / "release"), BUILD_TAG, n_datasets=args.datasets, cells_per_dataset=args.cells
        )
        source = release_root(str(home / "release"), BUILD_TAG) + "/"
        release = {"source": source, "built": True, "build_seconds": round(built.seconds, 1)}
    root = ReleaseRoot.parse(source)
    storage = backend_for(steps.source_storage(root))
    uri, config = storage.uri(root.soma_key), storage.tiledb_config()
    log("reading the store's obs for the row counts")
    obs = store_obs(uri, config)
    rows = row_figures(obs, args.seed)
    n_datasets = int(obs["dataset_id"].nunique())
    release.update(cells=len(obs), datasets=n_datasets)
    del obs
    result: dict[str, Any] = {"release": release, "workers": args.workers, "rows": rows}
    try:
        for name in args.backends:
            log(f"== {name}")
            figures = backend_figures(name, source, args, home, rows["rows_with_donor"])
            figures["real_lts"] = extrapolation(
                figures["summary_rows"],
                release["cells"],
                n_datasets,
                figures["bytes"],
                rows["growth_exponent"],
            )
            result[name] = figures
    finally:
        connections.close_all()
        if pg_url:
            try:
                common.drop_database(pg_url)
            except Exception as exc:  # noqa: BLE001 - said; the run's own error wins
                log(f"could not drop {pg_url}: {exc}; drop it by hand (psql)")
    result["real_lts"] = {"cells": REAL_CELLS, "datasets": REAL_DATASETS}
    result["method"] = {
        "ln_cells": "CellType.get + descendants + Cells.filter + summarize, all timed",
        "census_scan": "obs.read(value_filter) of every experiment + pandas group-by; the "
        "subtype id list computed and the store opened untimed",
        "bytes_read": "rchar of /proc/self/io around the call (every byte the process read: "
        "obs, var, X, the database); x: the X rows of the selection alone, read as to_anndata "
        "reads them",
    }
    report.finish(result)


if __name__ == "__main__":
    main()
