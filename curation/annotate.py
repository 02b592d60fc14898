"""Cell counts per dataset and term: what the annotate step links to each artifact.

For each dataset, every feature of the table of curated features (:mod:`curation.features`) maps
each of its values to a :class:`TermCount` (cells, and primary cells). The value is the ontology
term id for ontology features (``cell_type``, ``tissue``, ..., ``organism``) and the obs value
itself for ``suspension_type``, ``tissue_type`` and ``donor_id``.

Two sources give the same counts:

- :func:`scan_store`: one columnar scan of the SOMA obs of every experiment of a Census-like
  store. Each experiment's ``soma_joinid`` range is cut into chunks of ``chunk_rows`` rows; each
  chunk is a task of the executor (processes, or Ray) that opens the store itself, reads only the
  columns it counts for its range of rows, and returns the counts of that range; the driver
  merges them. No task, and not the driver, ever holds the whole obs.
- :func:`count_obs`: the obs of one dataset (e.g. read from its h5ad), for a dataset that is not
  in the store.

Counting is vectorised: each column is dictionary-encoded (or used as it is when the store
already holds it as a dictionary) and ``numpy.bincount`` counts the pairs (dataset, value), once
for all cells and once for primary cells. Multi-valued values (``"A || B"``) are split after
grouping: the combined value is counted once, and its counts are then added to each of its terms
(a cell of ``"A || B"`` counts for ``A`` and for ``B``; a term listed twice counts once). Only
the features the table marks multi-valued are split.

The values ``"unknown"`` and ``"na"`` (e.g. the ethnicity of mouse cells) are kept in the counts
like any other value: they are no ontology terms, and whether to link them is the caller's
decision.

The same pass also counts the cell-level summary (:data:`Combinations`): the cells of each
dataset per combination of the values of the summarized features (``features.SUMMARIZED``) and
``is_primary_data``, from the codes already computed for the per-feature counts. Multi-valued
values stay whole there (a cell of ``"A || B"`` is one cell, counted once).

This module is Django-free: it runs in executor workers.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from curation.features import (
    BY_NAME,
    DATASET_COLUMN,
    NAMES,
    OBS_FEATURES,
    PRIMARY_COLUMN,
    SUMMARIZED,
    split_terms,
)

if TYPE_CHECKING:
    from curation.executors import TaskExecutor

DEFAULT_CHUNK_ROWS = 1_000_000
#: up to this many (dataset, primary, value) combinations, one bincount counts them all
_DENSE_LIMIT = 1 << 22
#: stored dictionaries larger than this are renumbered over the values a batch has
_COMPACT_ABOVE = 64


class AnnotationError(ValueError):
    """Cells that cannot be counted (a missing or incomplete obs column, a bad store)."""


@dataclass(frozen=True)
class TermCount:
    """Cells of a dataset with a term, and how many of them are primary data."""

    n_cells: int
    n_primary_cells: int


#: feature -> value -> counts, for one dataset
DatasetCounts = dict[str, dict[str, TermCount]]
#: (dataset id, feature, unsplit value) -> [cells, primary cells], while counting
_Tally = dict[tuple[str, str, str], list[int]]
#: (dataset id, is_primary_data, value of each summarized feature) -> cells: the cell-level
#: summary. Values are as obs has them (term ids, unsplit); ``""`` for a feature a dataset's obs
#: lacks (``tissue_general`` in an h5ad).
Combinations = dict[tuple, int]
#: where each summarized feature's value sits in a combination key
SUMMARY_NAMES: tuple[str, ...] = tuple(f.name for f in SUMMARIZED)
#: keys of combinations are compacted (renumbered) before they could pass this
_KEY_LIMIT = 1 << 62


def obs_column(feature: str) -> str:
    """The obs column holding ``feature`` (``cell_type`` -> ``cell_type_ontology_term_id``)."""
    return BY_NAME[feature].obs_column


# --- vectorised counting ----------------------------------------------------------------------


def _codes(column: pa.ChunkedArray | pa.Array, name: str) -> tuple[np.ndarray, list[str], bool]:
    """Dictionary codes and the dictionary of a string column (nulls are an error).

    Returns:
        codes, dictionary, and whether every dictionary value occurs (true when encoded here;
        a column stored as a dictionary, e.g. a TileDB enumeration, has the whole enumeration).
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise AnnotationError(
            f"obs column {name!r} has {column.null_count} empty value(s): every cell needs one."
        )
    stored = pa.types.is_dictionary(column.type)
    if not stored:
        column = pc.dictionary_encode(column)
    indices = column.indices.to_numpy(zero_copy_only=False)  # int32 or int64, no copy
    if stored and len(indices) and int(indices.max()) >= len(column.dictionary):
        raise AnnotationError(
            f"obs column {name!r} is stored as a dictionary (enumeration) that lacks values "
            f"its cells use ({len(column.dictionary)} values): the store is damaged."
        )
    return indices, [str(v) for v in column.dictionary.to_pylist()], not stored


