"""The Census guide runs on our store with only the open line changed.

The guide is ``../shared/seeds/000_*.txt``; its cells are its ```` ```python ```` blocks, and
``fixtures/census_guide_cells.txt`` says, for each, whether it runs, fails as it does with
``cellxgene_census`` itself, or cannot run here (and why). The cells run in one namespace on the
session's demo bucket with its releases curated into the test instance (``open_soma()`` resolves
``stable`` through the registry), twice: with the guide's ``cellxgene_census`` calls as written
(only ``open_soma`` is ``ln.census``'s), and with ``ln.census`` for every call. Each run's values
(data frames, AnnData, numbers) equal, cell by cell, those of a reference run on the same store
opened by ``cellxgene_census.open_soma(uri=...)``.
"""

from __future__ import annotations

import gc
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata
import cellxgene_census
import numpy as np
import pandas as pd
import pytest

import registry as ln
import registry.census
from tests.registry.census_releases import (
    LATEST_TAG,
    STABLE_TAG,
    register_release,
    soma_path,
)
from tests.test_readme import fenced_blocks

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO.parent / "shared" / "seeds"
CELLS = REPO / "fixtures" / "census_guide_cells.txt"
OPEN = re.compile(r"cellxgene_census\.open_soma\(([^)]*)\)")
LINE = re.compile(r"^(?P<number>\d+) (?P<verdict>open|run|skip|fails (?P<error>\w+))\s*(#.*)?$")

pytestmark = pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds is not beside us")


@dataclass(frozen=True)
class Cell:
    number: int
    line: int
    code: str
    verdict: str
    error: str | None


def guide_cells() -> tuple[list[Cell], list[str]]:
    """The guide's cells with their verdicts, and the names the test gives."""
    guide = sorted(SEEDS.glob("000_*.txt"))[0]
    blocks = fenced_blocks(guide.read_text())
    verdicts, given = {}, []
    for text in CELLS.read_text().splitlines():
        if text.startswith("given "):
            given.append(text.split()[1])
        elif text.strip() and not text.startswith("#"):
            match = LINE.match(text)
            assert match, f"{CELLS.name}: bad line {text!r}"
            verdicts[int(match["number"])] = (match["verdict"].split()[0], match["error"])
    assert sorted(verdicts) == list(range(1, len(blocks) + 1)), "the guide's cells changed"
    cells = [
        Cell(n, block.line, block.code, *verdicts[n]) for n, block in enumerate(blocks, start=1)
    ]
    return sorted(cells, key=lambda c: (c.verdict != "open", c.number)), given


def value_of(value: Any) -> Any:
    """What is compared between runs: frames and AnnData by content, numbers as they are."""
    if isinstance(value, anndata.AnnData):
        return ("AnnData", value.obs, value.var, value.X.nnz, float(value.X.sum()))
    if isinstance(value, pd.DataFrame | pd.Series | np.ndarray | int | float | str):
        return value
    return None


def assert_same(ours: Any, reference: Any, where: str) -> None:
    if isinstance(ours, tuple):
        assert isinstance(reference, tuple) and len(ours) == len(reference), where
        for a, b in zip(ours, reference, strict=True):
            assert_same(a, b, where)
    elif isinstance(ours, pd.DataFrame):
        pd.testing.assert_frame_equal(ours, reference, obj=where)
    elif isinstance(ours, pd.Series):
        pd.testing.assert_series_equal(ours, reference, obj=where)
    elif isinstance(ours, np.ndarray):
        np.testing.assert_array_equal(ours, reference, err_msg=where)
    else:
        assert ours == reference, where


def run_cell(cell: Cell, namespace: dict, replace_open: str) -> tuple[Exception | None, dict]:
    """Run a cell (its open calls rewritten to ``replace_open``); (its exception, the values of
    the names it bound)."""
    code = OPEN.sub(lambda m: replace_open.format(args=m[1]), cell.code)
    before = {k: id(v) for k, v in namespace.items()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(
                compile("\n" * cell.line + code, f"census guide cell {cell.number}", "exec"),
                namespace,
            )  # noqa: E501, S102
    except Exception as exc:  # noqa: BLE001 - compared with the verdict by the caller
        error = exc
    else:
        error = None
    bound = {k: value_of(v) for k, v in namespace.items() if before.get(k) != id(v)}
    return error, {k: v for k, v in bound.items() if v is not None}


def run_guide(cells: list[Cell], given: list[str], module: Any, replace_open: str) -> list:
    """Every runnable cell in one namespace: [(cell, exception, values)]. What the cells left
    behind (stores, queries, their arrays) is freed at the end, here, in this thread: not by
    a garbage collection that some later allocation starts in whichever thread it runs."""
    namespace: dict[str, Any] = {"ln": ln, "cellxgene_census": module}
    namespace.update({name: (lambda *args, **kwargs: None) for name in given})
    try:
        return [
            (cell, *run_cell(cell, namespace, replace_open))
            for cell in cells
            if cell.verdict != "skip"
        ]
    finally:
        namespace.clear()
        gc.collect()


@pytest.mark.django_db
@pytest.mark.parametrize("calls", ["cellxgene_census", "ln.census"])
def test_the_census_guide_runs_with_only_the_open_line_changed(
    census_bucket: Path,
    calls: str,
) -> None:
    for tag in (STABLE_TAG, LATEST_TAG):
        register_release(str(census_bucket), tag)
    cells, given = guide_cells()
    store = soma_path(census_bucket, STABLE_TAG)
    reference = run_guide(
        cells, given, cellxgene_census, f"cellxgene_census.open_soma(uri={store!r})"
    )
    module = cellxgene_census if calls == "cellxgene_census" else registry.census
    ours = run_guide(cells, given, module, "ln.census.open_soma({args})")
    for (cell, error, values), (_, reference_error, reference_values) in zip(
        ours, reference, strict=True
    ):
        where = f"guide cell {cell.number} (line {cell.line})"
        if cell.verdict == "fails":
            assert type(error).__name__ == cell.error, f"{where}: {error!r}"
            assert (type(error), str(error)) == (type(reference_error), str(reference_error)), where
        else:
            assert error is None, f"{where} failed: {error!r}"
            assert reference_error is None, (
                f"{where} failed on cellxgene_census: {reference_error!r}"
            )
        assert values.keys() == reference_values.keys(), where
        for name in values:
            assert_same(values[name], reference_values[name], f"{where}: {name}")
    # the guide's queries select cells here: brain cell types, lung cells, B and T cells
    values = {cell.number: values for cell, _, values in ours}
    assert len(values[3]["cell_metadata"]) > 0 and len(values[19]["cells"]) > 0
    obs = values[20]["adata"][1]
    assert len(obs) > 0 and set(obs["cell_type"]) == {"T cell", "B cell"}
    assert values[11]["combined"][1]["tissue_general"].nunique() == 3
