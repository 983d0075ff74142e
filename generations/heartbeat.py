"""The worker's heartbeat: when a django-q2 worker last ran Flowsite's work.

Only a worker writes it (the every-minute watchdog task, and a running pump or film render
every few seconds), so a stale heartbeat means the cluster has stopped doing work, whatever its
processes look like: a cluster whose idle worker was killed while it waited on the task queue
keeps its processes alive but runs nothing again (the dead worker still holds the queue's read
lock). ``manage.py flowsite_worker`` restarts such a cluster, and pages say the worker is not
running instead of leaving cards silently queued.

Kept in a ``WorkerLease`` row whose ``until`` is the last beat: one row, no new table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Subquery
from django.utils import timezone
from django.utils.timesince import timesince

from .models import WorkerLease

NAME = "worker heartbeat"
DEFAULT_STALE_SECONDS = 300.0


def stale_seconds() -> float:
    value = float(getattr(settings, "FLOWSITE_WORKER_STALE", 0) or 0)
    return value if value > 0 else DEFAULT_STALE_SECONDS


def beat(now: datetime | None = None) -> None:
    now = now or timezone.now()
    if not WorkerLease.objects.filter(name=NAME).update(holder="", until=now):
        WorkerLease.objects.get_or_create(name=NAME, defaults={"until": now})


def last_beat() -> datetime | None:
    return WorkerLease.objects.filter(name=NAME).values_list("until", flat=True).first()


def last_beat_subquery() -> Subquery:
    """The last beat, to ride along on a page's own lookup instead of a query of its own."""
    return Subquery(WorkerLease.objects.filter(name=NAME).values("until")[:1])


@dataclass(frozen=True)
class Stall:
    since: datetime | None  # None: no worker has run yet
    now: datetime

    def __str__(self) -> str:
        wait = "takes wait until it is running again; an admin should check it."
        if self.since is None:
            return "The worker has not run yet: takes wait until it is running; an admin should start it."
        local = timezone.localtime(self.since)
        when = local.strftime("%H:%M")
        if self.now - self.since >= timedelta(hours=20):
            when = f"{local.day} {local.strftime('%b %H:%M')}"
        ago = timesince(self.since, self.now, depth=1).replace("\xa0", " ")
        return f"The worker has not run since {when} ({ago}): {wait}"


def stall(last: datetime | None, in_flight: bool, now: datetime | None = None) -> Stall | None:
    """Why takes are not moving, if the heartbeat says the worker stopped; None while it beats.

    A fresh install, where no worker has run yet and nothing waits for one, is not a stall.
    """
    now = now or timezone.now()
    if last is None:
        return Stall(None, now) if in_flight else None
    if now - last > timedelta(seconds=stale_seconds()):
        return Stall(last, now)
    return None


def current_stall() -> Stall | None:
    """``stall`` for pages that have not loaded the beat or the takes (the admin index)."""
    from .models import Generation, Upscale

    last = last_beat()
    in_flight = last is None and (
        Generation.objects.filter(status__in=Generation.IN_FLIGHT).exists()
        or Upscale.objects.filter(status__in=Upscale.IN_FLIGHT).exists()
    )
    return stall(last, in_flight)
