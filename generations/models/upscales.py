"""An upscaled copy of a ready take (Flow's 1080p or 4K upsampler), kept beside the take.

Not a take of its own: it has no scene, prompt or seed, appears on no storyboard as a take and
is never picked; its take's card and gallery entry list it as another resolution to play or
download. Like a take it is asked of Flow, polled and downloaded by the worker
(``pipeline/upscale.py``), with the same claim, lease and never-pay-twice rules, so it carries
the same bookkeeping fields. One row per take and resolution: asking again reuses it.
"""

from __future__ import annotations

from uuid import uuid4

from django.conf import settings
from django.db import models
from django.utils import timezone

from ..engines.catalogue import UPSCALERS
from .takes import Generation


class Upscale(models.Model):
    # A take's statuses and their words: an upscale goes through the same states.
    Status = Generation.Status
    IN_FLIGHT = Generation.IN_FLIGHT

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    take = models.ForeignKey("Generation", models.CASCADE, related_name="upscales")
    # Denormalised, as on takes: access checks and budgets look a project's rows up directly.
    project = models.ForeignKey("Project", models.CASCADE, related_name="upscales")
    account = models.ForeignKey(
        "FlowAccount", models.SET_NULL, null=True, blank=True, related_name="upscales"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    resolution = models.CharField(
        max_length=10, choices=[(key, up.label) for key, up in UPSCALERS.items()]
    )
    status = models.CharField(max_length=12, choices=Status, default=Status.QUEUED)
    reason = models.CharField(max_length=500, blank=True)
    # As a take's: the upstream itself reported it failed, so it cost nothing (``SPENDING_Q``).
    upstream_failed = models.BooleanField(default=False, editable=False)
    request_id = models.UUIDField(default=uuid4, unique=True, editable=False)
    operation_name = models.CharField(max_length=200, blank=True)
    cost = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    cost_unit = models.CharField(max_length=10, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claim = models.UUIDField(null=True, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)
    check_errors = models.PositiveSmallIntegerField(default=0)
    download_attempts = models.PositiveSmallIntegerField(default=0)
    video = models.FileField(max_length=300, blank=True)
    video_size = models.PositiveBigIntegerField(null=True, blank=True)
    video_sha256 = models.CharField(max_length=64, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["take", "resolution"]
        constraints = [
            models.UniqueConstraint(fields=["take", "resolution"], name="one_upscale_per_size")
        ]
        indexes = [models.Index(fields=["status", "next_check_at"], name="upscale_status_check")]

    def __str__(self) -> str:
        return f"{self.take} at {self.get_resolution_display()}"

    @property
    def label(self) -> str:
        return UPSCALERS[self.resolution].label if self.resolution in UPSCALERS else self.resolution

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY and bool(self.video)

    @property
    def in_flight(self) -> bool:
        return self.status in self.IN_FLIGHT

    @property
    def submit_again_words(self) -> str:
        """As a take's (``Generation.submit_again_words``), for as long as it is uncertain:
        asking again asks this same row afresh, which is then uncertain no more."""
        return Generation.SUBMIT_AGAIN if self.status == self.Status.UNCERTAIN else ""

    def file_name(self) -> str:
        """Beside its take's clip, in the take's media folder."""
        return f"{self.take.media_dir()}/clip-{self.resolution}.mp4"
