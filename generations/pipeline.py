"""One pass of background work: reap, submit, poll, download.

Everything here is synchronous and idempotent, so a pass can be run by a test, a benchmark or
the django-q2 pump alike, and several passes may run at once on different workers. Each phase
takes its rows with a conditional UPDATE that stamps a fresh claim token, then writes only rows
still carrying that token: "0 rows" means someone else (another worker, a cancel) got there
first, and the pass leaves the row alone.

The one rule that outranks every other: a submit costs credits, so a take whose submit request
may have left Flowsite is never submitted again automatically.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID, uuid4

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, DateTimeField, F, Min, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from . import storage
from .engines.base import (
    Aspect,
    BadRequest,
    BotCheck,
    ClipRequest,
    ClipState,
    ClipStatus,
    ContractError,
    DownloadError,
    DownloadResult,
    Engine,
    EngineError,
    ImageUnknown,
    NetworkError,
    OperationRef,
    QuotaReached,
    SessionExpired,
    StatusResult,
    SubmitResult,
    Throttled,
    TierTooLow,
    TokenExpired,
    Unsafe,
    UpstreamError,
)
from .models import FlowAccount, Generation, ImageAsset, ImageUpload, Project
from .redaction import redact

log = logging.getLogger(__name__)

S = Generation.Status

UNCERTAIN_REASON = (
    "Flowsite could not confirm that Flow received this take; it was not resubmitted so no "
    "credits are spent twice. Submit it again if you want it."
)
# What happened, said after UNCERTAIN_REASON on the card.
LOST_WORKER = "The worker sending it stopped before it could save Flow's answer."
LOST_INTERNAL = "Flowsite hit an internal error while sending it."


def uncertain_reason(cause: str) -> str:
    return _clip(f"{UNCERTAIN_REASON} What happened: {cause}")


# Retryable answers (throttling, bot check, Flow's 500s) are tried this many times in all.
SUBMIT_ATTEMPTS = 6
# Downloads that a fresh signed link may fix (expired link, cut short) are tried this often.
DOWNLOAD_ATTEMPTS = 4
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0
# Takes claimed for one submit pass; the rest wait for the next pass.
SUBMIT_LIMIT = 200

# What Flow's failure codes mean, in a team member's words. Unknown codes still show, in
# parentheses after a generic sentence.
FAILURE_REASONS = {
    "PUBLIC_ERROR_AUDIO_FILTERED": "Flow's safety filter blocked the clip's generated audio.",
    "PUBLIC_ERROR_UNSAFE_GENERATION": "Flow's safety filter refused the prompt or start image.",
    "PUBLIC_ERROR_MINOR_INPUT_IMAGE": "Flow refused the start image: it seems to show a minor.",
    "PUBLIC_ERROR_PROMINENT_PEOPLE_FILTER_FAILED": (
        "Flow refused the prompt or start image: it seems to show a well-known person."
    ),
    "PUBLIC_ERROR_USER_QUOTA_REACHED": "The Flow account ran out of credits.",
    "PUBLIC_ERROR_PER_MODEL_DAILY_QUOTA_REACHED": (
        "The Flow account used up today's quota for this model."
    ),
    "PUBLIC_ERROR_SOMETHING_WENT_WRONG": "Flow failed while rendering this take.",
}


def failure_reason(code: str) -> str:
    """A sentence for Flow's failure code, keeping the code for whoever reports the problem."""
    code = code.strip()
    if not code:
        return "Flow could not render this take and gave no reason."
    sentence = FAILURE_REASONS.get(code, "Flow could not render this take.")
    return _clip(f"{sentence.rstrip('.')} ({code}).")


def redact_log(text: str) -> str:
    """Text safe for a log line, of bounded length."""
    return redact(text, limit=2000)


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """How long to wait before try number ``attempt + 1``.

    Exponential from BACKOFF_BASE_SECONDS, capped, with "equal jitter" so that many takes
    throttled together do not come back in lockstep. A Retry-After from Flow is a floor.
    """
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempt - 1, 0))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    if retry_after is not None and retry_after > 0:
        # Honoured exactly (plus a little spread), not stretched by our own schedule.
        delay = retry_after + random.uniform(0, min(1.0, retry_after / 10))
    return delay


def poll_interval() -> float:
    return float(getattr(settings, "FLOWSITE_POLL_INTERVAL", 5.0))


def stuck_after() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "FLOWSITE_STUCK_AFTER", 20 * 60)))


def _call_deadline() -> float:
    return float(getattr(settings, "FLOW_CALL_DEADLINE", 90.0))


