"""curate_release: a demo release mirrored into the registry by reference, with counted links,
versions across releases, collections, and bad datasets reported rather than fatal."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import anndata
import pytest
import tiledbsoma
from django.core.management import CommandError, call_command
from django.db.models import Sum

import curation.steps
import registry as ln
from curation.features import BY_NAME as FEATURES
from demo.census.plan import KIDNEY_TITLE
from demo.census.release import build_release
from registry.models import Artifact, Collection, CollectionArtifact, Run
from tests.curation.conftest import table_counts

OLD, NEW = "2024-07-01", "2025-01-30"


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two consecutive demo releases (24 datasets, then the next one)."""
    dest = tmp_path_factory.mktemp("census")
    build_release(str(dest), OLD, n_datasets=24, cells_per_dataset=120, workers=1)
    build_release(str(dest), NEW, previous=OLD, workers=1)
    return dest


def release(bucket: Path, tag: str) -> str:
    return f"{bucket}/cell-census/{tag}/"


def manifest_table(bucket: Path, tag: str) -> dict[str, dict]:
    uri = f"{bucket}/cell-census/{tag}/soma"
    with tiledbsoma.open(uri) as census:
        frame = census["census_info"]["datasets"].read().concat().to_pandas()
    return {row["dataset_id"]: row for row in frame.to_dict("records")}


def curate(bucket: Path, tag: str, *args: str, **options: object) -> str:
    """Run the command; its stdout."""
    from io import StringIO

    out = StringIO()
    call_command(
        "curate_release", *args, source=release(bucket, tag), workers=1, quiet=True, stdout=out,
        **options,
    )  # fmt: skip
    return out.getvalue()


def link_counts(artifact: Artifact, feature: str) -> dict[str, tuple[int, int]]:
    """term (ontology id or ULabel name) -> (n_cells, n_primary_cells) of one feature's links."""
    through = Artifact.link_table(FEATURES[feature].relation)
    links = through.objects.filter(artifact=artifact, feature__name=feature).select_related("label")
    key = "name" if FEATURES[feature].ulabel_type else "ontology_id"
    return {getattr(x.label, key): (x.n_cells, x.n_primary_cells) for x in links}


def test_registers_every_dataset_by_reference(bucket: Path, curation_db: object) -> None:
    out = curate(bucket, OLD)
    rows = manifest_table(bucket, OLD)
    assert f"added {len(rows)} artifacts" in out
    artifacts = Artifact.filter(reference_type="cellxgene_dataset_id", version=OLD)
    assert artifacts.count() == len(rows)
    for artifact in artifacts:
        row = rows[artifact.reference]
        path = bucket / artifact.key
        assert artifact.key == f"cell-census/{OLD}/h5ads/{row['dataset_id']}.h5ad"
        assert artifact.size == path.stat().st_size  # from the listing: nothing downloaded
        assert artifact.description == row["dataset_title"]
        assert artifact.reference_version == row["dataset_version_id"]
        assert artifact.n_observations == row["dataset_total_cell_count"]
        assert (artifact.suffix, artifact.otype, artifact.is_latest) == (".h5ad", "AnnData", True)
        assert artifact.storage.root == str(bucket)
    soma = Artifact.get(key=f"cell-census/{OLD}/soma")
    assert soma.otype == "tiledbsoma"
    with ln.census.open_soma() as census:  # "stable" resolves through the curated store
        assert census.uri == str(bucket / soma.key)
    assert soma.n_observations == sum(r["dataset_total_cell_count"] for r in rows.values())
    run = Run.filter(transform__key="curate_release").one()
    assert run.status == "completed"
    assert set(run.report["steps"]) == {step.name for step in curation.steps.STEPS}
    check_files = run.report["steps"]["check_files"]
    assert check_files["done"] and check_files["checked"] == len(rows)
    assert all(step["seconds"] >= 0 for step in run.report["steps"].values())
    assert run.params["digest"]  # the manifest the run curated


