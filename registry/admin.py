"""The Django admin: the registry's web interface (``python manage.py runserver`` -> ``/admin/``).

Every registry can be browsed, searched and filtered; foreign keys use autocomplete (or raw ids
where the related table is large). An artifact's labels are edited inline, one table per label
registry, with the feature and cell counts of each link. On a read-only instance (a public
mirror) the admin only shows: adding, changing and deleting are refused before any write, also
on Django's own user and group pages, and logging in writes nothing (sessions live in signed
cookies, see the settings; ``last_login`` and password hashes are left as they are).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.models import AbstractBaseUser, Group, update_last_login
from django.db import DEFAULT_DB_ALIAS
from django.http import HttpRequest

from registry.databases import is_read_only
from registry.formatting import format_size
from registry.models import (
    Artifact,
    Collection,
    CollectionArtifact,
    Feature,
    Run,
    Storage,
    Transform,
    ULabel,
    User,
)
from registry.models.links import LabelRelation

admin.site.site_header = "cellregistry"
admin.site.site_title = "cellregistry admin"
admin.site.index_title = "Registries"

PROVENANCE_FIELDS = ("uid", "created_at")


def instance_is_read_only() -> bool:
    """Whether the instance the admin shows (the ``default`` alias) is read-only."""
    return is_read_only(DEFAULT_DB_ALIAS)


class ReadOnlyInstanceMixin:
    """Refuse add, change and delete in the admin when the instance is read-only."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return not instance_is_read_only() and super().has_add_permission(request, *args)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not instance_is_read_only() and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not instance_is_read_only() and super().has_delete_permission(request, obj)


class RegistryAdmin(ReadOnlyInstanceMixin, admin.ModelAdmin):
    """Base admin of every registry: provenance fields shown, not edited."""

    list_per_page = 50
    readonly_fields = PROVENANCE_FIELDS
    raw_id_fields: tuple[str, ...] = ("run",)
    autocomplete_fields: tuple[str, ...] = ("created_by",)


def label_inline(relation: LabelRelation) -> type[admin.TabularInline]:
    """An inline for one label relation of Artifact (``cell_types`` -> ArtifactCellType)."""
    attributes = {
        "model": relation.through,
        "fk_name": "artifact",
        "fields": ("label", "feature", "n_cells", "n_primary_cells"),
        "autocomplete_fields": ("label", "feature"),
        "extra": 0,
        "verbose_name": relation.registry._meta.verbose_name,
        "verbose_name_plural": relation.name.replace("_", " "),
    }
    name = f"{relation.through.__name__}Inline"
    return type(name, (ReadOnlyInstanceMixin, admin.TabularInline), attributes)


class ArtifactCollectionInline(ReadOnlyInstanceMixin, admin.TabularInline):
    """The collections an artifact belongs to."""

    model = CollectionArtifact
    fk_name = "artifact"
    fields = ("collection", "order")
    raw_id_fields = ("collection",)
    extra = 0
    verbose_name_plural = "collections"


class CollectionMemberInline(ReadOnlyInstanceMixin, admin.TabularInline):
    """The ordered artifacts of a collection (raw ids: a release has thousands)."""

    model = CollectionArtifact
    fk_name = "collection"
    fields = ("order", "artifact")
    raw_id_fields = ("artifact",)
    extra = 0
    verbose_name_plural = "artifacts"


@admin.register(Artifact)
class ArtifactAdmin(RegistryAdmin):
    list_display = (
        "key",
        "description",
        "suffix",
        "otype",
        "size_display",
        "n_observations",
        "version",
        "is_latest",
        "created_by",
        "created_at",
    )
    list_filter = ("suffix", "otype", "is_latest", "storage")
    search_fields = ("uid", "key", "description", "reference")
    list_select_related = ("created_by",)
    autocomplete_fields = ("storage", "created_by", "revises")
    inlines = [*map(label_inline, Artifact.label_relations()), ArtifactCollectionInline]

    @admin.display(description="size", ordering="size")
    def size_display(self, artifact: Artifact) -> str:
        return format_size(artifact.size)


