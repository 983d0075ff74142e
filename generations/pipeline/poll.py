"""Polling: ask Flow about the takes it is rendering, one status call per batch."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID

from django.conf import settings
from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce
from django.db.models.lookups import LessThan
from django.utils import timezone

from ..engines.base import (
    GIVEN_WORDS,
    AccountRefused,
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
from .accounts import account_refused, cool_down
from .claims import Hold, claim, due_accounts, given_back, held, release, visible, write_held
from .download import Download
from .policy import (
    S,
    backoff_seconds,
    batches_by,
    call_deadline,
    check_again_reason,
    check_lease,
    chunks,
    clip_gone_reason,
    download_deadline,
    download_lease,
    poll_interval,
    redact_log,
    shorten,
    stuck_after,
    waited_words,
)

if TYPE_CHECKING:
    from .passes import Pass

log = logging.getLogger(__name__)


# The statuses of a take Flow is rendering, the only ones a status call may change.
POLLED = (S.PENDING, S.ACTIVE)


def poll_due(run: Pass) -> None:
    now = run.now
    account_ids = due_accounts(Generation.objects.filter(status__in=POLLED), now)
    if not account_ids:
        return
    accounts = FlowAccount.objects.in_bulk(account_ids)
    for account_id in sorted(account_ids):
        account = accounts.get(account_id)
        if account is None:  # deleted a moment ago; the reaper ends its takes
            continue
        if run.time_left() < 2 * call_deadline():
            return
        if not poll_account(run, account):
            return


def poll_account(run: Pass, account: FlowAccount) -> bool:
    """Check every due take of ``account``, one status call per batch. False when the
    pass ran out of time.

    The account's due takes are claimed together, with ONE update and ONE select, so a batch
    costs only its status call and, when some take's state changed, one write of those
    results. Takes waiting for a later batch, and checked takes Flow is still rendering, stay
    held under a lease renewed as the pass goes (a dead worker's takes are free again after
    one lease); the latter are released together at the end (``release_unchanged``), and
    whatever the pass does not get to is released at once (``release_unchecked``).
    """
    now = run.now
    lease = check_lease()
    # From the pass's clock, not its start: submitting and other accounts came first.
    token, claimed = claim(
        Generation.objects.filter(account=account, status__in=POLLED), lease, run.clock()
    )
    if not claimed:
        return True
    generations = PollRow.held(token, stuck_before=now - stuck_after())
    renewed = time.monotonic()
    # Checked takes Flow is still rendering, as they were (see release_unchanged).
    unchanged: list[int] = []
    try:
        for index, batch in enumerate(batches(run, account, generations)):
            if index:
                if run.time_left() < 2 * call_deadline():
                    release_unchecked(run, token, unchanged)
                    return False
                if not account.is_open(now):
                    # A batch before this one found the account throttled or broken.
                    release_unchecked(run, token, unchanged)
                    return True
                if time.monotonic() - renewed > lease.total_seconds() / 2:
                    # Half the lease is gone (slow answers, downloads): the takes still
                    # held get a full one again, so another worker does not take them.
                    renewed = time.monotonic()
                    held(token, POLLED).update(lease_until=run.clock() + lease)
            poll = PollBatch(run, account, token, batch, unchanged)
            try:
                poll.run()
            except Exception:
                # A bug or a database error in one batch must not end the pass.
                log.exception("checking takes %s failed unexpectedly", poll.pks)
                poll.release_after_error()
            run.beat()
    finally:
        release_unchanged(run, token, unchanged)
    return True


def batches(run: Pass, account: FlowAccount, generations: list[PollRow]) -> list[list[PollRow]]:
    """The held takes in batches of FLOW_STATUS_BATCH_SIZE operations (one status call on
    Flow). An engine that asks about each operation on its own (Vertex AI) may size the batch
    to its threads (``poll_batch_size``) and keeps a scene's takes, one operation, together
    (``operation_of``)."""
    size = max(1, int(getattr(settings, "FLOW_STATUS_BATCH_SIZE", 50)))
    try:
        engine = run.engines.get(account)
    except Exception:
        # No usable credentials, or a bug building the engine: the first batch's call meets
        # the same error and says so on the takes (PollBatch.check).
        return list(chunks(generations, size))
    fitted = getattr(engine, "poll_batch_size", None)
    size = fitted(size) if callable(fitted) else size
    operation_of = getattr(engine, "operation_of", None)
    if not callable(operation_of):
        return list(chunks(generations, size))
    return batches_by(generations, size, lambda row: operation_of(row.operation_name))


def release_unchanged(run: Pass, token: UUID, unchanged: list[int]) -> None:
    """Release the checked takes Flow is still rendering as they were, in ONE update.

    Such a take needs only its next check set and its claim cleared, which nobody sees, so
    the batches leave it to this one write per account and pass instead of one each. Until
    then it stays held like the takes still to check; if the worker dies first, it is free
    again once the lease lapses and, its next check never written, is checked at once.
    """
    if unchanged:
        next_check = run.now + timedelta(seconds=poll_interval())
        release(token, POLLED, unchanged, next_check_at=next_check)
        unchanged.clear()


def release_unchecked(run: Pass, token: UUID, unchanged: list[int]) -> None:
    """Release the held takes no batch got to; the next pass checks them first. The takes
    already checked are released first, with their next check, so they are not checked again
    at once."""
    release_unchanged(run, token, unchanged)
    release(token, POLLED)


class PollRow(NamedTuple):
    """What checking a take reads of its row: plain values, not a model instance; a finished
    clip's download loads its take in full."""

    pk: int
    status: str
    reason: str
    request_id: str
    operation_name: str
    media_generation_id: str
    check_errors: int
    # Downloads tried: more than 0 once the upstream said the clip was finished.
    download_attempts: int
    # When the take started waiting (submitted, else created), only if that was longer ago
    # than FLOWSITE_STUCK_AFTER: the rare take it matters for.
    stuck_since: datetime | None
    mode: str

    @classmethod
    def held(cls, token: UUID, *, stuck_before: datetime) -> list[PollRow]:
        """The takes held with ``token`` that are still being polled, most overdue first.

        Whether a take waited too long is decided in SQL, so only stuck takes carry a date
        to convert.
        """
        since = Coalesce("submitted_at", "created")
        rows = (
            held(token, POLLED)
            .annotate(stuck_since=Case(When(LessThan(since, stuck_before), then=since)))
            .order_by("next_check_at", "pk")
            .values_list(
                "pk",
                "status",
                "reason",
                "request_id",
                "operation_name",
                "media_generation_id",
                "check_errors",
                "download_attempts",
                "stuck_since",
                "mode",
            )
        )
        return [cls(*row[:3], str(row[3]), *row[4:]) for row in rows]