def test_link_counts_equal_the_h5ads(bucket: Path, curation_db: object) -> None:
    curate(bucket, OLD)
    kidney = Artifact.get(description=KIDNEY_TITLE, version=OLD)
    obs = anndata.read_h5ad(bucket / kidney.key, backed="r").obs
    for feature in ("cell_type", "tissue", "assay", "disease", "sex", "development_stage"):
        column = obs[f"{feature}_ontology_term_id"].astype(str)
        primary = obs.is_primary_data.to_numpy()
        expected = {
            term: (int(n), int(column[primary].eq(term).sum()))
            for term, n in column.value_counts().items()
            if term not in ("unknown", "na")
        }
        assert link_counts(kidney, feature) == expected, feature
    # multi-valued ethnicities link every term, each with the cells of all its combinations
    ethnicity = Counter()
    for value, n in obs.self_reported_ethnicity_ontology_term_id.astype(str).value_counts().items():
        for term in value.split(" || "):
            ethnicity[term] += int(n)
    got = {term: n for term, (n, _) in link_counts(kidney, "self_reported_ethnicity").items()}
    assert got == {t: n for t, n in ethnicity.items() if t not in ("unknown", "na")}
    assert any(" || " in v for v in obs.self_reported_ethnicity_ontology_term_id.astype(str))
    donors = obs.donor_id.astype(str).value_counts()
    assert {k: v[0] for k, v in link_counts(kidney, "donor_id").items()} == donors.to_dict()
    assert link_counts(kidney, "suspension_type") == {
        "cell": (len(obs), int(obs.is_primary_data.sum()))
    }
    assert Artifact.filter(
        cell_types__name__in=["dendritic cell", "neutrophil"],
        tissues__name="kidney",
        ulabels__name="cell",
        experimental_factors__name="10x 3' v2",
        version=OLD,
    ).exists()


def test_next_release_revises_and_collections_follow(bucket: Path, curation_db: object) -> None:
    curate(bucket, OLD)
    curate(bucket, NEW)
    old, new = manifest_table(bucket, OLD), manifest_table(bucket, NEW)
    for dataset_id in set(old) & set(new):
        before = Artifact.get(reference=dataset_id, version=OLD)
        after = Artifact.get(reference=dataset_id, version=NEW)
        assert after.revises_id == before.pk and after.stem_uid == before.stem_uid
        assert (before.is_latest, after.is_latest) == (False, True)
    for dataset_id in set(old) - set(new):  # dropped: stays latest of its family
        assert Artifact.get(reference=dataset_id, version=OLD).is_latest
    census = Collection.get(key="cellxgene-census", version=NEW)
    assert [v.version for v in census.versions] == [OLD, NEW]
    members = CollectionArtifact.objects.filter(collection=census).order_by("order")
    assert list(members.values_list("artifact__reference", flat=True)) == list(new)
    # CELLxGENE collections: a new version only where membership changed
    for collection_id in {r["collection_id"] for r in new.values()}:
        family = Collection.filter(reference=collection_id).order_by("version")
        latest = family.filter(is_latest=True).one()
        wanted = {(r["dataset_id"], r["dataset_version_id"]) for r in new.values()
                  if r["collection_id"] == collection_id}  # fmt: skip
        held = set(latest.artifacts.values_list("reference", "reference_version"))
        assert held == wanted
        row = next(r for r in new.values() if r["collection_id"] == collection_id)
        assert (latest.key.split(" [")[0], latest.doi) == (
            row["collection_name"],
            row["collection_doi"],
        )
    assert Collection.filter(version=NEW).exclude(key="cellxgene-census").count() < len(
        {r["collection_id"] for r in new.values()}
    )  # unchanged collections were not copied


def test_rerun_of_a_curated_release_writes_nothing(bucket: Path, curation_db: object) -> None:
    curate(bucket, OLD)
    before = (
        Artifact.count(),
        Collection.count(),
        Run.count(),
        list(Run.filter().values("report")),
    )
    out = curate(bucket, OLD)
    assert "already curated" in out
    after = (Artifact.count(), Collection.count(), Run.count(), list(Run.filter().values("report")))
    assert before == after


def test_dry_run_writes_nothing(bucket: Path, curation_db: object) -> None:
    out = curate(bucket, OLD, dry_run=True)
    assert "would add 24 artifacts" in out
    assert Artifact.count() == 0 and Run.count() == 0


def test_limit_registers_the_first_datasets_and_a_rerun_completes(
    bucket: Path, curation_db: object
) -> None:
    curate(bucket, OLD, limit=5)
    assert Artifact.filter(version=OLD, reference_type="cellxgene_dataset_id").count() == 5
    out = curate(bucket, OLD)
    assert "added 19 artifacts, 5 already there" in out


