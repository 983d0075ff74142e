"""Upscales: asking Flow for a ready take's 1080p or 4K copy, following it, fetching it.

An ``Upscale`` row goes the way a take does (queued → submitting → pending/active →
downloading → ready, or failed, cancelled, uncertain), under the same rules (see the package's
docstring): rows are claimed with a token and a lease and written only while still held; the
row is flipped to "submitting" right before the call that may cost credits (4K does), and an
answer that is lost makes it "uncertain", never sent again automatically; a worker that died
holding it is reaped the same way. Upscales are rare and one per call, so this phase is
simpler than the takes': no batches to split, downloads inline in the pass.

Every change a person can see also moves its take's ``updated``, so the card and gallery that
show the take's resolutions reach open pages through the page poll.

Long because it is a whole phase for one kind of row (claim, submit, poll, download, reap),
kept together so the never-pay-twice path of an upscale reads in one place.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import av
from django.db.models import F
from django.utils import timezone

from .. import storage
from ..engines.base import (
    UPSCALE_GIVEN,
    AccountRefused,
    BotCheck,
    ClipState,
    ContractError,
    DownloadError,
    EngineError,
    EngineKind,
    ModelQuotaReached,
    NetworkError,
    OperationRef,
    OutOfCredits,
    SessionExpired,
    Throttled,
    TokenExpired,
    UpscaleRequest,
    UpstreamError,
)
from ..engines.catalogue import UPSCALERS
from ..models import FlowAccount, Generation, Upscale
from .accounts import account_refused, cool_down, out_of_credits
from .claims import Hold, claim, claim_due, due_accounts, held, mark_uncertain, release
from .policy import (
    DOWNLOAD_ATTEMPTS,
    LOST_INTERNAL,
    LOST_WORKER,
    SUBMIT_ATTEMPTS,
    account_open,
    backoff_seconds,
    call_deadline,
    check_again_reason,
    check_lease,
    download_deadline,
    gave_up_reason,
    lease_free,
    poll_interval,
    redact_log,
    retry_reason,
    shorten,
    stuck_after,
    submit_lease,
)
from .reap import end_orphans

if TYPE_CHECKING:
    from .passes import Pass

log = logging.getLogger(__name__)
U = Upscale.Status
POLLED = (U.PENDING, U.ACTIVE)
LIMIT = 50


def run(run_: Pass) -> None:
    # Upscales are rare: a pass with none in flight spends one query here, not one per step.
    if not Upscale.objects.filter(status__in=Upscale.IN_FLIGHT).exists():
        return
    reap(run_)
    submit_due(run_)
    poll_due(run_)


def _touch(pks) -> None:
    """Move the ``updated`` of the takes of these upscales: their cards are sent again."""
    Generation.objects.filter(
        pk__in=Upscale.objects.filter(pk__in=list(pks)).values("take_id")
    ).update(updated=timezone.now())


def _release(token: UUID, statuses, pk: int, *, seen: bool = True, **fields: Any) -> int:
    """Give the upscale back, writing ``fields``. ``seen``: a change a person sees, which
    moves its ``updated`` and its take's."""
    if not seen:
        return release(token, statuses, [pk], model=Upscale, **fields)
    written = release(token, statuses, [pk], model=Upscale, updated=timezone.now(), **fields)
    if written:
        _touch([pk])
    return written


# --- Reaping ------------------------------------------------------------------------------


def reap(run_: Pass) -> None:
    now = run_.now
    lapsed = lease_free(now)
    lost = list(Upscale.objects.filter(lapsed, status=U.SUBMITTING).values_list("pk", flat=True))
    if lost:
        # The call may have left before the worker died: never guessed, never sent again.
        # Only Flow upscales, so the reason names it.
        run_.counts["uncertain"] += mark_uncertain(
            Upscale.objects.filter(lapsed, pk__in=lost, status=U.SUBMITTING),
            LOST_WORKER.format(upstream=EngineKind.FLOW.label),
            now,
        )
        _touch(lost)
    # A download costs nothing: check again at once, which signs fresh links.
    Upscale.objects.filter(lapsed, status=U.DOWNLOADING).update(
        status=U.ACTIVE, claim=None, lease_until=None, next_check_at=now
    )
    gone = list(
        Upscale.objects.filter(status__in=[U.QUEUED, *POLLED], account__isnull=True).values_list(
            "pk", flat=True
        )
    )
    if gone:
        end_orphans(Upscale.objects.filter(pk__in=gone), "upscale", now)
        _touch(gone)