# What a download reads of its take (the folder is named after the project and the take).
DOWNLOAD_FIELDS = ("uuid", "download_attempts", "project__uuid")


class PollBatch:
    """Check up to FLOW_STATUS_BATCH_SIZE takes of one account with one status call.

    The takes are already claimed with ``token`` (see ``poll_account``), so the database
    work is the same whatever the batch size: one CASE update with every changed result
    (none when Flow is still rendering them all, as they were: ``release_unchanged``), and
    (only for finished clips) the downloads.
    """

    def __init__(
        self,
        run: Pass,
        account: FlowAccount,
        token: UUID,
        generations: list[PollRow],
        unchanged: list[int],
    ) -> None:
        self.run_ = run
        self.now = run.now
        self.counts = run.counts
        self.account = account
        self.token = token
        self.generations = generations
        self.pks = [generation.pk for generation in generations]
        # Where the takes Flow is still rendering, as they were, go to be released by the
        # pass in one write (release_unchanged).
        self.unchanged = unchanged

    def run(self) -> None:
        generations = self.generations
        try:
            result = self.check(generations)
        except ContractError as error:
            if len(generations) == 1:
                self.check_failed(generations, error)
                return
            # One odd operation must not hold the others hostage: ask about each on its own.
            self.one_by_one(generations)
            return
        except EngineError as error:
            self.check_failed(generations, error)
            return
        if result.remaining_credits is not None:
            self.run_.credits[self.account.pk] = (self.account, result.remaining_credits)
        self.apply(generations, result.clips)

    def check(self, generations: list[PollRow]) -> StatusResult:
        try:
            engine = self.run_.engines.get(self.account)
            # Every take of the account this pass holds, not only this batch's: the call may
            # take longer than their lease.
            with self.run_.holding(Hold(self.token, POLLED), check_lease(), call_deadline() + 5):
                result = engine.check(
                    [
                        OperationRef(t.operation_name, t.request_id, GIVEN_WORDS.get(t.mode, ""))
                        for t in generations
                    ]
                )
        except EngineError:
            raise
        except ValueError as error:
            raise BadRequest(self.account.unusable_secret()) from error
        except Exception as error:
            log.exception("checking takes %s failed unexpectedly", [t.pk for t in generations])
            raise UpstreamError(upstream=self.account.upstream, detail=str(error)) from error
        self.counts["checked"] += len(generations)
        return result

    def one_by_one(self, generations: list[PollRow]) -> None:
        good: list[PollRow] = []
        clips: list[ClipStatus] = []
        for generation in generations:
            try:
                clips.extend(self.check([generation]).clips)
                good.append(generation)
            except EngineError as error:
                self.check_failed([generation], error)
        if good:
            self.apply(good, clips)

    def apply(self, generations: list[PollRow], clips: list[ClipStatus]) -> None:
        now = self.now
        by_request = {clip.request_id: clip for clip in clips}
        by_operation = {clip.operation_name: clip for clip in clips}
        changes: dict[int, dict[str, Any]] = {}
        finished: list[tuple[PollRow, ClipStatus]] = []
        next_check = now + timedelta(seconds=poll_interval())
        for generation in generations:
            clip = by_request.get(generation.request_id) or by_operation.get(
                generation.operation_name
            )
            if clip is None or clip.state.in_flight:
                stuck = self.stuck_reason(generation)
                if stuck:
                    changes[generation.pk] = self.final(S.FAILED, stuck)
                    self.counts["failed"] += 1
                    continue
                status = generation.status
                if clip is not None:
                    status = S.ACTIVE if clip.state == ClipState.ACTIVE else S.PENDING
                if (
                    status == generation.status
                    and not generation.reason
                    and not generation.check_errors
                ):
                    self.unchanged.append(generation.pk)
                    continue
                change = given_back(next_check_at=next_check)
                if generation.check_errors:
                    change["check_errors"] = 0
                if status != generation.status or generation.reason:
                    # A reason left from waiting (an error, a signed-out account) is over.
                    change = visible(status=status, reason="", **change)
                changes[generation.pk] = change
            elif clip.state == ClipState.SUCCESSFUL and not self.run_.downloads_open():
                # The pump is winding down and starts no more downloads: the next pump asks
                # again (for fresh links) a bit later.
                changes[generation.pk] = given_back(next_check_at=next_check)
                self.counts["download_deferred"] += 1
            elif clip.state == ClipState.SUCCESSFUL:
                # Keep the claim: this pass downloads the clip right away, while the signed
                # URLs Flow just gave are fresh.
                changes[generation.pk] = visible(
                    status=S.DOWNLOADING,
                    reason="",
                    check_errors=0,
                    media_generation_id=clip.media_generation_id or generation.media_generation_id,
                    lease_until=self.run_.clock() + download_lease(),
                )
                finished.append((generation, clip))
            elif clip.state == ClipState.FAILED and (
                generation.download_attempts or generation.media_generation_id
            ):
                # It was finished (and paid for) before, even if its download never ended (a
                # worker that died): failing now, it is gone upstream.
                changes[generation.pk] = self.final(
                    S.FAILED, clip_gone_reason(self.account.upstream, clip)
                )
                self.counts["failed"] += 1
            elif clip.state == ClipState.FAILED:
                reason = (
                    clip.failure_message
                    or f"{self.account.upstream} could not render this take and gave no reason."
                )
                # Only a failure the upstream reported is free; one it did not (an operation
                # it no longer knows) may have been made and charged (SPENDING_Q).
                changes[generation.pk] = self.final(
                    S.FAILED, reason, upstream_failed=not clip.unanswered
                )
                self.counts["failed"] += 1
            else:
                changes[generation.pk] = self.final(S.CANCELLED, "Flow cancelled this take.")
                self.counts["cancelled"] += 1
        write_held(self.token, changes, POLLED)
        if finished:
            # The takes this pass still holds, loaded in full for their downloads.
            mine = {
                generation.pk: generation
                for generation in held(
                    self.token, [S.DOWNLOADING], [generation.pk for generation, _ in finished]
                )
                .select_related("project")
                .only(*DOWNLOAD_FIELDS)
            }
            for index, (row, clip) in enumerate(finished):
                generation = mine.get(row.pk)
                if generation is None:
                    continue
                if self.run_.time_left() < download_deadline():
                    # No time to finish this download before the task's end: check again at
                    # once in the next pass, which gets fresh links anyway.
                    later = [t.pk for t, _ in finished[index:]]
                    self.counts["download_deferred"] += release(
                        self.token,
                        [S.DOWNLOADING],
                        later,
                        status=S.ACTIVE,
                        next_check_at=now,
                        updated=timezone.now(),
                    )
                    break
                self.run_.download(
                    Download(self.run_, self.token, generation, clip, account=self.account)
                )

    def release_after_error(self) -> None:
        """Release the batch after an unexpected error; it is checked again a bit later."""
        release(
            self.token,
            [*POLLED, S.DOWNLOADING],
            self.pks,
            status=Case(When(status=S.DOWNLOADING, then=Value(S.ACTIVE)), default=F("status")),
            next_check_at=self.now + timedelta(seconds=max(poll_interval(), 10.0)),
        )

    def final(self, status: str, reason: str, **fields: Any) -> dict[str, Any]:
        return given_back(
            **visible(
                status=status,
                reason=shorten(reason),
                finished_at=self.now,
                next_check_at=None,
                **fields,
            )
        )

    def stuck_reason(self, generation: PollRow, last_error: str = "") -> str:
        if generation.stuck_since is None:
            return ""
        waited = self.now - generation.stuck_since
        reason = (
            f"{self.account.upstream} was still working on this take {waited_words(waited)} "
            "after it was "
            "submitted, far longer than usual; Flowsite stopped waiting (stuck)."
        )
        if last_error:
            reason += f" Last error: {last_error}"
        return reason

    def check_failed(self, generations: list[PollRow], error: EngineError) -> None:
        """The status call failed as a whole. Signed out: the takes wait for an admin.
        Throttled: the account rests. An answer of unknown shape (about these takes alone):
        they fail, since asking again gets the same answer. Otherwise: ask again later, backing
        off further after each failure in a row; takes waiting far too long end as stuck."""
        changes: dict[int, dict[str, Any]] = {}
        self.counts["check_errors"] += 1
        if isinstance(error, ContractError):
            log.warning("Flow's status answer had an unknown shape: %s", redact_log(error.detail))
            for generation in generations:
                changes[generation.pk] = self.final(S.FAILED, error.message)
                self.counts["failed"] += 1
            write_held(self.token, changes, POLLED)
            return
        log.warning("checking %d takes failed: %s", len(generations), error.message)
        if isinstance(error, SessionExpired | TokenExpired | AccountRefused):
            message = account_refused(self.now, self.account, error)
            for generation in generations:
                # Due as soon as a re-check passes or the account is fixed (the account's
                # re-check holds them till then).
                changes[generation.pk] = given_back(**visible(reason=message, next_check_at=None))
            write_held(self.token, changes, POLLED)
            return
        retry_after = getattr(error, "retry_after", None)
        if isinstance(error, Throttled):
            cool_down(self.account, self.now + timedelta(seconds=backoff_seconds(1, retry_after)))
        for generation in generations:
            stuck = self.stuck_reason(generation, error.message)
            if stuck:
                changes[generation.pk] = self.final(S.FAILED, stuck)
                self.counts["failed"] += 1
                continue
            errors = generation.check_errors + 1
            delay = max(poll_interval(), backoff_seconds(errors, retry_after))
            # The card says why the take is not moving on, until a check gets through (apply).
            changes[generation.pk] = given_back(
                **visible(
                    reason=check_again_reason(error.message, delay),
                    check_errors=min(errors, 1000),
                    next_check_at=self.now + timedelta(seconds=delay),
                )
            )
        write_held(self.token, changes, POLLED)
