"""The cell-level summary (``ln.Cells``): written by curation from the obs scan, its counts equal
a pandas count over the release's h5ads, and ``to_anndata`` reads exactly the counted cells from
the release's SOMA store (the same cells ``cellxgene_census.get_anndata`` returns)."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import anndata
import cellxgene_census
import pandas as pd
import pytest
from django.core.management import call_command
from django.db import connections, models
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

import curation.steps
import registry as ln
from curation.features import NO_TERM, SUMMARIZED
from demo.census.release import build_release
from ontologies.cells import CellsSelectionError, ReleaseError
from ontologies.cells_sql import question_sql
from ontologies.models import Cells as CellsRow
from registry.errors import UnknownFieldError

OLD, NEW = "2024-07-01", "2025-01-30"
TERM_COLUMNS = [f"{f.name}_ontology_term_id" for f in SUMMARIZED if f.is_ontology and f.in_h5ad]


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two consecutive demo releases (16 datasets, then the next one)."""
    dest = tmp_path_factory.mktemp("cells")
    build_release(str(dest), OLD, n_datasets=16, cells_per_dataset=150, workers=1)
    build_release(str(dest), NEW, previous=OLD, workers=1)
    return dest


def curate(bucket: Path, tag: str) -> None:
    call_command(
        "curate_release", source=f"{bucket}/cell-census/{tag}/", workers=1, quiet=True,
        stdout=StringIO(),
    )  # fmt: skip


def h5ad_obs(bucket: Path, tag: str) -> pd.DataFrame:
    """obs of every h5ad of a release with its dataset id, read with pandas (not the store)."""
    frames = []
    for path in sorted((bucket / "cell-census" / tag / "h5ads").glob("*.h5ad")):
        adata = anndata.read_h5ad(path, backed="r")
        obs = adata.obs.copy()
        obs["dataset_id"] = path.stem
        obs["organism_ontology_term_id"] = adata.uns["organism_ontology_term_id"]
        frames.append(obs)
    obs = pd.concat(frames, ignore_index=True)
    for column in TERM_COLUMNS:
        obs[column] = obs[column].astype(str)
    return obs


def t_cells_in(obs: pd.DataFrame) -> tuple[list[str], str]:
    """A cell-type term with subtypes in the release and the tissue most of their cells are in:
    the ids of the term and its descendants, and the tissue id."""
    cell_types = ln.bionty.CellType
    present = set(obs.cell_type_ontology_term_id)
    best: tuple[int, list[str]] = (0, [])
    for term in cell_types.filter(ontology_id__in=present):
        for ancestor in term.ancestors(include_self=True).filter(ontology_id__startswith="CL:"):
            ids = list(
                ancestor.descendants(include_self=True).values_list("ontology_id", flat=True)
            )
            found = present & set(ids)
            if len(found) >= 2 and len(found) > best[0]:
                best = (len(found), [ancestor.ontology_id, *sorted(found)])
    assert best[0] >= 2, "the demo release has no cell type with two subtypes present"
    ids = best[1]
    tissue = obs[obs.cell_type_ontology_term_id.isin(ids)].tissue_ontology_term_id.mode()[0]
    return ids, tissue


def test_counts_equal_a_pandas_count_over_the_h5ads(bucket: Path, curation_db: ln.DB) -> None:
    curate(bucket, OLD)
    obs = h5ad_obs(bucket, OLD)
    cells = ln.Cells.filter()
    assert cells.count() == len(obs)
    by = ["dataset", *(f"{c[: -len('_ontology_term_id')]}__ontology_id" for c in TERM_COLUMNS)]
    by += ["suspension_type", "tissue_type", "donor_id", "is_primary_data"]
    ours = cells.summarize(by=by)
    columns = ["dataset_id", *TERM_COLUMNS, "suspension_type", "tissue_type", "donor_id"]
    columns.append("is_primary_data")
    theirs = obs.astype({"suspension_type": str, "tissue_type": str, "donor_id": str}).copy()
    for column in TERM_COLUMNS:  # no term: unknown, na and several terms "A || B"
        theirs[column] = theirs[column].where(
            ~theirs[column].isin(NO_TERM) & ~theirs[column].str.contains("||", regex=False)
        )
    expected = theirs.groupby(columns, dropna=False).size()
    ours = ours.set_index(by)["n_cells"]
    ours.index.names = columns
    pd.testing.assert_series_equal(
        ours.sort_index(), expected.rename("n_cells").astype("int64").sort_index(),
        check_index_type=False,
    )  # fmt: skip
    # the question of the issue: cells of a type or any subtype, in a tissue, primary, by dataset
    ids, tissue = t_cells_in(obs)
    parent = ln.bionty.CellType.get(ontology_id=ids[0])
    selection = ln.Cells.filter(
        cell_type__in=parent.descendants(include_self=True),
        tissue__ontology_id=tissue,
        is_primary_data=True,
    )
    chosen = obs[
        obs.cell_type_ontology_term_id.isin(ids)
        & obs.tissue_ontology_term_id.eq(tissue)
        & obs.is_primary_data
    ]
    assert selection.count() == len(chosen) > 0
    # the subtypes are a subquery run once: PostgreSQL as an array of keys (it would rerun an
    # IN subquery per row), SQLite as the IN subquery itself
    sql = str(selection._selected().query)
    postgres = connections[selection.db].vendor == "postgresql"
    assert ('"cell_type_id" = ANY(ARRAY(SELECT' in sql) == postgres
    assert ('"cell_type_id" IN (SELECT' in sql) == (not postgres)
    by_dataset = selection.summarize(by=["dataset"]).set_index("dataset")["n_cells"]
    assert by_dataset.to_dict() == chosen.groupby("dataset_id").size().to_dict()
    keys = set(selection.artifacts().values_list("reference", flat=True))
    assert keys == set(chosen.dataset_id)
    estimate = selection.estimate(genes=2000)
    assert estimate["n_obs"] == len(chosen) and estimate["n_vars"] == 2000
    assert 0 < estimate["nnz"] < len(chosen) * 2000
    assert estimate["bytes"] == 8 * estimate["nnz"] + 8 * (len(chosen) + 1)


