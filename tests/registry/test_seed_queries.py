"""The seed documents' query code, run verbatim against a small instance.

Each block below is copied character for character from ``../shared/seeds/001_*.txt`` (code cells)
or ``002_*.txt`` (indented code); only the import/connect line is ours. Blocks that need array data
(cache/load/open, slicing, SOMA reads, data loaders) belong to the accessor issues.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from demo import synthetic

pytestmark = pytest.mark.django_db

SEEDS = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"

CONNECT = 'import registry as ln\ndb = ln.DB("default")\n'  # was: lamindb / "laminlabs/cellxgene"

SEED_001 = [
    """users = db.User.lookup()
cell_types = db.bionty.CellType.lookup()

db.Artifact.filter(
    suffix=".h5ad",
    description__contains="immune",
    size__gt=1e9,  # size > 1GB
    cell_types__name__in=["B cell", "T cell"],  # cell types measured in AnnData
    created_by=users.sunnyosun,  # created by a specific user
).order_by("created_at").to_dataframe(
    include=["cell_types__name", "created_by__handle"]  # join with additional info
).head()""",
    """artifact = db.Artifact.get(description="Mature kidney dataset: immune")
artifact.describe()""",
    """artifact.features""",
    """artifact.features.get_values()""",
    """collection = db.Collection.get("quQDnLsMLkP3JRsC8gp5")
collection""",
    """collection.versions.to_dataframe()""",
    """collection.artifacts.to_dataframe()""",
    """collection = db.Collection.get(key="cellxgene-census", version="2025-01-30")
collection""",
    """organisms = db.bionty.Organism.lookup()
experimental_factors = db.bionty.ExperimentalFactor.lookup()
tissues = db.bionty.Tissue.lookup()
suspension_types = db.ULabel.filter(type__name="SuspensionType").lookup()
features = db.Feature.lookup(
    return_field="name"
)  # here we choose to return .name directly
assays = db.bionty.ExperimentalFactor.lookup(return_field="name")""",
    """query = collection.artifacts.filter(
    organisms=organisms.human,
    cell_types__in=[cell_types.dendritic_cell, cell_types.neutrophil],
    tissues=tissues.kidney,
    ulabels=suspension_types.cell,
    experimental_factors=experimental_factors.ln_10x_3_v2,
)
query = query.order_by("size")
query.to_dataframe().head()""",
    """value_filter = (
    f'{features.tissue} == "{tissues.brain.name}" and {features.cell_type} in'
    f' ["{cell_types.microglial_cell.name}", "{cell_types.neuron.name}"] and'
    f' {features.suspension_type} == "{suspension_types.cell.name}" and {features.assay} =='
    f' "{assays.ln_10x_3_v3}"'
)
value_filter""",
    """census_artifact = db.Artifact.get(key="cell-census/2025-01-30/soma")""",
]

SEED_002 = [
    """ cell_types = db.bionty.CellType.lookup()
 users = db.User.lookup()

 db.Artifact.filter(
 suffix=".h5ad",
 description__contains="immune",
 size__gt=1e9,
 cell_types__name__in=["B cell", "T cell"],
 created_by=users.sunnyosun,
 ).order_by("created_at").to_dataframe(
 include=["cell_types__name", "created_by__handle"]
 )""",
    """ artifact = db.Artifact.get(description="Mature kidney dataset: immune")
 artifact.describe()""",
    """ organisms = db.bionty.Organism.lookup()
 tissues = db.bionty.Tissue.lookup()
 experimental_factors = db.bionty.ExperimentalFactor.lookup()
 suspension_types = db.ULabel.filter(type__name="SuspensionType").lookup()

 census = db.Collection.get(key="cellxgene-census", version="2025-01-30")
 census.artifacts.filter(
 organisms=organisms.human,
 cell_types__in=[cell_types.dendritic_cell, cell_types.neutrophil],
 tissues=tissues.kidney,
 ulabels=suspension_types.cell,
 experimental_factors=experimental_factors.ln_10x_3_v2,
 ).order_by("size").to_dataframe()""",
    """ features = db.Feature.lookup(return_field="name")
 assays = db.bionty.ExperimentalFactor.lookup(return_field="name")

 census_artifact = db.Artifact.get(key="cell-census/2025-01-30/soma")""",
]


def _flatten_indented(block: str) -> str:
    """The blog (seed 002) lost its code indentation; a one-space indent is all that is left,
    and Python accepts the flattened lines as they are once that indent is removed."""
    return textwrap.dedent(block)


def _run(blocks: list[str]) -> dict:
    """Run blocks in one namespace like notebook cells; keep each cell's last value."""
    namespace: dict = {}
    exec(CONNECT, namespace)  # noqa: S102
    results = []
    for block in blocks:
        tree = ast.parse(block)
        last = tree.body[-1]
        value = None
        if isinstance(last, ast.Expr):
            tree.body.pop()
            exec(compile(tree, "<cell>", "exec"), namespace)  # noqa: S102
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)  # noqa: S307
        else:
            exec(compile(tree, "<cell>", "exec"), namespace)  # noqa: S102
        results.append(value)
    namespace["_results"] = results
    return namespace


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds is not beside the checkout")
@pytest.mark.parametrize(("prefix", "blocks"), [("001_", SEED_001), ("002_", SEED_002)])
def test_blocks_are_verbatim_copies_of_the_seeds(prefix: str, blocks: list[str]) -> None:
    (seed,) = SEEDS.glob(f"{prefix}*.txt")
    text = seed.read_text()
    for block in blocks:
        assert block in text, f"not in {seed.name}:\n{block}"


