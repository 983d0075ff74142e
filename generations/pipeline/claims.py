"""Claims: the rows a pass holds, and the only ways it writes them.

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
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db import connections
from django.db.models import Case, F, Model, QuerySet, Value, When
from django.utils import timezone

from ..models import Generation

log = logging.getLogger(__name__)


def held(
    token: UUID,
    statuses: Iterable[str],
    pks: Iterable[int] | None = None,
    *,
    model: type[Model] = Generation,
) -> QuerySet:
    """The rows (of ``pks``, or all) still carrying ``token`` in one of ``statuses``; takes,
    or another ``model`` the worker claims the same way (upscales)."""
    rows = model.objects.filter(claim=token, status__in=list(statuses))
    return rows if pks is None else rows.filter(pk__in=list(pks))


def release(
    token: UUID,
    statuses: Iterable[str],
    pks: Iterable[int] | None = None,
    *,
    model: type[Model] = Generation,
    **fields: Any,
) -> int:
    """Give back the rows still held, writing ``fields`` to them in the same statement."""
    return held(token, statuses, pks, model=model).update(claim=None, lease_until=None, **fields)


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


def visible(**fields: Any) -> dict[str, Any]:
    """Fields of a change a viewer can see: bump ``updated`` (UPDATE skips auto fields)."""
    return {**fields, "updated": timezone.now()}


# --- Keeping a live worker's leases --------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Hold:
    token: UUID
    statuses: tuple[str, ...]
    pks: tuple[int, ...] | None
    lease: timedelta
    # time.monotonic() past which the work has overrun its own deadlines: stop renewing, so
    # a wedged worker loses its takes like a dead one.
    until: float
    model: type[Model] = Generation


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
        self.holds: set[Hold] = set()
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
    def holding(
        self,
        token: UUID,
        statuses: Iterable[str],
        pks: Iterable[int] | None,
        lease: timedelta,
        seconds: float,
        model: type[Model] = Generation,
    ) -> Iterator[None]:
        """Keep the rows held with ``token`` leased while the block runs (at most
        ``seconds``)."""
        hold = self.add(token, statuses, pks, lease, seconds, model)
        try:
            yield
        finally:
            self.discard(hold)

    def add(
        self,
        token: UUID,
        statuses: Iterable[str],
        pks: Iterable[int] | None,
        lease: timedelta,
        seconds: float,
        model: type[Model] = Generation,
    ) -> Hold:
        """Keep these rows leased (at most ``seconds``) until ``discard``."""
        hold = Hold(
            token,
            tuple(statuses),
            None if pks is None else tuple(pks),
            lease,
            time.monotonic() + seconds,
            model,
        )
        with self.lock:
            self.holds.add(hold)
        return hold

    def discard(self, hold: Hold) -> None:
        with self.lock:
            self.holds.discard(hold)

    def loop(self) -> None:
        try:
            while not self.stopped.wait(self.every):
                self.beat()
        finally:
            connections.close_all()

    def beat(self) -> None:
        moment = time.monotonic()
        with self.lock:
            holds = [hold for hold in self.holds if hold.until > moment]
        for hold in holds:
            try:
                # Only rows still carrying the token: a row given back or taken over meanwhile
                # is left alone.
                held(hold.token, hold.statuses, hold.pks, model=hold.model).update(
                    lease_until=timezone.now() + hold.lease
                )
            except Exception:
                log.exception("renewing a lease failed; retrying at the next beat")
        if self.renew is not None:
            try:
                self.renew()
            except Exception:
                log.exception("renewing the pump's lease failed; retrying at the next beat")
