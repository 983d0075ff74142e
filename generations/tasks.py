"""Background work, run by django-q2 workers: submit takes, poll Flow, download clips.

django-q2's scheduler wakes only about every 30 seconds, too slow for a clip to show within
FLOWSITE_POLL_INTERVAL of being ready. So the work is done by a *pump*: one task, started
on demand, that holds a single lease across all workers and runs a pass of everything due
(``pipeline.run_pass``) every poll interval while anything is in flight. It stops well inside
the cluster's task timeout and hands over to a fresh task if work remains. A schedule
(every minute, created by a data migration) restarts the pump if a worker died holding it.

While it runs, the pump owns a keeper thread that renews its lease and its takes' leases every
few seconds (so the leases are short, and a dead worker's work is taken over soon), and a few
download threads, so that a slow download holds up no submit or status check
(``pipeline.download``). It waits for its downloads before it lets its lease go.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from uuid import uuid4

from django.conf import settings
from django.db import connection
from django.utils import timezone

from . import heartbeat as worker_heartbeat
from . import pipeline
from .models import Generation, WorkerLease

log = logging.getLogger(__name__)

PUMP = "pump"
PUMP_TASK = "generations.tasks.pump"
# How long a pump's hold lasts without renewal (setting FLOWSITE_PUMP_LEASE). Renewed every
# few seconds by the pump's keeper thread, whatever the pump is waiting for, so a crashed pump
# is replaced soon after it. A pump slower than its lease loses nothing: every take it works
# on is held by its own claim.
PUMP_LEASE_SECONDS = 20.0


def pump_lease_seconds() -> float:
    value = float(getattr(settings, "FLOWSITE_PUMP_LEASE", 0) or 0)
    return value if value > 0 else PUMP_LEASE_SECONDS


# While waiting for the next take to be due, look this often for takes queued meanwhile.
WAIT_SLICE_SECONDS = 0.5


def run_pass(
    now: datetime | None = None, *, heartbeat=None, stop_at: float | None = None
) -> dict[str, int]:
    """One synchronous pass of everything due; returns what it did, as counters.

    ``stop_at`` (a ``time.monotonic()`` value) is when the pass must be over: submits and
    downloads that might not finish by then are left for the next pass.
    """
    return pipeline.run_pass(now, heartbeat=heartbeat, stop_at=stop_at)


def queue_submission(generation_ids: list[int]) -> None:
    """Queue the submission of these freshly created takes (called once they are committed).

    The takes are already "queued" rows: all that is needed is a running pump.
    """
    if generation_ids:
        start_pump()


def poll_now(generation_ids: Iterable[int] | None = None) -> int:
    """Make the worker look at these takes (or every take in flight) right away."""
    generations = Generation.objects.filter(
        status__in=[Generation.Status.QUEUED, Generation.Status.PENDING, Generation.Status.ACTIVE]
    )
    if generation_ids is not None:
        generations = generations.filter(pk__in=list(generation_ids))
    # A throttled account's cool-down still holds: this only moves each take's own timer.
    count = generations.update(next_check_at=timezone.now())
    if count:
        start_pump()
    return count


def start_pump() -> bool:
    """Enqueue a pump unless one holds the lease. True when a task was enqueued."""
    if WorkerLease.is_held(PUMP):
        # The running pump sees new takes within WAIT_SLICE_SECONDS; and it re-checks for work
        # after letting the lease go, so a take queued as it stops is not stranded.
        return False
    from django_q.tasks import async_task

    async_task(PUMP_TASK, task_name=f"pump-{uuid4().hex[:8]}", group="flowsite-pump")
    return True


def watchdog() -> bool:
    """The schedule's safety net: a pump for work in flight if none is running, and film
    renders whose worker died failed. True when a pump was enqueued.

    Also the worker's heartbeat (``generations.heartbeat``): it runs every minute on a working
    cluster, and ``manage.py flowsite_worker`` queues it when the beat is late.
    """
    from .models import Upscale

    worker_heartbeat.beat()
    started = False
    if (
        Generation.objects.filter(status__in=Generation.IN_FLIGHT).exists()
        or Upscale.objects.filter(status__in=Upscale.IN_FLIGHT).exists()
    ):
        started = start_pump()
    reap_films()
    return started


def reap_films() -> None:
    """Fail the film renders whose worker stopped beating and remove their partial files, so
    a killed render does not wait for someone to press Render film again.

    Here, not in the pump's reap phase: a render is a task of its own, and the pump runs only
    while takes are in flight, while this schedule runs every minute whatever is in flight.
    Only renders that started: a queued one may be waiting for a free worker (the pump holds
    one), which is no sign that a worker died.
    """
    from . import film_tasks
    from .models import FilmRender

    try:
        film_tasks.reap(statuses=[FilmRender.Status.RENDERING])
    except Exception:
        # The next minute tries again; the render's card already reads failed meanwhile.
        log.exception("failing the film renders whose worker stopped failed")


def _task_timeout() -> float:
    return float(getattr(settings, "Q_CLUSTER", {}).get("timeout") or 600)


def pump_budget_seconds() -> float:
    """How long one pump task starts new passes: half the cluster's task timeout, so the pass
    in progress at that moment (uploads, downloads) still ends before the cluster kills it."""
    return max(_task_timeout() / 2, 5.0)


def pump(budget_seconds: float | None = None) -> dict[str, int]:
    """Run passes while anything is in flight, holding the pump lease; see the module doc."""
    holder = uuid4().hex
    lease = pump_lease_seconds()
    if not WorkerLease.acquire(PUMP, holder, lease):
        return {"busy": 1}
    budget = pump_budget_seconds() if budget_seconds is None else budget_seconds
    started = time.monotonic()
    deadline = started + budget
    # Past this the cluster kills the task: a pass defers whatever could run beyond it.
    hard_stop = started + max(_task_timeout() - 30, budget)
    totals: Counter[str] = Counter()
    lost = False
    idle = False
    letting_go = False
    renewed = beaten = time.monotonic()
    # A long pump is the worker at work too: with one worker it may hold the watchdog back for
    # minutes, and must not look like a stalled cluster meanwhile.
    beat_every = min(worker_heartbeat.stale_seconds() / 4, 30.0)
    # The keeper renews from its own thread: letting go and renewing must not interleave.
    lock = threading.Lock()

    def renew() -> None:
        # Called often (between steps, while waiting, by the keeper); a write every few seconds
        # is plenty.
        nonlocal lost, renewed, beaten
        with lock:
            if letting_go or time.monotonic() - renewed < lease / 12:
                return
            renewed = time.monotonic()
            if not WorkerLease.acquire(PUMP, holder, lease):
                lost = True
            elif renewed - beaten >= beat_every:
                beaten = renewed
                worker_heartbeat.beat()

    def let_go() -> None:
        nonlocal letting_go
        with lock:
            letting_go = True
            WorkerLease.release(PUMP, holder)

    # Threads have database connections of their own, which cannot see the rows of a caller's
    # open transaction (a test's): there, everything runs inline as in a plain pass.
    threaded = not connection.in_atomic_block
    keeper = (
        pipeline.Keeper(min(pipeline.beat_seconds(), lease / 5), renew).start()
        if threaded
        else None
    )
    downloads = pipeline.Downloads(pipeline.download_slots()) if threaded else None

    def one_pass() -> None:
        run = pipeline.Pass(timezone.now(), renew, hard_stop, keeper, downloads)
        totals.update(run.run())
        totals["passes"] += 1

    def wind_down() -> None:
        # Our downloads end (or, past the hard stop, are abandoned to the reaper) before the
        # lease goes: the keeper renews their leases and ours until then.
        if downloads is not None:
            downloads.wait(hard_stop - time.monotonic())
            totals.update(downloads.collect())
        if keeper is not None:
            keeper.stop()

    try:
        while not lost:
            one_pass()
            if downloads is not None:
                totals.update(downloads.collect())
            past_budget = time.monotonic() >= deadline
            if past_budget and downloads is not None:
                # Start no new downloads; keep submitting and polling for everyone while ours
                # finish.
                downloads.close()
            if past_budget and (downloads is None or not downloads.busy()):
                break
            if time.monotonic() >= hard_stop:
                break
            if not _wait_for_work(deadline if not past_budget else hard_stop, renew):
                # Nothing in flight: let go, then look once more, because a take queued just
                # before we let go saw the lease held and enqueued no pump of its own.
                let_go()
                if pipeline.seconds_until_due() is not None and WorkerLease.acquire(
                    PUMP, holder, lease
                ):
                    with lock:
                        letting_go = False
                    continue
                idle = True
                break
    finally:
        wind_down()
        let_go()
    if not idle and not lost and pipeline.seconds_until_due() is not None:
        start_pump()
    return dict(totals)


def _wait_for_work(deadline: float, renew) -> bool:
    """Sleep until some take is due (at most one poll interval). False when none in flight."""
    interval = pipeline.poll_interval()
    started = time.monotonic()
    while True:
        wait = pipeline.seconds_until_due()
        if wait is None:
            return False
        remaining = min(interval - (time.monotonic() - started), deadline - time.monotonic())
        if wait <= 0 or remaining <= 0:
            return True
        time.sleep(max(0.01, min(wait, remaining, WAIT_SLICE_SECONDS)))
        renew()
