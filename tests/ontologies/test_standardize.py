"""lookup / search / standardize / validate / inspect on the real Cell Ontology (issue 3,
point 6), and the same helpers on every registry."""

from __future__ import annotations

import random

import numpy as np
import pytest

import registry as ln
from ontologies import standardize as curation
from ontologies.models import CellType, Disease, Gene, Tissue
from ontologies.standardize import InspectResult

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("real_cl")]


def test_standardize_maps_synonyms_case_and_ids_to_the_name() -> None:
    values = ["T lymphocyte", "t cell", "CL:0000084"]
    assert ln.ontologies.CellType.standardize(values) == ["T cell", "T cell", "T cell"]
    ids = CellType.standardize(values, return_field="ontology_id")
    assert ids == ["CL:0000084"] * 3
    assert CellType.standardize("B-lymphocyte") == "B cell"
    assert CellType.standardize(["no such cell", None, 7]) == ["no such cell", None, 7]
    assert CellType.standardize(["t cell"], case_sensitive=True) == ["t cell"]
    assert CellType.standardize(["T lymphocyte"], synonyms=False) == ["T lymphocyte"]


def test_an_exact_name_beats_another_terms_synonym() -> None:
    name = "substantia nigra dopaminergic neuron"  # CL:4042025, and a synonym of CL:4072006
    assert CellType.get(ontology_id="CL:4072006").synonym_list.count(name) == 1
    assert CellType.standardize([name], return_field="ontology_id") == ["CL:4042025"]


def test_a_current_term_beats_a_deprecated_one_with_the_same_synonym() -> None:
    # "chandelier cell": synonym of CL:4023036; CL:4023083 "obsolete chandelier cell" is
    # deprecated and replaced by it
    assert CellType.standardize(["Chandelier Cell"], return_field="ontology_id") == ["CL:4023036"]


def test_matching_by_one_scan_and_by_indexed_queries_agree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(1)
    rows = list(CellType.objects.values_list("name", "ontology_id", "synonyms"))
    values = []
    for name, term_id, synonyms in rng.sample(rows, 400):
        values += [name, term_id, name.upper(), f"{name} x"] + synonyms.split("|")[:1] * bool(
            synonyms
        )
    monkeypatch.setattr(curation, "SCAN_MIN_VALUES", 10**9)  # never scan everything
    by_index = CellType.standardize(values, return_field="ontology_id")
    monkeypatch.setattr(curation, "SCAN_MIN_VALUES", 1)
    monkeypatch.setattr(curation, "SCAN_FACTOR", 10**9)  # always scan everything
    by_scan = CellType.standardize(values, return_field="ontology_id")
    assert by_index == by_scan
    assert sum(v != s for v, s in zip(values, by_scan, strict=True)) > 800


def test_validate_is_exact() -> None:
    result = CellType.validate(["T cell", "t cell", "T lymphocyte", "CL:0000084", None])
    assert isinstance(result, np.ndarray)
    assert result.tolist() == [True, False, False, False, False]
    assert CellType.validate(["CL:0000084"], field="ontology_id").tolist() == [True]
    assert CellType.filter(name__startswith="B").validate(["T cell"]).tolist() == [False]


def test_inspect_reports_valid_fixable_unknown_and_deprecated() -> None:
    values = ["T cell", "T lymphocyte", "b cell", "CL:0000236", "T cel", "obsolete native cell"]
    result = CellType.inspect(values + ["T cell", None])
    assert isinstance(result, InspectResult)
    assert result.validated == ["T cell", "obsolete native cell"]
    assert result.synonyms_mapper == {
        "T lymphocyte": "T cell",
        "b cell": "B cell",
        "CL:0000236": "B cell",
    }
    assert result.unknown == ["T cel"]
    assert "T cell" in result.suggestions["T cel"]
    assert result.deprecated == {"obsolete native cell": "cell"}  # CL:0000003 -> CL:0000000
    assert result.frac_validated == pytest.approx(2 / 6)
    text = str(result)
    assert "unknown: 'T cel' (did you mean" in text and "replaced by 'cell'" in text


def test_search_ranks_exact_and_synonym_matches_first() -> None:
    assert CellType.search("T cel").first().name == "T cell"
    assert CellType.search("T lymphocyte").first().name == "T cell"  # exact synonym
    assert CellType.search("T cell").first().name == "T cell"
    top = [c.name for c in CellType.search("dendritic cell")[:3]]
    assert top[0] == "dendritic cell"


def test_lookup_over_all_of_cl() -> None:
    cell_types = CellType.lookup()
    assert len(cell_types) >= CellType.filter(ontology_id__startswith="CL:0").count()
    assert cell_types.t_cell.ontology_id == "CL:0000084"
    assert cell_types["CD4-positive, alpha-beta T cell"].ontology_id == "CL:0000624"
    by_id = CellType.lookup(field="ontology_id", return_field="name")
    assert by_id["CL:0000084"] == "T cell"


def test_the_helpers_work_on_every_term_registry() -> None:
    # the synthetic terms of the other registries, and genes (none in the test database)
    assert Tissue.standardize(["KIDNEY", "UBERON:0002048"]) == ["kidney", "lung"]
    assert Disease.inspect(["normal", "Normal"]).synonyms_mapper == {"Normal": "normal"}
    assert Gene.standardize(["CD3E"]) == ["CD3E"]
    assert Gene.validate(["CD3E"]).tolist() == [False]
    assert ln.bionty.ExperimentalFactor.standardize(["10X 3' V2"]) == ["10x 3' v2"]
