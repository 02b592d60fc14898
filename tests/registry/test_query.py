"""The query surface on the synthetic registry: filters, to_dataframe, lookup, search, get/one."""

from __future__ import annotations

import pandas as pd
import pytest
from django.core.exceptions import FieldError
from django.db import models

import registry as ln
from demo import synthetic
from ontologies.models import ArtifactCellType
from registry.errors import MultipleRecordsError, NoRecordError, QueryError, UnknownFieldError
from registry.models import Artifact, Collection, CollectionArtifact, ULabel
from registry.query import plain_get, to_attribute_name
from tests.conftest import on_postgres

pytestmark = pytest.mark.django_db


def _cell_type_names(artifact_id: int) -> list[str]:
    links = ArtifactCellType.objects.filter(artifact_id=artifact_id)
    return sorted(links.values_list("label__name", flat=True))


def _ids_with_cell_types(*names: str) -> set[int]:
    links = ArtifactCellType.objects.filter(label__name__in=names)
    return set(links.values_list("artifact_id", flat=True))


class TestManyValuedFilters:
    def test_no_duplicate_rows(self) -> None:
        query = Artifact.filter(cell_types__name__in=["B cell", "T cell", "neutrophil"])
        ids = list(query.values_list("id", flat=True))
        assert len(ids) == len(set(ids))
        assert set(ids) == _ids_with_cell_types("B cell", "T cell", "neutrophil")
        assert query.count() == len(ids)
        # a plain Django join does duplicate artifacts carrying several of the names
        plain = models.QuerySet(Artifact).filter(
            cell_types__name__in=["B cell", "T cell", "neutrophil"]
        )
        assert plain.count() > len(ids)

    def test_record_and_in_filters(self) -> None:
        cell_types = ln.ontologies.CellType.lookup()
        by_record = Artifact.filter(cell_types=cell_types.b_cell)
        by_in = Artifact.filter(cell_types__in=[cell_types.b_cell, cell_types.t_cell])
        assert set(by_record.values_list("id", flat=True)) == _ids_with_cell_types("B cell")
        assert set(by_in.values_list("id", flat=True)) == _ids_with_cell_types("B cell", "T cell")
        assert by_in.count() == len(_ids_with_cell_types("B cell", "T cell"))

    def test_conditions_on_one_relation_apply_to_the_same_label(self) -> None:
        same_label = Artifact.filter(
            cell_types__name="B cell", cell_types__ontology_id="CL:0000084"
        )
        assert same_label.count() == 0  # no label is both "B cell" and T cell's id
        chained = Artifact.filter(cell_types__name="B cell").filter(
            cell_types__ontology_id="CL:0000084"
        )
        expected = _ids_with_cell_types("B cell") & _ids_with_cell_types("T cell")
        assert set(chained.values_list("id", flat=True)) == expected

    def test_q_objects_and_exclude(self) -> None:
        from django.db.models import Q

        either = Artifact.filter(Q(cell_types__name="B cell") | Q(tissues__name="kidney"))
        ids = list(either.values_list("id", flat=True))
        kidney = set(Artifact.objects.filter(tissues__name="kidney").values_list("id", flat=True))
        assert len(ids) == len(set(ids))
        assert set(ids) == _ids_with_cell_types("B cell") | kidney
        without_b = Artifact.filter(suffix=".h5ad").exclude(cell_types__name="B cell")
        assert without_b.count() == Artifact.filter(suffix=".h5ad").count() - len(
            _ids_with_cell_types("B cell")
        )

    def test_reverse_many_to_many_and_isnull(self) -> None:
        census = Collection.get(key="cellxgene-census", version="2025-01-30")
        members = Artifact.filter(collections=census)
        assert members.count() == synthetic_artifact_count()
        no_cells = Artifact.filter(cell_types__isnull=True)
        assert list(no_cells.values_list("otype", flat=True)) == ["tiledbsoma"]

    def test_queryset_values_are_subqueries(self) -> None:
        immune_types = ln.ontologies.CellType.filter(name__in=["B cell", "T cell"])
        query = Artifact.filter(cell_types__in=immune_types)
        assert set(query.values_list("id", flat=True)) == _ids_with_cell_types("B cell", "T cell")

    def test_related_manager_filter(self) -> None:
        census = Collection.get(key="cellxgene-census", version="2024-07-01")
        subset = census.artifacts.filter(cell_types__name="B cell")
        in_old = set(census.artifacts.values_list("id", flat=True))
        assert set(subset.values_list("id", flat=True)) == _ids_with_cell_types("B cell") & in_old

    def test_link_conditions_follow_the_query_into_subqueries_and_unions(self) -> None:
        """The link-table conditions sit in the WHERE as plain SQL; they must follow their
        table when Django renames it (a query of the same table inside another, ``|``)."""
        b_cells = _ids_with_cell_types("B cell")
        kidney = set(
            models.QuerySet(Artifact).filter(tissues__name="kidney").values_list("id", flat=True)
        )
        inner = Artifact.filter(cell_types__name="B cell")
        outer = Artifact.filter(tissues__name="kidney", pk__in=inner)
        assert set(outer.values_list("id", flat=True)) == b_cells & kidney
        either = Artifact.filter(cell_types__name="B cell") | Artifact.filter(
            tissues__name="kidney"
        )
        assert set(either.values_list("id", flat=True)) == b_cells | kidney
        collections = Collection.filter(artifacts__in=inner)
        members = CollectionArtifact.objects.filter(artifact_id__in=b_cells)
        expected = set(members.values_list("collection_id", flat=True))
        assert set(collections.values_list("id", flat=True)) == expected
        not_b = Artifact.filter(tissues__name="kidney").exclude(cell_types__name="B cell")
        assert set(not_b.values_list("id", flat=True)) == kidney - b_cells

    def test_several_link_conditions_answer_like_the_orm_and_the_rarest_drives(self) -> None:
        """Link conditions of several filter calls on one table are one WHERE condition; the
        condition selecting the fewest link rows drives (``IN``) and the others are index
        probes (``EXISTS``). The answer is the one of Django's own joins."""
        census = Collection.get(key=synthetic.CENSUS_KEY, version=synthetic.CENSUS_VERSIONS[-1])
        query = census.artifacts.filter(
            organisms__name="human",
            cell_types__name__in=["dendritic cell", "neutrophil"],
            tissues__name="kidney",
        ).order_by("size")
        plain = (
            models.QuerySet(Artifact)
            .filter(collections=census)
            .filter(organisms__name="human")
            .filter(cell_types__name__in=["dendritic cell", "neutrophil"])
            .filter(tissues__name="kidney")
            .distinct()
            .order_by("size")
        )
        expected = list(plain.values_list("id", flat=True))
        assert expected, "the workload must have such artifacts"
        assert [a.id for a in query] == expected
        assert query.count() == len(expected)
        sql = str(query.query)
        link_tables = ["collectionartifact", "artifactorganism", "artifactcelltype"]
        assert all(table in sql for table in [*link_tables, "artifacttissue"])
        # kidney (two tissues per artifact, hundreds of tissues) is the rarest label; on
        # PostgreSQL the two rarest drive and the probes are fenced (OFFSET 0); on SQLite the
        # probes check the driving link rows, inside its subquery
        drivers = 2 if on_postgres() else 1
        assert sql.count("EXISTS") == 4 - drivers and sql.count('"id" IN (SELECT') == drivers
        assert ("OFFSET 0" in sql) == on_postgres()
        if on_postgres():
            assert 'IN (SELECT "ontologies_artifacttissue"' in sql
        else:
            assert 'IN (SELECT d."artifact_id" FROM "ontologies_artifacttissue" d WHERE' in sql
            assert sql.count('= d."artifact_id"') == 3

    def test_link_conditions_on_one_link_table_in_several_filter_calls(self) -> None:
        """Two conditions on the cell types (on SQLite: the driving link rows and a probe of
        the same link table) keep apart: the artifacts having both, as Django's joins find
        them, also with a third condition driving."""
        both = _ids_with_cell_types("B cell") & _ids_with_cell_types("T cell")
        kidney = set(
            models.QuerySet(Artifact).filter(tissues__name="kidney").values_list("id", flat=True)
        )
        assert both & kidney and both - kidney, "the workload must have both kinds"
        query = Artifact.filter(cell_types__name="B cell").filter(cell_types__name="T cell")
        assert set(query.values_list("id", flat=True)) == both
        assert query.count() == len(both)
        with_kidney = query.filter(tissues__name="kidney")
        assert set(with_kidney.values_list("id", flat=True)) == both & kidney
        assert with_kidney.count() == len(both & kidney)

    def test_a_common_label_next_to_other_conditions_is_a_probe(self) -> None:
        """A label condition selecting many link rows (B or T cell: about a third of the
        artifacts) is an ``EXISTS`` probe when the query has other conditions, so the database
        can drive by their index; a rare label (blood: 8 artifacts) still drives. Answers as the
        ORM's."""
        common = {"cell_types__name__in": ["B cell", "T cell"]}
        rare = {"tissues__name": "blood"}
        for labels in (common, rare):
            query = Artifact.filter(created_by__handle="sunnyosun", size__gt=1e9, **labels)
            plain = models.QuerySet(Artifact).filter(
                created_by__handle="sunnyosun", size__gt=1e9, **labels
            )
            expected = set(plain.distinct().values_list("id", flat=True))
            assert expected, "the workload must have such artifacts"
            assert set(query.values_list("id", flat=True)) == expected
            assert len(list(query)) == len(expected)
            sql = str(query.query)
            drives = '"id" IN (SELECT' in sql
            assert drives == (labels is rare), sql
            assert sql.count("EXISTS") == (0 if labels is rare else 1)

    def test_count_of_one_label_condition_counts_each_record_once(self) -> None:
        """Counted from the link table alone; an artifact with both cell types counts once."""
        query = Artifact.filter(cell_types__name__in=["B cell", "T cell"])
        both = _ids_with_cell_types("B cell") & _ids_with_cell_types("T cell")
        assert both, "the workload must have artifacts with both"
        assert query._only_link_condition() is not None
        assert query.count() == len(_ids_with_cell_types("B cell", "T cell"))
        assert query[:5].count() == 5
        h5ad = query.filter(size__gt=1e9)
        assert h5ad._only_link_condition() is None
        expected = models.QuerySet(Artifact).filter(
            id__in=_ids_with_cell_types("B cell", "T cell"), size__gt=1e9
        )
        assert h5ad.count() == expected.count()


