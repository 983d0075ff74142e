"""Submitting: the one phase that spends credits.

Takes are claimed while still "queued" (uploading their start images costs nothing), flipped to
"submitting" right before the call, and from then on are never sent again automatically: an
answer that is lost or unreadable makes them "uncertain", for a person to decide.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ..engines.base import (
    AccountRefused,
    Aspect,
    BotCheck,
    ClipRequest,
    ClipState,
    ContractError,
    EngineError,
    ImageData,
    ImageUnknown,
    NetworkError,
    SessionExpired,
    SubmitResult,
    Throttled,
    TokenExpired,
    UpstreamError,
)
from ..models import FlowAccount, Generation, ImageAsset, ImageUpload, Project
from .accounts import account_problem, set_account_problem
from .claims import held, release, visible, write_held
from .policy import (
    LOST_INTERNAL,
    SUBMIT_ATTEMPTS,
    SUBMIT_LIMIT,
    S,
    account_open,
    backoff_seconds,
    call_deadline,
    is_due,
    lease_free,
    poll_interval,
    redact_log,
    shorten,
    submit_lease,
    submit_work_seconds,
    uncertain_reason,
)

if TYPE_CHECKING:
    from .passes import Pass

log = logging.getLogger(__name__)


def submit_due(run: Pass) -> None:
    now = run.now
    if run.time_left() < 3 * call_deadline():
        return
    due = list(
        Generation.objects.filter(status=S.QUEUED, account__isnull=False)
        .filter(is_due(now), lease_free(now), account_open(now))
        .order_by("created", "pk")
        .values_list("pk", flat=True)[:SUBMIT_LIMIT]
    )
    if not due:
        return
    token = uuid4()
    # The lease covers image uploads; the takes stay "queued" until the submit call itself,
    # so a crash while uploading (which costs nothing) leaves them simply to be retried.
    Generation.objects.filter(pk__in=due, status=S.QUEUED).filter(
        is_due(now), lease_free(now)
    ).update(claim=token, lease_until=now + submit_lease())
    generations = list(
        held(token, [S.QUEUED])
        .select_related("account", "project", "start_image")
        .order_by("created", "pk")
    )
    groups: dict[tuple[int, int], list[Generation]] = defaultdict(list)
    for generation in generations:
        groups[(generation.project_id, generation.account_id)].append(generation)
    # Flow's own client never sends more than four clips in one call; a bigger batch is a
    # shape the upstream has not been seen to accept, so groups go out in slices.
    size = max(1, settings.FLOW_SUBMIT_BATCH_SIZE)
    batches = [
        batch
        for group in groups.values()
        for batch in (
            scene_batches(group, size)
            if group[0].account.is_vertex
            else [group[start : start + size] for start in range(0, len(group), size)]
        )
    ]
    for group in batches:
        try:
            # Every take this pass holds stays leased while the group's calls run, the takes
            # waiting for a later group too.
            with run.holding(
                token, [S.QUEUED, S.SUBMITTING], None, submit_lease(), submit_work_seconds()
            ):
                SubmitGroup(run, token, group).run()
        except Exception:
            # A bug or a database error must not take the other groups down. Whatever is
            # still "submitting" is left to the reaper, which calls it uncertain.
            log.exception("submitting takes %s failed", [generation.pk for generation in group])
            release_for_retry(run, token, [generation.pk for generation in group])
        run.beat()


def scene_batches(group: list[Generation], size: int) -> list[list[Generation]]:
    """Batches of whole scenes: Vertex AI renders a scene's takes in one call (its samples),
    so a scene split across two batches would cost two calls. A scene larger than ``size``
    is sliced."""
    by_scene: dict[int, list[Generation]] = defaultdict(list)
    for generation in group:
        by_scene[generation.scene_id].append(generation)
    batches: list[list[Generation]] = []
    for takes in by_scene.values():
        for start in range(0, len(takes), size):
            part = takes[start : start + size]
            if batches and len(batches[-1]) + len(part) <= size:
                batches[-1].extend(part)
            else:
                batches.append(part)
    return batches


def release_for_retry(run: Pass, token: UUID, pks: list[int]) -> None:
    """After an unexpected error before the submit call: later, a bounded number of times."""
    last_try = held(token, [S.QUEUED], pks).filter(attempts__gte=SUBMIT_ATTEMPTS - 1)
    run.counts["failed"] += last_try.update(
        status=S.FAILED,
        reason="Flowsite hit an internal error preparing this take for Flow; an admin "
        "can find the details in the worker's log.",
        claim=None,
        lease_until=None,
        finished_at=run.now,
        updated=timezone.now(),
    )
    release(
        token,
        [S.QUEUED],
        pks,
        attempts=F("attempts") + 1,
        next_check_at=run.now + timedelta(seconds=backoff_seconds(3)),
    )


class SubmitGroup:
    def __init__(self, run: Pass, token: UUID, generations: list[Generation]) -> None:
        self.run_ = run
        self.now = run.now
        self.counts = run.counts
        self.token = token
        self.generations = generations
        self.project: Project = generations[0].project
        self.account: FlowAccount = generations[0].account
        # Start images read for an engine that takes them inline (image id -> data).
        self.image_data: dict[int, ImageData] = {}

    def run(self) -> None:
        if FlowAccount.objects.filter(pk=self.account.pk, cool_down_until__gt=self.now).exists():
            # Another group of this pass was just throttled on the same account: wait with it.
            self.release(self.generations, [S.QUEUED])
            return
        try:
            self.engine = self.run_.engines.get(self.account)
        except ValueError as error:
            # The account has no usable credentials; nothing can be sent until an admin fixes it.
            self.fail(
                self.generations,
                f"The Flow account {self.account} has no usable token or session cookie "
                f"({error}); ask an admin to paste one.",
                statuses=[S.QUEUED],
            )
            return
        media_ids = self.upload_images()
        if not self.generations or not self.mark_submitting():
            return
        try:
            try:
                result = self.submit(self.clips(media_ids))
            except ImageUnknown:
                # Flow forgot the uploaded images: forget them too, upload once more and submit
                # once more. The refusal was an HTTP answer, so the first call spent nothing.
                ImageUpload.objects.filter(
                    account=self.account, image_id__in={t.start_image_id for t in self.generations}
                ).delete()
                media_ids = self.upload_images(submitting=True)
                if not self.generations:
                    return
                try:
                    result = self.submit(self.clips(media_ids))
                except ImageUnknown as error:
                    self.requeue(self.generations, error)
                    return
        except _OutcomeWritten:
            return
        self.record(result)

    def clips(self, media_ids: dict[int, str]) -> list[ClipRequest]:
        return [
            ClipRequest(
                request_id=str(generation.request_id),
                prompt=generation.prompt,
                model_key=generation.model_key,
                aspect=Aspect(generation.aspect),
                seed=generation.seed,
                start_image_media_id=media_ids.get(generation.start_image_id),
                start_image=self.image_data.get(generation.start_image_id),
                scene_ref=str(generation.scene_id),
                duration=generation.duration,
                resolution=generation.resolution,
                audio=generation.audio,
                negative_prompt=generation.negative_prompt,
                person_generation=generation.person_generation,
            )
            for generation in self.generations
        ]

    # Uploads

    def upload_images(self, *, submitting: bool = False) -> dict[int, str]:
        """Each start image uploaded to this account once; takes whose image fails drop out."""
        images: dict[int, ImageAsset] = {}
        missing: list[Generation] = []
        for generation in self.generations:
            if generation.start_image is None:
                missing.append(generation)
            else:
                images[generation.start_image_id] = generation.start_image
        if missing:
            self.fail(
                missing,
                "The start image of this take was deleted before it could be sent to Flow.",
                statuses=[S.SUBMITTING] if submitting else [S.QUEUED],
            )
        self.image_data = {}
        if getattr(self.engine, "inline_images", False):
            return self.read_images(images, submitting=submitting)
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
            affected = [t for t in self.generations if t.start_image_id == image_id]
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
                self.refused(affected, error, statuses=statuses)
                if self.account_resting():
                    # Throttled or signed out: no further call to Flow for this account now.
                    self.release(self.generations, statuses, status=S.QUEUED)
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

    def read_images(self, images: dict[int, ImageAsset], *, submitting: bool) -> dict[int, str]:
        """For an engine that takes start images inside the submit call (Vertex AI): read
        them, nothing is uploaded; takes whose image cannot be read drop out."""
        for image_id, image in images.items():
            try:
                self.image_data[image_id] = image.image_data()
            except OSError:
                log.exception("start image %s could not be read", image.uuid)
                self.fail(
                    [t for t in self.generations if t.start_image_id == image_id],
                    "The start image file could not be read from Flowsite's storage.",
                    statuses=[S.SUBMITTING] if submitting else [S.QUEUED],
                )
        return dict.fromkeys(self.image_data, "")

    # The submit call itself

    def mark_submitting(self) -> bool:
        """Flip the claimed takes to "submitting" right before the call that costs credits."""
        pks = [generation.pk for generation in self.generations]
        held(self.token, [S.QUEUED], pks).update(
            status=S.SUBMITTING,
            lease_until=self.now + submit_lease(),
            updated=timezone.now(),
        )
        # Cancelled (or reclaimed) takes are no longer ours and are not sent.
        mine = set(held(self.token, [S.SUBMITTING], pks).values_list("pk", flat=True))
        self.generations = [generation for generation in self.generations if generation.pk in mine]
        return bool(self.generations)

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
            self.uncertain(self.generations, cause)
            raise _OutcomeWritten from error
        except EngineError as error:
            self.refused(self.generations, error, statuses=[S.SUBMITTING])
            raise _OutcomeWritten from error
        except Exception as error:
            log.exception("submitting takes failed unexpectedly")
            self.uncertain(self.generations, LOST_INTERNAL)
            raise _OutcomeWritten from error
        self.counts["submit_calls"] += 1
        return result

    def record(self, result: SubmitResult) -> None:
        now = self.now
        by_request = {clip.request_id: clip for clip in result.clips}
        changes: dict[int, dict[str, Any]] = {}
        lost: list[Generation] = []
        for generation in self.generations:
            clip = by_request.get(str(generation.request_id))
            if clip is None or not clip.operation_name:
                lost.append(generation)
                continue
            changes[generation.pk] = visible(
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
        self.counts["submitted"] += write_held(self.token, changes, [S.SUBMITTING, S.UNCERTAIN])
        # An engine making one call per scene reports each call's fate apart.
        refused: dict[str, list[Generation]] = defaultdict(list)
        errors: dict[str, EngineError] = {}
        causes: dict[str, list[Generation]] = defaultdict(list)
        for generation in lost:
            request_id = str(generation.request_id)
            if request_id in result.refused:
                error = result.refused[request_id]
                key = f"{type(error).__name__}:{error.message}"
                refused[key].append(generation)
                errors[key] = error
            else:
                cause = result.lost.get(request_id, "Flow's answer named no operation for it.")
                causes[cause].append(generation)
        for key, generations in refused.items():
            self.refused(generations, errors[key], statuses=[S.SUBMITTING])
        for cause, generations in causes.items():
            log.warning("no operation came back for takes %s: %s", generations, cause)
            self.uncertain(generations, cause)
        self.account.record_credits(result.remaining_credits)

    # Outcomes

    def uncertain(self, generations: list[Generation], cause: str) -> None:
        # The claim stays: a worker merely slower than its lease can still record the answer.
        self.counts["uncertain"] += held(
            self.token, [S.SUBMITTING], [t.pk for t in generations]
        ).update(
            status=S.UNCERTAIN,
            reason=uncertain_reason(cause),
            lease_until=None,
            finished_at=self.now,
            updated=timezone.now(),
        )

    def fail(self, generations: list[Generation], reason: str, *, statuses: list[str]) -> None:
        self.counts["failed"] += self.release(
            generations,
            statuses,
            status=S.FAILED,
            reason=shorten(reason),
            finished_at=self.now,
            updated=timezone.now(),
        )

    def release(self, generations: list[Generation], statuses: list[str], **fields: Any) -> int:
        """Give back the takes this group still holds, writing ``fields``; they leave the group."""
        pks = {t.pk for t in generations}
        written = release(self.token, statuses, pks, **fields)
        self.generations = [t for t in self.generations if t.pk not in pks]
        return written

    def requeue(self, generations: list[Generation], error: EngineError) -> None:
        """Back to the queue after an answer that spent nothing, or give up after enough tries."""
        now = self.now
        retry_after = getattr(error, "retry_after", None)
        tries = max(t.attempts for t in generations) + 1
        give_up = [t for t in generations if t.attempts + 1 >= SUBMIT_ATTEMPTS]
        again = [t for t in generations if t.attempts + 1 < SUBMIT_ATTEMPTS]
        statuses = [S.QUEUED, S.SUBMITTING]
        if give_up:
            self.fail(
                give_up,
                f"{error.message} Flowsite gave up after {SUBMIT_ATTEMPTS} attempts.",
                statuses=statuses,
            )
        if again:
            delay = backoff_seconds(tries, retry_after)
            self.counts["requeued"] += self.release(
                again,
                statuses,
                status=S.QUEUED,
                # Shown on the card while the take waits, so it never waits without a reason.
                reason=shorten(error.message),
                attempts=F("attempts") + 1,
                next_check_at=now + timedelta(seconds=delay),
                updated=timezone.now(),
            )
            if isinstance(error, Throttled):
                until = now + timedelta(seconds=delay)
                FlowAccount.objects.filter(pk=self.account.pk).update(cool_down_until=until)
                self.account.cool_down_until = until
        self.generations = [t for t in self.generations if t not in generations]

    def refused(
        self, generations: list[Generation], error: EngineError, *, statuses: list[str]
    ) -> None:
        """An HTTP answer came back refusing the call, so nothing was spent."""
        if isinstance(error, (Throttled, BotCheck, UpstreamError, ImageUnknown, NetworkError)):
            self.requeue(generations, error)
        elif isinstance(error, SessionExpired | AccountRefused) or (
            isinstance(error, TokenExpired) and not self.account.session_cookie
        ):
            # Nothing was spent (a refusal before or instead of the work): the takes wait for
            # an admin to paste new credentials, then resume (FlowAccount.replace_credentials).
            self.wait_for_account(
                generations, account_problem(self.account, error), statuses=statuses
            )
        elif isinstance(error, TokenExpired):
            # A fresh token can be minted from the cookie next time.
            self.requeue(generations, error)
        else:
            # Unsafe, tier too low, out of quota, a bad request, an answer of unknown shape:
            # asking again gets the same answer.
            if isinstance(error, ContractError):
                log.warning("Flow answered in an unknown shape: %s", redact_log(error.detail))
            self.fail(generations, error.message, statuses=statuses)

    def wait_for_account(
        self, generations: list[Generation], message: str, *, statuses: list[str]
    ) -> None:
        set_account_problem(self.account, message)
        self.counts["waiting"] += self.release(
            generations,
            statuses,
            status=S.QUEUED,
            reason=shorten(message),
            next_check_at=None,
            updated=timezone.now(),
        )

    def account_resting(self) -> bool:
        until = self.account.cool_down_until
        return bool(self.account.problem) or (until is not None and until > self.now)


class _OutcomeWritten(Exception):
    """The submit call's outcome has already been written to the takes."""
