"""Reaping: take back the takes whose worker vanished (crash, killed task) once their lease
lapsed."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import uuid4

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from ..engines.base import EngineKind
from ..models import FlowAccount, Generation
from .claims import held, mark_uncertain, release
from .download import remove_temp_files, temp_folder
from .policy import LOST_WORKER, S, check_lease, lease_free

if TYPE_CHECKING:
    from .passes import Pass


def reap(run: Pass) -> None:
    """Settle takes whose worker vanished (crash, killed task) when their lease lapsed."""
    now = run.now
    # The submit may have left before the crash: never guess, never resubmit. Looked up
    # first (a crash is rare, so the update seldom runs), so each take names its own engine.
    lapsed = Generation.objects.filter(lease_free(now), status=S.SUBMITTING)
    lost: dict[str, list[int]] = defaultdict(list)
    for pk, kind in lapsed.values_list("pk", "account__kind"):
        lost[EngineKind(kind or EngineKind.FLOW).label].append(pk)
    for upstream, pks in lost.items():
        run.counts["uncertain"] += mark_uncertain(
            lapsed.filter(pk__in=pks), LOST_WORKER.format(upstream=upstream), now, upstream
        )
    reap_downloads(run)
    run.counts["failed"] += end_orphans(
        Generation.objects.filter(status__in=[S.QUEUED, S.PENDING, S.ACTIVE], account__isnull=True),
        "take",
        now,
    )
    # Takes of an account waiting for an admin (dead session, revoked token) say so, every
    # one of them, including takes queued after the account broke.
    problem = FlowAccount.objects.filter(pk=OuterRef("account_id")).values("problem")[:1]
    run.counts["waiting"] += (
        Generation.objects.filter(status__in=[S.QUEUED, S.PENDING, S.ACTIVE], claim__isnull=True)
        .exclude(account__problem="")
        .exclude(reason=Subquery(problem))
        .update(reason=Subquery(problem), updated=timezone.now())
    )


def end_orphans(rows: QuerySet, what: str, now: datetime) -> int:
    """End ``rows`` whose account was removed: nothing can follow them any more (nor say
    which engine it was on)."""
    return rows.update(
        status=S.FAILED,
        reason=f"The account of this {what} was removed, so Flowsite cannot follow it.",
        claim=None,
        lease_until=None,
        finished_at=now,
        updated=timezone.now(),
    )


def reap_downloads(run: Pass) -> None:
    """Take back downloads whose worker vanished, and remove what it left half-written.

    A download costs nothing: the take is checked again at once, which signs fresh URLs. The
    takes are taken with a claim of the reaper's own, so that it removes the ``.part`` files
    of exactly those takes: a worker still writing has a live lease and is not among them.
    """
    now = run.now
    token = uuid4()
    reaped = Generation.objects.filter(lease_free(now), status=S.DOWNLOADING).update(
        status=S.ACTIVE,
        claim=token,
        # Held while their files go, so that no other pass starts downloading them meanwhile.
        lease_until=now + check_lease(),
        next_check_at=now,
        updated=timezone.now(),
    )
    if not reaped:
        return
    run.counts["download_reaped"] += reaped
    # If the reaper dies here, the takes are free again once that lease lapses.
    for generation in (
        held(token, [S.ACTIVE]).select_related("project").only("uuid", "project__uuid")
    ):
        run.counts["temp_files_removed"] += remove_temp_files(temp_folder(generation))
    release(token, [S.ACTIVE])
