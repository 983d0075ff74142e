"""Images nothing refers to any more are removed, rows and files, once committed.

An image (a start or end frame, a reference) is kept while a scene uses it or a take was made
from it (the take shows it, and a retry asks Flow for the same clip again). When a scene's
image is replaced, a scene is deleted (its takes go with it) or a take is deleted, the images they referred to are
checked once the change is committed, and those nobody refers to go. A stored file goes only
with the last ``ImageAsset`` row naming it, and only once that row's deletion is committed:
a rollback keeps both.

Caught with model signals, so the scene views, the admin and the shell all clean up alike.
Registered by ``GenerationsConfig.ready``.

An image nothing ever referred to is not seen by any signal: the scene form keeps an upload
whose form failed (an empty prompt, say) so it need not be picked again, and the person may
never send the form again. :func:`remove_abandoned_images`, run every hour by a django-q2
schedule, removes those once ``FLOWSITE_KEPT_IMAGE_HOURS`` have passed since the upload, so a
form still being corrected keeps its image.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.signals import post_delete, post_init, post_save
from django.dispatch import receiver
from django.utils import timezone

from .models import Generation, ImageAsset, Scene

log = logging.getLogger(__name__)

_LOADED = "_flowsite_images_loaded"
_PENDING = "_flowsite_images_to_check"
# The image columns of a scene and of a take (the same names on both).
_IMAGE_IDS = tuple(f"{name}_id" for name in Scene.IMAGE_FIELDS)
# Abandoned images are removed this many at a time, each batch in its own transaction.
SWEEP_BATCH = 200


def in_use() -> Q:
    """What keeps an image: a scene that uses it or a take made from it, in any of their image
    columns. The one definition behind the clean-up, the sweep and the scene form's picker."""
    refers = Q(*(Q(**{name: OuterRef("pk")}) for name in _IMAGE_IDS), _connector=Q.OR)
    return Q(Exists(Scene.objects.filter(refers))) | Q(Exists(Generation.objects.filter(refers)))


def _image_ids(instance) -> list[int | None]:
    # What the row holds, without loading a deferred field.
    return [instance.__dict__.get(name) for name in _IMAGE_IDS]


def kept_image_grace() -> timedelta:
    return timedelta(hours=float(settings.FLOWSITE_KEPT_IMAGE_HOURS))


def remove_unused_images(image_ids: Iterable[int]) -> list[int]:
    """Delete these images if no scene and no take refers to them; their files follow on
    commit (``image_deleted``). Returns the ids removed."""
    ids = sorted({pk for pk in image_ids if pk is not None})
    if not ids:
        return []
    return _delete_unused(ImageAsset.objects.filter(pk__in=ids))


def remove_abandoned_images(now: datetime | None = None) -> int:
    """Delete the images nothing has referred to since their upload, once the grace period
    (``FLOWSITE_KEPT_IMAGE_HOURS``) is over: uploads kept for a scene form that was never sent
    again. Returns how many went. Run every hour by the "Flowsite image sweep" schedule."""
    cutoff = (now or timezone.now()) - kept_image_grace()
    removed = 0
    while True:
        batch = list(
            ImageAsset.objects.filter(created__lt=cutoff)
            .exclude(in_use())
            .order_by("pk")
            .values_list("pk", flat=True)[:SWEEP_BATCH]
        )
        if not batch:
            return removed
        gone = _delete_unused(ImageAsset.objects.filter(pk__in=batch))
        removed += len(gone)
        if len(gone) < len(batch):
            # Some were taken up meanwhile (or refused): the next hour's sweep looks again.
            return removed


def _delete_unused(images) -> list[int]:
    removed: list[int] = []
    try:
        with transaction.atomic():
            removed = list(images.exclude(in_use()).values_list("pk", flat=True))
            if removed:
                # A scene that took an image up meanwhile keeps it: the deletion checks the
                # references again (RESTRICT), and the database's foreign key refuses too.
                ImageAsset.objects.filter(pk__in=removed).delete()
    except IntegrityError:
        log.info("Images %s were taken up while being removed; kept.", sorted(removed))
        return []
    return removed


def _check_on_commit(using: str, image_ids: Iterable[int | None]) -> None:
    """Check these images once the current transaction commits: once per transaction, however
    many rows of a deletion mention them."""
    fresh = {pk for pk in image_ids if pk is not None}
    if not fresh:
        return
    blocks = connections[using].atomic_blocks
    if not blocks:
        transaction.on_commit(lambda: remove_unused_images(fresh), using=using, robust=True)
        return
    # The innermost block: if it is a savepoint rolled back, its callback goes with it.
    block = blocks[-1]
    pending: set[int] | None = block.__dict__.get(_PENDING)
    if pending is None:
        pending = block.__dict__[_PENDING] = set()
        # robust: a failed clean-up is logged; the change it follows is committed already.
        transaction.on_commit(lambda: remove_unused_images(pending), using=using, robust=True)
    pending |= fresh


@receiver(post_init, sender=Scene, dispatch_uid="flowsite-cleanup-scene-loaded")
def scene_loaded(sender, instance: Scene, **kwargs) -> None:
    instance.__dict__[_LOADED] = _image_ids(instance)


@receiver(post_save, sender=Scene, dispatch_uid="flowsite-cleanup-scene-saved")
def scene_saved(sender, instance: Scene, created: bool, using: str, **kwargs) -> None:
    before = instance.__dict__.get(_LOADED) or []
    now = _image_ids(instance)
    instance.__dict__[_LOADED] = now
    if not created:
        _check_on_commit(using, [pk for pk in before if pk not in now])


@receiver(post_delete, sender=Scene, dispatch_uid="flowsite-cleanup-scene-deleted")
def scene_deleted(sender, instance: Scene, using: str, **kwargs) -> None:
    _check_on_commit(using, [*_image_ids(instance), *(instance.__dict__.get(_LOADED) or [])])


@receiver(post_delete, sender=Generation, dispatch_uid="flowsite-cleanup-take-deleted")
def take_deleted(sender, instance: Generation, using: str, **kwargs) -> None:
    _check_on_commit(using, _image_ids(instance))


@receiver(post_delete, sender=ImageAsset, dispatch_uid="flowsite-cleanup-image-deleted")
def image_deleted(sender, instance: ImageAsset, using: str, **kwargs) -> None:
    name = instance.file.name
    if not name:
        return
    storage = instance.file.storage

    def delete_file() -> None:
        # Never a file another image row still names.
        if not ImageAsset.objects.using(using).filter(file=name).exists():
            storage.delete(name)

    transaction.on_commit(delete_file, using=using, robust=True)
