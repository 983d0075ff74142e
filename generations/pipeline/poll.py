"""Polling: ask Flow about the takes it is rendering, one status call per batch."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID, uuid4

from django.conf import settings
from django.db import connection
from django.db.models import Case, F, Value, When
from django.utils import timezone

from ..engines.base import (
    BadRequest,
    ClipState,
    ClipStatus,
    ContractError,
    EngineError,
    OperationRef,
    SessionExpired,
    StatusResult,
    Throttled,
    TokenExpired,
    UpstreamError,
)
from ..models import FlowAccount, Generation
from .accounts import account_problem, set_account_problem
from .claims import visible, write_claimed
from .download import Download
from .policy import (
    S,
    account_open,
    backoff_seconds,
    call_deadline,
    check_lease,
    chunks,
    download_deadline,
    download_lease,
    failure_reason,
    is_due,
    lease_free,
    poll_interval,
    redact_log,
    shorten,
    stuck_after,
    waited_words,
)

if TYPE_CHECKING:
    from .passes import Pass

log = logging.getLogger(__name__)


def poll_due(run: Pass) -> None:
    now = run.now
    account_ids = list(
        Generation.objects.filter(status__in=[S.PENDING, S.ACTIVE], account__isnull=False)
        .filter(is_due(now), lease_free(now), account_open(now))
        .order_by()
        .values_list("account_id", flat=True)
        .distinct()
    )
    if not account_ids:
        return
    accounts = FlowAccount.objects.in_bulk(account_ids)
    for account_id in sorted(account_ids):
        account = accounts.get(account_id)
        if account is None:  # deleted a moment ago; the reaper settles its takes
            continue
        if run.time_left() < 2 * call_deadline():
            return
        if not poll_account(run, account):
            return


def poll_account(run: Pass, account: FlowAccount) -> bool:
    """Check every due take of ``account``, one status call per batch. False when the
    pass ran out of time.

    The account's due takes are claimed together, with ONE update and ONE select, so a
    batch costs only its status call and, when some take's state changed, one write of
    those results: claiming and reading each batch on its own was most of a pass's
    database time against a fast upstream (benchmarks/upstream_poll.py). Takes waiting for
    a later batch, and checked takes Flow is still rendering, hold the claim under a lease
    renewed as the pass goes (a dead worker's takes are free again after one lease, as
    before); the latter are let go together at the end (``settle``), whatever the pass
    does not get to at once.
    """
    now = run.now
    token = uuid4()
    started = time.monotonic()
    lease = check_lease()
    claimed = (
        Generation.objects.filter(account=account, status__in=[S.PENDING, S.ACTIVE])
        .filter(is_due(now), lease_free(now))
        .update(claim=token, lease_until=now + lease)
    )
    if not claimed:
        return True
    takes = PollTake.claimed(token, stuck_before=now - stuck_after())
    size = int(getattr(settings, "FLOW_STATUS_BATCH_SIZE", 50))
    renewed = started
    # Takes Flow is still rendering, as they were: settled together once the account's
    # batches are done (see settle).
    unchanged: list[int] = []
    try:
        for index, batch in enumerate(chunks(takes, size)):
            if index:
                if run.time_left() < 2 * call_deadline():
                    let_go(run, token, unchanged)
                    return False
                if account.problem or (
                    account.cool_down_until is not None and account.cool_down_until > now
                ):
                    # A batch before this one found the account throttled or broken.
                    let_go(run, token, unchanged)
                    return True
                if time.monotonic() - renewed > lease.total_seconds() / 2:
                    # Half the lease is gone (slow answers, downloads): the takes still
                    # held get a full one again, so another worker does not take them.
                    renewed = time.monotonic()
                    Generation.objects.filter(claim=token, status__in=[S.PENDING, S.ACTIVE]).update(
                        lease_until=now + timedelta(seconds=renewed - started) + lease
                    )
            poll = PollBatch(run, account, token, batch, unchanged)
            try:
                poll.run()
            except Exception:
                # A bug or a database error in one batch must not end the pass.
                log.exception("checking takes %s failed unexpectedly", poll.pks)
                poll.release()
            run.beat()
    finally:
        settle(run, token, unchanged)
    return True


def settle(run: Pass, token: UUID, unchanged: list[int]) -> None:
    """Let go of the checked takes Flow is still rendering as they were, in ONE update.

    Such a take needs only its next check set and its claim cleared, which nobody sees, so
    the batches leave it to this one write per account and pass instead of one each: on
    SQLite the per-batch writes were the largest part of a pass's database time
    (benchmarks/upstream_poll.py). Until then the take keeps the pass's claim and lease
    like the takes still to check; if the worker dies first, it is free again once the
    lease lapses and, its next check never written, is checked at once.
    """
    if unchanged:
        next_check = run.now + timedelta(seconds=poll_interval())
        change = {"next_check_at": next_check, "claim": None, "lease_until": None}
        write_claimed(token, dict.fromkeys(unchanged, change), [S.PENDING, S.ACTIVE])
        unchanged.clear()


def let_go(run: Pass, token: UUID, unchanged: list[int]) -> None:
    """Free the claimed takes no batch got to; the next pass checks them first. The takes
    already checked are settled first, so they are not checked again at once."""
    settle(run, token, unchanged)
    Generation.objects.filter(claim=token, status__in=[S.PENDING, S.ACTIVE]).update(
        claim=None, lease_until=None
    )


class PollTake(NamedTuple):
    """What checking a take reads of its row: plain values, not a model instance; a finished
    clip's download loads its take in full."""

    pk: int
    status: str
    reason: str
    request_id: str
    operation_name: str
    media_generation_id: str
    check_errors: int
    # When the take started waiting (submitted, else created), only if that was longer ago
    # than FLOWSITE_STUCK_AFTER: the rare take it matters for.
    stuck_since: datetime | None

    @classmethod
    def claimed(cls, token: UUID, *, stuck_before: datetime) -> list[PollTake]:
        """The takes claimed with ``token`` that are still being polled, most overdue first.

        One hand-written statement: read through ``values_list()``, 1,000 takes cost about
        10 ms of Python (a converter call per value, two dates parsed per row on SQLite), a
        sixth of a whole polling pass against a fast upstream (benchmarks/upstream_poll.py);
        read raw they cost about 1 ms. Whether a take waited too long is decided in SQL, so
        only stuck takes carry a date. Parameters and the two converted columns go through
        the fields' and the backend's own conversions, as the ORM would.
        """
        meta = Generation._meta
        quote = connection.ops.quote_name

        def column(name: str) -> str:
            return quote(meta.get_field(name).column)

        since = f"COALESCE({column('submitted_at')}, {column('created')})"
        sql = (
            f"SELECT {column('id')}, {column('status')}, {column('reason')}, "
            f"{column('request_id')}, {column('operation_name')}, "
            f"{column('media_generation_id')}, {column('check_errors')}, "
            f"CASE WHEN {since} < %s THEN {since} END "
            f"FROM {quote(meta.db_table)} "
            f"WHERE {column('claim')} = %s AND {column('status')} IN (%s, %s) "
            f"ORDER BY {column('next_check_at')}, {column('id')}"
        )
        params = [
            meta.get_field("created").get_db_prep_value(stuck_before, connection),
            meta.get_field("claim").get_db_prep_value(token, connection),
            S.PENDING,
            S.ACTIVE,
        ]
        request_id = _from_db("request_id")
        waiting_since = _from_db("created")
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return [
            cls(
                pk,
                status,
                reason,
                str(request_id(request)),
                operation,
                media,
                errors,
                None if stuck is None else waiting_since(stuck),
            )
            for pk, status, reason, request, operation, media, errors, stuck in rows
        ]


