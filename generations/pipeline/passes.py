"""A pass: reap, submit, poll (and download), in that order; and when the next one is due."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import DateTimeField, Min, Q, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from ..failover import submittable
from ..models import FlowAccount, Generation, Upscale
from . import accounts, poll, reap, submit, upscale
from .accounts import Engines
from .claims import Hold, Keeper
from .download import Download, Downloads
from .policy import S, account_open


@dataclass
class Pass:
    now: datetime
    heartbeat: Callable[[], object] | None = None
    # time.monotonic() by which the pass must be over (the pump's task would be killed after
    # it). Work that could not finish in time (a submit, a download) is left for the next pass.
    stop_at: float | None = None
    # The pump's lease keeper and download threads; a pass without them (tests, benchmarks)
    # renews nothing in the background and downloads inline.
    keeper: Keeper | None = None
    downloads: Downloads | None = None

    def __post_init__(self) -> None:
        self.started = time.monotonic()
        self.counts: Counter[str] = Counter()
        # The keeper renews the pump's lease through ``heartbeat`` from its own thread.
        self.beat_lock = threading.Lock()
        self.engines = Engines()
        # The credits each status call reports, written once at the end of the pass rather
        # than once per batch (the last answer is the freshest).
        self.credits: dict[int, tuple[FlowAccount, int]] = {}

    def beat(self) -> None:
        if self.heartbeat is not None:
            with self.beat_lock:
                self.heartbeat()

    def holding(
        self, hold: Hold, lease: timedelta, seconds: float
    ) -> contextlib.AbstractContextManager[None]:
        """Keep these held rows (as ``Keeper.add``) leased while a block that may block for
        long runs."""
        if self.keeper is None:
            return contextlib.nullcontext()
        return self.keeper.holding(hold, lease, seconds)

    def downloads_open(self) -> bool:
        """Whether this pass may start downloads (not once the pump winds down)."""
        return self.downloads is None or not self.downloads.closed

    def download(self, download: Download) -> None:
        if self.downloads is None:
            download.run()
            self.beat()
            return
        download.counts = Counter()
        self.downloads.start(download, self.keeper)

    def clock(self) -> datetime:
        """The pass's ``now`` (its start) moved on by the time the pass has taken: where a
        lease written late in the pass must start, since a status call or an upload before it
        may have taken longer than the lease itself (a download leased from the pass's start
        would be reaped, its file removed, as it is being written)."""
        return self.now + timedelta(seconds=time.monotonic() - self.started)

    def time_left(self) -> float:
        return float("inf") if self.stop_at is None else self.stop_at - time.monotonic()

    def run(self) -> dict[str, int]:
        try:
            reap.reap(self)
            accounts.recheck_due(self)
            self.beat()
            submit.submit_due(self)
            self.beat()
            poll.poll_due(self)
            upscale.run(self)
        finally:
            self.engines.close()
            for account, credits in self.credits.values():
                account.record_credits(credits)
        return dict(self.counts)


# --- When is the next thing due --------------------------------------------------------------


def seconds_until_due(now: datetime | None = None) -> float | None:
    """Seconds until some take needs a pass (0 when one is due now), None when none will
    without help: nothing in flight, or only takes waiting for an admin to fix their account.

    Two aggregate queries (takes, then upscales), cheap enough for the pump to ask twice a
    second while it waits.
    """
    now = now or timezone.now()
    at = Value(now, output_field=DateTimeField())
    # Rows of an account without a problem, or of a removed account (the reaper ends those).
    workable = Q(account__isnull=True) | Q(account__problem="")
    # A row is due once its own timer, its account's cool-down and any lease have all passed.
    due_at = Greatest(
        Coalesce("next_check_at", at),
        Coalesce("account__cool_down_until", at),
        Coalesce("lease_until", at),
        output_field=DateTimeField(),
    )

    def first(moment, when: Q) -> Min:
        return Min(moment, filter=when, output_field=DateTimeField())

    # A worker that held a row through a submit or a download is presumed dead after it.
    lapses = first(Coalesce("lease_until", at), Q(status__in=[S.SUBMITTING, S.DOWNLOADING]))
    takes = Generation.objects.filter(status__in=Generation.IN_FLIGHT).aggregate(
        polls=first(due_at, Q(status__in=[S.PENDING, S.ACTIVE]) & workable),
        submits=first(due_at, Q(status=S.QUEUED) & workable),
        # A queued take whose own account cannot be called goes out on another account of its
        # project as soon as its own timer has passed (generations/failover.py).
        moves=first(
            Coalesce("next_check_at", at),
            Q(status=S.QUEUED) & ~account_open(now) & submittable(now),
        ),
        leases=lapses,
    )
    # Upscales go the way takes do (``upscale``), under the same statuses.
    upscales = Upscale.objects.filter(status__in=Upscale.IN_FLIGHT).aggregate(
        work=first(due_at, Q(status__in=[S.QUEUED, S.PENDING, S.ACTIVE]) & workable),
        leases=lapses,
    )
    moments = [moment for moment in [*takes.values(), *upscales.values()] if moment is not None]
    if not moments:
        return None
    return max(0.0, (min(moments) - now).total_seconds())


def run_pass(
    now: datetime | None = None,
    *,
    heartbeat: Callable[[], object] | None = None,
    stop_at: float | None = None,
    keeper: Keeper | None = None,
    downloads: Downloads | None = None,
) -> dict[str, int]:
    return Pass(now or timezone.now(), heartbeat, stop_at, keeper, downloads).run()