def _download_deadline() -> float:
    return float(getattr(settings, "FLOW_DOWNLOAD_DEADLINE", 300.0))


def _seconds_setting(name: str, default: float) -> timedelta:
    value = float(getattr(settings, name, 0) or 0)
    return timedelta(seconds=value if value > 0 else default)


# How long a worker holds the takes it works on. Past its lease a worker is presumed dead
# (killed, crashed): another pass takes the work over, and a take left "submitting" becomes
# uncertain. Each default outlasts the work's own deadlines, so a live worker keeps its takes.


def submit_lease() -> timedelta:
    """Uploading the start images, then the submit call itself."""
    return _seconds_setting("FLOWSITE_SUBMIT_LEASE", 2 * _call_deadline() + 30)


def check_lease() -> timedelta:
    return _seconds_setting("FLOWSITE_CHECK_LEASE", 2 * _call_deadline())


def download_lease() -> timedelta:
    """A clip and its poster, each bounded by FLOW_DOWNLOAD_DEADLINE."""
    return _seconds_setting("FLOWSITE_DOWNLOAD_LEASE", 2 * _download_deadline() + 30)


def _clip(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]


def _free_lease(now: datetime) -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def _due(now: datetime) -> Q:
    return Q(next_check_at__isnull=True) | Q(next_check_at__lte=now)


def _account_open(now: datetime) -> Q:
    """Takes whose account Flowsite may call now: no problem waiting for an admin (dead
    session, revoked token) and no cool-down after Flow throttled it."""
    return Q(account__problem="") & (
        Q(account__cool_down_until__isnull=True) | Q(account__cool_down_until__lte=now)
    )


def waited_words(waited: timedelta) -> str:
    seconds = int(waited.total_seconds())
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} minutes"
    return f"{minutes // 60} hours {minutes % 60} minutes"


# --- Engines and their token cache ----------------------------------------------------------


class AccountTokenCache:
    """Keeps minted access tokens on the FlowAccount row, so every worker shares one token.

    Keyed by ``Credentials.key`` (the account's uuid).
    """

    def get(self, key: str) -> tuple[str, datetime] | None:
        row = (
            FlowAccount.objects.filter(uuid=key)
            .values_list("access_token", "access_token_expires")
            .first()
        )
        if not row or not row[0] or row[1] is None:
            return None
        return row[0], row[1]

    def set(self, key: str, token: str, expires_at: datetime) -> None:
        FlowAccount.objects.filter(uuid=key).update(
            access_token=token, access_token_expires=expires_at
        )


TOKEN_CACHE = AccountTokenCache()


def engine_for(account: FlowAccount) -> Engine:
    from .engines import get_engine

    return get_engine(account.credentials(), token_cache=TOKEN_CACHE)