def test_seed_001_queries(capsys: pytest.CaptureFixture[str]) -> None:
    ns = _run(SEED_001)
    results = ns["_results"]
    head = results[0]
    assert isinstance(head, pd.DataFrame) and not head.empty
    assert (head["created_by__handle"] == "sunnyosun").all()
    assert (head["size"] > 1e9).all() and head["description"].str.contains("immune").all()
    assert head["cell_types__name"].map(lambda names: bool({"B cell", "T cell"} & set(names))).all()
    assert list(head["created_at"]) == sorted(head["created_at"])
    assert "Mature kidney dataset: immune" in capsys.readouterr().out  # describe() printed
    assert "cell_type" in results[3] and "kidney" in results[3]["tissue"]
    study = results[4]
    assert study.uid == synthetic.STUDY_UID and study.reference == synthetic.STUDY_REFERENCE
    assert list(results[5]["version"]) == ["1", "2"]
    assert len(results[6]) == 3
    census = results[7]
    assert (census.key, census.version) == ("cellxgene-census", "2025-01-30")
    five = results[9]
    assert not five.empty and list(five["size"]) == sorted(five["size"])
    _check_five_relation(five)
    assert results[10] == (
        'tissue == "brain" and cell_type in ["microglial cell", "neuron"] and '
        'suspension_type == "cell" and assay == "10x 3\' v3"'
    )
    assert ns["census_artifact"].otype == "tiledbsoma"


def _check_five_relation(frame: pd.DataFrame) -> None:
    from registry.models import Artifact

    for artifact in Artifact.objects.filter(pk__in=list(frame.index)):
        assert artifact.organisms.filter(name="human").exists()
        assert artifact.tissues.filter(name="kidney").exists()
        assert artifact.ulabels.filter(name="cell").exists()
        assert artifact.assays.filter(name="10x 3' v2").exists()
        assert artifact.cell_types.filter(name__in=["dendritic cell", "neutrophil"]).exists()


def test_seed_002_queries(capsys: pytest.CaptureFixture[str]) -> None:
    ns = _run([_flatten_indented(block) for block in SEED_002])
    results = ns["_results"]
    assert not results[0].empty and (results[0]["created_by__handle"] == "sunnyosun").all()
    assert "└── Provenance" in capsys.readouterr().out
    _check_five_relation(results[2])
    assert ns["features"].cell_type == "cell_type"
    assert ns["census_artifact"].key == "cell-census/2025-01-30/soma"
