"""Importing the CELLxGENE ontologies from cellxgene-ontology-guide (issue 3, points 1 and 4):
what lands in each registry, safe re-imports and upgrades to a newer schema version."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import zstandard

import registry as ln
from ontologies.errors import UnknownRegistryError, UnknownSchemaVersionError
from ontologies.importers import guide
from ontologies.importers.guide import import_guide, resolve_schema_version, select_units
from registry.errors import ReadOnlyInstanceError
from tests.ontologies.conftest import only_changes

OLD, NEW = "7.0.0", "7.1.0"


def _guide_cl(schema_version: str) -> dict[str, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 7.0.0 is deprecated
        schema = guide.CXGSchema(schema_version)
    path = guide.data_path("CL", guide.ontology_release(schema, "CL"))
    with Path(path).open("rb") as handle:
        return json.loads(zstandard.ZstdDecompressor().stream_reader(handle).read())


def _snapshot(db: ln.DB) -> list[tuple]:
    fields = ("pk", "uid", "ontology_id", "name", "synonyms", "description", "is_deprecated")
    terms = db.ontologies.CellType.order_by("pk").values_list(*fields, "replaced_by", "source")
    links = db.ontologies.CellType.model.parents.through.objects.using(db.alias)
    return [*terms, *links.order_by("pk").values_list("pk", "from_celltype", "to_celltype")]


def test_schema_versions_default_to_the_newest() -> None:
    assert guide.available_schema_versions() == [OLD, NEW]
    assert resolve_schema_version(None) == NEW
    assert resolve_schema_version("7.1") == NEW
    assert resolve_schema_version("v7.0.0") == OLD


@pytest.mark.parametrize("version", ["9.9.9", "banana", "6"])
def test_unknown_schema_version_lists_the_available_ones(version: str) -> None:
    with pytest.raises(UnknownSchemaVersionError) as error:
        resolve_schema_version(version)
    message = str(error.value)
    assert f"CELLxGENE schema version {version!r} is not shipped" in message
    assert "cellxgene-ontology-guide 1.11.1" in message
    assert "Available: 7.0.0, 7.1.0 (newest: 7.1.0)" in message and "--schema-version" in message


def test_only_selects_ontologies_and_registries() -> None:
    assert [u.label for u in select_units(["cl", "Tissue"])] == [
        "CL -> CellType",
        "UBERON -> Tissue",
    ]
    mondo = [u.label for u in select_units(["MONDO"])]
    assert mondo == ["MONDO -> Disease", "PATO (PATO:0000461) -> Disease"]
    assert [u.registry for u in select_units(["ExperimentalFactor"])] == ["Assay"]
    assert len(select_units(None)) == len(guide.UNITS) == 10
    with pytest.raises(UnknownRegistryError, match="--only 'CLX' names no ontology or registry"):
        select_units(["CL", "CLX"])


def test_a_read_only_instance_is_refused_before_anything_is_written(
    isolated_instances: None, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'mirror.sqlite3'}"
    mirror = ln.init("mirror", db=url, read_only=True)
    with pytest.raises(
        ReadOnlyInstanceError,
        match="Instance 'mirror' is read-only: cannot "
        "import hsapdv 2025-01-23 into DevelopmentalStage",
    ):
        import_guide(only=["HsapDv"], using=mirror.alias)
    assert mirror.ontologies.DevelopmentalStage.count() == 0


def test_every_ontology_lands_in_its_registry(fresh: ln.DB) -> None:
    reports = import_guide(using=fresh.alias)
    by_unit = {(r.registry, r.source): r for r in reports}
    assert len(by_unit) == 10
    onto = fresh.ontologies
    counts = {
        "CellType": 3500,
        "Tissue": 16000,
        "Disease": 31000,
        "Assay": 18000,
        "Ethnicity": 1000,
        "DevelopmentalStage": 400,
        "Phenotype": 2800,
    }
    for registry, at_least in counts.items():
        assert getattr(onto, registry).count() >= at_least, registry
    # names, synonyms, description, deprecation + replacement, parents, source
    t_cell = onto.CellType.get(ontology_id="CL:0000084")
    assert t_cell.name == "T cell" and "T lymphocyte" in t_cell.synonym_list
    assert t_cell.description.startswith("A type of lymphocyte")
    assert t_cell.uid == onto.CellType.model.uid_for("CL:0000084")
    assert {p.ontology_id for p in t_cell.parents.all()} == {"CL:0000542"}
    native = onto.CellType.get(ontology_id="CL:0000003")
    assert native.is_deprecated and native.replaced_by.ontology_id == "CL:0000000"
    source = t_cell.source
    assert (source.entity, source.name, source.version) == ("CellType", "cl", "2026-03-26")
    assert "CELLxGENE schema 7.1.0" in source.description and source.url.endswith("cl.owl")
    # MONDO + PATO "normal" in Disease; sex terms in Phenotype; AfPO in Ethnicity
    normal = onto.Disease.get(ontology_id="PATO:0000461")
    assert normal.name == "normal" and normal.source.name == "pato"
    assert onto.Disease.get(ontology_id="MONDO:0100096").name == "COVID-19"
    assert set(
        onto.Phenotype.filter(ontology_id__in=["PATO:0000383", "PATO:0000384"]).values_list(
            "name", flat=True
        )
    ) == {"female", "male"}
    assert onto.Ethnicity.filter(ontology_id__startswith="AfPO:").exists()
    assert onto.Assay.get(ontology_id="EFO:0009899").name == "10x 3' v2"
    stages = onto.DevelopmentalStage
    assert stages.filter(ontology_id__startswith="HsapDv:").count() == 260
    assert stages.filter(ontology_id__startswith="MmusDv:").count() == 178
    # only the organisms the schema admits, with LaminDB-style names
    organisms = onto.Organism
    assert 14 < organisms.count() < 100
    human = organisms.get(ontology_id="NCBITaxon:9606")
    assert (human.name, human.scientific_name) == ("human", "homo_sapiens")
    assert organisms.standardize(["Homo sapiens"]) == ["human"]
    strain = organisms.get(ontology_id="NCBITaxon:10092")  # Mus musculus domesticus
    assert strain.parents.get().name == "mouse"
    assert strain in organisms.get(name="mouse").descendants()
    # importing everything again changes nothing
    assert only_changes(import_guide(using=fresh.alias)) == []


def test_reimport_is_a_no_op_and_an_upgrade_updates_in_place(fresh: ln.DB) -> None:
    import_guide(OLD, only=["CL"], using=fresh.alias)
    onto = fresh.ontologies
    old, new = _guide_cl(OLD), _guide_cl(NEW)
    storage = fresh.Storage.create(root="/tmp/cellregistry-test-storage")
    artifact = fresh.Artifact.create(key="a.h5ad", storage=storage)
    renamed = next(k for k in old if k in new and old[k]["label"] != new[k]["label"])
    kept = onto.CellType.get(ontology_id=renamed)
    artifact.cell_types.add(kept, onto.CellType.get(ontology_id="CL:0000084"))
    before = _snapshot(fresh)

    assert only_changes(import_guide(OLD, only=["CL"], using=fresh.alias)) == []
    assert _snapshot(fresh) == before

    (report,) = import_guide(NEW, only=["CL"], using=fresh.alias)
    added = [k for k in new if k not in old]
    assert report.created == len(added) and report.updated > 0
    assert report.parents_added and report.closure_rows
    now = onto.CellType.get(pk=kept.pk)  # same record, new name
    assert (now.uid, now.name) == (kept.uid, new[renamed]["label"])
    assert set(artifact.cell_types.values_list("ontology_id", flat=True)) == {
        renamed,
        "CL:0000084",
    }
    newly = next(k for k in old if not old[k]["deprecated"] and new.get(k, {}).get("deprecated"))
    assert onto.CellType.get(ontology_id=newly).is_deprecated
    assert onto.CellType.filter(source__version="2026-03-26").count() == len(new)
    for term_id in ("CL:0000084", "CL:0000540"):
        term = onto.CellType.get(ontology_id=term_id)
        expected = {a for a, d in new[term_id]["ancestors"].items()}
        assert set(term.ancestors().values_list("ontology_id", flat=True)) == expected
    assert only_changes(import_guide(NEW, only=["CL"], using=fresh.alias)) == []


def test_the_organisms_are_scanned_once_then_read_from_the_cache(
    monkeypatch: pytest.MonkeyPatch, registry_home: Path
) -> None:
    release = guide.ontology_release(guide.CXGSchema(NEW), "NCBITaxon")
    first = guide.read_taxa(release, ["NCBITaxon:9606"], ["NCBITaxon:10090"])
    assert first["NCBITaxon:9606"]["label"] == "Homo sapiens"
    assert first["NCBITaxon:10092"]["ancestors"]["NCBITaxon:10090"] == 1  # a mouse subspecies
    assert "NCBITaxon:9598" not in first
    monkeypatch.setattr(guide, "_scan_taxa", lambda *args: pytest.fail("scanned again"))
    assert guide.read_taxa(release, ["NCBITaxon:9606"], ["NCBITaxon:10090"]) == first
    assert len(list((registry_home / "cache" / "cellxgene-ontology-guide").iterdir())) == 1