def test_to_anndata_reads_exactly_the_counted_cells(bucket: Path, curation_db: ln.DB) -> None:
    curate(bucket, OLD)
    obs = h5ad_obs(bucket, OLD)
    ids, tissue = t_cells_in(obs[obs.organism_ontology_term_id == "NCBITaxon:9606"])
    human = ln.bionty.Organism.get(ontology_id="NCBITaxon:9606")
    parent = ln.bionty.CellType.get(ontology_id=ids[0])
    selection = ln.Cells.filter(
        cell_type__in=parent.descendants(include_self=True),
        tissue__ontology_id=tissue,
        organism=human,
        is_primary_data=True,
    )
    store = selection.release_artifact()
    genes = ["ENSG00000141510", "ENSG00000012048"]
    adata = selection.to_anndata(var_value_filter=f"feature_id in {genes}")
    assert adata.n_obs == selection.count() > 0
    assert set(adata.var.feature_id) <= set(genes)
    value_filter = selection.obs_value_filter()
    assert "dataset_id in [" in value_filter and "is_primary_data == True" in value_filter
    with cellxgene_census.open_soma(uri=str(bucket / store.key)) as census:
        census_way = cellxgene_census.get_anndata(
            census, "Homo sapiens", obs_value_filter=value_filter,
            var_value_filter=f"feature_id in {genes}",
        )  # fmt: skip
    assert sorted(census_way.obs.soma_joinid) == sorted(adata.obs.soma_joinid)
    assert set(adata.obs.cell_type_ontology_term_id) <= set(ids)
    assert set(adata.obs.tissue_ontology_term_id) == {tissue}


def test_a_query_names_its_release_or_takes_the_latest(
    bucket: Path, curation_db: ln.DB, tmp_path: Path
) -> None:
    with pytest.raises(ReleaseError, match="No curated release has a cell summary yet"):
        ln.Cells.filter(is_primary_data=True).count()
    curate(bucket, OLD)
    curate(bucket, NEW)
    old, new = h5ad_obs(bucket, OLD), h5ad_obs(bucket, NEW)
    assert ln.Cells.filter().release_artifact().version == NEW
    assert ln.Cells.filter(is_primary_data=True).count() == int(new.is_primary_data.sum())
    selection = ln.Cells.filter(is_primary_data=True)
    with CaptureQueriesContext(connections[selection.db]) as queries:
        assert selection.count() == int(new.is_primary_data.sum())
        assert selection.summarize(by=["dataset"])["n_cells"].sum() == selection.count()
    # one query per question: the latest release is a subquery of each
    assert len(queries) == 3, [query["sql"] for query in queries]
    pinned = ln.Cells.filter(release=OLD, is_primary_data=True)
    assert pinned.count() == int(old.is_primary_data.sum())
    assert set(pinned.summarize(by=["release"])["release"]) == {OLD}
    store = ln.Artifact.get(key=f"cell-census/{OLD}/soma")
    assert ln.Cells.filter(release=store).count() == len(old)
    with pytest.raises(ReleaseError, match=rf"No curated release '1999-01-01'.*{OLD}, {NEW}"):
        ln.Cells.filter(release="1999-01-01").count()
    dataset = ln.Artifact.filter(version=OLD, suffix=".h5ad").first()
    with pytest.raises(ReleaseError, match="has no cell summary: it is not a curated release"):
        ln.Cells.filter(release=dataset).count()
    # a handle asks its own instance: this one, and an empty one that is not the default
    assert curation_db.Cells.filter(is_primary_data=True).count() == selection.count()
    empty = ln.init("empty", db=f"sqlite:///{tmp_path / 'empty.sqlite3'}", make_default=False)
    with pytest.raises(ReleaseError, match="No curated release has a cell summary yet"):
        empty.Cells.filter(is_primary_data=True).count()
    assert ln.Cells.filter(is_primary_data=True).count() == selection.count()


