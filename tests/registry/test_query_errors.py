"""Query values a database cannot take, and ``get`` calls that name no record, fail with the
project's :class:`QueryError` naming the registry and the condition (on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.db.models import Q

import registry as ln
from registry.errors import QueryError, RegistryError
from registry.models import Artifact, ULabel
from registry.query.input_checks import MAX_SEARCH_LENGTH
from tests.conftest import on_postgres

pytestmark = pytest.mark.django_db

NUL_MESSAGE = r"contains a NUL character \(\\x00\).*remove it"


def test_query_error_is_a_registry_error_and_a_value_error() -> None:
    assert issubclass(QueryError, RegistryError) and issubclass(QueryError, ValueError)


@pytest.mark.parametrize(
    ("run", "where"),
    [
        (lambda: list(ULabel.filter(name="B\x00cell")), "ULabel condition name:"),
        (lambda: ULabel.exclude(name__startswith="\x00").count(), "condition name__startswith:"),
        (lambda: ULabel.get(name="a\x00"), "ULabel condition name:"),
        (lambda: list(ULabel.filter(name__in=["ok", "no\x00"])), "condition name__in:"),
        (lambda: list(ULabel.filter(Q(name="x") | Q(name="y\x00"))), "condition name:"),
        (lambda: Artifact.filter(cell_types__name__in=["T\x00"]).count(), "cell_types__name__in"),
        (lambda: Artifact.get("abc\x00"), "Artifact condition uid__startswith:"),
        (lambda: list(ln.ontologies.CellType.search("T\x00cell")), r"CellType.search\(\) text"),
    ],
    ids=["filter", "exclude", "get", "in-list", "Q", "many-valued", "uid", "search"],
)
def test_nul_characters_are_refused_before_the_database(run, where: str) -> None:  # noqa: ANN001
    with pytest.raises(QueryError, match=f"{where}.*{NUL_MESSAGE}"):
        run()


def test_an_invalid_regex_is_refused_with_the_regex_error() -> None:
    CellType = ln.ontologies.CellType
    with pytest.raises(QueryError) as caught, transaction.atomic():
        list(CellType.filter(name__regex="(unclosed"))
    message = str(caught.value)
    assert "CellType" in message and "name__regex='(unclosed'" in message
    if on_postgres():  # PostgreSQL compiles its own regular expressions: its error, translated
        assert "invalid regular expression: parentheses () not balanced" in message
        assert "refused the CellType query filter(name__regex='(unclosed')" in message
    else:  # SQLite runs Python's re: refused before the query, with re's error
        assert "is not a valid regular expression: missing ), unterminated subpattern" in message
    iregex = r"name__iregex='\['.*regular expression"
    with pytest.raises(QueryError, match=iregex), transaction.atomic():
        CellType.filter(name__iregex="[").count()
    # valid patterns still work, case-insensitively too
    assert list(CellType.filter(name__iregex=r"^b cell$").values_list("name", flat=True)) == [
        "B cell"
    ]


def test_search_text_longer_than_the_limit_is_refused() -> None:
    CellType = ln.ontologies.CellType
    too_long = "x" * (MAX_SEARCH_LENGTH + 1)
    with pytest.raises(QueryError, match=r"CellType.search\(\) text of 1,001 characters.*1,000"):
        CellType.search(too_long)
    assert CellType.search("x" * MAX_SEARCH_LENGTH).count() == 0  # the limit itself is fine
    # multi-byte characters, all escaped by LIKE: still within SQLite's 50,000-byte pattern limit
    assert CellType.search("%" * MAX_SEARCH_LENGTH).count() == 0
    assert CellType.search("é" * MAX_SEARCH_LENGTH).count() == 0


def test_a_pattern_too_long_for_the_database_is_a_query_error() -> None:
    """SQLite refuses LIKE patterns over 50,000 bytes; the error names the query's conditions.
    PostgreSQL has no such limit: the same query just matches nothing."""
    query = ULabel.filter(name__contains="y" * 60_000).exclude(name="z")
    if on_postgres():
        assert query.count() == 0
        return
    with pytest.raises(QueryError) as caught:
        query.count()
    message = str(caught.value)
    assert message.startswith("The database of instance 'default' refused the ULabel query ")
    assert "filter(name__contains='yyyy" in message and ".exclude(name='z')" in message
    assert "LIKE or GLOB pattern too complex" in message
    with pytest.raises(QueryError, match="LIKE or GLOB pattern too complex"):
        list(query)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Artifact.get(""), r"Artifact.get\(''\) names no record: pass a uid"),
        (lambda: Artifact.get(None), r"Artifact.get\(None\) names no record"),
        (lambda: ULabel.get(), r"ULabel.get\(\) without conditions would return an arbitrary"),
        (lambda: ULabel.objects.all().get(), r"ULabel.get\(\) without conditions"),
    ],
    ids=["empty-uid", "none", "no-conditions", "all"],
)
def test_get_that_names_no_record_raises(call, message: str) -> None:  # noqa: ANN001
    with pytest.raises(QueryError, match=message) as caught:
        call()
    assert "get(key=...)" in str(caught.value) or "get(name=...)" in str(caught.value)


def test_get_on_a_filtered_query_still_works() -> None:
    artifact = Artifact.filter(suffix=".h5ad").order_by("id").first()
    assert Artifact.filter(pk=artifact.pk).get() == artifact
    assert Artifact.get(artifact.uid) == artifact
    label = artifact.ulabels.order_by("id").first()
    assert artifact.ulabels.filter(pk=label.pk).get() == label


def test_messages_never_run_a_query_to_show_a_value() -> None:
    """A queryset or record inside a condition is named, not printed (printing would query)."""
    subquery = ULabel.filter(name="x")
    with pytest.raises(QueryError) as caught:
        list(ULabel.filter(pk__in=subquery, name__in=["a", "b", "c", "d", "e\x00"]))
    assert "name__in: the value 'e\\x00'" in str(caught.value)
    with pytest.raises(ULabel.DoesNotExist, match=r"pk__in=<ULabel query>"):
        ULabel.get(pk__in=subquery)