def _compact(codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes renumbered over the values that occur: (new codes, old code of each new code)."""
    used = np.flatnonzero(np.bincount(codes, minlength=n))
    if len(used) == n:
        return codes, used
    remap = np.zeros(n, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return remap[codes], used


def _pair_counts(
    groups: np.ndarray, n_datasets: int, values: np.ndarray, n_values: int, compact: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cells and primary cells per (dataset, value) pair that occurs.

    Args:
        groups: ``2 * dataset code + is_primary`` of each cell.
        n_datasets: dataset codes are below this.
        values: value code of each cell (below ``n_values``).
        compact: renumber the values that occur first (for large stored dictionaries).

    Returns:
        dataset codes, value codes, cells, primary cells (equal-length arrays).
    """
    if compact:
        values, used = _compact(values, n_values)
        n_values = len(used)
    else:
        used = np.arange(n_values)
    size = 2 * n_datasets * n_values
    if size <= _DENSE_LIMIT:  # one bincount over (dataset, primary, value)
        counts = np.bincount(groups * n_values + values, minlength=size)
        counts = counts.reshape(n_datasets, 2, n_values)
        total = counts.sum(axis=1)
        d, v = np.nonzero(total)
        return d, used[v], total[d, v], counts[d, 1, v]
    # too many combinations for a dense count: count the ones that occur (sorting)
    keys, counts = np.unique(groups * n_values + values, return_counts=True)
    group, value = np.divmod(keys, n_values)
    dataset, primary = np.divmod(group, 2)
    pairs, index = np.unique(dataset * n_values + value, return_inverse=True)
    total = np.bincount(index, weights=counts).astype(np.int64)
    prim = np.bincount(index, weights=counts * primary).astype(np.int64)
    return pairs // n_values, used[pairs % n_values], total, prim


def _tally_table(
    table: pa.Table,
    features: Iterable[str],
    organism_id: str | None,
    tally: _Tally,
    combinations: Combinations | None = None,
) -> None:
    """Add the counts of an Arrow table of obs rows (with ``dataset_id``) to ``tally`` (and its
    combinations to ``combinations``, if given)."""
    if table.num_rows == 0:
        return
    datasets, dataset_ids, _ = _codes(table.column(DATASET_COLUMN), DATASET_COLUMN)
    datasets, used = _compact(datasets, len(dataset_ids))
    ids = [dataset_ids[i] for i in used]
    _tally_codes(datasets, ids, table, features, organism_id, tally, combinations)


def _tally_codes(
    datasets: np.ndarray,
    dataset_ids: list[str],
    table: pa.Table | pd.DataFrame,
    features: Iterable[str],
    organism_id: str | None,
    tally: _Tally,
    combinations: Combinations | None = None,
) -> None:
    """Add the counts of ``table``'s cells (dataset codes ``datasets``) to ``tally``, and
    their combinations to ``combinations`` (if given)."""
    groups = 2 * datasets + _primary(table)
    n_datasets = len(dataset_ids)
    columns: list[tuple[str, np.ndarray, list[str], bool]] = []
    for feature in features:
        name = obs_column(feature)
        if isinstance(table, pa.Table):
            values, dictionary, complete = _codes(table.column(name), name)
        else:
            values, dictionary, complete = _frame_codes(table[name], name)
        columns.append((feature, values, dictionary, complete))
    if organism_id is not None:
        columns.append(("organism", np.zeros(len(datasets), np.int64), [organism_id], True))
    if combinations is not None:
        _tally_combinations(groups, dataset_ids, columns, combinations)
    for feature, values, dictionary, complete in columns:
        compact = not complete and len(dictionary) > _COMPACT_ABOVE
        d, v, total, prim = _pair_counts(groups, n_datasets, values, len(dictionary), compact)
        for di, vi, t, p in zip(d.tolist(), v.tolist(), total.tolist(), prim.tolist(), strict=True):
            entry = tally.get((dataset_ids[di], feature, dictionary[vi]))
            if entry is None:
                tally[(dataset_ids[di], feature, dictionary[vi])] = [t, p]
            else:
                entry[0] += t
                entry[1] += p


def _tally_combinations(
    groups: np.ndarray,
    dataset_ids: list[str],
    columns: list[tuple[str, np.ndarray, list[str], bool]],
    combinations: Combinations,
) -> None:
    """Add the cells per (dataset, primary, summarized values) of a batch to ``combinations``.

    The codes of the columns are folded into one integer key per cell (renumbered whenever the
    next column could overflow it); one ``numpy.unique`` counts the keys and gives a cell of
    each, whose codes name the combination.
    """
    by_feature = {feature: (values, dictionary) for feature, values, dictionary, _ in columns}
    key, size = groups.astype(np.int64, copy=False), 2 * len(dataset_ids)
    for name in SUMMARY_NAMES:
        if name not in by_feature:
            continue
        values, dictionary = by_feature[name]
        n = max(len(dictionary), 1)
        if size * n >= _KEY_LIMIT:
            uniques, key = np.unique(key, return_inverse=True)
            size = len(uniques)
        key = key * n + values
        size *= n
    _, first, counts = np.unique(key, return_index=True, return_counts=True)
    parts = [groups[first].tolist()]
    for name in SUMMARY_NAMES:
        if name in by_feature:
            values, dictionary = by_feature[name]
            parts.append([dictionary[code] for code in values[first].tolist()])
        else:
            parts.append([""] * len(first))
    for group, *values, n in zip(*parts, counts.tolist(), strict=True):
        combination = (dataset_ids[group >> 1], bool(group & 1), *values)
        combinations[combination] = combinations.get(combination, 0) + n


def _merge_combinations(into: Combinations, part: Combinations) -> None:
    for combination, n in part.items():
        into[combination] = into.get(combination, 0) + n


def _primary(table: pa.Table | pd.DataFrame) -> np.ndarray:
    """The ``is_primary_data`` column as 0/1 (int64)."""
    if PRIMARY_COLUMN not in (table.column_names if isinstance(table, pa.Table) else table.columns):
        raise AnnotationError(f"obs has no {PRIMARY_COLUMN!r} column: every cell needs one.")
    if isinstance(table, pa.Table):
        column = table.column(PRIMARY_COLUMN)
        if column.null_count:
            raise AnnotationError(f"obs column {PRIMARY_COLUMN!r} has empty values.")
        return column.to_numpy(zero_copy_only=False).astype(np.int64)
    series = table[PRIMARY_COLUMN]
    if series.isna().any():
        raise AnnotationError(f"obs column {PRIMARY_COLUMN!r} has empty values.")
    return series.to_numpy().astype(bool).astype(np.int64)


def _frame_codes(series: pd.Series, name: str) -> tuple[np.ndarray, list[str], bool]:
    """Codes, categories and completeness (see :func:`_codes`) of a pandas column."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = np.asarray(series.cat.codes, dtype=np.int64)
        categories = [str(c) for c in series.cat.categories]
        complete = False  # unused categories are possible
    else:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        codes = codes.astype(np.int64, copy=False)
        categories = [str(c) for c in uniques]
        complete = True
    if len(codes) and codes.min() < 0:
        raise AnnotationError(
            f"obs column {name!r} has {int((codes < 0).sum())} empty value(s): every cell "
            "needs one."
        )
    return codes, categories, complete


def _finish(tally: _Tally) -> dict[str, DatasetCounts]:
    """Split multi-valued values and build the per-dataset counts."""
    sums: dict[str, dict[str, dict[str, list[int]]]] = {}
    for (dataset_id, feature, value), (n, n_primary) in tally.items():
        by_value = sums.setdefault(dataset_id, {}).setdefault(feature, {})
        terms = split_terms(value) if BY_NAME[feature].multi_valued else [value]
        for term in terms:
            entry = by_value.setdefault(term, [0, 0])
            entry[0] += n
            entry[1] += n_primary
    return {
        dataset_id: {
            feature: {value: TermCount(n, p) for value, (n, p) in sorted(values.items())}
            for feature, values in sorted(features.items(), key=lambda f: NAMES.index(f[0]))
        }
        for dataset_id, features in sums.items()
    }


def _merge(into: _Tally, part: _Tally) -> None:
    for key, (n, n_primary) in part.items():
        entry = into.get(key)
        if entry is None:
            into[key] = [n, n_primary]
        else:
            entry[0] += n
            entry[1] += n_primary


# --- one dataset's obs ------------------------------------------------------------------------


def count_obs(
    obs: pd.DataFrame, organism_id: str, combinations: Combinations | None = None
) -> DatasetCounts:
    """The counts of one dataset from its obs (e.g. ``artifact.open().obs`` of its h5ad).

    Args:
        obs: one row per cell with ``is_primary_data`` and the columns of every feature but
            organism (``<feature>_ontology_term_id`` for ontology features; ``tissue_general``
            may be missing: h5ads do not have it, then it is not counted).
        organism_id: the dataset's organism term id (``uns["organism_ontology_term_id"]``);
            every cell counts for it.
        combinations: if given, the dataset's cell-level summary is added to it (with ``""``
            as the dataset id).

    Raises:
        AnnotationError: a required column is missing or has empty values.
    """
    features = _present_features(list(obs.columns), "the obs")
    tally: _Tally = {}
    if len(obs):
        datasets = np.zeros(len(obs), dtype=np.int64)
        _tally_codes(datasets, [""], obs, features, organism_id, tally, combinations)
    return _finish(tally).get("", {})


def _present_features(columns: list[str], where: str) -> list[str]:
    """The obs features to count given the available ``columns`` (optional ones may lack)."""
    available = set(columns)
    missing = [f.obs_column for f in OBS_FEATURES if f.in_h5ad and f.obs_column not in available]
    if PRIMARY_COLUMN not in available:
        missing.append(PRIMARY_COLUMN)
    if missing:
        raise AnnotationError(
            f"{where} lacks the column(s) {', '.join(missing)}: cells cannot be counted without "
            "them (is it a CELLxGENE dataset with the portal's columns?)."
        )
    return [f.name for f in OBS_FEATURES if f.obs_column in available]


# --- the scan of a SOMA store -----------------------------------------------------------------


@dataclass(frozen=True)
class ChunkTask:
    """One executor task: rows ``start..stop`` (inclusive) of an experiment's obs."""

    obs_uri: str
    tiledb_config: dict[str, str]
    start: int
    stop: int
    features: tuple[str, ...]
    organism_id: str
    combine: bool = False  # also count the cell-level summary


