"""Claims: how a pass takes rows, and the only ways it writes them while it holds them.

A pass claims its rows by stamping a fresh token (and a lease) on them with a conditional
UPDATE. From then on it writes only rows still carrying that token, in the status it expects:
"0 rows" means someone else — another worker past our lease, a cancel — got there first, and
the pass leaves the row alone. Giving a row back is always ``release``: the claim and lease are
cleared in the same statement that writes what the pass decided.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from django.db import connections
from django.db.models import Case, F, Model, QuerySet, Value, When
from django.utils import timezone

from ..models import Generation
from .policy import account_open, is_due, lease_free, uncertain_reason

log = logging.getLogger(__name__)


def claim(rows: QuerySet, lease: timedelta, now: datetime) -> tuple[UUID, int]:
    """Claim those of ``rows`` that are due and free with a fresh token and a lease, in ONE
    conditional UPDATE: the token, and how many rows carry it now."""
    token = uuid4()
    claimed = rows.filter(is_due(now), lease_free(now)).update(claim=token, lease_until=now + lease)
    return token, claimed


def claim_due(
    rows: QuerySet, status: str, limit: int, lease: timedelta, now: datetime
) -> UUID | None:
    """Claim the oldest ``limit`` of ``rows`` in ``status`` that are due and free: the token
    they carry now, or None when none was due.

    The rows are chosen first and claimed after, each only if still in ``status``, due and
    free, so a row another worker took in between is not taken twice.
    """
    due = list(
        rows.filter(status=status)
        .filter(is_due(now), lease_free(now))
        .order_by("created", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    if not due:
        return None
    token, _ = claim(rows.model.objects.filter(pk__in=due, status=status), lease, now)
    return token


def due_accounts(rows: QuerySet, now: datetime) -> list[int]:
    """The accounts, callable now, of those of ``rows`` that are due and free."""
    return list(
        rows.filter(account__isnull=False)
        .filter(is_due(now), lease_free(now), account_open(now))
        .order_by()
        .values_list("account_id", flat=True)
        .distinct()
    )


@dataclass(frozen=True)
class Hold:
    """Rows a pass holds: those of ``pks`` (or all) still carrying ``token`` in one of
    ``statuses``; takes, or another ``model`` the worker claims the same way (upscales)."""

    token: UUID
    statuses: Iterable[str]
    pks: Iterable[int] | None = None
    model: type[Model] = Generation

    def __post_init__(self) -> None:
        # As given now: the keeper reads them again at every beat.
        object.__setattr__(self, "statuses", tuple(self.statuses))
        if self.pks is not None:
            object.__setattr__(self, "pks", tuple(self.pks))

    def rows(self) -> QuerySet:
        rows = self.model.objects.filter(claim=self.token, status__in=self.statuses)
        return rows if self.pks is None else rows.filter(pk__in=self.pks)

    def release(self, **fields: Any) -> int:
        """Give back the rows still held, writing ``fields`` to them in the same statement."""
        return self.rows().update(claim=None, lease_until=None, **fields)


def held(
    token: UUID,
    statuses: Iterable[str],
    pks: Iterable[int] | None = None,
    *,
    model: type[Model] = Generation,
) -> QuerySet:
    """``Hold(...).rows()``: the rows still held."""
    return Hold(token, statuses, pks, model).rows()


def release(
    token: UUID,
    statuses: Iterable[str],
    pks: Iterable[int] | None = None,
    *,
    model: type[Model] = Generation,
    **fields: Any,
) -> int:
    """``Hold(...).release(**fields)``: give back the rows still held, writing ``fields``."""
    return Hold(token, statuses, pks, model).release(**fields)


def write_held(token: UUID, changes: dict[int, dict[str, Any]], statuses: Iterable[str]) -> int:
    """Apply per-row changes (pk -> fields) in ONE UPDATE, only to rows still held.

    A field every row gets the same value is a plain assignment; any other becomes a ``Case``
    whose ``When`` groups the rows given the same value (``id IN (…)``), so the statement's size
    follows the number of distinct values, not of rows.
    """
    if not changes:
        return 0
    values: dict[str, Any] = {}
    for name in sorted({name for change in changes.values() for name in change}):
        by_value: dict[Any, list[int]] = defaultdict(list)
        for pk, change in changes.items():
            if name in change:
                by_value[change[name]].append(pk)
        if len(by_value) == 1 and len(next(iter(by_value.values()))) == len(changes):
            values[name] = next(iter(by_value))
            continue
        field = Generation._meta.get_field(name)
        values[name] = Case(
            *[
                When(pk__in=pks, then=Value(value, output_field=field))
                for value, pks in by_value.items()
            ],
            default=F(name),
            output_field=field,
        )
    return held(token, statuses, changes).update(**values)


def mark_uncertain(rows: QuerySet, cause: str, now: datetime, upstream: str = "Flow") -> int:
    """Make ``rows`` "uncertain": a submit call of theirs may have reached ``upstream``, so
    they are never sent again by themselves, and a person decides. The claim stays: a worker
    merely slower than its lease can still record the answer."""
    return rows.update(
        status=rows.model.Status.UNCERTAIN,
        # The row's own kind names it: "take" (Generation) or "upscale".
        reason=uncertain_reason(
            cause, upstream, "take" if rows.model is Generation else rows.model._meta.model_name
        ),
        lease_until=None,
        finished_at=now,
        updated=timezone.now(),
    )


def given_back(**fields: Any) -> dict[str, Any]:
    """A change for ``write_held`` that gives the row back, as ``release`` does: its claim
    and lease cleared with ``fields``."""
    return {**fields, "claim": None, "lease_until": None}


def visible(**fields: Any) -> dict[str, Any]:
    """Fields of a change a viewer can see: bump ``updated`` (UPDATE skips auto fields)."""
    return {**fields, "updated": timezone.now()}


# --- Keeping a live worker's leases --------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Renewal:
    """A hold the keeper keeps leased: ``lease`` more at every beat."""

    hold: Hold
    lease: timedelta
    # time.monotonic() past which the work has overrun its own deadlines: stop renewing, so
    # a wedged worker loses its takes like a dead one.
    until: float


class Keeper:
    """Renews the leases of the work a live pump is doing, every ``every`` seconds, from a
    thread of its own.

    Work that blocks (an upstream call, a download, a slow database) cannot renew its own
    lease, so without this a lease had to outlast the slowest such step: minutes, for which a
    dead worker's takes sat idle. The keeper beats as long as the worker's process lives and
    the work is within its deadline, so leases can be a few beats long. It runs only in the
    pump: its own database connection cannot see a caller's uncommitted rows.
    """

    def __init__(self, every: float, renew: Callable[[], object] | None = None) -> None:
        self.every = every
        self.renew = renew
        self.renewals: set[Renewal] = set()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="flowsite-keeper", daemon=True)

    def start(self) -> Keeper:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30)

    @contextlib.contextmanager
    def holding(self, hold: Hold, lease: timedelta, seconds: float) -> Iterator[None]:
        """``add``, for as long as the block runs."""
        renewal = self.add(hold, lease, seconds)
        try:
            yield
        finally:
            self.discard(renewal)

    def add(self, hold: Hold, lease: timedelta, seconds: float) -> Renewal:
        """Keep these rows leased (at most ``seconds``) until ``discard``."""
        renewal = Renewal(hold, lease, time.monotonic() + seconds)
        with self.lock:
            self.renewals.add(renewal)
        return renewal

    def discard(self, renewal: Renewal) -> None:
        with self.lock:
            self.renewals.discard(renewal)

    def loop(self) -> None:
        try:
            while not self.stopped.wait(self.every):
                self.beat()
        finally:
            connections.close_all()

    def beat(self) -> None:
        moment = time.monotonic()
        with self.lock:
            renewals = [renewal for renewal in self.renewals if renewal.until > moment]
        for renewal in renewals:
            try:
                # Only rows still carrying the token: a row given back or taken over meanwhile
                # is left alone.
                renewal.hold.rows().update(lease_until=timezone.now() + renewal.lease)
            except Exception:
                log.exception("renewing a lease failed; retrying at the next beat")
        if self.renew is not None:
            try:
                self.renew()
            except Exception:
                log.exception("renewing the pump's lease failed; retrying at the next beat")
