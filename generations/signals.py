"""What changes a project's gallery, caught where the ORM and the admin make the change.

The gallery caches its rendered pages under ``Project.gallery_version``
(generations/views/gallery.py), so every change to what a gallery page shows must bump that
version in the change's own transaction. Saves and deletes made through models (views, the
admin, the shell) are caught here; writes that send no signal bump explicitly where they are
made: the worker marking a take ready (``Download.run`` in generations/pipeline/download.py) and
``Project.mark_scenes_changed`` (scenes added, moved or deleted, including ``bulk_update``).

A page shows: the project's name, its scenes (titles, order, positions naming untitled ones),
every ready take's facts, and the usernames of the people who asked for them.

Registered by ``GenerationsConfig.ready``.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import connections
from django.db.models import QuerySet
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from .models import Generation, Project, Scene

READY = Generation.Status.READY
# What a scene shows in the gallery: its title, its position (an untitled scene is named by
# it, and the filter lists scenes in order), and the project it belongs to.
SCENE_FIELDS_SHOWN = {"title", "position", "project", "project_id"}


def _shown(update_fields: Iterable[str] | None, fields: set[str]) -> bool:
    # update_fields None: a full save, which may have changed anything.
    return update_fields is None or not fields.isdisjoint(update_fields)


def _bump_once_per_delete(using: str, origin: object, project_ids: Iterable[int | None]) -> None:
    """Bump each project once per deletion, however many of its rows the deletion removes.

    A deletion sends one signal per row (a scene deleted with its 200 takes sends 201); the
    collector sends them all inside its own atomic block, which is a fresh object per
    deletion, so the projects already bumped are remembered on it and go with it.
    """
    if isinstance(origin, Project) or (isinstance(origin, QuerySet) and origin.model is Project):
        return  # the project itself is going: its gallery is a 404 from now on
    blocks = connections[using].atomic_blocks
    done: set[int] = (
        blocks[-1].__dict__.setdefault("_flowsite_galleries_bumped", set()) if blocks else set()
    )
    fresh = {pk for pk in project_ids if pk is not None} - done
    if fresh:
        done |= fresh
        Project.objects.db_manager(using).bump_gallery(fresh)


# --- takes ----------------------------------------------------------------------------------


@receiver(post_save, sender=Generation, dispatch_uid="flowsite-gallery-take-saved")
def take_saved(sender, instance: Generation, created: bool, update_fields, **kwargs) -> None:
    if instance.status == READY or (not created and update_fields is None):
        # Ready now, or a full save (the admin) that may have taken a ready take out.
        Project.objects.bump_gallery([instance.project_id])


@receiver(post_delete, sender=Generation, dispatch_uid="flowsite-gallery-take-deleted")
def take_deleted(sender, instance: Generation, using: str, origin=None, **kwargs) -> None:
    if instance.status == READY:
        _bump_once_per_delete(using, origin, [instance.project_id])


# --- scenes ---------------------------------------------------------------------------------


@receiver(pre_save, sender=Scene, dispatch_uid="flowsite-gallery-scene-moving")
def scene_saving(sender, instance: Scene, update_fields, raw: bool = False, **kwargs) -> None:
    # The admin's scene form can move a scene to another project; the project it leaves
    # listed it in its gallery's filter, so it is bumped too. Only full or project saves pay
    # this read (the studio's scene form saves named fields without the project).
    if raw or instance._state.adding or not _shown(update_fields, {"project", "project_id"}):
        return
    instance._gallery_project_before = (
        Scene.objects.filter(pk=instance.pk).values_list("project_id", flat=True).first()
    )


@receiver(post_save, sender=Scene, dispatch_uid="flowsite-gallery-scene-saved")
def scene_saved(sender, instance: Scene, created: bool, update_fields, **kwargs) -> None:
    if created or _shown(update_fields, SCENE_FIELDS_SHOWN):
        before = instance.__dict__.pop("_gallery_project_before", None)
        Project.objects.bump_gallery([instance.project_id, before])


@receiver(post_delete, sender=Scene, dispatch_uid="flowsite-gallery-scene-deleted")
def scene_deleted(sender, instance: Scene, using: str, origin=None, **kwargs) -> None:
    _bump_once_per_delete(using, origin, [instance.project_id])


# --- projects and people --------------------------------------------------------------------


@receiver(post_save, sender=Project, dispatch_uid="flowsite-gallery-project-saved")
def project_saved(sender, instance: Project, created: bool, update_fields, **kwargs) -> None:
    if not created and _shown(update_fields, {"name"}):
        instance.gallery_changed()


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="flowsite-gallery-user-saved")
def user_saved(sender, instance, created: bool, update_fields, **kwargs) -> None:
    # Sections are titled by username. Signing in saves only last_login, which is skipped.
    if not created and _shown(update_fields, {sender.USERNAME_FIELD}):
        Project.objects.bump_gallery_of_requester(instance.pk)


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="flowsite-gallery-user-gone")
def user_deleting(sender, instance, **kwargs) -> None:
    # Before the deletion sets their takes' requested_by to NULL (an UPDATE that sends no
    # signal) and they move to "A former member"; pre_delete runs in the same transaction.
    Project.objects.bump_gallery_of_requester(instance.pk)
