"""Find the Storage record of a root."""

from __future__ import annotations

from typing import Any

from django.apps import apps

from registry.errors import StorageNotFoundError
from registry.storage_roots import normalise_root

_LISTED = 20


def storage_for_root(root: str, using: str = "default") -> Any:
    """The Storage record whose root is ``root`` (trailing slashes ignored).

    Args:
        root: ``s3://bucket[/prefix]`` or a local folder.
        using: the database alias of the instance to look in.

    Raises:
        StorageNotFoundError: no record has this root; the message lists the registered roots.
    """
    storage_model = apps.get_model("registry", "Storage")
    wanted = normalise_root(root)
    found = storage_model.objects.db_manager(using).filter(root=wanted).first()
    if found is not None:
        return found
    roots = list(storage_model.objects.db_manager(using).values_list("root", flat=True)[:_LISTED])
    listed = ", ".join(repr(r) for r in roots) if roots else "none"
    more = " (first 20)" if len(roots) == _LISTED else ""
    raise StorageNotFoundError(
        f"No storage with root {wanted!r} in instance database {using!r}. Registered "
        f"roots{more}: {listed}. Register it with Storage.objects.create(root={wanted!r}) or use "
        "one of these."
    )
