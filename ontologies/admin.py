"""The Django admin of the ontology registries: terms searchable by name, id and synonym.

Terms are filtered by deprecation and source (ontology release); parents and replacements use
autocomplete, since a registry holds thousands of terms. Read-only instances only show (see
:class:`registry.admin.ReadOnlyInstanceMixin`).
"""

from __future__ import annotations

from django.contrib import admin

from ontologies.models import (
    Assay,
    CellType,
    DevelopmentalStage,
    Disease,
    Ethnicity,
    Gene,
    Organism,
    Phenotype,
    Source,
    Tissue,
)
from registry.admin import RegistryAdmin


class OntologyRecordAdmin(RegistryAdmin):
    """Admin of an ontology registry (CellType, Tissue, ...)."""

    list_display = ("name", "ontology_id", "is_deprecated", "source", "created_at")
    list_filter = ("is_deprecated", "source")
    search_fields = ("uid", "name", "ontology_id", "synonyms", "description")
    list_select_related = ("source",)
    autocomplete_fields = ("parents", "replaced_by", "source", "created_by")


for _registry in (CellType, Tissue, Disease, Assay, DevelopmentalStage, Ethnicity, Phenotype):
    admin.site.register(_registry, OntologyRecordAdmin)


@admin.register(Organism)
class OrganismAdmin(OntologyRecordAdmin):
    list_display = ("name", "scientific_name", "ontology_id", "is_deprecated", "source")
    search_fields = (*OntologyRecordAdmin.search_fields, "scientific_name")


@admin.register(Source)
class SourceAdmin(RegistryAdmin):
    list_display = ("entity", "name", "version", "organism", "url", "created_at")
    list_filter = ("entity", "name")
    search_fields = ("uid", "entity", "name", "version", "description")


@admin.register(Gene)
class GeneAdmin(RegistryAdmin):
    list_display = ("symbol", "ensembl_gene_id", "biotype", "organism", "is_deprecated", "source")
    list_filter = ("is_deprecated", "biotype", "organism", "source")
    search_fields = ("uid", "symbol", "ensembl_gene_id", "synonyms", "description")
    list_select_related = ("organism", "source")
    autocomplete_fields = ("organism", "source", "created_by")