# --- Submitting ---------------------------------------------------------------------------


def submit_due(run_: Pass) -> None:
    now = run_.now
    if run_.time_left() < 3 * call_deadline():
        return
    token = claim_due(
        Upscale.objects.filter(account__isnull=False).filter(account_open(now)),
        U.QUEUED,
        LIMIT,
        submit_lease(),
        now,
    )
    if token is None:
        return
    rows = list(held(token, [U.QUEUED], model=Upscale).select_related("account", "take", "project"))
    for row in rows:
        try:
            with run_.holding(
                Hold(token, [U.QUEUED, U.SUBMITTING], [row.pk], Upscale),
                submit_lease(),
                call_deadline() + 30,
            ):
                submit_one(run_, token, row)
        except Exception:
            log.exception("submitting upscale %s failed", row.pk)
            # Whatever is still "submitting" is left to the reaper, which calls it uncertain.
            _release(
                token, [U.QUEUED], row.pk, seen=False, next_check_at=now + timedelta(seconds=30)
            )
        run_.beat()


def submit_one(run_: Pass, token: UUID, row: Upscale) -> None:
    now = run_.now
    account: FlowAccount = row.account
    if account.cool_down_until is not None and account.cool_down_until > now:
        _release(token, [U.QUEUED], row.pk, seen=False)
        return
    try:
        engine = run_.engines.get(account)
    except ValueError as error:
        reason = shorten(account.unusable_secret(error))
        _fail(run_, token, [U.QUEUED], row, reason)
        return
    if not hasattr(engine, "upscale"):
        reason = "Vertex AI has no upscale call; generate the scene at 1080p or 4K instead."
        _fail(run_, token, [U.QUEUED], row, reason)
        return
    take = row.take
    request = UpscaleRequest(
        request_id=str(row.request_id),
        media_id=take.media_generation_id,
        aspect=take.aspect,
        resolution=row.resolution,
        model_key=UPSCALERS[row.resolution].key,
        seed=take.seed,
    )
    # The call that may cost credits: from here on the upscale is never sent again by itself.
    if not held(token, [U.QUEUED], [row.pk], model=Upscale).update(
        status=U.SUBMITTING, lease_until=run_.clock() + submit_lease(), updated=timezone.now()
    ):
        return  # no longer ours
    try:
        result = engine.upscale(str(row.project.flow_project_id), [request])
    except (NetworkError, ContractError) as error:
        cause = error.message
        if isinstance(error, ContractError):
            log.warning("Flow's upscale answer had an unknown shape: %s", redact_log(error.detail))
            cause = ContractError().message
        _uncertain(run_, token, row, cause)
        return
    except EngineError as error:
        refused(run_, token, row, account, error)
        return
    except Exception:
        log.exception("upscaling failed unexpectedly")
        _uncertain(run_, token, row, LOST_INTERNAL)
        return
    clip = next((c for c in result.clips if c.request_id == str(row.request_id)), None)
    if clip is None:
        _uncertain(run_, token, row, "Flow's answer named no operation for it.")
        return
    # UNCERTAIN too: if the reaper gave up on us while Flow was slow, its answer is the truth.
    run_.counts["upscales_submitted"] += _release(
        token,
        [U.SUBMITTING, U.UNCERTAIN],
        row.pk,
        status=U.ACTIVE if clip.state == ClipState.ACTIVE else U.PENDING,
        operation_name=clip.operation_name,
        submitted_at=now,
        next_check_at=now + timedelta(seconds=poll_interval()),
        reason="",
        finished_at=None,
    )
    account.record_credits(result.remaining_credits)


def _uncertain(run_: Pass, token: UUID, row: Upscale, cause: str) -> None:
    rows = held(token, [U.SUBMITTING], [row.pk], model=Upscale)
    run_.counts["uncertain"] += mark_uncertain(rows, cause, run_.now)
    _touch([row.pk])


def _fail(run_: Pass, token: UUID, statuses, row: Upscale, reason: str, **fields: Any) -> int:
    """Give the upscale back failed, for ``reason``."""
    return _release(
        token, statuses, row.pk, status=U.FAILED, finished_at=run_.now, reason=reason, **fields
    )