def synthetic_artifact_count() -> int:
    return len(synthetic.make_plan(1000, 0).artifacts)


class TestToDataframe:
    def test_returns_all_rows_without_limit(self) -> None:
        frame = Artifact.filter(suffix=".h5ad").to_dataframe()
        assert len(frame) == synthetic_artifact_count()
        assert frame.index.name == "id"
        assert list(frame.columns[:3]) == ["uid", "version", "is_latest"]
        assert frame["size"].dtype.kind == "i"
        assert frame["is_latest"].dtype == bool and frame["uid"].dtype == object
        assert frame["created_by_id"].dtype.kind == "i"
        assert frame["created_at"].dtype.kind == "M"

    @pytest.mark.parametrize("registry", ["Artifact", "CellType"])
    def test_frame_is_the_one_pandas_infers_from_the_values(self, registry: str) -> None:
        """The columns are built as typed arrays; the frame must equal what pandas makes of
        the same rows (dtypes included: NULLs, all-NULL columns, datetimes, text)."""
        model = Artifact if registry == "Artifact" else ln.bionty.CellType
        query = model.filter(id__lte=400).order_by("id")
        include = ["created_by__handle"]
        frame = query.to_dataframe(include=include)
        columns = list(frame.columns)
        rows = models.QuerySet(model).filter(id__lte=400).order_by("id")
        expected = pd.DataFrame.from_records(
            list(rows.values_list("id", *columns)), columns=["id", *columns]
        ).set_index("id")
        assert len(frame) > 100
        pd.testing.assert_frame_equal(frame, expected)
        # its blocks are merged when an operation needs them: the results are pandas' own
        numbers = frame.select_dtypes("number")
        assert numbers.to_numpy().tolist() == expected.select_dtypes("number").to_numpy().tolist()
        pd.testing.assert_series_equal(
            frame.sum(numeric_only=True), expected.sum(numeric_only=True)
        )
        pd.testing.assert_frame_equal(frame.T.T, expected.T.T)

    def test_numbers_with_nulls_become_floats_with_nan(self) -> None:
        artifacts = Artifact.filter(suffix=".h5ad").order_by("id")[:2]
        first, second = (a.id for a in artifacts)
        models.QuerySet(Artifact).filter(id=first).update(n_observations=None)
        models.QuerySet(Artifact).filter(id=second).update(n_observations=7)
        frame = Artifact.filter(id__in=[first, second]).to_dataframe()
        assert frame["n_observations"].dtype == float
        assert pd.isna(frame.loc[first, "n_observations"])
        assert frame.loc[second, "n_observations"] == 7

    def test_explicit_limit(self) -> None:
        assert len(Artifact.filter(suffix=".h5ad").order_by("size").to_dataframe(limit=7)) == 7

    def test_many_valued_include_holds_all_values(self) -> None:
        frame = Artifact.filter(cell_types__name="B cell").to_dataframe(
            include=["cell_types__name", "created_by__handle", "tissues__ontology_id"]
        )
        assert len(frame) == len(_ids_with_cell_types("B cell"))
        for artifact_id, names in frame["cell_types__name"].items():
            assert names == _cell_type_names(artifact_id)
            assert "B cell" in names and len(names) >= 6
        assert frame["created_by__handle"].map(type).eq(str).all()
        assert set(frame["created_by__handle"]) <= set(synthetic.USERS)
        assert frame["tissues__ontology_id"].map(len).eq(2).all()

    def test_empty_result(self) -> None:
        frame = Artifact.filter(key="nothing").to_dataframe(include=["cell_types__name"])
        assert frame.empty
        assert "cell_types__name" in frame.columns

    def test_reverse_include(self) -> None:
        frame = Artifact.filter(description=synthetic.KIDNEY_DATASET).to_dataframe(
            include=["collections__key"]
        )
        (keys,) = frame["collections__key"]
        assert synthetic.CENSUS_KEY in keys and synthetic.STUDY_KEY in keys

    def test_unknown_include(self) -> None:
        with pytest.raises(UnknownFieldError, match="Did you mean: cell_types"):
            Artifact.filter(suffix=".h5ad").to_dataframe(include=["cell_typs__name"])


