"""The full demo pipeline of ``manage.py demo``: ontologies, two demo releases, their curation.

Each step is skipped when its result is there already, so a second demo run only queries:
the guide's ontologies are imported when the instance has none; the two consecutive demo
releases are built (into ``$CELLREGISTRY_HOME/<instance>/census-bucket``) unless they exist; each
release is curated with ``curate_release`` (a no-op for a curated release).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from curation.steps import CurationSummary, curate_release
from demo.census.release import build_release, release_root
from ontologies.importers.guide import import_guide
from ontologies.models import Source
from registry import instances

#: the demo's releases, oldest first (fictional tags: the synthetic registry uses the real ones)
RELEASES = ("2025-07-01", "2025-11-08")
DATASETS, CELLS_PER_DATASET = 60, 1000

Say = Callable[[str], None]


def bucket_of(instance: str) -> Path:
    """Where the demo releases of ``instance`` are written (a local Census-like bucket)."""
    return instances.home() / instance / "census-bucket"


def ensure_ontologies(using: str, say: Say) -> bool:
    """Import the CELLxGENE ontologies unless the instance has them; True if imported."""
    if Source.objects.db_manager(using).exists():
        return False
    say("Importing the CELLxGENE ontologies (CL, UBERON, MONDO, EFO, ...) ...")
    import_guide(using=using)
    return True


def ensure_releases(bucket: Path, say: Say) -> list[str]:
    """Build the demo releases missing from ``bucket``; their release roots, oldest first."""
    previous = None
    for tag in RELEASES:
        if not Path(release_root(str(bucket), tag)).exists():
            say(f"Building demo release {tag} in {bucket} ...")
            build_release(
                str(bucket),
                tag,
                previous=previous,
                n_datasets=DATASETS,
                cells_per_dataset=CELLS_PER_DATASET,
            )
        previous = tag
    return [release_root(str(bucket), tag) + "/" for tag in RELEASES]


def curate_all(roots: list[str], using: str, say: Say) -> list[CurationSummary]:
    """Curate each release (no-ops for curated ones)."""
    summaries = []
    for root in roots:
        say(f"Curating {root} ...")
        summaries.append(curate_release(root, using=using))
    return summaries


#: (title, code, columns shown): seed-style queries on the curated releases; the value of the
#: last line is the answer
CURATED_EXAMPLES = (
    (
        "Curated release: query across datasets with cell counts",
        """\
latest = db.Collection.get(key="cellxgene-census", version="2025-11-08")
latest.artifacts.filter(
    organisms__name="human",
    cell_types__name__in=["dendritic cell", "neutrophil"],
    tissues__name="kidney",
    ulabels__name="cell",
    experimental_factors__name="10x 3' v2",
).to_dataframe(include=["cell_types__name", "diseases__name"])""",
        ("description", "n_observations", "cell_types__name", "diseases__name"),
    ),
    (
        "Curated release: the guide's kidney dataset",
        """\
kidney = db.Artifact.get(description="Mature kidney dataset: immune", is_latest=True)
kidney.describe()""",
        (),
    ),
    (
        "Curated release: stream a slice of its h5ad (nothing downloaded)",
        """\
with kidney.open() as adata_backed:
    dendritic = adata_backed[adata_backed.obs.cell_type == "dendritic cell"].to_memory()
dendritic""",
        (),
    ),
    (
        "Curated release: the SOMA store of the release",
        """\
store_artifact = db.Artifact.get(key="cell-census/2025-11-08/soma")
with store_artifact.open() as store:
    cells = (
        store["census_data"]["homo_sapiens"]
        .obs.read(value_filter="tissue_general == 'kidney'", column_names=["cell_type"])
        .concat()
        .to_pandas()
    )
cells.cell_type.value_counts().to_frame()""",
        (),
    ),
)
