"""What refuses a change in the user's words before anything is spent or written.

Its own module because every area raises these (scenes, takes, the film, the views and the
operator commands), and none of them owns the others."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ObjectDoesNotExist
from django.db import models


class CannotGenerate(Exception):
    """Generate was refused before anything was spent; the message is for the user."""


class DeletedMeanwhile(CannotGenerate):
    """A teammate deleted the scene or take (``name``: "Scene 2", "Take 3") after the page's
    lookup read it and before this change could write to it; nothing was written."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} was just deleted by a teammate, so nothing was done.")


def reread(obj: models.Model, name: str, fields: Iterable[str] = (), *, lock: bool = True) -> None:
    """Read ``fields`` of ``obj`` again (none: only check its row is there), locking its row
    for the rest of the transaction unless ``lock`` is False; ``DeletedMeanwhile`` when the
    row is gone.

    Every view reads its scene or take through the access lookup before its transaction
    starts, so a teammate's Delete can land in between. Writing on regardless would end in a
    foreign key failing at commit, an ``update_fields`` save that found no row, or a take of a
    scene that is gone: a 500 for the member, or rows pointing nowhere. The lock makes a Delete
    that comes after this wait for the change to commit (SQLite's IMMEDIATE transactions
    already serialise them); this one query replaces the lookup or lock the change made anyway.
    """
    manager = type(obj)._default_manager
    try:
        obj.refresh_from_db(
            fields=list(fields) or [obj._meta.pk.attname],
            from_queryset=manager.select_for_update() if lock else manager.all(),
        )
    except ObjectDoesNotExist:
        raise DeletedMeanwhile(name) from None
