"""Generations (a scene's takes): what was asked of the engine and what came back.

Long because a take's life is one rule read in one place: its states, what may be done to it
next (cancel, retry, submit again, fetch again) and in what words each is refused, and what
it counts as spent (``upstream_failed``).
"""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone

from .. import rules
from ..engines.base import OPERATION_GONE
from ..engines.catalogue import get_model
from .accounts import FlowAccount
from .errors import CannotGenerate, reread
from .projects import Project
from .scenes import SNAPSHOT_FIELDS, ImageAsset, Scene, create_generations


class Generation(models.Model):
    """One take of a scene: one clip asked of Flow, and everything that happened to it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SUBMITTING = "submitting", "Submitting"
        PENDING = "pending", "Waiting to render"
        ACTIVE = "active", "Rendering"
        DOWNLOADING = "downloading", "Downloading"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        # The submit call may or may not have reached Flow; resubmitting could pay twice.
        UNCERTAIN = "uncertain", "Submission uncertain"

    IN_FLIGHT = (
        Status.QUEUED,
        Status.SUBMITTING,
        Status.PENDING,
        Status.ACTIVE,
        Status.DOWNLOADING,
    )
    FINAL = (Status.READY, Status.FAILED, Status.CANCELLED, Status.UNCERTAIN)
    # The takes that may be asked for again (Retry on the card, the admin's action): a failed
    # or cancelled one as a new take, an uncertain one submitted again knowingly. Any other
    # would pay for a clip that is here or still coming; and each of these only once
    # (``tried_again_as``).
    TRIED_AGAIN = (Status.FAILED, Status.CANCELLED, Status.UNCERTAIN)
    NOT_TRIED_AGAIN = "Only a failed, cancelled or uncertain take can be tried again."
    # What the card of an uncertain take (or upscale) adds to its reason while it may still
    # be submitted again: not part of the reason, which stays true once it was.
    SUBMIT_AGAIN = "Submit it again if you want it."
    # What judging a take for trying again reads (locked, ``reread``) before it is done.
    TRY_AGAIN_FIELDS = ("status", "tried_again_as")
    # Said by a take whose upstream, asked again, no longer has the clip it had made
    # (``pipeline.policy.clip_gone_reason``), or no longer knows its operation at all:
    # fetching it again is no use any more.
    CLIP_GONE = "no longer has this clip, so Flowsite cannot fetch it again"
    GONE_WORDS = (CLIP_GONE, OPERATION_GONE)
    # Why an account refused the take (``refused_accounts``): out of credits, or the model's
    # daily quota used up.
    REFUSED_CREDITS = "credits"
    REFUSED_MODEL_QUOTA = "model quota"

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    scene = models.ForeignKey(Scene, models.CASCADE, related_name="generations")
    # Denormalised so a project's gallery and poll need no join through scenes.
    project = models.ForeignKey(Project, models.CASCADE, related_name="generations")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="generations"
    )
    account = models.ForeignKey(
        FlowAccount, models.SET_NULL, null=True, blank=True, related_name="generations"
    )
    take = models.PositiveIntegerField(default=1)

    # What was asked, frozen at Generate time: editing the scene later does not rewrite history.
    prompt = models.TextField()
    model_key = models.CharField(max_length=60)
    aspect = models.CharField(max_length=10, choices=Scene.AspectChoice)
    # The scene's clip options when the take was made (blank: the engine's default).
    duration = models.PositiveSmallIntegerField(null=True, blank=True)
    resolution = models.CharField(max_length=10, blank=True)
    audio = models.BooleanField(default=False)
    negative_prompt = models.TextField(blank=True)
    person_generation = models.CharField(max_length=20, blank=True)
    seed = models.PositiveIntegerField()
    # What the clip was made from (the scene's mode and the images it used then), so the take
    # can be asked for again as it was.
    mode = models.CharField(max_length=12, choices=Scene.Mode, default=Scene.Mode.IMAGE)
    start_image = models.ForeignKey(
        ImageAsset, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The ready take this take extends (its scene's ``source_take`` when it was asked for).
    source_take = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="+"
    )
    end_image = models.ForeignKey(
        ImageAsset, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reference_1 = models.ForeignKey(
        ImageAsset, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reference_2 = models.ForeignKey(
        ImageAsset, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reference_3 = models.ForeignKey(
        ImageAsset, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    status = models.CharField(max_length=12, choices=Status, default=Status.QUEUED)
    reason = models.CharField(max_length=500, blank=True)
    # Set when the upstream itself reported the clip failed before making it (its safety
    # filter, a failed render), which it does not charge. A failed take Flowsite stopped
    # following (stuck, an answer it could not read, an operation the upstream no longer
    # knows) leaves it False: the upstream may have made and charged its clip, so it counts
    # as spent (``SPENDING_Q``). False is the reading that errs on counting.
    upstream_failed = models.BooleanField(default=False, editable=False)
    # The number of the take this one was tried again as: a take is tried again once, so a
    # second press, a stale card or the admin cannot buy one more clip for it (an uncertain one
    # may have been paid for already). A number, not a link: deleting the new take must not
    # offer this one again, and a scene never gives a number twice.
    tried_again_as = models.PositiveIntegerField(null=True, blank=True)
    # The id Flowsite chose for this clip (sent as Flow's per-clip sceneId).
    request_id = models.UUIDField(default=uuid4, unique=True, editable=False)
    operation_name = models.CharField(max_length=200, blank=True, db_index=True)
    media_generation_id = models.TextField(blank=True)
    credits_after = models.IntegerField(null=True, blank=True)
    # What the take cost when it was asked for (see Scene.take_cost): dollars or credits.
    cost = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    cost_unit = models.CharField(max_length=10, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The accounts on which Flow refused this take before any work, each with why: its id (a
    # string, as JSON keys are) to REFUSED_CREDITS or REFUSED_MODEL_QUOTA. Failover never sends
    # it to one of them again, so it asks each account at most once, whatever they report
    # later (generations/failover.py). A take tried again is a new row, and starts with none.
    refused_accounts = models.JSONField(default=dict, blank=True, editable=False)
    # A worker that claims the take holds it until this time; an expired lease is reclaimed.
    lease_until = models.DateTimeField(null=True, blank=True)
    # The token of the worker pass holding the take; a pass writes only rows carrying its token,
    # so a take cancelled (claim cleared) or reclaimed by another worker is left alone.
    claim = models.UUIDField(null=True, blank=True, editable=False)
    next_check_at = models.DateTimeField(null=True, blank=True)
    # Downloads that failed in a way a fresh link may fix; bounded so a take cannot loop forever.
    download_attempts = models.PositiveSmallIntegerField(default=0)
    # Status calls failed in a row (Flow's 500s, network): the next check backs off further.
    check_errors = models.PositiveSmallIntegerField(default=0)

    video = models.FileField(max_length=300, blank=True)
    video_size = models.PositiveBigIntegerField(null=True, blank=True)
    video_sha256 = models.CharField(max_length=64, blank=True)
    # Measured when the clip was downloaded, so trims are checked without reading the file
    # (which, in a bucket, is not here). None: not measured (unreadable, or from before).
    video_seconds = models.FloatField(null=True, blank=True)
    poster = models.FileField(max_length=300, blank=True)
    poster_sha256 = models.CharField(max_length=64, blank=True)

    created = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Bumped on every change a viewer can see; the page poll asks "what changed since T?".
    updated = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["scene", "take"]
        indexes = [
            models.Index(fields=["status", "next_check_at"], name="gen_status_check"),
            models.Index(fields=["project", "status", "-finished_at"], name="gen_gallery"),
            # The gallery's per-member counts and one member's page of clips, from the index.
            models.Index(
                fields=["project", "status", "requested_by", "-finished_at", "-id"],
                name="gen_gallery_member",
            ),
            models.Index(fields=["project", "updated"], name="gen_project_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.scene} · take {self.take}"

    def refused_by(self, why: str | None = None) -> set[int]:
        """The ids of the accounts that refused the take (only for ``why``, when given)."""
        return {int(pk) for pk, said in self.refused_accounts.items() if why in (None, said)}

    def with_refusal(self, account_id: int, why: str) -> dict[str, str]:
        """``refused_accounts`` once the account ``account_id`` has refused the take for
        ``why``, to be written with the move or the failure that follows."""
        return {**self.refused_accounts, str(account_id): why}

    @property
    def label(self) -> str:
        """How the card names it, and so every sentence about it: "Take 3"."""
        return f"Take {self.take}"

    def manifest_entry(
        self, scene_number: int, file_name: str | None, numbers: dict | None = None
    ) -> dict:
        """What an export's manifest says of this take (``storyboard export`` and the zip of
        takes write the same fields); ``sha256`` is filled in once the file is copied.
        ``numbers`` (take id -> (scene number, take number)) names the take it extends; the
        take comes with ``upscale_list`` to list its resolutions."""
        from ..take_actions import resolutions

        source = None
        if self.source_take_id is not None:
            scene, take = (numbers or {}).get(self.source_take_id, (None, None))
            source = {"scene": scene, "take": take}
        return {
            "source_take": source,
            "resolutions": resolutions(self) if self.is_ready else [],
            "scene": scene_number,
            "take": self.take,
            "prompt": self.prompt,
            "model": self.model_key,
            "aspect": self.aspect,
            "mode": self.mode,
            # The images the clip was made from (load them with ``INPUT_RELATIONS``).
            "inputs": [
                {"role": role, "file": str(image), "sha256": image.sha256}
                for role, image in self.input_images()
            ],
            "seed": self.seed,
            "status": self.status,
            "reason": self.reason,
            "requested_by": self.requested_by.get_username() if self.requested_by else None,
            "file": file_name,
            "sha256": None,
        }

    # What to select_related to read a take's images without a query each.
    INPUT_RELATIONS = ("start_image", "end_image", "reference_1", "reference_2", "reference_3")
    INPUT_ROLES = {
        "start_image": "start",
        "end_image": "end",
        "reference_1": "reference",
        "reference_2": "reference",
        "reference_3": "reference",
    }

    def input_images(self) -> list[tuple[str, ImageAsset]]:
        """(role, image) for each image this take was made from, in the order sent."""
        return [
            (self.INPUT_ROLES[name], image)
            for name in rules.MODE_IMAGE_FIELDS.get(self.mode, ())
            if getattr(self, f"{name}_id") is not None and (image := getattr(self, name))
        ]

    def missing_input(self) -> str:
        """ "The start image", "The end image" or "The reference images" when an image the
        take's mode needs is gone (deleted since), else ""."""
        missing = rules.mode_input_problems(
            self.mode,
            start=self.start_image_id is not None,
            end=self.end_image_id is not None,
            references=sum(
                getattr(self, f"{name}_id") is not None for name in rules.REFERENCE_FIELDS
            ),
        )
        words = {
            "start_image": "The start image",
            "end_image": "The end image",
            "reference_1": "The reference images",
        }
        return words[next(iter(missing))] if missing else ""

    @property
    def in_flight(self) -> bool:
        return self.status in self.IN_FLIGHT

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY

    @property
    def elapsed(self) -> timedelta:
        end = self.finished_at or timezone.now()
        return end - self.created

    def media_dir(self) -> str:
        return self.folder_for(self.project.uuid, self.uuid)

    @staticmethod
    def folder_for(project_uuid, take_uuid) -> str:
        """A take's media folder, where its clip, poster and upscales are stored."""
        return f"{Generation.project_folder(project_uuid)}/{take_uuid}"

    @staticmethod
    def project_folder(project_uuid) -> str:
        """Where the media folders of a project's takes are."""
        return f"clips/{project_uuid}"

    def cancel(self, by=None) -> bool:
        """Stop following this take. False when it had already finished.

        The conditional update also clears the worker's claim, so a pass that is polling or
        downloading this take finds its token gone and leaves the row alone. Flow has no cancel
        call: a clip already submitted may still render (and cost) upstream.
        """
        now = timezone.now()
        reason = f"Cancelled by {by}." if by is not None else "Cancelled."
        changed = Generation.objects.filter(pk=self.pk, status__in=self.IN_FLIGHT).update(
            status=self.Status.CANCELLED,
            reason=reason,
            claim=None,
            lease_until=None,
            next_check_at=None,
            finished_at=now,
            updated=now,
        )
        if changed:
            self.status, self.reason, self.claim, self.lease_until = (
                self.Status.CANCELLED,
                reason,
                None,
                None,
            )
            self.next_check_at, self.finished_at, self.updated = None, now, now
        return bool(changed)

    @property
    def can_fetch_again(self) -> bool:
        """A failed take whose clip the upstream had finished (a download of it was tried,
        ``SPENDING_Q`` counts it as spent): its clip can be asked for again, for nothing,
        unless the upstream already said it no longer has it."""
        return (
            self.status == self.Status.FAILED and self.download_attempts > 0 and not self.clip_gone
        )

    @property
    def clip_gone(self) -> bool:
        return any(words in self.reason for words in self.GONE_WORDS)

    def fetch_again_problem(self) -> str:
        """Why this take's clip cannot be fetched again, in words, or ""."""
        if self.status == self.Status.FAILED and self.clip_gone:
            return (
                f"The clip of take {self.take} is gone upstream; retry it as a new take to "
                "make it again."
            )
        if self.in_flight and self.download_attempts > 0:
            return f"{self.label} is already being fetched again."
        if self.is_ready:
            return f"{self.label} is ready; its clip is here already."
        if not self.can_fetch_again:
            return (
                f"Only a failed take whose clip was made can be fetched again; take "
                f"{self.take} is {self.get_status_display().lower()}."
            )
        if self.account_id is None:
            return (
                "The account this take was made on was removed, so Flowsite cannot ask for "
                "its clip again; retry it as a new take."
            )
        return ""

    def fetch_again(self) -> None:
        """Send this failed take back to the worker, which asks its upstream for fresh links to
        the clip it already made (and charged for) and downloads it again: no new clip is
        asked for, so nothing is paid again. Refused in words otherwise.

        One conditional update on the row as it was read: of two clicks, or a click racing the
        worker, only one changes it; the other is told what became of the take. The download
        count is not set back, since it is what says the clip was paid for (``SPENDING_Q``):
        it moves on to the next multiple of DOWNLOAD_ATTEMPTS, where a round of downloads
        with every attempt again begins (``pipeline.download.Download.failed``).
        """
        from ..pipeline.policy import DOWNLOAD_ATTEMPTS  # the pipeline imports the models

        problem = self.fetch_again_problem()
        if problem:
            raise CannotGenerate(problem)
        now = timezone.now()
        rounds = -(-self.download_attempts // DOWNLOAD_ATTEMPTS)
        fields = {
            "status": self.Status.ACTIVE,
            "reason": "Fetching the clip again; no new clip is asked for.",
            "download_attempts": rounds * DOWNLOAD_ATTEMPTS,
            "check_errors": 0,
            "claim": None,
            "lease_until": None,
            "next_check_at": now,
            "finished_at": None,
            "updated": now,
        }
        changed = Generation.objects.filter(
            pk=self.pk, status=self.Status.FAILED, download_attempts=self.download_attempts
        ).update(**fields)
        if not changed:
            reread(
                self,
                self.label,
                ["status", "reason", "download_attempts", "account"],
                lock=False,
            )
            raise CannotGenerate(
                self.fetch_again_problem()
                or f"{self.label} changed meanwhile; look at it again before fetching it."
            )
        for name, value in fields.items():
            setattr(self, name, value)

    @property
    def can_try_again(self) -> bool:
        return self.status in self.TRIED_AGAIN and self.tried_again_as is None

    @property
    def tried_again_words(self) -> str:
        """ "Submitted again as take 5." (an uncertain take) or "Retried as take 5.", or ""."""
        return f"{self._tried_again.capitalize()}." if self.tried_again_as is not None else ""

    @property
    def submit_again_words(self) -> str:
        """ "Submit it again if you want it." while an uncertain take was not yet, or ""."""
        uncertain = self.status == self.Status.UNCERTAIN
        return self.SUBMIT_AGAIN if uncertain and self.can_try_again else ""

    @property
    def _tried_again(self) -> str:
        # Not only an uncertain one was submitted again: Flow's late answer to its first
        # submission may still come and send it on, rendering and then ready.
        failed = self.status in (self.Status.FAILED, self.Status.CANCELLED)
        return f"{'retried' if failed else 'submitted again'} as take {self.tried_again_as}"

    def retry_problem(self) -> str:
        """Why this take cannot be asked for again as it stands, in words, or ""."""
        if self.tried_again_as is not None:
            return f"{self.label} was already {self._tried_again}."
        if not self.can_try_again:
            return self.NOT_TRIED_AGAIN
        account = self.project.account
        if account is None:
            return rules.NO_ACCOUNT
        if self.scene.mode == Scene.Mode.EXTEND:
            from ..take_actions import extend_problem

            problem = extend_problem(self.source_take, account, self.source_take_id)
            if problem:
                return problem
        else:
            gone = self.missing_input()
            if gone:
                verb = "exist" if "images" in gone else "exists"
                return f"{gone} of this take no longer {verb}; generate from the scene."
        if get_model(self.model_key) is None:
            return f"The model {self.model_key!r} is no longer offered; generate from the scene."
        # The tier rule, in the scene's words (the take keeps the aspect it was made with).
        return rules.model_problem(self.model_key, None, account, self.mode)

    def retry_as_new_take(self, user) -> Generation:
        """A new queued take of the same scene with this take's snapshot; this one says which
        (``tried_again_as``) and is not tried again.

        Marked with a conditional update on the row as it was read, so a copy read before a
        teammate's press (or the worker's last word) makes nothing: its new take is rolled
        back and the refusal says what became of the take."""
        problem = self.retry_problem()
        if problem:
            raise CannotGenerate(problem)
        self.project.check_spending()
        snapshot = {
            name: getattr(self, name) for name in (*SNAPSHOT_FIELDS, "seed", "cost", "cost_unit")
        }
        with transaction.atomic():
            new = create_generations(self.project, user, {self.scene_id: [snapshot]})
            number = new[self.scene_id][0].take
            now = timezone.now()
            marked = Generation.objects.filter(
                pk=self.pk, status=self.status, tried_again_as=None
            ).update(tried_again_as=number, updated=now)
            if not marked:
                reread(self, self.label, self.TRY_AGAIN_FIELDS, lock=False)
                raise CannotGenerate(
                    self.retry_problem()
                    or f"{self.label} changed meanwhile; look at it again before retrying it."
                )
        self.tried_again_as, self.updated = number, now
        return new[self.scene_id][0]

    def resubmit(self, user) -> Generation:
        """Submit an uncertain take again, knowingly: it may be paid for twice. It stays
        uncertain (whether Flow made it is still unknown) and says which take it became."""
        if self.status != self.Status.UNCERTAIN:
            raise CannotGenerate(
                "Only a take whose submission is uncertain can be submitted again."
            )
        return self.retry_as_new_take(user)


class WorkerLease(models.Model):
    """A named lease on one job that must run once across every worker (the pump).

    Taken and renewed with a conditional UPDATE, so it works the same on SQLite and PostgreSQL;
    a holder that crashes simply stops renewing and the lease lapses at ``until``.
    """

    name = models.CharField(max_length=50, unique=True)
    holder = models.CharField(max_length=64, blank=True)
    until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'} until {self.until}"

    @classmethod
    def acquire(cls, name: str, holder: str, seconds: float) -> bool:
        """Take the lease if it is free or lapsed (or renew it if ``holder`` has it)."""
        now = timezone.now()
        until = now + timedelta(seconds=seconds)
        if (
            cls.objects.filter(name=name)
            .filter(Q(until__isnull=True) | Q(until__lt=now) | Q(holder=holder))
            .update(holder=holder, until=until)
        ):
            return True
        try:
            with transaction.atomic():
                cls.objects.create(name=name, holder=holder, until=until)
        except IntegrityError:
            return False  # it exists, and someone else holds it
        return True

    @classmethod
    def release(cls, name: str, holder: str) -> None:
        cls.objects.filter(name=name, holder=holder).update(holder="", until=None)

    @classmethod
    def is_held(cls, name: str) -> bool:
        return cls.objects.filter(name=name, until__gte=timezone.now()).exists()


IN_FLIGHT_Q = Q(status__in=Generation.IN_FLIGHT)