@admin.register(Collection)
class CollectionAdmin(RegistryAdmin):
    list_display = ("key", "version", "is_latest", "description", "reference", "created_at")
    list_filter = ("is_latest", "reference_type")
    search_fields = ("uid", "key", "description", "reference", "doi")
    autocomplete_fields = ("created_by", "revises")
    inlines = [CollectionMemberInline]


@admin.register(Storage)
class StorageAdmin(RegistryAdmin):
    list_display = ("root", "type", "region", "endpoint_url", "anonymous", "created_at")
    list_filter = ("type", "anonymous")
    search_fields = ("uid", "root", "description")


@admin.register(User)
class UserAdmin(ReadOnlyInstanceMixin, admin.ModelAdmin):
    list_display = ("handle", "name", "uid", "created_at")
    search_fields = ("uid", "handle", "name")
    readonly_fields = PROVENANCE_FIELDS


@admin.register(Feature)
class FeatureAdmin(RegistryAdmin):
    list_display = ("name", "dtype", "description", "created_at")
    list_filter = ("dtype",)
    search_fields = ("uid", "name", "dtype", "description")


@admin.register(ULabel)
class ULabelAdmin(RegistryAdmin):
    list_display = ("name", "type", "is_type", "description", "created_at")
    list_filter = ("is_type", ("type", admin.RelatedOnlyFieldListFilter))
    search_fields = ("uid", "name", "description")
    list_select_related = ("type",)
    autocomplete_fields = ("type", "created_by")


@admin.register(Transform)
class TransformAdmin(RegistryAdmin):
    list_display = ("key", "version", "type", "description", "created_at")
    list_filter = ("type",)
    search_fields = ("uid", "key", "description")


@admin.register(Run)
class RunAdmin(RegistryAdmin):
    list_display = ("uid", "transform", "status", "started_at", "finished_at", "created_by")
    list_filter = ("status", "transform")
    search_fields = ("uid", "transform__key")
    list_select_related = ("transform", "created_by")
    autocomplete_fields = ("transform", "created_by")


# ---------------------------------------------------------------------------------------------
# Django's users and groups (the admin's logins), and logging in on a read-only instance
# ---------------------------------------------------------------------------------------------
class AuthUserAdmin(ReadOnlyInstanceMixin, DjangoUserAdmin):
    """Django's user pages; view-only on a read-only instance (also the password form)."""


class AuthGroupAdmin(ReadOnlyInstanceMixin, DjangoGroupAdmin):
    """Django's group pages; view-only on a read-only instance."""


for _model, _model_admin in ((get_user_model(), AuthUserAdmin), (Group, AuthGroupAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _model_admin)


def update_last_login_unless_read_only(sender: type, user: AbstractBaseUser, **kwargs: Any) -> None:
    """``user_logged_in`` receiver in place of Django's ``update_last_login``: the same, except
    that a login on a read-only instance leaves ``last_login`` as it is."""
    if not is_read_only(user._state.db or DEFAULT_DB_ALIAS):
        update_last_login(sender, user, **kwargs)


class InstanceModelBackend(ModelBackend):
    """Django's model backend (username and password), except on a read-only instance: there a
    correct password whose hash Django would rewrite (a newer Django that hashes with more
    iterations) is accepted as it is, without the write."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> AbstractBaseUser | None:
        if not instance_is_read_only():
            return super().authenticate(request, username, password, **kwargs)
        user_model = get_user_model()
        if username is None:
            username = kwargs.get(user_model.USERNAME_FIELD)
        if username is None or password is None:
            return None
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            make_password(password)  # as slow as a real check: the timing does not tell
            return None
        if check_password(password, user.password) and self.user_can_authenticate(user):
            return user
        return None

    async def aauthenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        return await sync_to_async(self.authenticate)(request, **kwargs)
