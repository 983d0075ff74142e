"""The admin of takes, what deleted ones spent, and the worker's lease."""

from __future__ import annotations

from collections import Counter

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from .. import tasks, work
from ..models import (
    CannotGenerate,
    Generation,
    KeptSpend,
    Scene,
    WorkerLease,
    delete_takes,
    reread,
)
from .common import (
    NONE,
    RecordAdmin,
    media_url,
    plural_s,
    stored_file_link,
    thumbnail_html,
    were,
)

# What a take asked of the engine: shown read-only, in its own section.
ASKED_FIELDS = ["prompt", "model_key", "aspect", "seed", "mode", *Scene.IMAGE_FIELDS]


UNCERTAIN = Generation.Status.UNCERTAIN


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = [
        "poster_thumbnail",
        "__str__",
        "project",
        "status",
        "short_reason",
        "requested_by",
        "account",
        "model_key",
        "seed",
        "attempts",
        "created",
        "finished_at",
    ]
    list_display_links = ["poster_thumbnail", "__str__"]
    list_filter = ["status", "aspect", "model_key", "account", "project"]
    list_select_related = ["scene", "project", "requested_by", "account"]
    search_fields = [
        "prompt",
        "reason",
        "scene__title",
        "project__name",
        "requested_by__username",
        "operation_name",
        "=uuid",
        "=request_id",
    ]
    date_hierarchy = "created"
    actions = ["poll_now", "retry_as_new_take", "cancel", "resubmit"]
    fieldsets = [
        (None, {"fields": ["uuid", "scene", "project", "take", "requested_by", "account"]}),
        (
            "Asked of Flow",
            {"fields": ASKED_FIELDS},
        ),
        (
            "Progress",
            {
                "fields": [
                    "status",
                    "reason",
                    "tried_again",
                    "request_id",
                    "operation_name",
                    "media_generation_id",
                    "credits_after",
                    "attempts",
                    "lease_until",
                    "next_check_at",
                ]
            },
        ),
        (
            "Result",
            {
                "fields": [
                    "poster_preview",
                    "video_file",
                    "video_size",
                    "video_seconds",
                    "video_sha256",
                    "poster_file",
                    "poster_sha256",
                ]
            },
        ),
        ("Times", {"fields": ["created", "submitted_at", "finished_at", "updated"]}),
    ]
    # Takes change through the worker and the actions only; the form is for reading.
    readonly_fields = flatten_fieldsets(fieldsets)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    # Deleting goes through delete_takes, so what the takes spent stays counted and their
    # files go with them.
    def delete_model(self, request: HttpRequest, obj: Generation) -> None:
        delete_takes([obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        delete_takes(list(queryset))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Every field is read-only, so a Save button would only mislead.
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="Poster")
    def poster_thumbnail(self, take: Generation):
        if not take.poster:
            return NONE
        return thumbnail_html(media_url("media-take-poster", take.uuid), str(take))

    @admin.display(description="Poster")
    def poster_preview(self, take: Generation):
        if not take.poster:
            return NONE
        return thumbnail_html(media_url("media-take-poster", take.uuid), str(take), height=180)

    @admin.display(description="Video")
    def video_file(self, take: Generation):
        return stored_file_link(take.video, media_url("media-take-video", take.uuid))

    @admin.display(description="Poster file")
    def poster_file(self, take: Generation):
        return stored_file_link(take.poster, media_url("media-take-poster", take.uuid))

    @admin.display(description="Tried again")
    def tried_again(self, take: Generation) -> str:
        return take.tried_again_words or NONE

    @admin.display(description="Reason")
    def short_reason(self, take: Generation) -> str:
        reason = take.reason
        return reason if len(reason) <= 80 else reason[:79] + "…"

    @admin.action(description="Poll Flow now for the selected takes", permissions=["change"])
    def poll_now(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        count = tasks.poll_now(ids)
        message = f"Asked the worker to check {count} take{plural_s(count)} now."
        if count < len(ids):
            message += f" {len(ids) - count} {were(len(ids) - count)} not waiting on Flow."
        self.message_user(request, message, messages.SUCCESS if count else messages.WARNING)

    @admin.action(description="Retry the selected takes as new takes", permissions=["change"])
    def retry_as_new_take(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        # As the card's Retry: a ready take or one still coming would be paid for again, so
        # those are left, said once for all of them rather than a refusal each. An uncertain
        # one is left too: submitting it again may pay twice, which only the action that says
        # so in its name does.
        left: Counter[str] = Counter()

        def try_again(take: Generation, user) -> Generation | None:
            # (One already tried again goes on, to be refused saying as which take.)
            fresh_uncertain = take.status == UNCERTAIN and take.tried_again_as is None
            if take.status not in Generation.TRIED_AGAIN or fresh_uncertain:
                left[take.get_status_display().lower()] += 1
                return None
            return work.try_again(take, user)

        self._new_takes(request, queryset, try_again, "Queued {n} new take{s}.")
        if left:
            count = left.total()
            statuses = ", ".join(f"{n} {status}" for status, n in left.most_common())
            words = f"Left {count} take{plural_s(count)} as they are ({statuses})."
            uncertain = UNCERTAIN.label.lower()
            if left.total() > left[uncertain]:
                words += f" {Generation.NOT_TRIED_AGAIN}"
            if left[uncertain]:
                words += (
                    f" An uncertain take may already be paid for: to make it anyway, use "
                    f"“{GenerationAdmin.resubmit.short_description}”."
                )
            self.message_user(request, words, messages.WARNING)

    @admin.action(description="Cancel the selected takes", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        takes = list(queryset.select_related("project", "scene"))
        cancelled = sum(work.cancel(take, request.user) for take in takes)
        message = f"Cancelled {cancelled} take{plural_s(cancelled)}."
        if cancelled < len(takes):
            finished = len(takes) - cancelled
            message += f" {finished} had already finished and {were(finished)} left as they are."
        self.message_user(request, message, messages.SUCCESS if cancelled else messages.WARNING)

    @admin.action(
        description="Submit uncertain takes again (Flow may charge twice)", permissions=["change"]
    )
    def resubmit(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        self._new_takes(request, queryset, work.resubmit, "Submitted {n} take{s} again.")

    def _new_takes(self, request, queryset: QuerySet[Generation], make_take, done: str) -> None:
        """Run ``make_take(take, user)`` on each take chosen (None: it made nothing); report
        what was refused.

        The changelist read the takes before the action ran, and the worker or a teammate on
        the card may have changed one since: each is read again, its row locked for the rest
        of its own transaction (as the card's Retry does), and judged as it is now."""
        made, refused = 0, []
        for take in queryset.select_related("scene", "project__account"):
            try:
                with transaction.atomic():
                    reread(take, take.label, Generation.TRY_AGAIN_FIELDS)
                    made += make_take(take, request.user) is not None
            except CannotGenerate as error:
                refused.append(f"{take}: {error}")
        if made:
            self.message_user(request, done.format(n=made, s=plural_s(made)))
        for line in refused:
            self.message_user(request, line, messages.ERROR)


@admin.register(KeptSpend)
class KeptSpendAdmin(RecordAdmin):
    """What deleted takes and upscales spent, still counted against budgets: read here,
    never added, changed or deleted (deleting the project takes it)."""

    list_display = ["clip", "kind", "project", "requested_by_name", "cost", "cost_unit"]
    list_display += ["created", "deleted_at"]
    list_filter = ["kind", "cost_unit"]
    list_select_related = ["project"]
    search_fields = ["clip", "requested_by_name", "project__name"]
    date_hierarchy = "created"
    fields = ["project", "kind", "clip", "requested_by", "requested_by_name", "cost"]
    fields += ["cost_unit", "created", "deleted_at"]
    readonly_fields = fields


@admin.register(WorkerLease)
class WorkerLeaseAdmin(admin.ModelAdmin):
    list_display = ["name", "holder", "until"]
    readonly_fields = ["name", "holder", "until"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
