"""Claims: the rows a pass holds, and the only ways it writes them.

A pass claims its rows by stamping a fresh token (and a lease) on them with a conditional
UPDATE. From then on it writes only rows still carrying that token, in the status it expects:
"0 rows" means someone else — another worker past our lease, a cancel — got there first, and
the pass leaves the row alone. Giving a row back is always ``release``: the claim and lease are
cleared in the same statement that writes what the pass decided.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.db.models import Case, F, QuerySet, Value, When
from django.utils import timezone

from ..models import Generation


def held(token: UUID, statuses: Iterable[str], pks: Iterable[int] | None = None) -> QuerySet:
    """The rows (of ``pks``, or all) still carrying ``token`` in one of ``statuses``."""
    rows = Generation.objects.filter(claim=token, status__in=list(statuses))
    return rows if pks is None else rows.filter(pk__in=list(pks))


def release(
    token: UUID, statuses: Iterable[str], pks: Iterable[int] | None = None, **fields: Any
) -> int:
    """Give back the rows still held, writing ``fields`` to them in the same statement."""
    return held(token, statuses, pks).update(claim=None, lease_until=None, **fields)


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
