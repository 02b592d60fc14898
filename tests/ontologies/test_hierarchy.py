"""Hierarchy in SQL (issue 3, point 5): descendants/ancestors by closure table and by recursive
CTE, checked against the guide's own ancestor data for every CL term, and usable in filters."""

from __future__ import annotations

from collections import defaultdict

import pytest
from cellxgene_ontology_guide.ontology_parser import OntologyParser
from django.db import connection, transaction

import registry as ln
from ontologies import hierarchy
from ontologies.errors import HierarchyCycleError
from ontologies.importers.guide import resolve_schema_version
from ontologies.models import ArtifactCellType, CellType, CellTypeClosure
from registry.models import Artifact

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("real_cl")]

T_CELL, CELL, LYMPHOCYTE = "CL:0000084", "CL:0000000", "CL:0000542"
CD4_T_CELL = "CL:0000624"  # CD4-positive, alpha-beta T cell: a descendant of T cell


@pytest.fixture(scope="module")
def guide_cl() -> dict[str, dict[str, set[str]]]:
    """The guide's ancestors of every CL term (its public API), and descendants by inversion."""
    parser = OntologyParser(resolve_schema_version(None))
    ids = list(parser.cxg_schema.ontology("CL"))
    ancestors = {k: set(v) for k, v in parser.map_term_ancestors(ids).items()}
    descendants: dict[str, set[str]] = defaultdict(set)
    for term, above in ancestors.items():
        for ancestor in above:
            descendants[ancestor].add(term)
    return {"ancestors": ancestors, "descendants": {t: descendants[t] for t in ids}}


def _ids(queryset: object) -> set[str]:
    return set(queryset.values_list("ontology_id", flat=True))


@pytest.mark.parametrize("method", hierarchy.METHODS)
def test_descendants_equal_the_guides_for_every_cl_term(method: str, guide_cl: dict) -> None:
    terms = dict(
        CellType.objects.filter(ontology_id__startswith="CL:").values_list("ontology_id", "pk")
    )
    expected = guide_cl["descendants"]
    assert set(expected) <= set(terms)
    wrong = []
    for term_id in expected:
        got = _ids(CellType(pk=terms[term_id]).descendants(method=method))
        if got != expected[term_id]:
            wrong.append(term_id)
    assert not wrong, f"{len(wrong)} CL terms differ from the guide, e.g. {wrong[:5]}"


def test_ancestors_equal_the_guides_for_every_cl_term(guide_cl: dict) -> None:
    terms = dict(CellType.objects.values_list("ontology_id", "pk"))
    wrong = [
        term_id
        for term_id, expected in guide_cl["ancestors"].items()
        if _ids(CellType(pk=terms[term_id]).ancestors()) != expected
    ]
    assert not wrong, f"{len(wrong)} CL terms differ from the guide, e.g. {wrong[:5]}"


@pytest.mark.parametrize("method", hierarchy.METHODS)
def test_include_self_and_known_relations(method: str) -> None:
    t_cell = CellType.get(ontology_id=T_CELL)
    below = _ids(t_cell.descendants(method=method))
    assert CD4_T_CELL in below and T_CELL not in below
    assert T_CELL in _ids(t_cell.descendants(include_self=True, method=method))
    above = _ids(t_cell.ancestors(method=method))
    assert {LYMPHOCYTE, CELL} <= above and T_CELL not in above
    assert T_CELL in _ids(t_cell.ancestors(include_self=True, method=method))


def test_the_keys_sql_of_related_terms_selects_them_until_refined() -> None:
    """``descendants()`` carries the SQL of its keys alone (ln.Cells puts it in a question
    without reading the terms); a refined queryset does not: its keys are others."""
    t_cell = CellType.get(ontology_id=T_CELL)
    below = t_cell.descendants(include_self=True)
    sql, params = below.ids_sql
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        keys = {row[0] for row in cursor.fetchall()}
    assert keys == set(below.values_list("pk", flat=True)) and len(keys) > 10
    assert not hasattr(below.filter(name__startswith="CD4"), "ids_sql")