def refused(
    run_: Pass, token: UUID, row: Upscale, account: FlowAccount, error: EngineError
) -> None:
    """Flow answered refusing the call, so nothing was spent."""
    now = run_.now
    statuses = [U.SUBMITTING]
    if isinstance(error, Throttled | BotCheck | UpstreamError):
        tries = row.attempts + 1
        if tries >= SUBMIT_ATTEMPTS:
            _fail(run_, token, statuses, row, gave_up_reason(error.message, tries), attempts=tries)
            return
        delay = backoff_seconds(tries, getattr(error, "retry_after", None))
        _release(
            token,
            statuses,
            row.pk,
            status=U.QUEUED,
            attempts=F("attempts") + 1,
            next_check_at=now + timedelta(seconds=delay),
            reason=retry_reason(error.message, delay),
        )
        if isinstance(error, Throttled):
            cool_down(account, now + timedelta(seconds=delay))
    elif isinstance(error, SessionExpired | TokenExpired | AccountRefused):
        message = account_refused(now, account, error)
        _release(
            token, statuses, row.pk, status=U.QUEUED, reason=shorten(message), next_check_at=None
        )
    elif isinstance(error, OutOfCredits):
        # As for a take; but Flow knows the clip only on the account that made it (Flowsite
        # asks for an upscale only there), so the upscale cannot move to another account.
        out_of_credits(account)
        then = f"Add credits to {account}, then ask again"
        _fail(run_, token, statuses, row, _not_upscaled(account, "run out of credits", then, error))
        run_.counts["failed"] += 1
    elif isinstance(error, ModelQuotaReached):
        # The upscaler's quota, not the account's credits, which stay as they are; and, as
        # for credits, no other account can upscale the clip.
        what = f"used up today's quota of the {UPSCALERS[row.resolution].label} upscaler"
        then = f"{account.upstream} does not say when the quota resets: ask again later"
        _fail(run_, token, statuses, row, _not_upscaled(account, what, then, error))
        run_.counts["failed"] += 1
    else:
        _fail(run_, token, statuses, row, shorten(error.message))
        run_.counts["failed"] += 1


def _not_upscaled(
    account: FlowAccount, what: str, then: str, error: OutOfCredits | ModelQuotaReached
) -> str:
    """The card of an upscale Flow refused on ``account`` for ``what`` ("run out of credits",
    ...), before any work: nothing was spent, and the clip is known only on that account."""
    upstream = account.upstream
    code = f" ({error.reason})" if error.reason else ""
    return shorten(
        f"Not upscaled: the {upstream} account {account} has {what} ({upstream} refused the "
        f"upscale, so nothing was spent), and only the account that made the clip can upscale "
        f"it. {then}{code}."
    )


# --- Polling and fetching -----------------------------------------------------------------


def poll_due(run_: Pass) -> None:
    now = run_.now
    account_ids = due_accounts(Upscale.objects.filter(status__in=POLLED), now)
    for account in FlowAccount.objects.filter(pk__in=account_ids).order_by("pk"):
        if run_.time_left() < 2 * call_deadline():
            return
        poll_account(run_, account)


def poll_account(run_: Pass, account: FlowAccount) -> None:
    now = run_.now
    token, _ = claim(
        Upscale.objects.filter(account=account, status__in=POLLED), check_lease(), run_.clock()
    )
    rows = list(held(token, POLLED, model=Upscale).select_related("take__project")[:LIMIT])
    if not rows:
        return
    try:
        engine = run_.engines.get(account)
        with run_.holding(Hold(token, POLLED, None, Upscale), check_lease(), call_deadline() + 5):
            result = engine.check(
                [
                    OperationRef(row.operation_name, str(row.request_id), UPSCALE_GIVEN)
                    for row in rows
                ]
            )
    except (EngineError, ValueError) as error:
        check_failed(run_, token, rows, account, error)
        release(token, POLLED, model=Upscale)
        return
    by_request = {clip.request_id: clip for clip in result.clips}
    for row in rows:
        clip = by_request.get(str(row.request_id))
        if clip is None or clip.state.in_flight:
            if _stuck(row, now):
                _fail(run_, token, POLLED, row, _stuck(row, now))
                continue
            status = (
                row.status
                if clip is None
                else (U.ACTIVE if clip.state == ClipState.ACTIVE else U.PENDING)
            )
            fields: dict[str, Any] = {"next_check_at": now + timedelta(seconds=poll_interval())}
            if status != row.status or row.reason or row.check_errors:
                _release(token, POLLED, row.pk, status=status, reason="", check_errors=0, **fields)
            else:
                _release(token, POLLED, row.pk, seen=False, **fields)
        elif clip.state == ClipState.SUCCESSFUL:
            if held(token, POLLED, [row.pk], model=Upscale).update(
                status=U.DOWNLOADING,
                lease_until=run_.clock() + check_lease(),
                updated=timezone.now(),
            ):
                with run_.holding(
                    Hold(token, [U.DOWNLOADING], [row.pk], Upscale),
                    check_lease(),
                    download_deadline() + 30,
                ):
                    fetch(run_, token, row, clip)
        elif clip.state == ClipState.FAILED:
            reason = clip.failure_message or "Flow could not render this take and gave no reason."
            reason = shorten(reason.replace("this take", "this upscale"))
            # Free only when Flow itself reported it failed (SPENDING_Q).
            _fail(
                run_,
                token,
                POLLED,
                row,
                reason,
                next_check_at=None,
                upstream_failed=not clip.unanswered,
            )
            run_.counts["failed"] += 1
        else:
            _release(
                token,
                POLLED,
                row.pk,
                status=U.CANCELLED,
                finished_at=now,
                reason="Flow cancelled this upscale.",
            )
    account.record_credits(result.remaining_credits)