def test_bad_datasets_are_reported_and_the_rest_lands(
    bucket: Path, curation_db: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "bucket"
    shutil.copytree(bucket / "cell-census" / OLD, dest / "cell-census" / OLD)
    rows = manifest_table(bucket, OLD)
    ids = list(rows)
    h5ads = dest / "cell-census" / OLD / "h5ads"
    # a manifest row without a file, and a file the manifest does not name
    (h5ads / f"{ids[0]}.h5ad").unlink()
    shutil.copyfile(h5ads / f"{ids[1]}.h5ad", h5ads / "not-in-the-manifest.h5ad")
    # a dataset the store lacks whose h5ad is truncated, and one whose obs lacks a column
    (h5ads / f"{ids[2]}.h5ad").write_bytes((h5ads / f"{ids[2]}.h5ad").read_bytes()[:5000])
    adata = anndata.read_h5ad(h5ads / f"{ids[3]}.h5ad")
    del adata.obs["disease_ontology_term_id"]
    adata.write_h5ad(h5ads / f"{ids[3]}.h5ad")
    real_scan = curation.steps.scan_store

    def scan_without(*args: object, **kwargs: object) -> dict:
        counts = real_scan(*args, **kwargs)
        return {k: v for k, v in counts.items() if k not in (ids[2], ids[3])}

    monkeypatch.setattr(curation.steps, "scan_store", scan_without)
    # an unknown term (not in the registry) and a deprecated one
    from ontologies.models import CellType

    CellType.filter(ontology_id="CL:0000623").delete()  # natural killer cell
    t_cell = CellType.get(ontology_id="CL:0000084")
    CellType.filter(ontology_id="CL:0000451").update(is_deprecated=True, replaced_by=t_cell)
    out = curate(dest, OLD, json=True)
    report = json.loads(out)
    problems = {
        (p["dataset_id"], p["reason"], p["column"]): p["values"] for p in report["problems"]
    }
    assert report["unlisted_files"] == ["not-in-the-manifest.h5ad"]
    assert any(k[0] == ids[0] and "missing" in k[1] for k in problems)
    assert any(k[0] == ids[2] and "not registered" in k[1] for k in problems)
    assert problems[(ids[3], "obs column missing", "disease_ontology_term_id")] == []
    unknown = [
        v
        for k, v in problems.items()
        if k[1:] == ("unknown term ids", "cell_type_ontology_term_id")
    ]
    assert unknown and all(v == ["CL:0000623"] for v in unknown)
    deprecated = [v for k, v in problems.items() if k[1] == "deprecated terms"]
    assert deprecated and all(v == ["CL:0000451 (replaced by CL:0000084)"] for v in deprecated)
    # the rest landed: all but the missing and the unreadable dataset
    registered = set(Artifact.filter(version=OLD, reference_type="cellxgene_dataset_id")
                     .values_list("reference", flat=True))  # fmt: skip
    assert registered == set(ids) - {ids[0], ids[2]}
    assert "not-in-the-manifest" not in " ".join(Artifact.filter().values_list("key", flat=True))
    # per-file counts of the dataset the store lacked
    third = Artifact.get(reference=ids[3], version=OLD)
    donors = third.ulabels.through.objects.filter(artifact=third, feature__name="donor_id")
    assert donors.aggregate(n=Sum("n_cells"))["n"] == rows[ids[3]]["dataset_total_cell_count"]
    assert not third.diseases.exists()  # its disease column was missing
    with pytest.raises(CommandError, match=r"problem\(s\) \(--strict\)"):
        curate(dest, OLD, strict=True)


def test_header_problems_keep_a_dataset_out_also_when_the_store_has_it(
    bucket: Path, curation_db: object, tmp_path: Path
) -> None:
    """An h5ad that is not HDF5, or whose obs disagrees with the manifest's cell count, is a
    problem of its dataset: reported, not registered — although the SOMA store counts its cells."""
    dest = tmp_path / "bucket"
    shutil.copytree(bucket / "cell-census" / OLD, dest / "cell-census" / OLD)
    rows = manifest_table(bucket, OLD)
    ids = list(rows)
    h5ads = dest / "cell-census" / OLD / "h5ads"
    not_hdf5 = h5ads / f"{ids[0]}.h5ad"
    not_hdf5.write_bytes(b"<html>404 Not Found</html>" + bytes(not_hdf5.stat().st_size))
    adata = anndata.read_h5ad(h5ads / f"{ids[1]}.h5ad")
    adata[:-3].copy().write_h5ad(h5ads / f"{ids[1]}.h5ad")  # three cells fewer
    report = json.loads(curate(dest, OLD, json=True))
    reasons = {p["dataset_id"]: p["reason"] for p in report["problems"]}
    assert "not an HDF5 file" in reasons[ids[0]] or "HDF5 signature" in reasons[ids[0]]
    count = rows[ids[1]]["dataset_total_cell_count"]
    assert f"{count - 3} cells" in reasons[ids[1]].replace(",", "")
    registered = set(
        Artifact.filter(version=OLD, reference_type="cellxgene_dataset_id").values_list(
            "reference", flat=True
        )
    )
    assert registered == set(ids) - {ids[0], ids[1]}
    census = Collection.get(key="cellxgene-census", version=OLD)
    assert census.artifacts.count() == len(ids) - 2


def _make_bad_sources(root: Path, good: Path) -> dict[str, tuple[str, str]]:
    """The bad sources the README lists: name -> (source, fragment of the message)."""
    tag = root / "cell-census" / OLD
    (root / "plain-folder").mkdir()
    (root / "empty" / "cell-census" / OLD).mkdir(parents=True)
    no_store = root / "no-store" / "cell-census" / OLD
    (no_store / "soma").mkdir(parents=True)
    (no_store / "soma" / "README.txt").write_text("not a SOMA store")
    no_h5ads = root / "no-h5ads" / "cell-census" / OLD
    shutil.copytree(good / "cell-census" / OLD / "soma", no_h5ads / "soma")
    (no_h5ads / "h5ads").mkdir()
    return {
        "not a release root": (str(root / "plain-folder"), "is not a release root: expected"),
        "malformed tag": (f"{tag.parent}/2025 01 30/", "is not a release root"),
        "no such folder": (f"{root}/nowhere/cell-census/{OLD}/", "no such folder"),
        "unsupported scheme": (f"gs://bucket/cell-census/{OLD}/", "gs:// scheme is not supported"),
        "no SOMA store": (f"{root}/empty/cell-census/{OLD}/", "no SOMA store at"),
        "not a SOMA store": (f"{no_store}/", "Cannot read the manifest census_info/datasets"),
        "no h5ad files": (f"{no_h5ads}/", "has no .h5ad files in"),
    }


def test_bad_sources_and_arguments_write_nothing(
    bucket: Path, curation_db: object, tmp_path: Path
) -> None:
    """Each bad source of the README, and each bad argument, is refused with a clear message
    before anything is written: every table keeps its row count."""
    before = table_counts("default")
    for name, (source, fragment) in _make_bad_sources(tmp_path, bucket).items():
        with pytest.raises(CommandError) as info:
            call_command("curate_release", source=source, quiet=True)
        assert fragment in str(info.value), name
        assert "\n" not in str(info.value), name
        assert table_counts("default") == before, name
    good = release(bucket, OLD)
    for options, fragment in (
        ({"workers": 0}, "--workers must be at least 1 (got 0)"),
        ({"limit": 0}, "--limit must be at least 1 (got 0)"),
    ):
        with pytest.raises(CommandError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            call_command("curate_release", source=good, quiet=True, **options)
        assert table_counts("default") == before
    with pytest.raises(CommandError, match="invalid choice: 'dask'"):
        call_command("curate_release", "--source", good, "--executor", "dask")
    assert table_counts("default") == before


def test_missing_bucket_writes_nothing(s3_server: str, curation_db: object) -> None:
    before = table_counts("default")
    with pytest.raises(CommandError, match="bucket 'no-such-bucket' does not exist"):
        call_command("curate_release", source=f"s3://no-such-bucket/cell-census/{OLD}/", quiet=True)
    assert table_counts("default") == before


def test_an_instance_without_ontologies_is_refused(
    bucket: Path, isolated_instances: None, tmp_path: Path
) -> None:
    import registry as ln

    ln.init("bare", db=f"sqlite:///{tmp_path / 'bare.sqlite3'}")
    before = table_counts("default")
    with pytest.raises(CommandError) as info:
        call_command("curate_release", source=release(bucket, OLD), quiet=True)
    message = str(info.value)
    assert "Instance 'bare' has no " in message and "CellType" in message
    assert "python manage.py load_ontologies --instance bare" in message
    assert table_counts("default") == before


def test_a_failed_run_is_marked_failed_and_resumed(
    bucket: Path, curation_db: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_scan(*args: object, **kwargs: object) -> dict:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(curation.steps, "scan_store", broken_scan)
    with pytest.raises(RuntimeError, match="the disk is on fire"):
        curate(bucket, OLD)
    run = Run.filter(transform__key="curate_release").one()
    assert run.status == "failed" and run.finished_at is not None
    assert run.report["error"] == "RuntimeError: the disk is on fire"
    assert set(run.report["steps"]) == {"check_files"}
    monkeypatch.undo()
    report = json.loads(curate(bucket, OLD, json=True))
    assert report["resumed"] and report["skipped_steps"] == ["check_files"]
    assert report["artifacts"]["added"] == 24
    run = Run.filter(transform__key="curate_release").one()
    assert run.status == "completed" and "error" not in run.report