class _Engines:
    """One engine per account for the length of a pass (engines keep an HTTP client)."""

    def __init__(self) -> None:
        self._by_account: dict[int, Engine] = {}

    def get(self, account: FlowAccount) -> Engine:
        if account.pk not in self._by_account:
            self._by_account[account.pk] = engine_for(account)
        return self._by_account[account.pk]

    def close(self) -> None:
        for engine in self._by_account.values():
            close = getattr(engine, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # closing is best effort; the pass result stands
                    log.exception("closing an engine failed")
        self._by_account.clear()


# --- Writing rows a pass holds -----------------------------------------------------------------


def _write_claimed(token: UUID, changes: dict[int, dict[str, Any]], statuses: Iterable[str]) -> int:
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


def _visible(**fields: Any) -> dict[str, Any]:
    """Fields of a change a viewer can see: bump ``updated`` (UPDATE skips auto fields)."""
    return {**fields, "updated": timezone.now()}


# --- The pass ---------------------------------------------------------------------------------


@dataclass
class Pass:
    now: datetime
    heartbeat: Callable[[], object] | None = None
    # time.monotonic() by which the pass must be over (the pump's task would be killed after
    # it). Work that could not finish in time (a submit, a download) is left for the next pass.
    stop_at: float | None = None

    def __post_init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.engines = _Engines()
        # The credits each status call reports, written once at the end of the pass rather
        # than once per batch (the last answer is the freshest).
        self.credits: dict[int, tuple[FlowAccount, int]] = {}

    def beat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat()

    def time_left(self) -> float:
        return float("inf") if self.stop_at is None else self.stop_at - time.monotonic()

    def run(self) -> dict[str, int]:
        try:
            self.reap()
            self.beat()
            self.submit_due()
            self.beat()
            self.poll_due()
        finally:
            self.engines.close()
            for account, credits in self.credits.values():
                account.record_credits(credits)
        return dict(self.counts)

    # --- Reaper -------------------------------------------------------------------------

    def reap(self) -> None:
        """Settle takes whose worker vanished (crash, killed task) when their lease lapsed."""
        now = self.now
        # The submit may have left before the crash: never guess, never resubmit. The claim is
        # kept so that a worker merely slower than its lease can still record the operation.
        self.counts["uncertain"] += Generation.objects.filter(
            Q(lease_until__lt=now) | Q(lease_until__isnull=True), status=S.SUBMITTING
        ).update(
            status=S.UNCERTAIN,
            reason=uncertain_reason(LOST_WORKER),
            lease_until=None,
            finished_at=now,
            updated=timezone.now(),
        )
        # A download costs nothing: check again, which signs fresh URLs.
        self.counts["download_reaped"] += Generation.objects.filter(
            Q(lease_until__lt=now) | Q(lease_until__isnull=True), status=S.DOWNLOADING
        ).update(
            status=S.ACTIVE, claim=None, lease_until=None, next_check_at=now, updated=timezone.now()
        )
        self.counts["failed"] += Generation.objects.filter(
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
        self.counts["waiting"] += (
            Generation.objects.filter(
                status__in=[S.QUEUED, S.PENDING, S.ACTIVE], claim__isnull=True
            )
            .exclude(account__problem="")
            .exclude(reason=Subquery(problem))
            .update(reason=Subquery(problem), updated=timezone.now())
        )

    # --- Submit -------------------------------------------------------------------------

    def submit_due(self) -> None:
        now = self.now
        if self.time_left() < 3 * _call_deadline():
            return
        due = list(
            Generation.objects.filter(status=S.QUEUED, account__isnull=False)
            .filter(_due(now), _free_lease(now), _account_open(now))
            .order_by("created", "pk")
            .values_list("pk", flat=True)[:SUBMIT_LIMIT]
        )
        if not due:
            return
        token = uuid4()
        # The lease covers image uploads; the takes stay "queued" until the submit call itself,
        # so a crash while uploading (which costs nothing) leaves them simply to be retried.
        Generation.objects.filter(pk__in=due, status=S.QUEUED).filter(
            _due(now), _free_lease(now)
        ).update(claim=token, lease_until=now + submit_lease())
        takes = list(
            Generation.objects.filter(claim=token, status=S.QUEUED)
            .select_related("account", "project", "start_image")
            .order_by("created", "pk")
        )
        groups: dict[tuple[int, int], list[Generation]] = defaultdict(list)
        for take in takes:
            groups[(take.project_id, take.account_id)].append(take)
        # Flow's own client never sends more than four clips in one call; a bigger batch is a
        # shape the upstream has not been seen to accept, so groups go out in slices.
        size = max(1, settings.FLOW_SUBMIT_BATCH_SIZE)
        batches = [
            group[start : start + size]
            for group in groups.values()
            for start in range(0, len(group), size)
        ]
        for group in batches:
            try:
                SubmitGroup(self, token, group).run()
            except Exception:
                # A bug or a database error must not take the other groups down. Whatever is
                # still "submitting" is left to the reaper, which calls it uncertain.
                log.exception("submitting takes %s failed", [take.pk for take in group])
                self._release_queued(token, [take.pk for take in group])
            self.beat()

    def _release_queued(self, token: UUID, pks: list[int]) -> None:
        """After an unexpected error before the submit call: later, a bounded number of times."""
        mine = Generation.objects.filter(pk__in=pks, claim=token, status=S.QUEUED)
        self.counts["failed"] += mine.filter(attempts__gte=SUBMIT_ATTEMPTS - 1).update(
            status=S.FAILED,
            reason="Flowsite hit an internal error preparing this take for Flow; an admin "
            "can find the details in the worker's log.",
            claim=None,
            lease_until=None,
            finished_at=self.now,
            updated=timezone.now(),
        )
        mine.update(
            attempts=F("attempts") + 1,
            next_check_at=self.now + timedelta(seconds=backoff_seconds(3)),
            claim=None,
            lease_until=None,
        )

    # --- Poll -----------------------------------------------------------------------------

    def poll_due(self) -> None:
        now = self.now
        account_ids = list(
            Generation.objects.filter(status__in=[S.PENDING, S.ACTIVE], account__isnull=False)
            .filter(_due(now), _free_lease(now), _account_open(now))
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
            if self.time_left() < 2 * _call_deadline():
                return
            if not self.poll_account(account):
                return

    def poll_account(self, account: FlowAccount) -> bool:
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
        now = self.now
        token = uuid4()
        started = time.monotonic()
        lease = check_lease()
        claimed = (
            Generation.objects.filter(account=account, status__in=[S.PENDING, S.ACTIVE])
            .filter(_due(now), _free_lease(now))
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
            for index, batch in enumerate(_chunks(takes, size)):
                if index:
                    if self.time_left() < 2 * _call_deadline():
                        self.let_go(token, unchanged)
                        return False
                    if account.problem or (
                        account.cool_down_until is not None and account.cool_down_until > now
                    ):
                        # A batch before this one found the account throttled or broken.
                        self.let_go(token, unchanged)
                        return True
                    if time.monotonic() - renewed > lease.total_seconds() / 2:
                        # Half the lease is gone (slow answers, downloads): the takes still
                        # held get a full one again, so another worker does not take them.
                        renewed = time.monotonic()
                        Generation.objects.filter(
                            claim=token, status__in=[S.PENDING, S.ACTIVE]
                        ).update(lease_until=now + timedelta(seconds=renewed - started) + lease)
                poll = PollBatch(self, account, token, batch, unchanged)
                try:
                    poll.run()
                except Exception:
                    # A bug or a database error in one batch must not end the pass.
                    log.exception("checking takes %s failed unexpectedly", poll.pks)
                    poll.release()
                self.beat()
        finally:
            self.settle(token, unchanged)
        return True

    def settle(self, token: UUID, unchanged: list[int]) -> None:
        """Let go of the checked takes Flow is still rendering as they were, in ONE update.

        Such a take needs only its next check set and its claim cleared, which nobody sees, so
        the batches leave it to this one write per account and pass instead of one each: on
        SQLite the per-batch writes were the largest part of a pass's database time
        (benchmarks/upstream_poll.py). Until then the take keeps the pass's claim and lease
        like the takes still to check; if the worker dies first, it is free again once the
        lease lapses and, its next check never written, is checked at once.
        """
        if unchanged:
            next_check = self.now + timedelta(seconds=poll_interval())
            change = {"next_check_at": next_check, "claim": None, "lease_until": None}
            _write_claimed(token, dict.fromkeys(unchanged, change), [S.PENDING, S.ACTIVE])
            unchanged.clear()

    def let_go(self, token: UUID, unchanged: list[int]) -> None:
        """Free the claimed takes no batch got to; the next pass checks them first. The takes
        already checked are settled first, so they are not checked again at once."""
        self.settle(token, unchanged)
        Generation.objects.filter(claim=token, status__in=[S.PENDING, S.ACTIVE]).update(
            claim=None, lease_until=None
        )


# --- Submitting one group (one project, one account) ---------------------------------------


class SubmitGroup:
    def __init__(self, run: Pass, token: UUID, takes: list[Generation]) -> None:
        self.run_ = run
        self.now = run.now
        self.counts = run.counts
        self.token = token
        self.takes = takes
        self.project: Project = takes[0].project
        self.account: FlowAccount = takes[0].account

    def run(self) -> None:
        if FlowAccount.objects.filter(pk=self.account.pk, cool_down_until__gt=self.now).exists():
            # Another group of this pass was just throttled on the same account: wait with it.
            Generation.objects.filter(
                pk__in=[t.pk for t in self.takes], claim=self.token, status=S.QUEUED
            ).update(claim=None, lease_until=None)
            return
        try:
            self.engine = self.run_.engines.get(self.account)
        except ValueError as error:
            # The account has no usable credentials; nothing can be sent until an admin fixes it.
            self.fail(
                self.takes,
                f"The Flow account {self.account} has no usable token or session cookie "
                f"({error}); ask an admin to paste one.",
                statuses=[S.QUEUED],
            )
            return
        media_ids = self.upload_images()
        if not self.takes or not self.mark_submitting():
            return
        try:
            try:
                result = self.submit(self.clips(media_ids))
            except ImageUnknown:
                # Flow forgot the uploaded images: forget them too, upload once more and submit
                # once more. The refusal was an HTTP answer, so the first call spent nothing.
                ImageUpload.objects.filter(
                    account=self.account, image_id__in={t.start_image_id for t in self.takes}
                ).delete()
                media_ids = self.upload_images(submitting=True)
                if not self.takes:
                    return
                try:
                    result = self.submit(self.clips(media_ids))
                except ImageUnknown as error:
                    self.requeue(self.takes, error)
                    return
        except _Settled:
            return
        self.record(result)

    def clips(self, media_ids: dict[int, str]) -> list[ClipRequest]:
        return [
            ClipRequest(
                request_id=str(take.request_id),
                prompt=take.prompt,
                model_key=take.model_key,
                aspect=Aspect(take.aspect),
                seed=take.seed,
                start_image_media_id=media_ids.get(take.start_image_id),
            )
            for take in self.takes
        ]

    # Uploads

    def upload_images(self, *, submitting: bool = False) -> dict[int, str]:
        """Each start image uploaded to this account once; takes whose image fails drop out."""
        images: dict[int, ImageAsset] = {}
        missing: list[Generation] = []
        for take in self.takes:
            if take.start_image is None:
                missing.append(take)
            else:
                images[take.start_image_id] = take.start_image
        if missing:
            self.fail(
                missing,
                "The start image of this take was deleted before it could be sent to Flow.",
                statuses=[S.SUBMITTING] if submitting else [S.QUEUED],
            )
        known = dict(
            ImageUpload.objects.filter(account=self.account, image_id__in=list(images)).values_list(
                "image_id", "media_id"
            )
        )
        media_ids: dict[int, str] = {}
        for image_id, image in images.items():
            if image_id in known:
                media_ids[image_id] = known[image_id]
                continue
            affected = [t for t in self.takes if t.start_image_id == image_id]
            statuses = [S.SUBMITTING] if submitting else [S.QUEUED]
            try:
                data = image.image_data()
            except OSError:
                log.exception("start image %s could not be read", image.uuid)
                self.fail(
                    affected,
                    "The start image file could not be read from Flowsite's storage.",
                    statuses=statuses,
                )
                continue
            try:
                uploaded = self.engine.upload_image(data)
            except EngineError as error:
                # Uploads cost nothing: any failure is safe to retry or to report.
                self.settle_error(affected, error, statuses=statuses)
                if self.account_resting():
                    # Throttled or signed out: no further call to Flow for this account now.
                    self.release(self.takes, statuses=statuses)
                    return {}
                continue
            media_ids[image_id] = uploaded.media_id
            # Another worker may have uploaded the same image meanwhile; either id works.
            with contextlib.suppress(IntegrityError), transaction.atomic():
                ImageUpload.objects.create(
                    image=image, account=self.account, media_id=uploaded.media_id
                )
            self.counts["uploaded"] += 1
        return media_ids

    # The submit call itself

    def mark_submitting(self) -> bool:
        """Flip the claimed takes to "submitting" right before the call that costs credits."""
        pks = [take.pk for take in self.takes]
        Generation.objects.filter(pk__in=pks, claim=self.token, status=S.QUEUED).update(
            status=S.SUBMITTING,
            lease_until=self.now + submit_lease(),
            updated=timezone.now(),
        )
        # Cancelled (or reclaimed) takes are no longer ours and are not sent.
        mine = set(
            Generation.objects.filter(
                pk__in=pks, claim=self.token, status=S.SUBMITTING
            ).values_list("pk", flat=True)
        )
        self.takes = [take for take in self.takes if take.pk in mine]
        return bool(self.takes)

    def submit(self, clips: list[ClipRequest]) -> SubmitResult:
        try:
            result = self.engine.submit(str(self.project.flow_project_id), clips)
        except ImageUnknown:
            raise
        except (NetworkError, ContractError) as error:
            # The request may have reached Flow (a lost answer, or an answer we cannot read):
            # paying twice is worse than asking the user.
            cause = error.message
            if isinstance(error, ContractError):
                log.warning(
                    "Flow's submit answer had an unknown shape: %s", redact_log(error.detail)
                )
                cause = ContractError.default_message
            self.uncertain(self.takes, cause)
            raise _Settled from error
        except EngineError as error:
            self.settle_error(self.takes, error, statuses=[S.SUBMITTING])
            raise _Settled from error
        except Exception as error:
            log.exception("submitting takes failed unexpectedly")
            self.uncertain(self.takes, LOST_INTERNAL)
            raise _Settled from error
        self.counts["submit_calls"] += 1
        return result

    def record(self, result: SubmitResult) -> None:
        now = self.now
        by_request = {clip.request_id: clip for clip in result.clips}
        changes: dict[int, dict[str, Any]] = {}
        lost: list[Generation] = []
        for take in self.takes:
            clip = by_request.get(str(take.request_id))
            if clip is None or not clip.operation_name:
                lost.append(take)
                continue
            changes[take.pk] = _visible(
                status=S.ACTIVE if clip.state == ClipState.ACTIVE else S.PENDING,
                operation_name=clip.operation_name,
                credits_after=result.remaining_credits,
                submitted_at=now,
                next_check_at=now + timedelta(seconds=poll_interval()),
                reason="",
                claim=None,
                lease_until=None,
            )
        # UNCERTAIN too: if the reaper gave up on us while Flow was slow, the answer we finally
        # got is the truth and the take is followed after all.
        self.counts["submitted"] += _write_claimed(self.token, changes, [S.SUBMITTING, S.UNCERTAIN])
        if lost:
            log.warning("Flow's submit answer named no operation for takes %s", lost)
            self.uncertain(lost, "Flow's answer named no operation for it.")
        self.account.record_credits(result.remaining_credits)

    # Outcomes

    def uncertain(self, takes: list[Generation], cause: str) -> None:
        self.counts["uncertain"] += Generation.objects.filter(
            pk__in=[t.pk for t in takes], claim=self.token, status=S.SUBMITTING
        ).update(
            status=S.UNCERTAIN,
            reason=uncertain_reason(cause),
            lease_until=None,
            finished_at=self.now,
            updated=timezone.now(),
        )

    def fail(self, takes: list[Generation], reason: str, *, statuses: list[str]) -> None:
        self.counts["failed"] += self._let_go(
            takes,
            statuses,
            status=S.FAILED,
            reason=_clip(reason),
            finished_at=self.now,
            updated=timezone.now(),
        )

    def _let_go(self, takes: list[Generation], statuses: list[str], **fields: Any) -> int:
        """Write ``fields`` to the takes this group still holds and drop them from the group."""
        pks = {t.pk for t in takes}
        written = Generation.objects.filter(
            pk__in=pks, claim=self.token, status__in=statuses
        ).update(claim=None, lease_until=None, **fields)
        self.takes = [t for t in self.takes if t.pk not in pks]
        return written

    def requeue(self, takes: list[Generation], error: EngineError) -> None:
        """Back to the queue after an answer that spent nothing, or give up after enough tries."""
        now = self.now
        retry_after = getattr(error, "retry_after", None)
        tries = max(t.attempts for t in takes) + 1
        give_up = [t for t in takes if t.attempts + 1 >= SUBMIT_ATTEMPTS]
        again = [t for t in takes if t.attempts + 1 < SUBMIT_ATTEMPTS]
        statuses = [S.QUEUED, S.SUBMITTING]
        if give_up:
            self.fail(
                give_up,
                f"{error.message} Flowsite gave up after {SUBMIT_ATTEMPTS} attempts.",
                statuses=statuses,
            )
        if again:
            delay = backoff_seconds(tries, retry_after)
            self.counts["requeued"] += Generation.objects.filter(
                pk__in=[t.pk for t in again], claim=self.token, status__in=statuses
            ).update(
                status=S.QUEUED,
                # Shown on the card while the take waits, so it never waits without a reason.
                reason=_clip(error.message),
                attempts=F("attempts") + 1,
                next_check_at=now + timedelta(seconds=delay),
                claim=None,
                lease_until=None,
                updated=timezone.now(),
            )
            if isinstance(error, Throttled):
                until = now + timedelta(seconds=delay)
                FlowAccount.objects.filter(pk=self.account.pk).update(cool_down_until=until)
                self.account.cool_down_until = until
        self.takes = [t for t in self.takes if t not in takes]

    def settle_error(
        self, takes: list[Generation], error: EngineError, *, statuses: list[str]
    ) -> None:
        """An HTTP answer came back refusing the call, so nothing was spent."""
        if isinstance(error, (Throttled, BotCheck, UpstreamError, ImageUnknown, NetworkError)):
            self.requeue(takes, error)
        elif isinstance(error, SessionExpired) or (
            isinstance(error, TokenExpired) and not self.account.session_cookie
        ):
            # Nothing was spent (a refusal before or instead of the work): the takes wait for
            # an admin to paste new credentials, then resume (FlowAccount.replace_credentials).
            self.wait_for_account(takes, account_problem(self.account, error), statuses=statuses)
        elif isinstance(error, TokenExpired):
            # A fresh token can be minted from the cookie next time.
            self.requeue(takes, error)
        elif isinstance(error, (Unsafe, TierTooLow, QuotaReached, BadRequest, ContractError)):
            if isinstance(error, ContractError):
                log.warning("Flow answered in an unknown shape: %s", redact_log(error.detail))
            self.fail(takes, error.message, statuses=statuses)
        else:
            self.fail(takes, error.message, statuses=statuses)

    def wait_for_account(
        self, takes: list[Generation], message: str, *, statuses: list[str]
    ) -> None:
        set_account_problem(self.account, message)
        self.counts["waiting"] += self._let_go(
            takes,
            statuses,
            status=S.QUEUED,
            reason=_clip(message),
            next_check_at=None,
            updated=timezone.now(),
        )

    def release(self, takes: list[Generation], *, statuses: list[str]) -> None:
        """Back to the queue untouched (no attempt counted): the account must rest first."""
        self._let_go(takes, statuses, status=S.QUEUED)

    def account_resting(self) -> bool:
        until = self.account.cool_down_until
        return bool(self.account.problem) or (until is not None and until > self.now)


def account_problem(account: FlowAccount, error: EngineError) -> str:
    """What every take of a signed-out account says until an admin fixes the account."""
    if isinstance(error, TokenExpired):
        return (
            f"The Flow access token of account {account} has expired or was revoked — "
            "paste a new one."
        )
    return f"The Flow session for account {account} has expired — paste a new cookie."


def set_account_problem(account: FlowAccount, message: str) -> None:
    message = _clip(message, 300)
    FlowAccount.objects.filter(pk=account.pk).update(problem=message)
    account.problem = message


class _Settled(Exception):
    """The submit call's outcome has already been written to the takes."""


# --- Polling one batch --------------------------------------------------------------------


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
                    change = _visible(status=status, reason="", **change)
                changes[take.pk] = change
            elif clip.state == ClipState.SUCCESSFUL:
                # Keep the claim: this pass downloads the clip right away, while the signed
                # URLs Flow just gave are fresh.
                changes[take.pk] = _visible(
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
        _write_claimed(self.token, changes, [S.PENDING, S.ACTIVE])
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
                if self.run_.time_left() < _download_deadline():
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
        return _visible(
            status=status,
            reason=_clip(reason),
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
            _write_claimed(self.token, changes, [S.PENDING, S.ACTIVE])
            return
        log.warning("checking %d takes failed: %s", len(takes), error.message)
        if isinstance(error, SessionExpired | TokenExpired):
            message = _clip(account_problem(self.account, error))
            set_account_problem(self.account, message)
            for take in takes:
                # Due as soon as the account is fixed (the account's problem holds them).
                changes[take.pk] = _visible(
                    reason=message, next_check_at=None, claim=None, lease_until=None
                )
            _write_claimed(self.token, changes, [S.PENDING, S.ACTIVE])
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
        _write_claimed(self.token, changes, [S.PENDING, S.ACTIVE])


# --- Downloading one finished clip --------------------------------------------------------------


class Download:
    """Fetch one finished clip (and its poster) into the take's folder, then mark it ready.

    The take's folder is its own and the take is claimed, so anything half-written there is
    left from an attempt that died (a killed worker) and is removed first.
    """

    def __init__(self, run: Pass, token: UUID, take: Generation, clip: ClipStatus) -> None:
        self.now = run.now
        self.counts = run.counts
        self.token = token
        self.take = take
        self.clip = clip

    def _mine(self):
        return Generation.objects.filter(pk=self.take.pk, claim=self.token, status=S.DOWNLOADING)

    def run(self) -> None:
        from .engines.download import download_to

        take, clip = self.take, self.clip
        video_name = f"{take.media_dir()}/clip.mp4"
        poster_name = f"{take.media_dir()}/poster.jpg"
        # The media folder itself, or the staging folder when the storage is a bucket.
        folder = storage.local_path(video_name).parent
        remove_temp_files(folder)
        video: DownloadResult | None = None
        poster: DownloadResult | None = None
        try:
            if not clip.video_url:
                raise ContractDownloadError()
            video = download_to(clip.video_url, storage.local_path(video_name), kind="video")
            # Each whole local file into the storage as soon as it is complete: already there
            # in the media folder, uploaded (and the local copy removed) with a bucket.
            video_name = storage.store_file(video.path, video_name)
            if clip.poster_url:
                try:
                    poster = download_to(
                        clip.poster_url, storage.local_path(poster_name), kind="image"
                    )
                except DownloadError as error:
                    if error.retryable:
                        raise
                    # A poster is a nicety; the clip itself is what the team waits for.
                    log.warning("poster of take %s not kept: %s", take.pk, error.message)
            if poster is not None:
                poster_name = storage.store_file(poster.path, poster_name)
        except DownloadError as error:
            # A clip already fetched stays only beside a row that says so.
            _unlink(video, video_name)
            self.failed(error)
            return
        except Exception as error:
            log.exception("downloading take %s failed unexpectedly", take.pk)
            _unlink(video, video_name)
            self.failed(DownloadError(detail=str(error)), retryable=True)
            return
        if poster is None:
            poster_name = ""
        with transaction.atomic():
            done = self._mine().update(
                status=S.READY,
                reason="",
                video=video_name,
                video_size=video.size,
                video_sha256=video.sha256,
                poster=poster_name,
                poster_sha256=poster.sha256 if poster else "",
                finished_at=timezone.now(),
                claim=None,
                lease_until=None,
                next_check_at=None,
                updated=timezone.now(),
            )
        if done:
            self.counts["ready"] += 1
            return
        # No longer ours: cancelled (its files go), or taken over by a worker that saw our
        # lease lapse and already finished. Its files have the same names and the same bytes
        # (one clip), so what a ready row names stays.
        row = Generation.objects.filter(pk=take.pk).values("status", "video", "poster").first()
        ready = row is not None and row["status"] == S.READY
        if not (ready and row["video"] == video_name):
            _unlink(video, video_name)
        if poster is not None and not (ready and row["poster"] == poster_name):
            _unlink(poster, poster_name)

    def failed(self, error: DownloadError, *, retryable: bool | None = None) -> None:
        retryable = error.retryable if retryable is None else retryable
        attempts = self.take.download_attempts + 1
        if retryable and attempts < DOWNLOAD_ATTEMPTS:
            # The next status call signs fresh URLs; ask for them right away.
            self.counts["download_retries"] += self._mine().update(
                status=S.ACTIVE,
                download_attempts=F("download_attempts") + 1,
                next_check_at=self.now,
                claim=None,
                lease_until=None,
                updated=timezone.now(),
            )
            return
        reason = error.message
        if retryable:
            reason = f"{reason} Flowsite gave up after {attempts} download attempts."
        self.counts["failed"] += self._mine().update(
            status=S.FAILED,
            reason=_clip(reason),
            download_attempts=attempts,
            finished_at=self.now,
            claim=None,
            lease_until=None,
            next_check_at=None,
            updated=timezone.now(),
        )


def remove_temp_files(folder: Path) -> int:
    """Delete the ``.<name>.*.part`` files ``download_to`` writes before renaming."""
    removed = 0
    for path in folder.glob(".*.part") if folder.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    if removed:
        log.info("removed %d half-written download(s) in %s", removed, folder)
    return removed


def _unlink(result: DownloadResult | None, name: str) -> None:
    """Remove a download wherever it got to: its local file and its stored copy ``name``."""
    if result is not None:
        Path(result.path).unlink(missing_ok=True)
        storage.discard(name)


class ContractDownloadError(DownloadError):
    retryable = True
    default_message = "Flow said the clip is ready but gave no link to download it."


# --- When is the next thing due --------------------------------------------------------------


def seconds_until_due(now: datetime | None = None) -> float | None:
    """Seconds until some take needs a pass (0 when one is due now), None when none will
    without help: nothing in flight, or only takes waiting for an admin to fix their account.

    One aggregate query, cheap enough for the pump to ask twice a second while it waits.
    """
    now = now or timezone.now()
    at = Value(now, output_field=DateTimeField())
    # Takes of an account without a problem, or of a removed account (the reaper ends those).
    workable = Q(account__isnull=True) | Q(account__problem="")
    # A take is due once its own timer, its account's cool-down and any lease have all passed.
    due_at = Greatest(
        Coalesce("next_check_at", at),
        Coalesce("account__cool_down_until", at),
        Coalesce("lease_until", at),
        output_field=DateTimeField(),
    )
    agg = Generation.objects.filter(status__in=Generation.IN_FLIGHT).aggregate(
        polls=Min(
            due_at,
            filter=Q(status__in=[S.PENDING, S.ACTIVE]) & workable,
            output_field=DateTimeField(),
        ),
        submits=Min(
            due_at,
            filter=Q(status=S.QUEUED) & workable,
            output_field=DateTimeField(),
        ),
        leases=Min(
            Coalesce("lease_until", at),
            filter=Q(status__in=[S.SUBMITTING, S.DOWNLOADING]),
            output_field=DateTimeField(),
        ),
    )
    moments = [moment for moment in agg.values() if moment is not None]
    if not moments:
        return None
    return max(0.0, (min(moments) - now).total_seconds())


def run_pass(
    now: datetime | None = None,
    *,
    heartbeat: Callable[[], object] | None = None,
    stop_at: float | None = None,
) -> dict[str, int]:
    return Pass(now or timezone.now(), heartbeat, stop_at).run()