def _from_db(name: str) -> Callable[[Any], Any]:
    """A raw database value of Generation's field ``name`` as the ORM would return it (a
    UUID from SQLite's text, an aware datetime from its string, …)."""
    col = Generation._meta.get_field(name).cached_col
    converters = connection.ops.get_db_converters(col) + col.get_db_converters(connection)

    def convert(value: Any) -> Any:
        for converter in converters:
            value = converter(value, col, connection)
        return value

    return convert


# What a download reads of its take (the folder is named after the project and the take).
DOWNLOAD_FIELDS = ("uuid", "download_attempts", "project__uuid")


class PollBatch:
    """Check up to FLOW_STATUS_BATCH_SIZE takes of one account with one status call.

    The takes are already claimed with ``token`` (see ``Pass.poll_account``), so the database
    work is the same whatever the batch size: one CASE update with every changed result
    (none when Flow is still rendering them all, as they were: the pass settles those), and
    (only for finished clips) the downloads.
    """

    def __init__(
        self,
        run: Pass,
        account: FlowAccount,
        token: UUID,
        takes: list[PollTake],
        unchanged: list[int],
    ) -> None:
        self.run_ = run
        self.now = run.now
        self.counts = run.counts
        self.account = account
        self.token = token
        self.takes = takes
        self.pks = [take.pk for take in takes]
        # Where the takes Flow is still rendering, as they were, go to be settled by the pass
        # in one write (Pass.settle).
        self.unchanged = unchanged

    def run(self) -> None:
        takes = self.takes
        try:
            result = self.check(takes)
        except ContractError as error:
            if len(takes) == 1:
                self.check_failed(takes, error)
                return
            # One odd operation must not hold the others hostage: ask about each on its own.
            self.one_by_one(takes)
            return
        except EngineError as error:
            self.check_failed(takes, error)
            return
        if result.remaining_credits is not None:
            self.run_.credits[self.account.pk] = (self.account, result.remaining_credits)
        self.apply(takes, result.clips)

    def check(self, takes: list[PollTake]) -> StatusResult:
        try:
            engine = self.run_.engines.get(self.account)
            result = engine.check([OperationRef(t.operation_name, t.request_id) for t in takes])
        except EngineError:
            raise
        except ValueError as error:
            raise BadRequest(
                f"The Flow account {self.account} has no usable token or session cookie."
            ) from error
        except Exception as error:
            log.exception("checking takes %s failed unexpectedly", [t.pk for t in takes])
            raise UpstreamError(detail=str(error)) from error
        self.counts["checked"] += len(takes)
        return result

    def one_by_one(self, takes: list[PollTake]) -> None:
        good: list[PollTake] = []
        clips: list[ClipStatus] = []
        for take in takes:
            try:
                clips.extend(self.check([take]).clips)
                good.append(take)
            except EngineError as error:
                self.check_failed([take], error)
        if good:
            self.apply(good, clips)

    def apply(self, takes: list[PollTake], clips: list[ClipStatus]) -> None:
        now = self.now
        by_request = {clip.request_id: clip for clip in clips}
        by_operation = {clip.operation_name: clip for clip in clips}
        changes: dict[int, dict[str, Any]] = {}
        finished: list[tuple[PollTake, ClipStatus]] = []
        next_check = now + timedelta(seconds=poll_interval())
        for take in takes:
            clip = by_request.get(take.request_id) or by_operation.get(take.operation_name)
            if clip is None or clip.state.in_flight:
                stuck = self.stuck_reason(take)
                if stuck:
                    changes[take.pk] = self.final(S.FAILED, stuck)
                    self.counts["failed"] += 1
                    continue
                status = take.status
                if clip is not None:
                    status = S.ACTIVE if clip.state == ClipState.ACTIVE else S.PENDING
                if status == take.status and not take.reason and not take.check_errors:
                    self.unchanged.append(take.pk)
                    continue
                change: dict[str, Any] = {
                    "next_check_at": next_check,
                    "claim": None,
                    "lease_until": None,
                }
                if take.check_errors:
                    change["check_errors"] = 0
                if status != take.status or take.reason:
                    # A reason left from waiting (an error, a signed-out account) is over.
                    change = visible(status=status, reason="", **change)
                changes[take.pk] = change
            elif clip.state == ClipState.SUCCESSFUL:
                # Keep the claim: this pass downloads the clip right away, while the signed
                # URLs Flow just gave are fresh.
                changes[take.pk] = visible(
                    status=S.DOWNLOADING,
                    reason="",
                    check_errors=0,
                    media_generation_id=clip.media_generation_id or take.media_generation_id,
                    lease_until=now + download_lease(),
                )
                finished.append((take, clip))
            elif clip.state == ClipState.FAILED:
                changes[take.pk] = self.final(S.FAILED, failure_reason(clip.failure_reason))
                self.counts["failed"] += 1
            else:
                changes[take.pk] = self.final(S.CANCELLED, "Flow cancelled this take.")
                self.counts["cancelled"] += 1
        write_claimed(self.token, changes, [S.PENDING, S.ACTIVE])
        if finished:
            # The takes this pass still holds, loaded in full for their downloads.
            mine = {
                take.pk: take
                for take in Generation.objects.filter(
                    pk__in=[take.pk for take, _ in finished],
                    claim=self.token,
                    status=S.DOWNLOADING,
                )
                .select_related("project")
                .only(*DOWNLOAD_FIELDS)
            }
            for index, (row, clip) in enumerate(finished):
                take = mine.get(row.pk)
                if take is None:
                    continue
                if self.run_.time_left() < download_deadline():
                    # No time to finish this download before the task's end: check again at
                    # once in the next pass, which gets fresh links anyway.
                    later = [t.pk for t, _ in finished[index:]]
                    self.counts["download_deferred"] += Generation.objects.filter(
                        pk__in=later, claim=self.token, status=S.DOWNLOADING
                    ).update(
                        status=S.ACTIVE,
                        claim=None,
                        lease_until=None,
                        next_check_at=now,
                        updated=timezone.now(),
                    )
                    break
                Download(self.run_, self.token, take, clip).run()
                self.run_.beat()

    def release(self) -> None:
        """Let go of the batch after an unexpected error; it is checked again a bit later."""
        Generation.objects.filter(
            pk__in=self.pks, claim=self.token, status__in=[S.PENDING, S.ACTIVE, S.DOWNLOADING]
        ).update(
            status=Case(When(status=S.DOWNLOADING, then=Value(S.ACTIVE)), default=F("status")),
            claim=None,
            lease_until=None,
            next_check_at=self.now + timedelta(seconds=max(poll_interval(), 10.0)),
        )

    def final(self, status: str, reason: str) -> dict[str, Any]:
        return visible(
            status=status,
            reason=shorten(reason),
            finished_at=self.now,
            claim=None,
            lease_until=None,
            next_check_at=None,
        )

    def stuck_reason(self, take: PollTake, last_error: str = "") -> str:
        if take.stuck_since is None:
            return ""
        waited = self.now - take.stuck_since
        reason = (
            f"Flow was still working on this take {waited_words(waited)} after it was "
            "submitted, far longer than usual; Flowsite stopped waiting (stuck)."
        )
        if last_error:
            reason += f" Last error: {last_error}"
        return reason

    def check_failed(self, takes: list[PollTake], error: EngineError) -> None:
        """The status call failed as a whole. Signed out: the takes wait for an admin.
        Throttled: the account rests. An answer of unknown shape (about these takes alone):
        they fail, since asking again gets the same answer. Otherwise: ask again later, backing
        off further after each failure in a row; takes waiting far too long end as stuck."""
        changes: dict[int, dict[str, Any]] = {}
        self.counts["check_errors"] += 1
        if isinstance(error, ContractError):
            log.warning("Flow's status answer had an unknown shape: %s", redact_log(error.detail))
            for take in takes:
                changes[take.pk] = self.final(S.FAILED, error.message)
                self.counts["failed"] += 1
            write_claimed(self.token, changes, [S.PENDING, S.ACTIVE])
            return
        log.warning("checking %d takes failed: %s", len(takes), error.message)
        if isinstance(error, SessionExpired | TokenExpired):
            message = shorten(account_problem(self.account, error))
            set_account_problem(self.account, message)
            for take in takes:
                # Due as soon as the account is fixed (the account's problem holds them).
                changes[take.pk] = visible(
                    reason=message, next_check_at=None, claim=None, lease_until=None
                )
            write_claimed(self.token, changes, [S.PENDING, S.ACTIVE])
            return
        retry_after = getattr(error, "retry_after", None)
        if isinstance(error, Throttled):
            until = self.now + timedelta(seconds=backoff_seconds(1, retry_after))
            FlowAccount.objects.filter(pk=self.account.pk).update(cool_down_until=until)
            self.account.cool_down_until = until
        for take in takes:
            stuck = self.stuck_reason(take, error.message)
            if stuck:
                changes[take.pk] = self.final(S.FAILED, stuck)
                self.counts["failed"] += 1
                continue
            errors = take.check_errors + 1
            delay = max(poll_interval(), backoff_seconds(errors, retry_after))
            changes[take.pk] = {
                "check_errors": min(errors, 1000),
                "next_check_at": self.now + timedelta(seconds=delay),
                "claim": None,
                "lease_until": None,
            }
        write_claimed(self.token, changes, [S.PENDING, S.ACTIVE])
