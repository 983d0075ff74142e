"""Writing the rows a pass holds.

A pass takes its rows by stamping a fresh claim token on them with a conditional UPDATE, and
then writes only rows still carrying that token (and in the status it expects): "0 rows" means
someone else — another worker, a cancel — got there first, and the pass leaves the row alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.db import connection
from django.utils import timezone

from ..models import Generation


def write_claimed(token: UUID, changes: dict[int, dict[str, Any]], statuses: Iterable[str]) -> int:
    """Apply per-take changes in ONE UPDATE, only to rows still carrying ``token``.

    Each field becomes ``CASE WHEN id IN (…) THEN … ELSE field END``: the cost is one statement
    however many takes changed, and a take cancelled meanwhile (claim cleared) is untouched.

    The statement is written here, parameterised, rather than through ``QuerySet.update()``
    with ``Case``/``When``: building and compiling those expressions cost about 0.5 ms of
    Python per batch, more than SQLite takes to run the statement, and it is the one
    statement a polling batch with news makes (benchmarks/upstream_poll.py). Values go
    through each field's own ``get_db_prep_save``, so SQLite and PostgreSQL get exactly what
    the ORM would send.
    """
    if not changes:
        return 0
    meta = Generation._meta
    quote = connection.ops.quote_name
    pk_column = quote(meta.pk.column)
    fields = sorted({name for change in changes.values() for name in change})
    assignments: list[str] = []
    params: list[Any] = []
    for name in fields:
        field = meta.get_field(name)
        column = quote(field.column)
        # Takes given the same value share one WHEN (`id IN (…)`): most values (next check,
        # cleared claim and lease) are the same for every take of a batch.
        by_value: dict[Any, list[int]] = defaultdict(list)
        for pk, change in changes.items():
            if name in change:
                by_value[change[name]].append(pk)
        if len(by_value) == 1 and len(next(iter(by_value.values()))) == len(changes):
            assignments.append(f"{column} = %s")
            params.append(field.get_db_prep_save(next(iter(by_value)), connection))
            continue
        whens: list[str] = []
        for value, pks in by_value.items():
            whens.append(f"WHEN {pk_column} IN ({', '.join(['%s'] * len(pks))}) THEN %s")
            params.extend(pks)
            params.append(field.get_db_prep_save(value, connection))
        # PostgreSQL wants some types cast back from a CASE, as the ORM's Case does.
        case = (
            connection.ops.unification_cast_sql(field) % f"CASE {' '.join(whens)} ELSE {column} END"
        )
        assignments.append(f"{column} = {case}")
    statuses = list(statuses)
    claim = meta.get_field("claim")
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} "
        f"WHERE {pk_column} IN ({', '.join(['%s'] * len(changes))}) "
        f"AND {quote(claim.column)} = %s "
        f"AND {quote(meta.get_field('status').column)} IN ({', '.join(['%s'] * len(statuses))})"
    )
    params.extend(changes)
    params.append(claim.get_db_prep_value(token, connection))
    params.extend(statuses)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def visible(**fields: Any) -> dict[str, Any]:
    """Fields of a change a viewer can see: bump ``updated`` (UPDATE skips auto fields)."""
    return {**fields, "updated": timezone.now()}
