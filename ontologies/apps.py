from django.apps import AppConfig


class OntologiesConfig(AppConfig):
    name = "ontologies"
    verbose_name = "Ontologies"
    default_auto_field = "django.db.models.AutoField"