def test_descendants_of_a_queryset_are_the_union() -> None:
    pair = CellType.filter(ontology_id__in=[T_CELL, "CL:0000236"])  # T cell, B cell
    union = _ids(CellType.get(ontology_id=T_CELL).descendants()) | _ids(
        CellType.get(ontology_id="CL:0000236").descendants()
    )
    assert _ids(pair.descendants()) == union
    assert _ids(pair.descendants(method="cte")) == union
    assert _ids(pair.descendants(include_self=True)) == union | {T_CELL, "CL:0000236"}


def test_descendants_work_inside_an_artifact_filter() -> None:
    t_cell = ln.ontologies.CellType.get(name="T cell")
    cd4 = CellType.get(ontology_id=CD4_T_CELL)
    artifact = Artifact.objects.exclude(cell_types=t_cell).first()
    artifact.cell_types.add(cd4)
    subtree = t_cell.descendants(include_self=True)
    found = set(ln.Artifact.filter(cell_types__in=subtree).values_list("pk", flat=True))
    expected = set(
        ArtifactCellType.objects.filter(label__in=list(subtree)).values_list("artifact", flat=True)
    )
    assert artifact.pk in found and found == expected
    # the synthetic links to "T cell" are kept by the import (updated in place)
    assert ln.Artifact.filter(cell_types=t_cell).exists()
    assert len(found) == ln.Artifact.filter(cell_types__in=subtree).count()  # no duplicates
    narrowed = ln.Artifact.filter(cell_types__in=subtree.filter(name__contains="CD4"))
    assert artifact in narrowed


def test_the_closure_follows_parent_changes_made_through_the_orm() -> None:
    t_cell = CellType.get(ontology_id=T_CELL)
    extra = CellType.objects.create(ontology_id="CL:9999901", name="test-only T cell subtype")
    leaf = CellType.objects.create(ontology_id="CL:9999902", name="test-only leaf")
    leaf.parents.add(extra)
    extra.parents.add(t_cell)  # the whole new branch moves below T cell and its ancestors
    for method in hierarchy.METHODS:
        assert {"CL:9999901", "CL:9999902"} <= _ids(t_cell.descendants(method=method))
        assert {T_CELL, CELL} <= _ids(leaf.ancestors(method=method))
    assert CellTypeClosure.objects.get(ancestor=t_cell, descendant=leaf).depth == 2
    t_cell.children.remove(extra)
    assert "CL:9999902" not in _ids(t_cell.descendants())
    assert _ids(leaf.ancestors()) == {"CL:9999901"}


def test_a_cycle_through_the_orm_is_refused_with_the_terms_named() -> None:
    t_cell = CellType.get(ontology_id=T_CELL)
    lymphocyte = CellType.get(ontology_id=LYMPHOCYTE)
    message = f"Linking CellType {LYMPHOCYTE} under {T_CELL} would make a cycle"
    with pytest.raises(HierarchyCycleError, match=message), transaction.atomic():
        lymphocyte.parents.add(t_cell)
    assert not lymphocyte.parents.filter(pk=t_cell.pk).exists()


def test_compute_closure_depths_and_cycles() -> None:
    closure = hierarchy.compute_closure([(2, 1), (3, 2), (3, 1), (4, 3)])
    assert closure == {2: {1: 1}, 3: {2: 1, 1: 1}, 4: {3: 1, 2: 2, 1: 2}}
    with pytest.raises(HierarchyCycleError, match="1 -> 3 -> 2 -> 1, each a child of the next"):
        hierarchy.compute_closure([(1, 3), (2, 1), (3, 2)])


def test_unknown_method_and_registry_without_hierarchy() -> None:
    with pytest.raises(ValueError, match="Unknown hierarchy method 'bfs'; use one of closure, cte"):
        CellType.get(ontology_id=T_CELL).descendants(method="bfs")
    with pytest.raises(AttributeError):
        ln.ontologies.Gene.filter(symbol="CD3E").descendants()
    with pytest.raises(ValueError, match="CellType draft is not saved yet: save it before"):
        CellType(name="draft").ancestors()
