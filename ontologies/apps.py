"""The ontologies app: registries of ontology terms, their importers and hierarchy queries."""

from django.apps import AppConfig


class OntologiesConfig(AppConfig):
    name = "ontologies"
    verbose_name = "Ontologies"
    #: ``db.ontologies`` / ``ln.ontologies`` (and their LaminDB name ``bionty``)
    registry_namespace = "ontologies"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        """Keep closure tables current when parent links change through the ORM."""
        from ontologies.hierarchy import connect_signals
        from ontologies.models import HIERARCHY_REGISTRIES

        connect_signals(HIERARCHY_REGISTRIES)