class TestLookup:
    def test_attribute_names(self) -> None:
        assert to_attribute_name("10x 3' v2") == "ln_10x_3_v2"
        assert to_attribute_name("dendritic cell") == "dendritic_cell"
        assert to_attribute_name("COVID-19") == "covid_19"
        assert (
            to_attribute_name("CD4-positive, alpha-beta T cell") == "cd4_positive_alpha_beta_t_cell"
        )
        assert to_attribute_name("class") == "class_"
        assert to_attribute_name("!!") == "ln_"

    def test_lookup_records_and_return_field(self) -> None:
        assays = ln.ontologies.Assay.lookup()
        assert assays.ln_10x_3_v2.ontology_id == "EFO:0009899"
        assert ln.bionty.ExperimentalFactor.lookup(return_field="name").ln_10x_3_v3 == "10x 3' v3"
        users = ln.User.lookup()
        assert users.sunnyosun.handle == "sunnyosun"
        features = ln.Feature.lookup(return_field="name")
        assert features.cell_type == "cell_type"
        assert ln.ontologies.CellType.lookup(field="ontology_id")["CL:0000236"].name == "B cell"
        assert ln.ontologies.CellType.lookup()["dendritic cell"].ontology_id == "CL:0000451"

    def test_lookup_on_a_queryset(self) -> None:
        suspension_types = ULabel.filter(type__name="SuspensionType").lookup()
        assert sorted(suspension_types) == ["cell", "nucleus"]
        assert suspension_types.cell.type.name == "SuspensionType"

    def test_duplicates_are_deterministic(self) -> None:
        kind = ULabel.objects.create(name="Clash", is_type=True)
        first = ULabel.objects.create(name="T cell", type=kind)
        second = ULabel.objects.create(name="T-cell", type=kind)
        third = ULabel.objects.create(name="t cell!", type=kind)
        labels = ULabel.filter(type=kind).lookup()
        assert labels.t_cell == first
        assert labels.t_cell_2 == second
        assert labels.t_cell_3 == third
        assert labels["T-cell"] == second

    def test_unknown_name_suggests(self) -> None:
        cell_types = ln.ontologies.CellType.lookup()
        with pytest.raises(AttributeError, match="Did you mean: .*dendritic_cell"):
            cell_types.dendritic_cel  # noqa: B018

    def test_dict_materialises_everything(self) -> None:
        organisms = ln.ontologies.Organism.lookup().dict()
        assert {k: v.ontology_id for k, v in organisms.items()} == {
            "human": "NCBITaxon:9606",
            "mouse": "NCBITaxon:10090",
        }