def test_bad_inputs_are_named(bucket: Path, curation_db: ln.DB) -> None:
    curate(bucket, OLD)
    with pytest.raises(UnknownFieldError, match="cell_typ"):
        ln.Cells.filter(cell_typ__name="T cell").count()
    with pytest.raises(UnknownFieldError, match=r"Cannot summarize by 'donor'.*cell_type"):
        ln.Cells.filter().summarize(by=["dataset", "donor"])
    with pytest.raises(UnknownFieldError, match="n_cell"):
        ln.Cells.filter(n_cell__gt=3).summarize()
    with pytest.raises(Exception, match="at least one field"):
        ln.Cells.filter().summarize(by=[])
    with pytest.raises(CellsSelectionError, match="without a self_reported_ethnicity term"):
        ln.Cells.filter(self_reported_ethnicity__isnull=True).obs_value_filter()
    with pytest.raises(CellsSelectionError, match="spans 2 organisms"):
        ln.Cells.filter(is_primary_data=True).to_anndata()


def test_a_resumed_run_writes_the_summary_again(bucket: Path, curation_db: ln.DB) -> None:
    """A run resumed after the annotate step reads the combinations back from the step's
    output (no second scan) and replaces the release's rows: the same summary, once."""
    curate(bucket, OLD)
    before = ln.Cells.filter().summarize(by=["dataset", "cell_type", "disease", "sex"])
    n_rows = ln.Cells.filter().n_rows()
    run = ln.Run.filter(transform__key="curate_release").one()
    run.report["steps"]["cells"]["done"] = False
    run.status = "failed"
    run.save()
    scans = []
    original = curation.steps.scan_store
    curation.steps.scan_store = lambda *a, **k: scans.append(1) or original(*a, **k)
    try:
        curate(bucket, OLD)
    finally:
        curation.steps.scan_store = original
    assert scans == []
    run = ln.Run.filter(transform__key="curate_release").one()
    assert run.status == "completed" and run.report["steps"]["cells"]["rows"] == n_rows
    assert ln.Cells.filter().n_rows() == n_rows
    after = ln.Cells.filter().summarize(by=["dataset", "cell_type", "disease", "sex"])
    pd.testing.assert_frame_equal(before, after)


def test_questions_written_directly_answer_as_the_orm(bucket: Path, curation_db: ln.DB) -> None:
    """Conditions of the common shapes are written as SQL directly (``ontologies.cells_sql``);
    the same conditions inside a ``Q`` go through the ORM. Both answer alike, for every
    shape and grouping, including terms missing from some rows (a group of their own)."""
    curate(bucket, OLD)
    curate(bucket, NEW)
    obs = h5ad_obs(bucket, NEW)
    ids, tissue = t_cells_in(obs)
    parent = ln.bionty.CellType.get(ontology_id=ids[0])
    terms = list(ln.bionty.CellType.filter(ontology_id__in=ids[1:]))
    disease = ln.bionty.Disease.get(ontology_id=obs.disease_ontology_term_id.iloc[0])
    selections = [
        {},
        {"cell_type__in": parent.descendants(include_self=True), "is_primary_data": True},
        {"cell_type__in": terms, "tissue__ontology_id": tissue},
        {"cell_type__in": [term.pk for term in terms], "release": OLD},
        {"cell_type": parent, "disease": disease.pk},
        {"tissue__ontology_id__in": [tissue, "UBERON:0000000"], "is_primary_data": False},
        {"disease__name": disease.name, "suspension_type__in": ["cell", "nucleus"]},
        {"donor_id": str(obs.donor_id.iloc[0]), "self_reported_ethnicity__name__in": []},
    ]
    groupings = [
        ["dataset"],
        ["release", "is_primary_data"],
        ["self_reported_ethnicity", "disease__ontology_id", "sex"],
        ["tissue_general", "donor_id"],
    ]
    for conditions in selections:
        release = {k: v for k, v in conditions.items() if k == "release"}
        terms_only = {k: v for k, v in conditions.items() if k != "release"}
        direct = ln.Cells.filter(**release, **terms_only)
        orm = ln.Cells.filter(Q(**terms_only), **release) if terms_only else None
        assert question_sql(direct, direct._release_sql(), []) is not None, conditions
        if orm is None:
            continue
        assert question_sql(orm, orm._release_sql(), []) is None
        assert direct.count() == orm.count(), conditions
        for by in groupings:
            pd.testing.assert_frame_equal(direct.summarize(by=by), orm.summarize(by=by))
    some = ln.Cells.filter(cell_type__in=parent.descendants(include_self=True))
    assert some.summarize(by=["dataset"])["n_cells"].sum() == some.count() > 0
    plain = ln.Cells.filter(is_primary_data=True)
    assert question_sql(plain, plain._release_sql(), ["artifact__reference"]) is not None
    # other shapes are the ORM's: a range, an exclude, a path through a term's relation,
    # none() (which holds no cells)
    for other in (
        ln.Cells.filter(n_cells__gt=3),
        ln.Cells.exclude(is_primary_data=True),
        ln.Cells.filter(cell_type__parents=parent),
        ln.Cells.filter(is_primary_data=True).none(),
    ):
        for groups in ([], ["artifact__reference"]):
            assert question_sql(other, other._release_sql(), groups) is None
    assert ln.Cells.filter(is_primary_data=True).none().count() == 0
    assert ln.Cells.filter().none().summarize(by=["dataset"]).empty


