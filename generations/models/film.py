"""Picks, comments and rendered films."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from uuid import uuid4

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from .. import rules
from .errors import CannotGenerate, reread
from .projects import Membership, Project
from .scenes import Scene
from .takes import Generation

# Less than this of a clip may be no whole frame (1/24 s at Veo's rate), and the scene would
# vanish from the film without a word.
MIN_TRIMMED_SECONDS = 0.1


class Pick(models.Model):
    """The take a scene's team chose for the film, with where to cut it.

    One row per scene at most (the one-to-one is the database's promise); the take must be a
    ready take of that scene, which ``Scene.set_pick`` checks.
    """

    scene = models.OneToOneField(Scene, models.CASCADE, related_name="pick")
    take = models.ForeignKey(Generation, models.CASCADE, related_name="picks")
    # Seconds into the clip where the film enters and leaves it; None: its start and its end.
    trim_in = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    trim_out = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    picked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    picked_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.scene}: take {self.take.take}"

    @property
    def trimmed(self) -> bool:
        return self.trim_in is not None or self.trim_out is not None

    @staticmethod
    def trim_problem(
        trim_in, trim_out, clip_seconds: float | None = None, seam: float = 0.0
    ) -> str:
        """Why the film cannot enter a clip at ``trim_in`` and leave it at ``trim_out`` (None:
        its start, its end), in words, or "" when it can: the one rule for the trim form, the
        film page and Render film (``film_tasks``). ``clip_seconds`` None (the clip cannot be
        read here) checks only their order.

        ``seam``: the seconds the film cuts from the clip's end because the next pick extends it
        and repeats them. A trim out inside them is cut there too, but a trim in inside them
        would leave nothing of the clip."""
        if trim_in is not None and trim_out is not None and trim_out <= trim_in:
            return (
                f"Trim out ({_seconds(trim_out)} s) must come after trim in "
                f"({_seconds(trim_in)} s)."
            )
        if trim_out is not None and trim_out <= 0:
            return f"Trim out ({_seconds(trim_out)} s) must come after the clip's start."
        start = float(trim_in or 0)
        if trim_out is not None and float(trim_out) - start < MIN_TRIMMED_SECONDS:
            return (
                f"The film needs at least {MIN_TRIMMED_SECONDS:g} s of a clip; trim in and out "
                f"are {float(trim_out) - start:.2f} s apart."
            )
        if clip_seconds is None:
            return ""
        length = f"{clip_seconds:.2f}"
        usable = clip_seconds - seam
        if trim_in is not None and trim_in >= usable and seam:
            return (
                f"Trim in ({_seconds(trim_in)} s) must be under {usable:.2f} s: the next take in "
                f"the film extends this one and repeats its last {seam:g} s, which the film "
                f"cuts, so the film can use 0 to {usable:.2f} s of this clip."
            )
        if trim_in is not None and trim_in >= clip_seconds:
            return (
                f"Trim in ({_seconds(trim_in)} s) must be inside the clip, which lasts {length} s."
            )
        if trim_out is not None and trim_out > clip_seconds + 0.005:
            return f"Trim out ({_seconds(trim_out)} s) is past the clip's end; it lasts {length} s."
        end = min(clip_seconds if trim_out is None else float(trim_out), usable)
        if end - start < MIN_TRIMMED_SECONDS:
            return (
                f"The film needs at least {MIN_TRIMMED_SECONDS:g} s of a clip; from trim in "
                f"({_seconds(trim_in)} s) it would get {end - start:.2f} s of this one."
            )
        return ""

    def film_span(self, clip_seconds: float | None, seam: float = 0.0) -> tuple[str, str, bool]:
        """Where the film enters and leaves the clip, as render_film cuts it, in words ("0 s",
        "7 s", "the end"), and whether the seam decides the end. ``seam``: the seconds the next
        pick, an extension of this take, repeats (film.Segment.at_seam cuts them): the film
        leaves at the trim out or that many seconds before the clip's end, whichever comes
        first. ``clip_seconds`` None (the clip cannot be measured here): "1 s before its end"."""
        start = f"{_seconds(self.trim_in or 0)} s"
        out = None if self.trim_out is None else f"{_seconds(self.trim_out)} s"
        if not seam:
            return start, out or "the end", False
        if clip_seconds is None:
            return start, f"{seam:g} s before its end", True
        cut = clip_seconds - seam
        if self.trim_out is not None and float(self.trim_out) <= cut:
            return start, out, False
        return start, f"{_seconds(round(Decimal(cut), 2))} s", True

    def film_words(self, clip_seconds: float | None, seam: float = 0.0) -> tuple[str, str]:
        """What the film uses of the clip, for the film page: as one statement, and as where
        it enters and leaves ("0 s to 7 s"; "" when it uses the whole clip)."""
        start, end, at_seam = self.film_span(clip_seconds, seam)
        span = f"{start} to {end}" if self.trimmed or at_seam else ""
        if not at_seam:
            return (f"From {start} to {end}." if self.trimmed else "The whole clip."), span
        over = ""
        if self.trim_out is not None:
            over = (
                f" (if the trim out, {_seconds(self.trim_out)} s, does not come first)"
                if clip_seconds is None
                else f", before the trim out ({_seconds(self.trim_out)} s)"
            )
        return (
            f"From {start} to {end}: the next scene's take extends this one and repeats its "
            f"last {seam:g} s, so the film stops there{over}.",
            span,
        )

    @classmethod
    def choose(cls, take: Generation, user=None) -> Pick:
        """Make ``take`` its scene's pick (replacing any other); its card reaches every open page
        through the poll, because the scene's ``updated`` moves."""
        if take.status != Generation.Status.READY or not take.video:
            raise CannotGenerate("Only a ready take can be picked for the film.")
        now = timezone.now()
        with transaction.atomic():
            # The take was read before this transaction; a teammate may have deleted it since.
            reread(take, take.label)
            pick, _ = Pick.objects.update_or_create(
                scene_id=take.scene_id,
                defaults={
                    "take": take,
                    "trim_in": None,
                    "trim_out": None,
                    "picked_by": user,
                    "picked_at": now,
                },
            )
            Scene.objects.filter(pk=take.scene_id).update(updated=now)
        return pick

    @classmethod
    def clear(cls, scene: Scene) -> bool:
        """The scene has no pick any more; False when it had none."""
        now = timezone.now()
        with transaction.atomic():
            deleted, _ = Pick.objects.filter(scene_id=scene.pk).delete()
            if deleted:
                Scene.objects.filter(pk=scene.pk).update(updated=now)
        return bool(deleted)


def _film_path(instance: FilmRender, filename: str) -> str:
    return instance.file_name()


class FilmRenderQuerySet(models.QuerySet):
    def with_numbers(self) -> FilmRenderQuerySet:
        """Each render with ``number``: its version, 1 for the project's first, counted over
        every render the query's filter keeps (a window function, before any slice: no
        second query), so "version 3" stays version 3 whatever page of them is listed."""
        return self.annotate(
            number=Window(RowNumber(), order_by=[F("created").asc(), F("id").asc()])
        )

    def stale(self, statuses=None, *, seconds: float | None = None) -> FilmRenderQuerySet:
        """The renders among these, in ``statuses`` (queued or rendering unless told), whose
        worker stopped beating (killed, crashed) longer than FLOWSITE_FILM_STALE_SECONDS ago."""
        cutoff = FilmRender.stale_before(seconds)
        return self.filter(status__in=FilmRender.ACTIVE if statuses is None else statuses).filter(
            Q(heartbeat__lt=cutoff) | Q(heartbeat__isnull=True, created__lt=cutoff)
        )


class FilmRender(models.Model):
    """One render of a project's film: who asked, which takes and trims, how far it got.

    Every render is kept as a version. While one renders, the worker writes its progress (the
    share of frames done) and ``heartbeat``; a render whose heartbeat stops is a worker that
    died, which ``reap_stale`` marks failed so the film can be rendered again.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RENDERING = "rendering", "Rendering"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RENDERING)

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, models.CASCADE, related_name="films")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The takes and trims rendered, frozen when the render was asked for: scene number and
    # name, take number and uuid, trim_in, trim_out (see film_tasks.snapshot).
    segments = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=Status, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    step = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    video = models.FileField(upload_to=_film_path, max_length=300, blank=True)
    video_size = models.PositiveBigIntegerField(null=True, blank=True)
    video_sha256 = models.CharField(max_length=64, blank=True)
    duration = models.FloatField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)

    objects = FilmRenderQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["project", "-created"], name="film_project_created")]

    def __str__(self) -> str:
        return f"Film of {self.project} at {self.created:%Y-%m-%d %H:%M}"

    # What a render whose worker stopped beating says, on its card and once reaped.
    WORKER_STOPPED = (
        "The worker stopped in the middle of this render; nothing of it was kept. "
        "Render the film again."
    )

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY and bool(self.video)

    @property
    def state_words(self) -> str:
        """Where the render stands, as the film card says it and its live region announces."""
        if self.active:
            return f"{self.get_status_display()}: {self.step or 'waiting for a worker'}"
        if self.is_ready:
            return "The film is ready."
        return f"The last render failed: {self.reason}"

    def file_name(self) -> str:
        return f"films/{self.project.uuid}/{self.uuid}.mp4"

    @staticmethod
    def stale_before(seconds: float | None = None) -> datetime:
        """A render whose last heartbeat is older than this has lost its worker."""
        seconds = settings.FLOWSITE_FILM_STALE_SECONDS if seconds is None else seconds
        return timezone.now() - timedelta(seconds=seconds)

    @property
    def worker_stopped(self) -> bool:
        """Whether this render's worker stopped beating in the middle of it, read from the row
        alone (no query), before or after the reaper failed it in the database."""
        if self.status != self.Status.RENDERING:
            return False
        return (self.heartbeat or self.created) < self.stale_before()

    def as_shown(self) -> FilmRender:
        """This render as its card shows it: failed once its worker stopped beating, even
        before the reaper (the every-minute watchdog) writes so, so nobody watches a frozen
        percentage meanwhile. Not saved: the reaper also removes the render's partial file."""
        if self.worker_stopped:
            self.status, self.reason = self.Status.FAILED, self.WORKER_STOPPED
        return self

    @classmethod
    def reap_stale(cls, renders: models.QuerySet) -> int:
        """Fail ``renders`` whose worker stopped beating (killed, crashed), so the film can be
        rendered again; their temporary files go with them (film_tasks.reap)."""
        return renders.stale().update(
            status=cls.Status.FAILED, reason=cls.WORKER_STOPPED, finished_at=timezone.now()
        )


class Comment(models.Model):
    """A member's note on a take: plain text, shown on its card with author and time."""

    MAX_LENGTH = 1000

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    take = models.ForeignKey(Generation, models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    body = models.TextField(max_length=MAX_LENGTH)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.author} on {self.take}"

    @classmethod
    def post(cls, take: Generation, author, body: str) -> Comment:
        """A new comment; its card reaches every open page through the poll."""
        text = rules.normalise_line_breaks(body).strip()
        if rules.is_blank(text):
            raise CannotGenerate("Write something before posting the comment.")
        # As prompts: line breaks and tabs, nothing invisible that reorders what others read.
        problem = rules.control_character_problem(text, "The comment", frozenset("\n\t"))
        if problem:
            raise CannotGenerate(f"{problem} (only line breaks and tabs may be in a comment).")
        if len(text) > cls.MAX_LENGTH:
            raise CannotGenerate(
                f"A comment holds at most {cls.MAX_LENGTH} characters; this one has {len(text)}."
            )
        with transaction.atomic():
            # The take was read before this transaction; a teammate may have deleted it since.
            reread(take, take.label)
            comment = cls.objects.create(take=take, author=author, body=text)
            Scene.objects.filter(pk=take.scene_id).update(updated=comment.created)
        return comment

    def may_be_deleted_by(self, user, role: str) -> bool:
        return role == Membership.Role.OWNER or (
            self.author_id is not None and self.author_id == user.pk
        )

    def remove(self) -> None:
        with transaction.atomic():
            self.delete()
            Scene.objects.filter(pk=self.take.scene_id).update(updated=timezone.now())


def _seconds(value) -> str:
    """A trim as a person reads it: "1000", "2.5", never "1E+3" or "2.50"."""
    return f"{Decimal(value).normalize():f}"
