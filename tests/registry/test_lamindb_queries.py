"""Queries as LaminDB users write them (issue 10, points 1 and 2): ``get()`` on versioned
registries returns the latest of the matching versions of one record, and the link tables are
reachable from filters and ``include`` with LaminDB's names (``links_cell_type__cell_type``,
``links_cell_type__n_primary_cells``, ``links_experimental_factor``)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from demo import synthetic
from ontologies.models import ArtifactAssay, ArtifactCellType, CellType
from registry.errors import UnknownFieldError
from registry.models import Artifact, Collection, Storage

pytestmark = pytest.mark.django_db


def _versions(description: str, *versions: str) -> list[Artifact]:
    """Versions of one new dataset with ``description``, oldest first."""
    storage = Storage.objects.first()
    key = f"v/{Artifact.objects.count()}.h5ad"
    made: list[Artifact] = []
    for version in versions:
        artifact = Artifact(
            key=key,
            storage=storage,
            description=description,
            version=version,
            revises=made[-1] if made else None,
        )
        artifact.save()
        made.append(artifact)
    return made


class TestGetLatestVersion:
    def test_versions_of_one_record_give_the_latest(self) -> None:
        old, middle, new = _versions("twice released", "2024-07-01", "2025-01-30", "2025-11-08")
        assert Artifact.get(description="twice released") == new
        assert Artifact.get(description="twice released", version="2024-07-01") == old
        # when the latest does not match, the newest of those that match
        assert Artifact.get(description="twice released", version__lt="2025-11-08") == middle

    def test_different_records_still_raise(self) -> None:
        _versions("common name", "1", "2")
        other = _versions("common name", "1")[0]
        with pytest.raises(Artifact.MultipleObjectsReturned) as info:
            Artifact.get(description="common name")
        message = str(info.value)
        assert "3 Artifact records match description='common name'" in message
        assert other.uid in message and "get() needs exactly one" in message

    def test_a_pinned_version_shared_by_different_records_raises(self) -> None:
        _versions("pinned", "1", "2")
        _versions("pinned", "1")
        with pytest.raises(Artifact.MultipleObjectsReturned, match="2 Artifact records match"):
            Artifact.get(description="pinned", version="1")

    def test_collections_too(self) -> None:
        latest = Collection.get(key=synthetic.STUDY_KEY)
        assert (latest.uid, latest.version, latest.is_latest) == (synthetic.STUDY_UID, "2", True)
        assert Collection.get(key=synthetic.STUDY_KEY, version="1").version == "1"
        census = Collection.get(key="cellxgene-census")
        assert census.version == "2025-01-30"

    def test_unversioned_registries_are_unchanged(self) -> None:
        with pytest.raises(CellType.MultipleObjectsReturned, match="CellType records match"):
            CellType.get(name__in=["T cell", "B cell"])


def _links_by_artifact(model: type, label_names: set[str], minimum: int) -> set[int]:
    rows = model.objects.filter(label__name__in=label_names, n_primary_cells__gte=minimum)
    return set(rows.values_list("artifact_id", flat=True))


@pytest.fixture
def counted_links() -> None:
    """Cell counts on the synthetic registry's cell-type links (it has none): varied, some
    NULL, as curation leaves them where a count is unknown."""
    for link in ArtifactCellType.objects.all():
        n_cells = None if link.pk % 7 == 0 else (link.pk * 37) % 1000
        link.n_cells, link.n_primary_cells = n_cells, n_cells and n_cells // 2
        link.save()


@pytest.mark.usefixtures("counted_links")
class TestLinkNames:
    def test_filter_on_label_and_count_of_the_same_link(self) -> None:
        t_cells = CellType.get(name="T cell").descendants(include_self=True)
        names = set(t_cells.values_list("name", flat=True))
        counts = ArtifactCellType.objects.filter(label__name__in=names)
        known = counts.exclude(n_primary_cells=None).values_list("n_primary_cells", flat=True)
        known = sorted(known)
        minimum = known[len(known) // 2]
        query = Artifact.filter(
            links_cell_type__cell_type__in=t_cells,
            links_cell_type__n_primary_cells__gte=minimum,
        )
        ids = list(query.values_list("id", flat=True))
        assert len(ids) == len(set(ids)) == query.count()  # no duplicate rows
        expected = _links_by_artifact(ArtifactCellType, names, minimum)
        assert set(ids) == expected and 0 < len(expected) < Artifact.objects.count()

    def test_label_names_and_feature(self) -> None:
        by_name = Artifact.filter(links_cell_type__cell_type__name="B cell")
        assert set(by_name) == set(Artifact.filter(cell_types__name="B cell"))
        by_feature = Artifact.filter(
            links_cell_type__feature__name="cell_type", links_cell_type__cell_type__name="B cell"
        )
        assert set(by_feature) <= set(by_name)
        link = Artifact.get(description=synthetic.KIDNEY_DATASET).links_cell_type.first()
        assert link.cell_type == link.label and isinstance(link.cell_type, CellType)

    def test_experimental_factor_and_assay_names(self) -> None:
        assay = ArtifactAssay.objects.first().label
        lamin = Artifact.filter(links_experimental_factor__experimental_factor=assay)
        ours = Artifact.filter(links_assay__assay=assay)
        assert set(lamin) == set(ours) == set(Artifact.filter(assays=assay))

    def test_include_shows_counts_aligned_with_labels(self) -> None:
        kidney = Artifact.filter(description=synthetic.KIDNEY_DATASET)
        frame = kidney.to_dataframe(
            include=["links_cell_type__cell_type__name", "links_cell_type__n_cells"]
        )
        (row,) = frame.itertuples()
        shown = dict(zip(row[-2], row[-1], strict=True))
        links = ArtifactCellType.objects.filter(artifact_id=row.Index)
        assert shown == dict(links.values_list("label__name", "n_cells"))

    def test_unknown_link_field_names_the_label_field(self) -> None:
        with pytest.raises(UnknownFieldError) as info:
            Artifact.filter(links_cell_type__celltype__name="B cell")
        message = str(info.value)
        assert "ArtifactCellType has no field 'celltype'" in message
        assert "Did you mean: cell_type" in message

    def test_every_label_relation_has_its_links(self) -> None:
        per_relation: dict[str, set[str]] = defaultdict(set)
        for relation in Artifact.label_relations():
            links = relation.through
            per_relation[relation.name].add(links._meta.get_field("artifact").related_query_name())
            assert Artifact._meta.get_field(f"links_{links.label_name}").related_model is links
        assert per_relation["cell_types"] == {"links_cell_type"}
        assert per_relation["assays"] == {"links_experimental_factor"}
        assert per_relation["ulabels"] == {"links_ulabel"}
