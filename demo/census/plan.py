"""The plan of a demo Census release: which collections and datasets it holds, and their profiles.

A plan is pure data (JSON-serialisable dataclasses). Cells and counts are generated from it
deterministically (:mod:`demo.census.cells`), so the plan of a release is enough to rebuild
any of its datasets. The builder stores the plan next to the release (``demo_plan.json``) so the
next release can evolve from it: most datasets stay (same ``dataset_id`` and
``dataset_version_id``), some are revised (new ``dataset_version_id``, new cells), a few are
dropped, a few are added — one of them to an existing collection.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from demo.census.vocabulary import ORGANISMS, TissueChoice, Vocabulary, vocabulary

HUMAN, MOUSE = "NCBITaxon:9606", "NCBITaxon:10090"
NORMAL = "PATO:0000461"
#: tissue types the Census includes (its schema leaves cell cultures out)
CENSUS_TYPES = ("tissue", "organoid")
#: the dataset the LaminDB CELLxGENE guide inspects, and what its queries expect of it
KIDNEY_TITLE = "Mature kidney dataset: immune"
#: the study of the guide's kidney dataset (the collection the guide fetches by uid)
KIDNEY_STUDY = "A single-cell atlas of the human kidney"
KIDNEY = "UBERON:0002113"
KIDNEY_CELL_TYPES = (
    "CL:0000451",  # dendritic cell
    "CL:0000775",  # neutrophil
    "CL:0000236",  # B cell
    "CL:0000084",  # T cell
    "CL:0000235",  # macrophage
    "CL:0000623",  # natural killer cell
)
TEN_X_3_V2 = "EFO:0009899"
#: a DOI prefix reserved for examples: the demo's DOIs resolve nowhere
DEMO_DOI_PREFIX = "10.5555"
JOURNALS = ("Cell", "Nature", "Science", "Nat Med", "Cell Genom", "Immunity", "Nat Commun")
AUTHORS = (
    "Smith", "Garcia", "Chen", "Müller", "Okafor", "Tanaka", "Novak", "Rossi", "Kumar", "Silva",
    "Larsen", "Haddad", "Kowalski", "Nguyen", "Dubois", "Ivanova", "Park", "Mensah",
)  # fmt: skip
STUDY_KINDS = (
    "A single-cell atlas of the human {tissue}",
    "Cellular landscape of the {tissue} in {disease}",
    "Single-cell transcriptomics of {tissue} across the lifespan",
    "Immune cell census of the {tissue}",
    "Spatiotemporal dynamics of {tissue} cell states",
    "Donor-to-donor variation in the {tissue}",
)


@dataclass(frozen=True)
class Donor:
    """One donor of a dataset and the donor-level metadata of its cells."""

    donor_id: str
    sex: str
    development_stage: str
    self_reported_ethnicity: str  # "na" for mouse; "A || B" for a multi-valued answer
    disease: str


@dataclass(frozen=True)
class CollectionPlan:
    """A CELLxGENE collection (a publication) grouping datasets."""

    collection_id: str
    name: str
    doi: str
    doi_label: str


@dataclass(frozen=True)
class DatasetPlan:
    """One dataset version: its identity, size and the profile its cells are drawn from."""

    dataset_id: str
    dataset_version_id: str
    collection_id: str
    title: str
    organism: str
    n_cells: int
    tissues: tuple[str, ...]
    cell_types: dict[str, tuple[str, ...]]  # tissue id -> cell type ids found there
    assays: tuple[str, ...]
    suspension_types: dict[str, str]  # assay id -> suspension type
    donors: tuple[Donor, ...]
    #: a secondary dataset re-publishes the first n_cells cells of this dataset (not primary)
    duplicate_of: str | None = None

    @property
    def seed(self) -> int:
        """The seed of this version's cells: a new version gets new cells."""
        return stable_seed(self.dataset_version_id)

    @property
    def h5ad_name(self) -> str:
        """The file name in ``h5ads/``."""
        return f"{self.dataset_id}.h5ad"