def test_conditions_wait_until_the_query_is_needed(bucket: Path, curation_db: ln.DB) -> None:
    """``filter`` conditions of the direct shapes, and ``descendants()``, leave Django's query
    alone (a question never needs it); whatever needs the query gets every condition, in any
    chain of filter, exclude and clones."""
    curate(bucket, OLD)
    obs = h5ad_obs(bucket, OLD)
    ids, tissue = t_cells_in(obs)
    parent = ln.bionty.CellType.get(ontology_id=ids[0])
    below = parent.descendants(include_self=True)
    assert below._deferred_filter is not None  # the keys' SQL is not in its query yet
    selection = ln.Cells.filter(cell_type__in=below, tissue__ontology_id=tissue)
    assert selection._pending and not selection._query.where
    assert selection.count() > 0 and selection._pending  # a question: still waiting
    rows = models.QuerySet(CellsRow)
    expected = rows.filter(cell_type__ontology_id__in=ids, tissue__ontology_id=tissue)
    assert sorted(selection.values_list("pk", flat=True)) == sorted(
        expected.values_list("pk", flat=True)
    )
    assert selection._pending  # a clone's query got them, this one still waits
    assert selection.query.where and not selection._pending  # given to its query
    assert selection.count() == expected.aggregate(n=models.Sum("n_cells"))["n"]
    chained = ln.Cells.filter(tissue__ontology_id=tissue).filter(is_primary_data=True)
    chained = chained.exclude(cell_type__ontology_id=ids[0])
    expected = rows.filter(tissue__ontology_id=tissue, is_primary_data=True).exclude(
        cell_type__ontology_id=ids[0]
    )
    assert set(chained.values_list("pk", flat=True)) == set(expected.values_list("pk", flat=True))
    assert len(chained) == expected.count() > 0
    assert set(below.values_list("ontology_id", flat=True)) >= set(ids)


def test_a_question_is_a_prepared_statement_on_postgresql(bucket: Path, curation_db: ln.DB) -> None:
    """On PostgreSQL a question is planned once per session (a prepared statement, its plan
    reused); with prepared statements off (``?prepare_threshold=none``) it is a query like
    any other. The answers are the same."""
    curate(bucket, OLD)
    connection = connections[curation_db.alias]
    postgres = connection.vendor == "postgresql"

    def runs_prepared() -> int:  # runs of the session's prepared questions so far
        if not postgres:
            return 0
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce(sum(generic_plans + custom_plans), 0) "
                "FROM pg_prepared_statements WHERE statement LIKE %s",
                ['%SUM(c."n_cells")%'],
            )
            return int(cursor.fetchone()[0])

    t_cells = ln.bionty.CellType.get(name="T cell").descendants(include_self=True)
    before = runs_prepared()
    answers = [ln.Cells.filter(cell_type__in=t_cells).summarize(by=["dataset"]) for _ in range(7)]
    assert len(answers[0]) > 0
    for answer in answers[1:]:
        pd.testing.assert_frame_equal(answer, answers[0])
    assert runs_prepared() - before == (7 if postgres else 0)
    if not postgres:
        return
    counted = ln.Cells.filter(cell_type__in=t_cells, is_primary_data=False).count()
    threshold = connection.connection.prepare_threshold
    connection.connection.prepare_threshold = None  # as ?prepare_threshold=none sets it
    try:
        before = runs_prepared()
        unprepared = ln.Cells.filter(cell_type__in=t_cells, is_primary_data=False).count()
        assert runs_prepared() == before
    finally:
        connection.connection.prepare_threshold = threshold
    assert unprepared == counted
