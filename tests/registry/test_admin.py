"""The Django admin: every registry's pages render, search works, read-only instances refuse."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client
from django.urls import reverse

from demo import synthetic
from registry.models import Artifact

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client() -> Client:
    user = get_user_model().objects.create_superuser("admin", "admin@example.org", "pw")
    client = Client()
    client.force_login(user)
    return client


def test_every_registry_changelist_renders(staff_client: Client) -> None:
    for model in admin.site._registry:
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert staff_client.get(url).status_code == 200, url


def test_artifact_pages(staff_client: Client) -> None:
    artifact = Artifact.get(description=synthetic.KIDNEY_DATASET)
    page = staff_client.get(reverse("admin:registry_artifact_change", args=[artifact.pk]))
    assert page.status_code == 200
    assert artifact.key in page.content.decode()
    found = staff_client.get(reverse("admin:registry_artifact_changelist"), {"q": "Mature kidney"})
    assert artifact.key in found.content.decode()


def test_read_only_instance_refuses_changes(
    staff_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(connections["default"].settings_dict, "READ_ONLY", True)
    artifact = Artifact.get(description=synthetic.KIDNEY_DATASET)
    assert staff_client.get(reverse("admin:registry_artifact_add")).status_code == 403
    delete = reverse("admin:registry_artifact_delete", args=[artifact.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    assert Artifact.objects.filter(pk=artifact.pk).exists()
    # browsing still works
    url = reverse("admin:registry_artifact_change", args=[artifact.pk])
    assert staff_client.get(url).status_code == 200