class TestSearch:
    def test_exact_then_synonym_then_prefix(self) -> None:
        CellType = ln.ontologies.CellType
        CellType.filter(name="T cell").update(synonyms="T lymphocyte|T-cell|T-lymphocyte")
        CellType.objects.create(name="T cell receptor-positive cell", ontology_id="CL:9999991")
        CellType.objects.create(name="gamma-delta T cell", ontology_id="CL:9999992")
        names = list(CellType.search("T cell").values_list("name", flat=True))
        assert names[0] == "T cell"
        assert names.index("T cell receptor-positive cell") < names.index("gamma-delta T cell")
        by_synonym = list(CellType.search("T lymphocyte").values_list("name", flat=True))
        assert by_synonym[0] == "T cell"
        assert list(CellType.search("zzz-no-such")) == []

    def test_search_artifacts_by_description(self) -> None:
        hits = Artifact.search("mature kidney")
        assert hits.first().description == synthetic.KIDNEY_DATASET


class TestGetOne:
    def test_get_by_uid_and_stem(self) -> None:
        study = Collection.get(synthetic.STUDY_UID)
        assert study.version == "2"
        assert Collection.get(synthetic.STUDY_UID[:16]) == study  # the stem gives the latest
        assert [c.version for c in study.versions] == ["1", "2"]

    def test_get_no_match(self) -> None:
        with pytest.raises(Artifact.DoesNotExist) as info:
            Artifact.get(description="no such dataset")
        message = str(info.value)
        assert "No Artifact matches description='no such dataset'" in message
        assert "instance 'default'" in message

    def test_get_several(self) -> None:
        with pytest.raises(Artifact.MultipleObjectsReturned) as info:
            Artifact.get(suffix=".h5ad", cell_types__name="B cell")
        message = str(info.value)
        count = len(_ids_with_cell_types("B cell"))
        assert f"{count} Artifact records match" in message
        assert "uids:" in message

    def test_plain_gets_are_compiled_once_and_equal_djangos(self) -> None:
        """A get by plain fields reuses its compiled SQL (registry.query.plain_get) and returns
        the record Django's own get returns: every field, typed as Django types it."""
        plain_get._COMPILED.clear()
        fields = [f.attname for f in Artifact._meta.concrete_fields]
        for artifact in models.QuerySet(Artifact).order_by("id")[:25]:
            for conditions in (
                {"uid": artifact.uid},
                {"pk": artifact.pk},
                {"id": artifact.id, "uid": artifact.uid},
                {"is_latest": artifact.is_latest, "uid": artifact.uid},  # a boolean: Django's way
            ):
                got = Artifact.get(**conditions)
                expected = models.QuerySet(Artifact).get(**conditions)
                assert [getattr(got, f) for f in fields] == [getattr(expected, f) for f in fields]
                assert [type(getattr(got, f)) for f in fields] == [
                    type(getattr(expected, f)) for f in fields
                ]
                assert got._state.db == expected._state.db and not got._state.adding
        compiled = {s[3]: c for s, c in plain_get._COMPILED.items() if s[0] is Artifact}
        assert set(compiled) == {("uid",), ("id",), ("id", "uid")}
        assert all(c is not None for c in compiled.values())  # all three went the plain way

    def test_plain_get_of_several_or_none(self) -> None:
        """The plain way leaves several matches to Django's get (the latest of one record's
        versions, or the error) and reports no match as the other way does."""
        with pytest.raises(Artifact.MultipleObjectsReturned, match="Artifact records match"):
            Artifact.get(suffix=".h5ad")
        with pytest.raises(Artifact.DoesNotExist, match="No Artifact matches uid='x"):
            Artifact.get(uid="x" * 20)
        with pytest.raises(QueryError, match="NUL"):
            Artifact.get(description="a\x00b")
        assert Artifact.get(pk=str(Artifact.get(uid=Artifact.filter().first().uid).pk))

    def test_get_by_unknown_uid(self) -> None:
        with pytest.raises(Collection.DoesNotExist, match="No Collection matches uid='xxxx'"):
            Collection.get("xxxx")

    def test_one_and_one_or_none(self) -> None:
        kidney = Artifact.filter(description=synthetic.KIDNEY_DATASET).one()
        assert kidney.description == synthetic.KIDNEY_DATASET
        assert Artifact.filter(key="none").one_or_none() is None
        with pytest.raises(NoRecordError, match="No Artifact matches this query"):
            Artifact.filter(key="none").one()
        with pytest.raises(MultipleRecordsError, match="one\\(\\) needs exactly one"):
            Artifact.filter(suffix=".h5ad").one()
        with pytest.raises(MultipleRecordsError, match="one_or_none\\(\\) needs at most one"):
            Artifact.filter(suffix=".h5ad").one_or_none()


