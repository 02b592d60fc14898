"""cellregistry: a metadata registry and catalog for CELLxGENE single-cell data.

Public API::

    import registry as ln
    ln.init("mylab", db="sqlite:///mylab.sqlite3", storage="./mylab-data")
    ln.connect("mylab")
    ln.Artifact.filter(cell_types__name="B cell").to_dataframe()
    db = ln.DB("cellxgene")
    db.bionty.CellType.lookup()
    with ln.census.open_soma(census_version="stable") as census:  # the Census API, offline
        adata = ln.census.get_anndata(census, "Homo sapiens", obs_value_filter="...")

Importing this package is light: Django is set up on first use of a registry or instance.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__version__ = "0.1.0"

_INSTANCE_API = {"init", "connect", "DB", "setup"}
_CORE_REGISTRIES = {
    "Artifact",
    "Collection",
    "Feature",
    "Run",
    "Storage",
    "Transform",
    "ULabel",
    "User",
}

#: registries of apps over this one, by (app label, model): found through Django's app registry,
#: so that importing this package imports none of them
APP_REGISTRIES = {"Cells": ("ontologies", "Cells")}

__all__ = sorted(_INSTANCE_API | _CORE_REGISTRIES | set(APP_REGISTRIES) | {"ontologies", "bionty"})


def __getattr__(name: str) -> Any:
    """Resolve the public API on first use, so that ``import registry`` stays fast."""
    if name in _INSTANCE_API:
        import registry.connection as connection

        return getattr(connection, name)
    if name in _CORE_REGISTRIES:
        import registry.connection as connection

        connection.setup()
        from django.apps import apps

        return apps.get_model("registry", name)
    if name in APP_REGISTRIES:  # ln.Cells
        import registry.connection as connection

        connection.setup()
        from django.apps import apps

        return apps.get_model(*APP_REGISTRIES[name])
    if name.startswith("_"):
        raise AttributeError(name)
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule
        return importlib.import_module(f"{__name__}.{name}")
    import registry.connection as connection
    from registry.query import namespace_name

    models = connection.namespaces().get(namespace_name(name))  # ln.ontologies, ln.bionty
    if models is not None:
        namespace = connection.Namespace(None, models)  # the default instance's, when used
        globals()[name] = namespace  # built once: the registries of an app do not change
        return namespace
    raise AttributeError(f"module 'registry' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