def _stuck(row: Upscale, now: datetime) -> str:
    since = row.submitted_at or row.created
    if now - since < stuck_after():
        return ""
    return (
        "Flow was still working on this upscale far longer than usual after it was submitted; "
        "Flowsite stopped waiting (stuck)."
    )


def check_failed(run_: Pass, token: UUID, rows: list[Upscale], account, error) -> None:
    now = run_.now
    if isinstance(error, SessionExpired | TokenExpired | AccountRefused):
        message = account_refused(now, account, error)
        for row in rows:
            _release(token, POLLED, row.pk, reason=shorten(message), next_check_at=None)
        return
    # A ValueError: the pasted secret does not decrypt or parse, said as the submit path does.
    message = error.message if isinstance(error, EngineError) else account.unusable_secret(error)
    if isinstance(error, Throttled):
        cool_down(account, now + timedelta(seconds=backoff_seconds(1, error.retry_after)))
    for row in rows:
        stuck = _stuck(row, now)
        if stuck:
            _fail(run_, token, POLLED, row, stuck)
            continue
        errors = row.check_errors + 1
        delay = max(poll_interval(), backoff_seconds(errors, getattr(error, "retry_after", None)))
        next_check = now + timedelta(seconds=delay)
        # The card says why the upscale is not moving on, until a check gets through.
        _release(
            token,
            POLLED,
            row.pk,
            reason=check_again_reason(message, delay, what="upscale"),
            check_errors=min(errors, 1000),
            next_check_at=next_check,
        )
    log.info("checking upscales failed: %s", message)


def fetch(run_: Pass, token: UUID, row: Upscale, clip) -> None:
    """The finished copy into the take's folder, then the row is ready."""
    from ..engines.download import download_to, save_bytes

    now = run_.now
    name = row.file_name()
    local = storage.local_path(name)
    try:
        if clip.video_data:
            result = save_bytes(clip.video_data, local, kind="video")
        else:
            if not clip.video_url:
                raise DownloadError("Flow said the upscale is ready but gave no link to it.")
            result = download_to(clip.video_url, local, kind="video", deadline=download_deadline())
        width, height = _size(result.path)
        name = storage.store_file(result.path, name)
    except DownloadError as error:
        attempts = row.download_attempts + 1
        if error.retryable and attempts < DOWNLOAD_ATTEMPTS:
            fields = {"download_attempts": attempts, "next_check_at": now}
            _release(token, [U.DOWNLOADING], row.pk, seen=False, status=U.ACTIVE, **fields)
            return
        reason = shorten(error.message)
        _fail(run_, token, [U.DOWNLOADING], row, reason, download_attempts=attempts)
        return
    done = _release(
        token,
        [U.DOWNLOADING],
        row.pk,
        status=U.READY,
        reason="",
        video=name,
        video_size=result.size,
        video_sha256=result.sha256,
        width=width,
        height=height,
        finished_at=timezone.now(),
        next_check_at=None,
    )
    if done:
        run_.counts["upscales_ready"] += 1
    else:
        # No longer ours (taken over meanwhile): keep the file only if a ready row names it.
        ready = Upscale.objects.filter(pk=row.pk, status=U.READY, video=name).exists()
        if not ready:
            storage.discard(name)


def _size(path) -> tuple[int | None, int | None]:
    try:
        with av.open(str(path)) as container:
            context = container.streams.video[0].codec_context
            return context.width, context.height
    except (av.FFmpegError, IndexError, OSError):
        return None, None