@dataclass(frozen=True)
class ChunkResult:
    """The counts of one chunk: (dataset id, feature, unsplit value) -> [cells, primary], and
    its cell-level summary (when the task asked for it).

    ``cpu_seconds`` is the CPU time of the worker process (all its threads) on the chunk.
    """

    n_rows: int
    tally: _Tally
    cpu_seconds: float = 0.0
    combinations: Combinations | None = None


def _context(tiledb_config: dict[str, str]):  # noqa: ANN202 - tiledbsoma is imported lazily
    """A TileDB-SOMA context for ``tiledb_config``, shared by the tasks of a worker process
    (one TileDB context, hence one S3 client and its connections, per configuration)."""
    return _cached_context(tuple(sorted(tiledb_config.items())))


@functools.lru_cache(maxsize=4)
def _cached_context(items: tuple[tuple[str, str], ...]):  # noqa: ANN202
    from tiledbsoma import SOMATileDBContext

    return SOMATileDBContext(tiledb_config=dict(items))


def scan_chunk(task: ChunkTask) -> ChunkResult:
    """Count the cells of one chunk of an obs (runs in a worker; reads only needed columns).

    Raises:
        AnnotationError: the rows cannot be read or counted (names the obs and the rows).
    """
    import tiledbsoma

    started = time.process_time()
    columns = [DATASET_COLUMN, PRIMARY_COLUMN, *(obs_column(f) for f in task.features)]
    tally: _Tally = {}
    combinations: Combinations | None = {} if task.combine else None
    n_rows = 0
    try:
        with tiledbsoma.DataFrame.open(task.obs_uri, context=_context(task.tiledb_config)) as obs:
            batches = obs.read(coords=(slice(task.start, task.stop),), column_names=columns)
            for table in batches:  # several when a chunk exceeds the read buffers
                n_rows += table.num_rows
                _tally_table(table, task.features, task.organism_id, tally, combinations)
    except AnnotationError as exc:
        raise AnnotationError(f"{task.obs_uri} rows {task.start}..{task.stop}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - TileDB and S3 raise several kinds
        raise AnnotationError(
            f"Cannot read rows {task.start}..{task.stop} of {task.obs_uri}: {exc}"
        ) from exc
    return ChunkResult(n_rows, tally, time.process_time() - started, combinations)


def chunk_tasks(
    uri: str, tiledb_config: dict[str, str], chunk_rows: int, combine: bool = False
) -> Iterator[ChunkTask]:
    """The chunks of every experiment of the store at ``uri`` (organisms from census_info);
    ``combine``: the tasks also count the cell-level summary."""
    import tiledbsoma

    if chunk_rows < 1:
        raise AnnotationError(f"chunk_rows must be at least 1 (got {chunk_rows}).")
    try:
        census = tiledbsoma.open(uri, context=_context(tiledb_config))
    except Exception as exc:  # noqa: BLE001 - TileDB raises several kinds; name the store
        raise AnnotationError(f"Cannot open the SOMA store {uri}: {exc}") from exc
    with census:
        if "census_info" not in census or "census_data" not in census:
            raise AnnotationError(
                f"{uri} is not a Census-like SOMA store (census_info and census_data expected)."
            )
        organisms = (
            census["census_info"]["organisms"]
            .read(column_names=["organism_ontology_term_id", "organism"])
            .concat()
            .to_pylist()
        )
        data = census["census_data"]
        for row in organisms:
            name, organism_id = row["organism"], row["organism_ontology_term_id"]
            if name not in data:
                raise AnnotationError(
                    f"census_info/organisms lists {name!r} ({organism_id}) but {uri} has no "
                    f"census_data/{name} experiment."
                )
            obs = data[name].obs
            domain = obs.non_empty_domain()
            if not domain or domain[0] is None or obs.count == 0:
                continue
            low, high = (int(x) for x in domain[0])
            features = tuple(_present_features(obs.schema.names, obs.uri))
            for start in range(low, high + 1, chunk_rows):
                stop = min(start + chunk_rows - 1, high)
                yield ChunkTask(obs.uri, tiledb_config, start, stop, features, organism_id, combine)


def scan_store(
    uri: str,
    tiledb_config: dict[str, str],
    executor: TaskExecutor,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int, int], None] | None = None,
    combinations: Combinations | None = None,
) -> dict[str, DatasetCounts]:
    """Counts of every dataset of every experiment of a Census-like SOMA store.

    One columnar scan of each experiment's obs, in chunks of ``chunk_rows`` rows run on
    ``executor``; the driver merges the chunks' counts as they arrive. Every cell of an
    experiment counts for the organism of ``census_info/organisms`` it belongs to.

    Args:
        uri: the store (``.../soma``; a local path or ``s3://`` URI).
        tiledb_config: TileDB configuration to read it (``registry.accessors.backends.
            tiledb_config(storage)``; empty for a local store).
        executor: where the chunks are counted (see :mod:`curation.executors`).
        chunk_rows: rows of obs per task.
        progress: called with (cells counted, cells in the store) after each chunk.
        combinations: if given, the cell-level summary of every dataset is added to it (counted
            in the same pass).

    Returns:
        dataset id -> feature -> value -> :class:`TermCount` (values split, see the module).

    Raises:
        AnnotationError: the store cannot be opened, is not Census-like, or lacks a column.
    """
    tally: _Tally = {}
    combine = combinations is not None
    tasks = list(chunk_tasks(uri, tiledb_config, chunk_rows, combine))  # a few: store closed
    total = sum(task.stop - task.start + 1 for task in tasks)
    done = 0
    if progress:
        progress(0, total)
    for task, result in zip(tasks, executor.map(scan_chunk, tasks), strict=True):
        _merge(tally, result.tally)
        if combinations is not None and result.combinations:
            _merge_combinations(combinations, result.combinations)
        done += task.stop - task.start + 1
        if progress:
            progress(done, total)
    return _finish(tally)
