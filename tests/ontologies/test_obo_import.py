"""Importing an OBO file through pronto (issue 3, point 2) on a real ontology file (MmusDv,
fixtures/mmusdv.obo), re-importing a changed release, and the errors of bad input (point 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction

import registry as ln
from ontologies.errors import (
    HierarchyCycleError,
    OntologyError,
    OntologyFileError,
    OntologyIdPrefixError,
    UnknownRegistryError,
)
from ontologies.hierarchy import compute_closure
from ontologies.importers.obo import import_file, load_file
from ontologies.models import CellType
from tests.ontologies.conftest import MMUSDV_OBO, only_changes


def _import(db: ln.DB, path: Path = MMUSDV_OBO, version: str = "src", **kwargs: object) -> object:
    return import_file(path, "DevelopmentalStage", "mmusdv", version, using=db.alias, **kwargs)


def test_a_real_obo_file_lands_with_synonyms_obsoletes_and_parents(fresh: ln.DB) -> None:
    report = _import(fresh)
    stages = fresh.ontologies.DevelopmentalStage
    assert report.created == stages.count() == 110
    ts1 = stages.get(ontology_id="MmusDv:0000003")
    assert ts1.name == "Theiler stage 01"
    assert ts1.synonym_list == ["E0-2.5", "Theiler stage 1"]  # EXACT synonyms only, sorted
    assert ts1.description.startswith("Embryonic stage defined by a one-cell embryo")
    # parents along is_a and part_of
    assert {p.ontology_id for p in ts1.parents.all()} == {"MmusDv:0000000", "MmusDv:0000002"}
    adult = stages.get(ontology_id="MmusDv:0000040")
    assert adult.is_deprecated and adult.replaced_by.ontology_id == "MmusDv:0000110"
    assert stages.get(ontology_id="MmusDv:0000016").is_deprecated  # obsolete, "consider" only
    source = ts1.source
    assert (source.entity, source.name, source.version) == ("DevelopmentalStage", "mmusdv", "src")
    assert source.url == str(MMUSDV_OBO.resolve())
    prenatal = stages.get(name="prenatal stage")
    assert "Theiler stage 01" in set(prenatal.descendants().values_list("name", flat=True))
    # the closure is that of the file's links
    ontology, _ = load_file(MMUSDV_OBO)
    pk = dict(stages.values_list("ontology_id", "pk"))
    edges = []
    for term in ontology.terms():
        parents = {p.id for p in term.superclasses(distance=1, with_self=False)}
        parents |= {t.id for r, ts in term.relationships.items() if r.id == "part_of" for t in ts}
        edges += [(pk[term.id], pk[p]) for p in parents]
    expected = compute_closure(edges)
    for term_id, term_pk in pk.items():
        got = set(stages.get(pk=term_pk).ancestors().values_list("pk", flat=True))
        assert got == set(expected.get(term_pk, {})), term_id
    assert only_changes([_import(fresh)]) == []


def test_a_changed_release_updates_in_place_and_deprecates_vanished_terms(
    fresh: ln.DB, tmp_path: Path
) -> None:
    _import(fresh)
    stages = fresh.ontologies.DevelopmentalStage
    before = dict(stages.values_list("ontology_id", "pk"))
    text = MMUSDV_OBO.read_text()
    gone = "[Term]\nid: MmusDv:0000041\nname: unknown\n"  # a term of the old release
    assert gone in text
    changed = text.replace(gone, "[Term]\nid: MmusDv:0000999\nname: unknown\n")
    changed = changed.replace("name: Theiler stage 02\n", "name: Theiler stage 2\n")
    newer = tmp_path / "mmusdv-newer.obo"
    newer.write_text(changed)
    report = _import(fresh, newer, version="newer")
    assert (report.created, report.updated, report.deprecated) == (1, 1, 1)
    vanished = stages.get(ontology_id="MmusDv:0000041")
    assert vanished.is_deprecated and vanished.pk == before["MmusDv:0000041"]
    assert vanished.source.version == "src" and not vanished.parents.exists()
    renamed = stages.get(ontology_id="MmusDv:0000005")
    assert (renamed.pk, renamed.name) == (before["MmusDv:0000005"], "Theiler stage 2")
    assert renamed.source.version == "newer"
    assert only_changes([_import(fresh, newer, version="newer")]) == []


def test_the_command_imports_a_file(fresh: ln.DB, capsys: pytest.CaptureFixture) -> None:
    call_command(
        "load_ontologies",
        file=str(MMUSDV_OBO),
        registry="DevelopmentalStage",
        source_name="mmusdv",
        source_version="2013-src",
    )
    err = capsys.readouterr().err
    assert "DevelopmentalStage <- mmusdv 2013-src: 110 terms" in err
    assert fresh.ontologies.DevelopmentalStage.count() == 110


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "hp.obo"
    with pytest.raises(OntologyFileError, match=f"Ontology file {missing} does not exist"):
        import_file(missing, "Phenotype", "hp", "2025-05-06")


def test_a_corrupt_file_names_file_and_line(tmp_path: Path) -> None:
    lines = MMUSDV_OBO.read_text().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines, 1) if line == "is_obsolete: true\n")
    lines[number - 1] = "is_obsolete: maybe\n"
    corrupt = tmp_path / "corrupt.obo"
    corrupt.write_text("".join(lines))
    with pytest.raises(OntologyFileError) as error:  # before anything is written
        import_file(corrupt, "DevelopmentalStage", "mmusdv", "x")
    message = str(error.value)
    assert message.startswith(f"{corrupt}, line {number}: ")
    assert "'is_obsolete: maybe'" in message and "not valid OBO" in message


@pytest.mark.parametrize("content", [b"", b"hello\nthis is no ontology\n", b"\x00\xff\xfe\x89"])
def test_a_file_that_is_no_ontology_is_named(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.obo"
    path.write_bytes(content)
    with pytest.raises(OntologyFileError, match=f"Cannot read {path} as an ontology"):
        load_file(path)


def test_a_cycle_in_the_file_names_its_terms_and_writes_nothing(
    fresh: ln.DB, tmp_path: Path
) -> None:
    root = "[Term]\nid: MmusDv:0000000\nname: mouse life cycle stage\n"
    looped = tmp_path / "looped.obo"
    looped.write_text(MMUSDV_OBO.read_text().replace(root, root + "is_a: MmusDv:0000001\n"))
    with pytest.raises(HierarchyCycleError) as error:
        _import(fresh, looped)
    message = str(error.value)
    assert "DevelopmentalStage MmusDv:0000000 -> " in message
    assert "DevelopmentalStage MmusDv:0000001 -> " in message and "Remove one" in message
    assert fresh.ontologies.DevelopmentalStage.count() == 0


def test_unknown_relations_are_refused() -> None:
    with pytest.raises(OntologyError, match="relation\\(s\\) develops_from .* is_a, part_of"):
        import_file(MMUSDV_OBO, "DevelopmentalStage", "mmusdv", "x", relations=["develops_from"])


def test_an_unknown_registry_lists_the_registries() -> None:
    with pytest.raises(UnknownRegistryError) as error:
        import_file(MMUSDV_OBO, "Phenotypes", "mmusdv", "x")
    message = str(error.value)
    assert "There is no ontology registry 'Phenotypes'" in message
    assert "CellType, DevelopmentalStage, Disease" in message and "Phenotype" in message


def test_ids_of_another_ontology_are_refused(fresh: ln.DB) -> None:
    with pytest.raises(OntologyIdPrefixError) as error:
        import_file(MMUSDV_OBO, "CellType", "mmusdv", "x", using=fresh.alias)
    message = str(error.value)
    assert "110 ontology id(s) (from " in message and "do not belong in CellType" in message
    assert "'MmusDv:0000000'" in message and "CellType accepts ids with the prefixes CL" in message
    assert "--prefixes" in message
    with pytest.raises(OntologyIdPrefixError, match="CellType does not accept .* MmusDv"):
        import_file(MMUSDV_OBO, "CellType", "mmusdv", "x", using=fresh.alias, prefixes=["MmusDv"])
    assert fresh.ontologies.CellType.count() == 0
    report = _import(fresh, prefixes=["MmusDv"])
    assert report.created == 110 and not report.notes


@pytest.mark.django_db
def test_a_term_of_another_ontology_cannot_be_saved_in_a_registry() -> None:
    with pytest.raises(OntologyIdPrefixError) as error, transaction.atomic():
        CellType(ontology_id="UBERON:0002113", name="kidney").save()
    message = str(error.value)
    assert "'UBERON:0002113'" in message and "do not belong in CellType" in message
    assert "accepts ids with the prefixes CL" in message