class TestFieldErrors:
    def test_unknown_top_level_field(self) -> None:
        with pytest.raises(UnknownFieldError) as info:
            Artifact.filter(cell_typs__name="B cell")
        message = str(info.value)
        assert "Artifact has no field 'cell_typs'" in message
        assert "Did you mean: cell_types" in message

    def test_unknown_nested_field(self) -> None:
        with pytest.raises(
            UnknownFieldError, match="CellType has no field 'nam'.*Did you mean: name"
        ):
            Artifact.filter(cell_types__nam="B cell")

    def test_is_a_django_field_error(self) -> None:
        with pytest.raises(FieldError):
            Artifact.filter(sufix=".h5ad")

    def test_order_by_unknown(self) -> None:
        with pytest.raises(UnknownFieldError, match="Did you mean: size"):
            Artifact.filter(suffix=".h5ad").order_by("-sise")

    def test_lookups_still_work(self) -> None:
        assert Artifact.filter(size__gt=1e9, key__startswith="cell-census/").exists()
        assert Artifact.filter(pk__in=[1, 2]).count() == 2


def test_nulls_come_last_in_both_directions() -> None:
    ascending = list(Artifact.order_by("size").values_list("size", flat=True))
    descending = list(Artifact.order_by("-size").values_list("size", flat=True))
    assert ascending[-1] is None and descending[-1] is None  # the SOMA store has no size
    assert ascending[:-1] == sorted(ascending[:-1])
    assert descending[:-1] == sorted(descending[:-1], reverse=True)


