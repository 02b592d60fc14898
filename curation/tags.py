"""The one rule for release tags (``2025-01-30``): 1 to 64 letters, digits, ``.``, ``_`` and
``-``, starting with a letter or a digit.

A tag becomes a folder or key prefix (``cell-census/<tag>/``) and an artifact's ``version``, so
nothing that could step out of that folder (``..``, ``/``), hide (a leading dot) or be mistaken
for an option (a leading ``-``) is accepted.
"""

from __future__ import annotations

import re

from registry.errors import RegistryError

TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TAG_RULE = (
    "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or a digit (e.g. 2025-01-30)"
)


class InvalidTagError(RegistryError, ValueError):
    """A release tag that breaks :data:`TAG_PATTERN`."""


def check_tag(tag: str, what: str = "release tag") -> str:
    """``tag`` if it is a valid release tag.

    Args:
        tag: the tag to check.
        what: how the message names it (e.g. ``"previous release tag"``).

    Raises:
        InvalidTagError: naming the tag and the rule.
    """
    if not isinstance(tag, str) or TAG_PATTERN.fullmatch(tag) is None:
        raise InvalidTagError(f"Invalid {what} {tag!r}: a tag is {TAG_RULE}.")
    return tag
