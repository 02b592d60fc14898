"""Records of another instance saved into this one, as LaminDB transfers them.

``public.Artifact.get(...).save()`` (a record read through ``ln.DB("demo-census")``) writes it
into the default instance: nothing is copied but metadata, the bytes stay where they are.

How records are matched, so that nothing is duplicated and a second transfer writes nothing:

- by ``uid`` first (ontology terms derive theirs from the ontology id, so a term matches the
  same term however each instance got it);
- else by the fields that identify the record in every instance (:data:`NATURAL_KEYS`: a storage
  by root, a feature by name, a transform by key and version, an ontology source, a label by
  name and type, a term by ontology id);
- else it is created, with what it refers to transferred first: its storage, the version it
  revises (version chains are kept), a label's type, a term's parents (the hierarchy comes
  along), its source.

An artifact brings its label links (feature and cell counts kept); a collection its members in
order. Every transfer is recorded as a Run of the transform ``transfer`` whose parameters name
the source instance; the records it creates point at that run. The source is only read.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import IntegrityError, models, transaction
from django.utils import timezone

import registry
from registry.databases import check_writable, instance_name
from registry.models.links import label_relations
from registry.query.aliases import has_field
from registry.query.links import insert_links

#: per registry, the fields that identify a record in every instance (after ``uid``)
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "Storage": ("root",),
    "Feature": ("name",),
    "Transform": ("key", "version"),
    "Source": ("entity", "name", "version", "organism"),
    "ULabel": ("name", "type"),
}
#: fields never copied: the target's own provenance replaces them
OWN_FIELDS = {"id", "created_by", "created_at", "run"}
TRANSFORM_KEY = "transfer"
#: records matched (or link rows read) per query
BULK_CHUNK = 500


class Transfer:
    """One transfer session from instance alias ``source`` into ``target``."""

    def __init__(self, source: str, target: str) -> None:
        check_writable(target, "transfer records into it")
        self.source, self.target = source, target
        self.done: dict[tuple[type, int], models.Model] = {}
        self.linked: set[tuple[type, int]] = set()  # artifacts whose links were transferred
        self.created = 0
        self._run: Any = None

    # --- the run -----------------------------------------------------------------------------
    @property
    def run(self) -> Any:
        """The Run of this transfer (made on the first record created)."""
        if self._run is None:
            transform_model = apps.get_model("registry", "Transform")
            run_model = apps.get_model("registry", "Run")
            transform, _ = transform_model.objects.db_manager(self.target).get_or_create(
                key=TRANSFORM_KEY,
                version=registry.__version__,
                defaults={"description": "records saved from another instance"},
            )
            self._run = run_model.objects.db_manager(self.target).create(
                transform=transform,
                params={"source_instance": instance_name(self.source)},
            )
        return self._run

    def finish(self) -> None:
        """Mark the run completed, with what it created."""
        if self._run is not None:
            self._run.status = "completed"
            self._run.finished_at = timezone.now()
            self._run.report = {"records_created": self.created}
            self._run.save(using=self.target)

    # --- records -----------------------------------------------------------------------------
    def record(self, obj: models.Model) -> models.Model:
        """The target's record for ``obj`` (a record of the source), matched or created."""
        model = type(obj)
        key = (model, obj.pk)
        if key in self.done:
            return self.done[key]
        found = self._match(obj)
        if found is None:
            found = self._create(obj)
        self.done[key] = found
        return found

    def _match(self, obj: models.Model) -> models.Model | None:
        model = type(obj)
        manager = model._default_manager.db_manager(self.target)
        if model.__name__ == "User":
            from registry.databases import current_user_id

            return manager.get(pk=current_user_id(self.target))
        if hasattr(obj, "uid"):
            found = manager.filter(uid=obj.uid).first()
            if found is not None:
                return found
        if getattr(obj, "ontology_id", None):
            found = manager.filter(ontology_id=obj.ontology_id).first()
            if found is not None:
                return found
        fields = NATURAL_KEYS.get(model.__name__)
        if fields:
            return manager.filter(**self._values(obj, fields)).first()
        return None

    def _values(self, obj: models.Model, names: tuple[str, ...]) -> dict[str, Any]:
        values = {}
        for name in names:
            field = obj._meta.get_field(name)
            if field.is_relation:
                related = getattr(obj, name)
                values[name] = self.record(related) if related is not None else None
            else:
                values[name] = getattr(obj, name)
        return values

    def _create(self, obj: models.Model) -> models.Model:
        model = type(obj)
        values: dict[str, Any] = {}
        for field in model._meta.concrete_fields:
            if field.name in OWN_FIELDS:
                continue
            if field.is_relation:
                related = getattr(obj, field.name)
                values[field.name] = self.record(related) if related is not None else None
            else:
                values[field.attname] = getattr(obj, field.attname)
        if "run" in {f.name for f in model._meta.concrete_fields}:
            values["run"] = self.run
        new = model(**values)
        try:
            with transaction.atomic(using=self.target):
                new.save(using=self.target)
        except IntegrityError:  # another transfer made it meanwhile: take theirs
            found = self._match(obj)
            if found is None:
                raise
            return found
        self.created += 1
        if has_field(model, "parents"):  # a term comes with its parents
            parents = [self.record(parent) for parent in obj.parents.all()]
            if parents:
                new.parents.add(*parents)
        return new

    # --- what comes with artifacts or a collection -------------------------------------------
    def matched_in_bulk(self, objs: list[models.Model]) -> None:
        """Match records of one registry by uid with one query per chunk (the many labels and
        artifacts of a release), so that :meth:`record` finds them done."""
        if not objs:
            return
        model = type(objs[0])
        todo = {o.uid: o for o in objs if (model, o.pk) not in self.done and hasattr(o, "uid")}
        uids = list(todo)
        manager = model._default_manager.db_manager(self.target)
        for start in range(0, len(uids), BULK_CHUNK):
            for found in manager.filter(uid__in=uids[start : start + BULK_CHUNK]):
                self.done[(model, todo[found.uid].pk)] = found

    def artifacts(self, artifacts: list[models.Model]) -> list[models.Model]:
        """The artifacts and the versions they revise, each with its label links (features and
        cell counts kept); the target's records, in the order given."""
        model = apps.get_model("registry", "Artifact")
        chain, ids = list(artifacts), {a.pk for a in artifacts}
        older = {a.revises_id for a in chain if a.revises_id} - ids
        while older:  # the versions they revise, from the source, a generation at a time
            found = list(model._default_manager.db_manager(self.source).filter(pk__in=older))
            chain += found
            ids |= older
            older = {a.revises_id for a in found if a.revises_id} - ids
        self.matched_in_bulk(chain)
        for artifact in sorted(chain, key=lambda a: a.pk):  # older versions first
            self.record(artifact)
        todo = [a for a in chain if (model, a.pk) not in self.linked]
        for relation in label_relations():
            for start in range(0, len(todo), BULK_CHUNK):
                self._links(relation, todo[start : start + BULK_CHUNK])
        self.linked |= {(model, a.pk) for a in todo}
        return [self.done[(model, a.pk)] for a in artifacts]

    def _links(self, relation: Any, artifacts: list[models.Model]) -> None:
        through = relation.through
        rows = list(
            through.objects.db_manager(self.source)
            .filter(artifact_id__in=[a.pk for a in artifacts])
            .select_related("label", "feature")
        )
        if not rows:
            return
        self.matched_in_bulk(list({row.label_id: row.label for row in rows}.values()))
        artifact_model = type(artifacts[0])
        insert_links(
            through,
            [
                (
                    self.done[(artifact_model, row.artifact_id)].pk,
                    self.record(row.label).pk,
                    self.record(row.feature).pk if row.feature is not None else None,
                    row.n_cells,
                    row.n_primary_cells,
                )
                for row in rows
            ],
            using=self.target,
        )

    def collection(self, collection: models.Model) -> models.Model:
        """The collection and its members, in their order."""
        member_model = apps.get_model("registry", "CollectionArtifact")
        new = self.record(collection)
        members = list(
            member_model.objects.db_manager(self.source)
            .filter(collection_id=collection.pk)
            .select_related("artifact")
            .order_by("order")
        )
        targets = self.artifacts([member.artifact for member in members])
        have = set(
            member_model.objects.db_manager(self.target)
            .filter(collection=new)
            .values_list("artifact_id", flat=True)
        )
        rows = [
            member_model(collection=new, artifact=target, order=member.order)
            for member, target in zip(members, targets, strict=True)
            if target.pk not in have
        ]
        member_model.objects.db_manager(self.target).bulk_create(rows, ignore_conflicts=True)
        return new


def is_from_another_instance(obj: models.Model, using: str | None) -> bool:
    """Whether saving ``obj`` (without ``using``) means a transfer: it was read from an
    instance that is not the default one."""
    alias = obj._state.db
    if using is not None or obj._state.adding or alias in (None, "default"):
        return False
    return instance_name(alias) != instance_name("default")


def transfer(obj: models.Model, target: str = "default") -> models.Model:
    """Save ``obj`` (an Artifact or Collection of another instance) into ``target``; returns
    the target's record."""
    session = Transfer(obj._state.db, target)
    with transaction.atomic(using=target):
        if type(obj).__name__ == "Collection":
            new = session.collection(obj)
        else:
            (new,) = session.artifacts([obj])
        session.finish()
    return new
