"""What deleted takes and upscales spent, kept so the budget goes on counting it.

A clip's cost is counted from its own row (``budgets.month_spending``), and deleting a clip
does not give back what the upstream charged for it. Every path that deletes takes while
their project lives (a take's Delete, Clear failed, a scene's Delete, the admin) goes through
``delete_takes``, which writes what they and their upscales spent here in the same
transaction. Deleting the project takes these rows with it: there is nothing left to budget.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from .. import storage
from ..engines.catalogue import UPSCALERS
from .projects import Project
from .scenes import SPENDING_Q, Scene
from .takes import Generation
from .upscales import Upscale

# What a deleted take or upscale leaves counted: what SPENDING_Q counts, less a take still
# queued (only staff can delete one, in the admin): it was never sent, and now never will be.
KEPT_Q = SPENDING_Q & ~Q(status=Generation.Status.QUEUED)


class KeptSpend(models.Model):
    """What one take or upscale, deleted since, spent: counted by the budget check, the
    Spend page and the project list as if the clip were still there. Written once (by
    ``KeptSpend.keep``), never changed."""

    class Kind(models.TextChoices):
        TAKE = "take", "Take"
        UPSCALE = "upscale", "Upscale"

    project = models.ForeignKey(Project, models.CASCADE, related_name="kept_spends")
    kind = models.CharField(max_length=10, choices=Kind)
    # The name is copied in, as the audit trail does, so the row still says whose it was
    # after the person is deleted.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_by_name = models.CharField(max_length=150, blank=True)
    # What the clip was ("Harbour · take 3", "Harbour · take 3 at 1080p"), for staff.
    clip = models.CharField(max_length=300, blank=True)
    cost = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    cost_unit = models.CharField(max_length=10, blank=True)
    # When the clip was asked for (its own ``created``), so it counts in that month and day.
    created = models.DateTimeField()
    deleted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "spend of a deleted clip"
        verbose_name_plural = "spend of deleted clips"
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["project", "cost_unit", "created"], name="kept_spend_month")
        ]

    def __str__(self) -> str:
        return f"{self.clip or self.get_kind_display()} ({self.requested_by_name or 'nobody'})"

    @classmethod
    def keep(
        cls,
        *,
        takes: QuerySet[Generation] | None = None,
        upscales: QuerySet[Upscale] | None = None,
    ) -> int:
        """Record what these takes and upscales spent (only those ``KEPT_Q`` counts), in two
        reads and one insert however many; call it in the transaction that deletes or
        overwrites them. Returns how many rows it kept."""
        now = timezone.now()
        fields = ("project_id", "requested_by_id", "requested_by__username", "created")
        fields += ("cost", "cost_unit")
        takes = Generation.objects.none() if takes is None else takes
        upscales = Upscale.objects.none() if upscales is None else upscales
        rows = [
            cls._row(cls.Kind.TAKE, row, now)
            for row in takes.filter(KEPT_Q).values(
                *fields,
                number=models.F("take"),
                title=models.F("scene__title"),
                position=models.F("scene__position"),
            )
        ]
        rows += [
            cls._row(cls.Kind.UPSCALE, row, now)
            for row in upscales.filter(KEPT_Q).values(
                *fields,
                "resolution",
                number=models.F("take__take"),
                title=models.F("take__scene__title"),
                position=models.F("take__scene__position"),
            )
        ]
        cls.objects.bulk_create(rows)
        return len(rows)

    @classmethod
    def _row(cls, kind: str, row: dict, now) -> KeptSpend:
        clip = f"{Scene.name_for(row['title'], row['position'])} · take {row['number']}"
        if kind == cls.Kind.UPSCALE:
            size = UPSCALERS.get(row["resolution"])
            clip += f" at {size.label if size else row['resolution']}"
        return cls(
            project_id=row["project_id"],
            kind=kind,
            requested_by_id=row["requested_by_id"],
            requested_by_name=row["requested_by__username"] or "",
            clip=clip[:300],
            cost=row["cost"],
            cost_unit=row["cost_unit"],
            created=row["created"],
            deleted_at=now,
        )


def delete_takes(takes: list[Generation]) -> None:
    """Delete these takes with their upscales (and comments and picks), keeping what they
    spent (``KeptSpend``); their files (and the folders they leave empty) go once the
    transaction commits, and their scenes' ``updated`` moves so open pages drop them through
    the poll.

    The one way takes are deleted while their project lives: the take and scene views, Clear
    failed and the admin all come here (a scene's own delete calls it before deleting the
    scene). Called in the caller's transaction, or in its own.
    """
    if not takes:
        return
    ids = [take.pk for take in takes]
    with transaction.atomic():
        KeptSpend.keep(
            takes=Generation.objects.filter(pk__in=ids),
            upscales=Upscale.objects.filter(take_id__in=ids),
        )
        names = [f.name for take in takes for f in (take.video, take.poster) if f]
        copies = Upscale.objects.filter(take_id__in=ids).exclude(video="")
        names += list(copies.values_list("video", flat=True))
        # Their whole folders too: a clip a worker stored and died before recording is
        # named by no row, and would stay for good.
        folders = [
            Generation.folder_for(project_uuid, take_uuid)
            for take_uuid, project_uuid in Generation.objects.filter(pk__in=ids).values_list(
                "uuid", "project__uuid"
            )
        ]
        Generation.objects.filter(pk__in=ids).delete()
        Scene.objects.filter(pk__in={take.scene_id for take in takes}).update(
            updated=timezone.now()
        )

        def delete_files() -> None:
            storage.delete_files(names)
            storage.delete_folders(folders)

        # Files go only once the rows are surely gone; a rollback keeps both.
        transaction.on_commit(delete_files)
