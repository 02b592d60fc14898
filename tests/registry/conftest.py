"""Fixtures of the registry tests: the one demo Census bucket of the ``ln.census`` tests."""

from tests.registry.census_releases import census_bucket  # noqa: F401 - built once per session