@dataclass
class ReleasePlan:
    """A whole release: tag, collections and datasets, in manifest order."""

    tag: str
    seed: int
    collections: list[CollectionPlan] = field(default_factory=list)
    datasets: list[DatasetPlan] = field(default_factory=list)
    previous_tag: str | None = None

    def collection(self, collection_id: str) -> CollectionPlan:
        """The collection with this id."""
        return next(c for c in self.collections if c.collection_id == collection_id)

    def dataset(self, dataset_id: str) -> DatasetPlan:
        """The dataset with this id."""
        return next(d for d in self.datasets if d.dataset_id == dataset_id)

    def to_json(self) -> str:
        """The plan as JSON text (what ``demo_plan.json`` holds)."""
        return json.dumps(asdict(self), indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ReleasePlan:
        """Read a plan written by :meth:`to_json`."""
        data = json.loads(text)
        datasets = []
        for d in data["datasets"]:
            d["tissues"], d["assays"] = tuple(d["tissues"]), tuple(d["assays"])
            d["cell_types"] = {k: tuple(v) for k, v in d["cell_types"].items()}
            d["donors"] = tuple(Donor(**donor) for donor in d["donors"])
            datasets.append(DatasetPlan(**d))
        return cls(
            tag=data["tag"],
            seed=data["seed"],
            collections=[CollectionPlan(**c) for c in data["collections"]],
            datasets=datasets,
            previous_tag=data.get("previous_tag"),
        )


def stable_seed(*parts: object) -> int:
    """A 63-bit seed derived from text: the same parts give the same seed on every machine."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def new_uuid(rng: np.random.Generator) -> str:
    """A random (version 4 layout) UUID drawn from ``rng``, so plans are reproducible."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def dataset_sizes(rng: np.random.Generator, n: int, mean: int) -> list[int]:
    """Cell counts skewed like CELLxGENE's: many small datasets, a few large ones.

    Log-normal weights scaled so the sizes add up to about ``n * mean``.
    """
    weights = rng.lognormal(mean=0.0, sigma=1.1, size=n)
    sizes = np.maximum(np.rint(weights / weights.mean() * mean), min(50, mean))
    return [int(s) for s in sizes]


class Planner:
    """Draws collections and dataset profiles from the vocabulary with one random generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.vocabularies: dict[str, Vocabulary] = {o: vocabulary(o) for o in ORGANISMS}

    def pick(self, items: tuple | list, k: int = 1) -> list:
        """``k`` distinct items in random order."""
        idx = self.rng.choice(len(items), size=min(k, len(items)), replace=False)
        return [items[i] for i in idx]

    def collection(self, tissue_name: str, disease_name: str) -> CollectionPlan:
        """A new collection named after its main tissue and disease."""
        year = int(self.rng.integers(2019, 2025))
        author = self.pick(AUTHORS)[0]
        journal = self.pick(JOURNALS)[0]
        template = self.pick(STUDY_KINDS)[0]
        name = template.format(tissue=tissue_name, disease=disease_name)
        number = int(self.rng.integers(100000, 999999))
        return CollectionPlan(
            collection_id=new_uuid(self.rng),
            name=f"{name} ({author} et al. {year})",
            doi=f"{DEMO_DOI_PREFIX}/demo.{year}.{number}",
            doi_label=f"{author} et al. ({year}) {journal}",
        )

    def new_collection(self, organism: str, n_cells: int) -> tuple[CollectionPlan, DatasetPlan]:
        """A new collection and its first dataset (the collection is named after it)."""
        first = self.dataset("", organism, n_cells)
        names = {t.tissue.ontology_id: t.tissue.name for t in self.tissue_choices(organism)}
        diseases = {t.ontology_id: t.name for t in self.vocabularies[organism].diseases}
        disease = next((d.disease for d in first.donors if d.disease != NORMAL), NORMAL)
        collection = self.collection(names[first.tissues[0]], diseases.get(disease, "health"))
        return collection, replace(first, collection_id=collection.collection_id)

    def tissue_choices(self, organism: str) -> list[TissueChoice]:
        """The tissues a Census dataset may have (cell cultures are not in the Census)."""
        return [t for t in self.vocabularies[organism].tissues if t.tissue_type in CENSUS_TYPES]

    def donors(self, organism: str, disease: str, prefix: str) -> tuple[Donor, ...]:
        """1-8 donors; in a disease study about half the donors are healthy controls."""
        vocab = self.vocabularies[organism]
        donors = []
        for i in range(int(self.rng.integers(1, 9))):
            if organism == HUMAN:
                terms = sorted(t.ontology_id for t in self.pick(vocab.ethnicities, 2))
                ethnicity = " || ".join(terms) if self.rng.random() < 0.15 else terms[0]
            else:
                ethnicity = "na"
            healthy = disease == NORMAL or self.rng.random() < 0.5
            donors.append(
                Donor(
                    donor_id=f"{prefix}-D{i + 1}",
                    sex=self.pick(vocab.sexes)[0].ontology_id,
                    development_stage=self.pick(vocab.development_stages)[0].ontology_id,
                    self_reported_ethnicity=ethnicity,
                    disease=NORMAL if healthy else disease,
                )
            )
        return tuple(donors)

    def dataset(self, collection_id: str, organism: str, n_cells: int, **fixed: Any) -> DatasetPlan:
        """A dataset profile: tissues with their cell types, assays, donors. ``fixed`` overrides."""
        vocab = self.vocabularies[organism]
        tissues = self.pick(self.tissue_choices(organism), int(self.rng.choice([1, 1, 1, 2, 3])))
        cell_types = {
            t.tissue.ontology_id: tuple(
                c.ontology_id for c in self.pick(t.cell_types, int(self.rng.integers(3, 9)))
            )
            for t in tissues
        }
        assays = self.pick(vocab.assays, int(self.rng.choice([1, 1, 1, 1, 2])))
        suspensions = {a.assay.ontology_id: a.suspension_types[0] for a in assays}
        disease = (
            NORMAL if self.rng.random() < 0.55 else self.pick(vocab.diseases[1:])[0].ontology_id
        )
        dataset_id = new_uuid(self.rng)
        main = tissues[0].tissue.name
        suffix = self.pick(("all cells", "immune", "epithelial", "stromal", "atlas", "subset"))[0]
        plan = DatasetPlan(
            dataset_id=dataset_id,
            dataset_version_id=new_uuid(self.rng),
            collection_id=collection_id,
            title=f"{main[:1].upper()}{main[1:]}: {suffix}",
            organism=organism,
            n_cells=n_cells,
            tissues=tuple(t.tissue.ontology_id for t in tissues),
            cell_types=cell_types,
            assays=tuple(a.assay.ontology_id for a in assays),
            suspension_types=suspensions,
            donors=self.donors(organism, disease, dataset_id[:8]),
        )
        return replace(plan, **fixed)

    def kidney_dataset(self, collection_id: str, n_cells: int) -> DatasetPlan:
        """The guide's "Mature kidney dataset: immune": human kidney immune cells, 10x 3' v2."""
        plan = self.dataset(collection_id, HUMAN, n_cells)
        # one donor answered with two ancestry terms ("A || B"), as the schema allows
        pair = sorted(t.ontology_id for t in self.pick(self.vocabularies[HUMAN].ethnicities, 2))
        donors = (replace(plan.donors[0], self_reported_ethnicity=" || ".join(pair)),)
        return replace(
            plan,
            donors=donors + plan.donors[1:],
            title=KIDNEY_TITLE,
            tissues=(KIDNEY,),
            cell_types={KIDNEY: KIDNEY_CELL_TYPES},
            assays=(TEN_X_3_V2,),
            suspension_types={TEN_X_3_V2: "cell"},
            duplicate_of=None,
        )


def plan_release(tag: str, n_datasets: int, cells_per_dataset: int, seed: int = 0) -> ReleasePlan:
    """The plan of a first release: ``n_datasets`` datasets in collections of skewed size.

    About a fifth of the datasets are mouse. Collections hold 1-12 datasets; roughly one
    collection in five also re-publishes cells of one of its datasets in a secondary dataset
    (``is_primary_data`` false), as integrated CELLxGENE collections do.
    """
    rng = np.random.default_rng(stable_seed("release", tag, seed))
    planner = Planner(rng)
    sizes = dataset_sizes(rng, n_datasets, cells_per_dataset)
    release = ReleasePlan(tag=tag, seed=seed)
    index = 0
    has_secondary = False
    while index < n_datasets:
        # the first collection is human (it gets the kidney dataset), the second mouse
        first_pick = {0: HUMAN, 1: MOUSE}.get(len(release.collections))
        organism = first_pick or (HUMAN if rng.random() < 0.8 else MOUSE)
        group = min(int(rng.geometric(0.3)), 12, n_datasets - index)
        if len(release.collections) == 0:
            group = min(max(group, 3), n_datasets)  # room for the kidney and a secondary dataset
        collection, first = planner.new_collection(organism, sizes[index])
        release.collections.append(collection)
        members = [first]
        for offset in range(1, group):
            members.append(
                planner.dataset(collection.collection_id, organism, sizes[index + offset])
            )
        if group >= 3 and (not has_secondary or rng.random() < 0.2):
            has_secondary = True
            source = members[1]
            members[-1] = replace(
                source,
                dataset_id=members[-1].dataset_id,
                dataset_version_id=members[-1].dataset_version_id,
                title=f"{source.title} (integrated)",
                n_cells=max(1, source.n_cells // 2),
                duplicate_of=source.dataset_id,
            )
        release.datasets.extend(members)
        index += group
    if n_datasets:
        _place_kidney_dataset(release, planner)
    return release


def _place_kidney_dataset(release: ReleasePlan, planner: Planner) -> None:
    """Make the first human primary dataset the guide's kidney dataset, and name its collection
    after the guide's study (the authors and year it had stay)."""
    for i, dataset in enumerate(release.datasets):
        dependants = [d for d in release.datasets if d.duplicate_of == dataset.dataset_id]
        if dataset.organism == HUMAN and dataset.duplicate_of is None and not dependants:
            kidney = planner.kidney_dataset(dataset.collection_id, max(dataset.n_cells, 500))
            release.datasets[i] = replace(
                kidney,
                dataset_id=dataset.dataset_id,
                dataset_version_id=dataset.dataset_version_id,
            )
            for j, collection in enumerate(release.collections):
                if collection.collection_id == dataset.collection_id:
                    authors = collection.name.rsplit(" (", 1)[-1]
                    name = f"{KIDNEY_STUDY} ({authors}"
                    release.collections[j] = replace(collection, name=name)
            return


def next_release(
    previous: ReleasePlan,
    tag: str,
    seed: int = 0,
    *,
    revise: float = 0.1,
    drop: float = 0.03,
    add: float = 0.05,
) -> ReleasePlan:
    """The plan of the release after ``previous``.

    Keeps most datasets unchanged, gives a fraction ``revise`` a new version (new cells, a
    changed cell count), drops a fraction ``drop`` and adds about ``add`` new datasets: one to an
    existing collection, the others in new collections. Secondary datasets follow their source
    (revised or dropped with it). The guide's kidney dataset is never dropped.
    """
    rng = np.random.default_rng(stable_seed("next", previous.tag, tag, seed))
    planner = Planner(rng)
    n = len(previous.datasets)
    droppable = [
        d.dataset_id
        for d in previous.datasets
        if d.title != KIDNEY_TITLE and d.duplicate_of is None
    ]
    dropped = set(planner.pick(droppable, max(1, round(n * drop)) if n > 3 else 0))
    revised = set(
        planner.pick([d for d in droppable if d not in dropped], max(1, round(n * revise)))
    )
    datasets: list[DatasetPlan] = []
    for dataset in previous.datasets:
        source = dataset.duplicate_of or dataset.dataset_id
        if source in dropped:
            continue
        if source in revised:
            factor = float(rng.uniform(0.8, 1.25))
            dataset = replace(
                dataset,
                dataset_version_id=new_uuid(rng),
                n_cells=max(1, round(dataset.n_cells * factor)),
            )
        datasets.append(dataset)
    # secondary datasets must not be larger than their (possibly shrunk) source
    sizes = {d.dataset_id: d.n_cells for d in datasets}
    datasets = [
        replace(d, n_cells=min(d.n_cells, sizes[d.duplicate_of])) if d.duplicate_of else d
        for d in datasets
    ]
    kept_collections = {d.collection_id for d in datasets}
    collections = [c for c in previous.collections if c.collection_id in kept_collections]
    mean = int(np.mean([d.n_cells for d in previous.datasets])) if n else 1000
    n_added = max(1, round(n * add))
    sizes_added = dataset_sizes(rng, n_added, mean)
    # one new dataset joins an existing collection (its membership changes)
    host = datasets[0] if datasets else None
    for i, size in enumerate(sizes_added):
        if i == 0 and host is not None:
            datasets.append(planner.dataset(host.collection_id, host.organism, size))
            continue
        organism = HUMAN if rng.random() < 0.8 else MOUSE
        collection, dataset = planner.new_collection(organism, size)
        collections.append(collection)
        datasets.append(dataset)
    return ReleasePlan(
        tag=tag, seed=seed, collections=collections, datasets=datasets, previous_tag=previous.tag
    )
