"""Submitting: the one phase that spends credits.

Takes are claimed while still "queued" (uploading their start images costs nothing), flipped to
"submitting" right before the call, and from then on are never sent again automatically: an
answer that is lost or unreadable makes them "uncertain", for a person to decide.

Takes of one project and account go out in batches of up to FLOW_SUBMIT_BATCH_SIZE, across
scenes and members, and Flow answers a batch as a whole: one clip it refuses refuses the call.
A refusal is an HTTP answer, so it spent nothing, and the batch is split to find the clip it is
about, the way a status check asks about each operation alone after an odd answer:

- refused as unsafe, invalid, beyond the account's tier or its credits (a 4xx about the
  request): each clip of the batch is sent again on its own, at once, in the same pass; only a
  clip Flow refuses on its own fails, with its own reason, except that a clip refused alone
  for the account's credits, or for its model's daily quota there, is queued again for the
  project's next account that may take it (``generations/failover.py``) and fails only when
  there is none;
- Flow's 500: the batch is tried again whole, with backoff, as any passing error; if the 500
  persists to its BATCH_500_TRIES-th try, its clips are sent one per call from then on, so a
  clip Flow keeps choking on fails alone once its own tries run out and the others go on;
- never split: throttling and Google's bot check (the account rests, not a clip), a refused
  token or session (the account is re-checked, see ``accounts``), a start image Flow forgot
  (uploaded again), and above all a call whose answer was lost or unreadable: its takes are
  uncertain and no clip of it is ever sent again.

Every submit call a take was part of counts as one of its SUBMIT_ATTEMPTS, except a refusal
for the account's credits or the model's daily quota: that moves the take to an account that
has not refused it so, or fails it naming them, so the project's accounts bound those calls.

An engine that makes one call per scene (``call_per_scene``, Vertex AI) reports each call's fate
apart (``SubmitResult.refused`` / ``.lost``): a refusal already names its scene, so nothing is
split, and a lost call's takes are uncertain like a lost batch's.

Long because the never-pay-twice rule lives here: uploads, the flip to "submitting", the call,
splitting a refused batch and recording per-request outcomes must be read together to check
that no path sends a take twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ..engines.base import (
    AccountRefused,
    Aspect,
    BadRequest,
    BotCheck,
    ClipRequest,
    ClipState,
    ContractError,
    EngineError,
    ImageData,
    ImageUnknown,
    Mode,
    ModelQuotaReached,
    NetworkError,
    OutOfCredits,
    QuotaReached,
    SessionExpired,
    SubmitResult,
    Throttled,
    TierTooLow,
    TokenExpired,
    Unsafe,
    UpstreamError,
)
from ..engines.catalogue import model_label
from ..failover import (
    accounts_by_project,
    assign,
    first_usable,
    next_with_credits,
    refused_words,
    submittable,
    with_accounts,
    with_own,
)
from ..models import (
    CannotGenerate,
    FlowAccount,
    Generation,
    ImageAsset,
    ImageUpload,
    Project,
    Scene,
)
from ..take_actions import SourceClip, source_clip
from .accounts import account_refused, cool_down, out_of_credits
from .claims import Hold, claim_due, held, mark_uncertain, release, visible, write_held
from .policy import (
    BATCH_500_TRIES,
    LOST_INTERNAL,
    SUBMIT_ATTEMPTS,
    SUBMIT_LIMIT,
    S,
    backoff_seconds,
    call_deadline,
    gave_up_reason,
    poll_interval,
    redact_log,
    retry_reason,
    shorten,
    submit_lease,
    submit_work_seconds,
)

if TYPE_CHECKING:
    from .passes import Pass

log = logging.getLogger(__name__)

# A take's refused_accounts as a key to group takes written alike: (account id, why) pairs.
Refusals = tuple[tuple[str, str], ...]


def submit_due(run: Pass) -> None:
    now = run.now
    if run.time_left() < 3 * call_deadline():
        return
    # The lease covers image uploads; the takes stay "queued" until the submit call itself,
    # so a crash while uploading (which costs nothing) leaves them simply to be retried.
    token = claim_due(
        Generation.objects.filter(account__isnull=False).filter(submittable(now)),
        S.QUEUED,
        SUBMIT_LIMIT,
        submit_lease(),
        now,
    )
    if token is None:
        return
    # Each claimed take goes out on the first of its project's accounts that can take it now;
    # those none can take are let go (see generations/failover.py).
    run.counts["moved_account"] += assign(token, now)
    generations = list(
        held(token, [S.QUEUED])
        .select_related("account", "project", "scene", "source_take", *Generation.INPUT_RELATIONS)
        .order_by("created", "pk")
    )
    # Flow has one call per way of making a clip (a mode, or extending a clip): a batch holds
    # one of them.
    groups: dict[tuple[int, int, str], list[Generation]] = defaultdict(list)
    for generation in generations:
        kind = Scene.Mode.EXTEND if is_extension(generation) else generation.mode
        groups[(generation.project_id, generation.account_id, kind)].append(generation)
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
                Hold(token, [S.QUEUED, S.SUBMITTING]), submit_lease(), submit_work_seconds()
            ):
                SubmitGroup(run, token, group).run()
        except Exception:
            # A bug or a database error must not take the other groups down. Whatever is
            # still "submitting" is left to the reaper, which calls it uncertain.
            log.exception("submitting takes %s failed", [generation.pk for generation in group])
            release_for_retry(run, token, [generation.pk for generation in group])
        run.beat()


def is_extension(generation: Generation) -> bool:
    return generation.scene.mode == Scene.Mode.EXTEND


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
        reason="Flowsite hit an internal error preparing this take to be sent; an admin "
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


def inputs(generation: Generation) -> list[tuple[str, ImageAsset]]:
    """(role, image) of each image the take is made from (loaded with the take)."""
    return generation.input_images()


def uses(generation: Generation, image_id: int) -> bool:
    return any(image.pk == image_id for _, image in inputs(generation))


def image_words(generation: Generation, image_id: int) -> str:
    """ "The start image", "The end image", "A reference image": which of the take's images."""
    role = next((role for role, image in inputs(generation) if image.pk == image_id), "start")
    return {"start": "The start image", "end": "The end image"}.get(role, "A reference image")


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
        # What each extension take continues (take id -> its source clip).
        self.sources: dict[int, SourceClip] = {}

    def run(self) -> None:
        if FlowAccount.objects.filter(pk=self.account.pk, cool_down_until__gt=self.now).exists():
            # Another group of this pass was just throttled on the same account: wait with it.
            self.release(self.generations, [S.QUEUED])
            return
        try:
            self.engine = self.run_.engines.get(self.account)
        except ValueError as error:
            # The account has no usable credentials; nothing can be sent until an admin fixes it.
            self.fail(self.generations, self.account.unusable_secret(error), statuses=[S.QUEUED])
            return
        media_ids = self.upload_images()
        if not self.generations or not self.mark_submitting():
            return
        try:
            self.send(list(self.generations), media_ids, forgotten_images=True)
        except ImageUnknown:
            # Flow forgot an uploaded image: forget them too, upload once more and submit
            # once more. The refusal was an HTTP answer, so the first call spent nothing.
            # Images uploaded during this pass (for this group or an earlier one) are known
            # to Flow and kept.
            ImageUpload.objects.filter(
                account=self.account,
                image_id__in={image.pk for t in self.generations for _, image in inputs(t)},
                created__lt=self.now,
            ).delete()
            media_ids = self.upload_images(submitting=True)
            if self.generations:
                self.send(list(self.generations), media_ids)

    def clips(self, generations: list[Generation], media_ids: dict[int, str]) -> list[ClipRequest]:
        return [
            ClipRequest(
                request_id=str(generation.request_id),
                prompt=generation.prompt,
                model_key=generation.model_key,
                aspect=Aspect(generation.aspect),
                seed=generation.seed,
                mode=Mode(generation.mode),
                start_image_media_id=media_ids.get(generation.start_image_id),
                start_image=self.image_data.get(generation.start_image_id),
                end_image_media_id=media_ids.get(generation.end_image_id),
                end_image=self.image_data.get(generation.end_image_id),
                reference_media_ids=tuple(
                    media_ids[image.pk]
                    for role, image in inputs(generation)
                    if role == "reference" and image.pk in media_ids
                ),
                reference_images=tuple(
                    self.image_data[image.pk]
                    for role, image in inputs(generation)
                    if role == "reference" and image.pk in self.image_data
                ),
                scene_ref=str(generation.scene_id),
                duration=generation.duration,
                resolution=generation.resolution,
                audio=generation.audio,
                negative_prompt=generation.negative_prompt,
                person_generation=generation.person_generation,
                **self.sources[generation.pk].fields() if generation.pk in self.sources else {},
            )
            for generation in generations
        ]

    # Uploads

    def upload_images(self, *, submitting: bool = False) -> dict[int, str]:
        """Every image of the takes (start, end, references) uploaded to this account once,
        however many takes and scenes use it; takes whose image fails drop out."""
        # The takes are still "queued" on the first try, already "submitting" on the retry
        # after Flow forgot an image.
        statuses = [S.SUBMITTING] if submitting else [S.QUEUED]
        images: dict[int, ImageAsset] = {}
        missing: dict[str, list[Generation]] = defaultdict(list)
        self.read_sources(statuses)
        for generation in self.generations:
            if is_extension(generation):
                continue  # it continues a clip, not an image
            gone = generation.missing_input()
            if gone:
                missing[gone].append(generation)
                continue
            for _, image in inputs(generation):
                images[image.pk] = image
        for what, takes in missing.items():
            self.fail(
                takes,
                f"{what} of this take {'were' if 'images' in what else 'was'} deleted before "
                f"it could be sent to {self.account.upstream}.",
                statuses=statuses,
            )
        self.image_data = {}
        if getattr(self.engine, "inline_images", False):
            return self.read_images(images, statuses)
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
            affected = [t for t in self.generations if uses(t, image_id)]
            if not affected:
                continue  # every take using it dropped out over an earlier image
            try:
                data = image.image_data()
            except OSError:
                self.unreadable(image, affected, statuses)
                continue
            try:
                uploaded = self.engine.upload_image(data)
            except EngineError as error:
                # Uploads cost nothing: any failure is safe to retry or to report.
                self.refused(affected, error, statuses=statuses)
                if not self.account.is_open(self.now):
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

    def read_sources(self, statuses: list[str]) -> None:
        """For extension takes: the clip each continues (Flow's media id and the window of its
        last second, or for Vertex AI the clip itself); takes whose source is gone fail."""
        inline = bool(getattr(self.engine, "inline_images", False))
        for generation in [t for t in self.generations if is_extension(t)]:
            try:
                self.sources[generation.pk] = source_clip(generation.source_take, inline=inline)
            except CannotGenerate as problem:
                self.fail([generation], str(problem), statuses=statuses)

    def read_images(self, images: dict[int, ImageAsset], statuses: list[str]) -> dict[int, str]:
        """For an engine that takes images inside the submit call (Vertex AI): read them,
        nothing is uploaded; takes whose image cannot be read drop out."""
        for image_id, image in images.items():
            affected = [t for t in self.generations if uses(t, image_id)]
            if not affected:
                continue  # every take using it dropped out over an earlier image
            try:
                self.image_data[image_id] = image.image_data()
            except OSError:
                self.unreadable(image, affected, statuses)
        return dict.fromkeys(self.image_data, "")

    def unreadable(
        self, image: ImageAsset, affected: list[Generation], statuses: list[str]
    ) -> None:
        """The takes using an image whose file cannot be read fail (from an ``except``)."""
        log.exception("image %s could not be read", image.uuid)
        self.fail(
            affected,
            f"{image_words(affected[0], image.pk)} file could not be read from Flowsite's storage.",
            statuses=statuses,
        )

    # The submit call itself

    def mark_submitting(self) -> bool:
        """Flip the claimed takes to "submitting" right before the call that costs credits."""
        pks = [generation.pk for generation in self.generations]
        held(self.token, [S.QUEUED], pks).update(
            status=S.SUBMITTING,
            lease_until=self.run_.clock() + submit_lease(),
            updated=timezone.now(),
        )
        # Cancelled (or reclaimed) takes are no longer ours and are not sent.
        mine = set(held(self.token, [S.SUBMITTING], pks).values_list("pk", flat=True))
        self.generations = [generation for generation in self.generations if generation.pk in mine]
        return bool(self.generations)

    def send(
        self,
        generations: list[Generation],
        media_ids: dict[int, str],
        *,
        calls: int = 1,
        forgotten_images: bool = False,
    ) -> None:
        """One submit call for ``generations``, its outcome written to them; a batch Flow
        refuses is split (see the module's docstring). ``calls``: the submit calls the takes
        will have been part of once this one is made. ``forgotten_images``: a 404 for the
        start images is raised (``ImageUnknown``) so they can be uploaded again."""
        try:
            result = self.engine.submit(
                str(self.project.flow_project_id), self.clips(generations, media_ids)
            )
        except ImageUnknown as error:
            if forgotten_images:
                raise
            self.requeue(generations, error, calls=calls)
            return
        except (NetworkError, ContractError) as error:
            # The request may have reached Flow (a lost answer, or an answer we cannot read):
            # paying twice is worse than asking the user.
            cause = error.message
            if isinstance(error, ContractError):
                log.warning(
                    "Flow's submit answer had an unknown shape: %s", redact_log(error.detail)
                )
                cause = ContractError(upstream=self.account.upstream).message
            self.uncertain(generations, cause)
            return
        except EngineError as error:
            if len(generations) > 1 and self.splits(generations, error, calls):
                self.counts["batches_split"] += 1
                self.one_by_one(generations, media_ids, calls=calls + 1)
                return
            self.refused(generations, error, statuses=[S.SUBMITTING], calls=calls)
            return
        except Exception:
            log.exception("submitting takes failed unexpectedly")
            self.uncertain(generations, LOST_INTERNAL)
            return
        self.counts["submit_calls"] += 1
        self.record(generations, result, calls=calls)

    def splits(self, generations: list[Generation], error: EngineError, calls: int) -> bool:
        """Whether Flow's refusal of this batch may be about one of its clips alone."""
        if getattr(self.engine, "call_per_scene", False):
            # Each call is one scene's takes (its samples), and the engine reports each call's
            # refusal apart: a refusal already names its scene, and sending its samples one
            # by one would only ask the same question again.
            return False
        if isinstance(error, (Unsafe, BadRequest, QuotaReached, TierTooLow)):
            return True
        tries = max(generation.attempts for generation in generations) + calls
        return isinstance(error, UpstreamError) and tries >= BATCH_500_TRIES

    def one_by_one(
        self, generations: list[Generation], media_ids: dict[int, str], *, calls: int
    ) -> None:
        """Send each clip of a refused batch on its own, in this pass."""
        for index, generation in enumerate(generations):
            if not self.account.is_open(self.now) or self.run_.time_left() < call_deadline():
                # Throttled or signed out meanwhile, or no time left for another call: the
                # clips not sent yet are simply queued again (they were never sent alone, and
                # the batch they were in was refused, so nothing of them is uncertain).
                self.release(
                    generations[index:], [S.SUBMITTING], status=S.QUEUED, updated=timezone.now()
                )
                return
            if self.renew(generation):
                self.send([generation], media_ids, calls=calls)

    def renew(self, generation: Generation) -> bool:
        """A fresh lease for a take about to be sent; False when it is no longer ours
        (cancelled meanwhile), and then it is not sent."""
        if held(self.token, [S.SUBMITTING], [generation.pk]).update(
            lease_until=self.run_.clock() + submit_lease()
        ):
            return True
        self.generations = [t for t in self.generations if t.pk != generation.pk]
        return False

    def record(self, generations: list[Generation], result: SubmitResult, *, calls: int) -> None:
        now = self.now
        by_request = {clip.request_id: clip for clip in result.clips}
        changes: dict[int, dict[str, Any]] = {}
        lost: list[Generation] = []
        for generation in generations:
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
        done = {t.pk for t in generations}
        self.generations = [t for t in self.generations if t.pk not in done]
        # An engine making one call per scene reports each call's fate apart: a refused call
        # spent nothing; a lost one may have, and is never sent again.
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
                cause = result.lost.get(
                    request_id, f"{self.account.upstream}'s answer named no operation for it."
                )
                causes[cause].append(generation)
        for key, takes in refused.items():
            self.refused(takes, errors[key], statuses=[S.SUBMITTING], calls=calls)
        for cause, takes in causes.items():
            log.warning("no operation came back for takes %s: %s", takes, cause)
            self.uncertain(takes, cause)
        self.account.record_credits(result.remaining_credits)

    # Outcomes

    def uncertain(self, generations: list[Generation], cause: str) -> None:
        pks = {t.pk for t in generations}
        self.counts["uncertain"] += mark_uncertain(
            held(self.token, [S.SUBMITTING], pks), cause, self.now, self.account.upstream
        )
        self.generations = [t for t in self.generations if t.pk not in pks]

    def fail(
        self, generations: list[Generation], reason: str, *, statuses: list[str], **fields: Any
    ) -> None:
        self.counts["failed"] += self.release(
            generations,
            statuses,
            status=S.FAILED,
            reason=shorten(reason),
            finished_at=self.now,
            updated=timezone.now(),
            **fields,
        )

    def release(self, generations: list[Generation], statuses: list[str], **fields: Any) -> int:
        """Give back the takes this group still holds, writing ``fields``; they leave the group."""
        pks = {t.pk for t in generations}
        written = release(self.token, statuses, pks, **fields)
        self.generations = [t for t in self.generations if t.pk not in pks]
        return written

    def requeue(self, generations: list[Generation], error: EngineError, *, calls: int = 1) -> None:
        """Back to the queue after an answer that spent nothing, or give up after enough tries.

        ``calls``: how many submit calls the takes were part of since they were last queued
        (2 for a clip sent alone after its batch was refused)."""
        now = self.now
        retry_after = getattr(error, "retry_after", None)
        statuses = [S.QUEUED, S.SUBMITTING]
        give_up: dict[int, list[Generation]] = defaultdict(list)
        again = []
        for generation in generations:
            tries = generation.attempts + calls
            if tries >= SUBMIT_ATTEMPTS:
                give_up[tries].append(generation)
            else:
                again.append(generation)
        for tries, stopped in give_up.items():
            self.fail(
                stopped,
                gave_up_reason(error.message, tries),
                statuses=statuses,
                attempts=tries,
            )

        if again:
            delay = backoff_seconds(max(t.attempts for t in again) + calls, retry_after)
            if isinstance(error, Throttled):
                cool_down(self.account, now + timedelta(seconds=delay))
                # The account rests, not the takes: those another account of the project can
                # take now are due at once, and the next pass sends them there.
                elsewhere = self.elsewhere(again)
                if elsewhere:
                    reason = (
                        f"{error.message.strip()} Flowsite sends this take on the "
                        "project's next account."
                    )
                    self.queue(elsewhere, shorten(reason), now, calls=calls)
                    again = [t for t in again if t not in elsewhere]
        if again:
            # Shown on the card while the take waits, so it never waits without a reason.
            self.queue(
                again,
                retry_reason(error.message, delay),
                now + timedelta(seconds=delay),
                calls=calls,
            )
        self.generations = [t for t in self.generations if t not in generations]

    def queue(
        self, generations: list[Generation], reason: str, due: datetime, *, calls: int, **fields
    ) -> None:
        """Back to the queue, due at ``due``, saying ``reason``; ``calls`` more attempts."""
        self.counts["requeued"] += self.release(
            generations,
            [S.QUEUED, S.SUBMITTING],
            status=S.QUEUED,
            reason=reason,
            attempts=F("attempts") + calls,
            next_check_at=due,
            updated=timezone.now(),
            **fields,
        )

    def out_of_credits(self, generations: list[Generation], error: OutOfCredits) -> None:
        """Flow refused the account for its credits before doing anything, so nothing was
        spent: the account counts as out of credits until Flow reports some again (the state
        failover skips), and the takes move on (``moved_on``). Not an attempt (see
        ``refused``)."""
        out_of_credits(self.account)
        upstream = self.account.upstream
        moved = shorten(
            f"The {upstream} account {self.account} has run out of credits ({upstream} refused "
            "the take, so nothing was spent); Flowsite sends it on the project's next account "
            "with credits."
        )
        self.moved_on(generations, error, Generation.REFUSED_CREDITS, lambda model_key: moved)

    def model_quota_reached(self, generations: list[Generation], error: ModelQuotaReached) -> None:
        """Flow refused the takes for their model's daily quota on this account, before any
        work, so nothing was spent. The account keeps its credits (other models may still go
        out on it); the takes move on (``moved_on``). Not an attempt (see ``refused``)."""
        upstream = self.account.upstream

        def moved(model_key: str) -> str:
            return shorten(
                f"The {upstream} account {self.account} has used up today's quota of "
                f"{model_label(model_key)} ({upstream} refused the take, so nothing "
                "was spent); Flowsite sends it on the project's next account."
            )

        self.moved_on(generations, error, Generation.REFUSED_MODEL_QUOTA, moved)

    def moved_on(
        self,
        generations: list[Generation],
        error: OutOfCredits | ModelQuotaReached,
        why: str,
        moved: Callable[[str], str],
    ) -> None:
        """Takes Flow refused on this account for ``why`` (credits, or the model's daily quota):
        each remembers the account and is never sent to it again, whatever it reports later,
        so it asks each account at most once; it goes out on the project's next account it has
        not tried, saying ``moved(model_key)``, or fails naming those that refused it (see
        generations/failover.py)."""
        accounts = with_own(self.project_accounts(), self.account)
        moving: dict[tuple[datetime, Refusals, str], list[Generation]] = defaultdict(list)
        stuck: dict[tuple[str, Refusals], list[Generation]] = defaultdict(list)
        for generation in generations:
            # As written below with the move or the failure.
            generation.refused_accounts = generation.with_refusal(self.account.pk, why)
            refused = tuple(sorted(generation.refused_accounts.items()))
            others = self.destinations(generation, accounts)
            due = next_with_credits(others, generation.model_key, self.now)
            if due is None:
                extension = is_extension(generation)
                words = refused_words(
                    generation,
                    [self.account] if extension else accounts,
                    error.reason,
                    extension=extension,
                    why=why,
                )
                stuck[words, refused].append(generation)
            else:
                moving[due, refused, generation.model_key].append(generation)
        for (due, refused, model_key), takes in moving.items():
            self.queue(takes, moved(model_key), due, calls=0, refused_accounts=dict(refused))
        for (words, refused), takes in stuck.items():
            self.fail(
                takes, words, statuses=[S.QUEUED, S.SUBMITTING], refused_accounts=dict(refused)
            )

    def destinations(
        self, generation: Generation, accounts: list[FlowAccount]
    ) -> list[FlowAccount]:
        """The project's ``accounts`` other than this one that a take refused here may go to:
        none that refused it before (for credits or its model's quota), and none for an
        extension, which continues a clip known only to this account."""
        if is_extension(generation):
            return []
        refused = generation.refused_by()
        return [
            account
            for account in accounts
            if account.pk != self.account.pk and account.pk not in refused
        ]

    def elsewhere(self, generations: list[Generation]) -> list[Generation]:
        """The takes another account of the project can take now (failover); one query for
        the project's accounts, none when they are not asked."""
        accounts = self.project_accounts()
        return [
            generation
            for generation in generations
            if first_usable(self.destinations(generation, accounts), generation.model_key, self.now)
            is not None
        ]

    def project_accounts(self) -> list[FlowAccount]:
        """The project's accounts in order, as failover spends them, read now: two queries."""
        return accounts_by_project(with_accounts(Project.objects.filter(pk=self.project.pk))).get(
            self.project.pk, []
        )

    def refused(
        self,
        generations: list[Generation],
        error: EngineError,
        *,
        statuses: list[str],
        calls: int = 1,
    ) -> None:
        """An HTTP answer came back refusing the call, so nothing was spent."""
        if isinstance(
            error,
            (
                Throttled,
                BotCheck,
                UpstreamError,
                ImageUnknown,
                NetworkError,
            ),
        ):
            self.requeue(generations, error, calls=calls)
        elif isinstance(error, OutOfCredits):
            # Not one of the take's SUBMIT_ATTEMPTS: refused before any work, it moves on to an
            # account that has not refused it so (or fails naming them), so the project's
            # accounts bound these calls, and with more accounts than attempts it still fails
            # saying why on each rather than "gave up". Likewise for a model's daily quota.
            self.out_of_credits(generations, error)
        elif isinstance(error, ModelQuotaReached):
            self.model_quota_reached(generations, error)
        elif isinstance(error, SessionExpired | TokenExpired | AccountRefused):
            # Nothing was spent (a refusal before or instead of the work): the takes wait while
            # a refused Flow token or session is re-checked, and go on by themselves once it
            # passes; or, for a refusal of the account itself, until an admin fixes the account
            # (``accounts.account_refused``).
            self.wait_for_account(
                generations, account_refused(self.now, self.account, error), statuses=statuses
            )
        else:
            # Unsafe, tier too low, a bad request, an answer of unknown shape: asking again
            # gets the same answer.
            if isinstance(error, ContractError):
                log.warning("Flow answered in an unknown shape: %s", redact_log(error.detail))
            self.fail(generations, error.message, statuses=statuses)

    def wait_for_account(
        self, generations: list[Generation], message: str, *, statuses: list[str]
    ) -> None:
        self.counts["waiting"] += self.release(
            generations,
            statuses,
            status=S.QUEUED,
            reason=shorten(message),
            next_check_at=None,
            updated=timezone.now(),
        )
