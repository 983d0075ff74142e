"""Reaping: take back the takes whose worker vanished (crash, killed task) once their lease
lapsed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from ..models import FlowAccount, Generation
from .policy import LOST_WORKER, S, uncertain_reason

if TYPE_CHECKING:
    from .passes import Pass


def reap(run: Pass) -> None:
    """Settle takes whose worker vanished (crash, killed task) when their lease lapsed."""
    now = run.now
    # The submit may have left before the crash: never guess, never resubmit. The claim is
    # kept so that a worker merely slower than its lease can still record the operation.
    run.counts["uncertain"] += Generation.objects.filter(
        Q(lease_until__lt=now) | Q(lease_until__isnull=True), status=S.SUBMITTING
    ).update(
        status=S.UNCERTAIN,
        reason=uncertain_reason(LOST_WORKER),
        lease_until=None,
        finished_at=now,
        updated=timezone.now(),
    )
    # A download costs nothing: check again, which signs fresh URLs.
    run.counts["download_reaped"] += Generation.objects.filter(
        Q(lease_until__lt=now) | Q(lease_until__isnull=True), status=S.DOWNLOADING
    ).update(
        status=S.ACTIVE, claim=None, lease_until=None, next_check_at=now, updated=timezone.now()
    )
    run.counts["failed"] += Generation.objects.filter(
        status__in=[S.QUEUED, S.PENDING, S.ACTIVE], account__isnull=True
    ).update(
        status=S.FAILED,
        reason="The Flow account of this take was removed, so Flowsite cannot follow it.",
        claim=None,
        lease_until=None,
        finished_at=now,
        updated=timezone.now(),
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