class TestAliases:
    def test_experimental_factors_is_assays(self) -> None:
        assays = ln.ontologies.Assay.lookup()
        by_alias = set(
            Artifact.filter(experimental_factors=assays.ln_10x_3_v2).values_list("id", flat=True)
        )
        by_name = set(Artifact.filter(assays=assays.ln_10x_3_v2).values_list("id", flat=True))
        assert by_alias == by_name and by_alias

    def test_registry_and_namespace_aliases(self) -> None:
        db = ln.DB("default")
        assert db.bionty.ExperimentalFactor.model is db.ontologies.Assay.model
        assert ln.bionty.ExperimentalFactor is ln.ontologies.Assay
        with pytest.raises(AttributeError, match="No registry 'Cel'"):
            db.bionty.Cel  # noqa: B018

    def test_collection_name_is_key(self) -> None:
        census = Collection.get(name="cellxgene-census", version="2025-01-30")
        assert census.key == "cellxgene-census"


def test_class_and_handle_queries_agree() -> None:
    db = ln.DB("default")
    assert db.Artifact.filter(suffix=".h5ad").count() == ln.Artifact.filter(suffix=".h5ad").count()
    assert isinstance(ln.Artifact.filter(suffix=".h5ad").to_dataframe(limit=2), pd.DataFrame)
    assert ln.Artifact.first() is not None
    assert ln.Artifact.order_by("-size").first().size == max(
        Artifact.objects.values_list("size", flat=True), key=lambda s: s or 0
    )


class TestPlanningCounts:
    """The link-row counts a plan is chosen by: read once, reused for the TTL, bounded."""

    def test_a_count_is_reused_until_it_expires(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from registry.query import links

        monkeypatch.setattr(links, "_planning_counts", {})
        sql = 'SELECT COUNT(*) FROM "registry_artifact" WHERE "size" > %s'
        expected = Artifact.filter(size__gt=1e9).count()
        with CaptureQueriesContext(connection) as queries:
            assert links.planning_count(connection, sql, (1e9,)) == expected
            assert links.planning_count(connection, sql, (1e9,)) == expected
        assert len(queries) == 1
        now = links.time.monotonic()
        monkeypatch.setattr(links.time, "monotonic", lambda: now + links.ESTIMATE_TTL + 1)
        with CaptureQueriesContext(connection) as queries:
            assert links.planning_count(connection, sql, (1e9,)) == expected
        assert len(queries) == 1

    def test_the_oldest_count_goes_when_full(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from django.db import connection

        from registry.query import links

        monkeypatch.setattr(links, "_planning_counts", {})
        monkeypatch.setattr(links, "ESTIMATE_ENTRIES", 3)
        sql = 'SELECT COUNT(*) FROM "registry_artifact" WHERE "size" > %s'
        for size in range(5):
            links.planning_count(connection, sql, (size,))
        kept = [key[3] for key in links._planning_counts]
        assert kept == [(2,), (3,), (4,)]
