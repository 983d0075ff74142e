"""The admin of projects, their members, scenes and images."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from ..budgets import cleared_words
from ..models import (
    AccountGrant,
    AuditEvent,
    Generation,
    ImageAsset,
    ImageUpload,
    KeptSpend,
    Membership,
    Project,
    ProjectAccount,
    Scene,
    delete_takes,
)
from .accounts import record_grant
from .common import NONE, media_url, stored_file_link, thumbnail_html
from .members import MembershipInline, member_rows_as_saved, record_member_rows


class ProjectAccountInline(admin.TabularInline):
    """The accounts the project falls back on, after its own, with their state: the owners
    choose and order them on the project's settings page, among those granted."""

    model = ProjectAccount
    extra = 0
    fields = ["position", "account", "account_state"]
    readonly_fields = fields
    verbose_name = "later account"
    verbose_name_plural = "later accounts (the worker falls back on them in this order)"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProjectAccount]:
        return super().get_queryset(request).select_related("account")

    @admin.display(description="State")
    def account_state(self, row: ProjectAccount) -> str:
        return row.account.state_words(timezone.now()) or "Ready"


class SceneInline(admin.TabularInline):
    model = Scene
    extra = 0
    fields = ["position", "title", "prompt", "aspect", "model_key", "seed", "takes"]
    show_change_link = True

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "prompt":
            field.widget = forms.Textarea(attrs={"rows": 2, "cols": 50})
        return field


class ProjectAdminForm(forms.ModelForm):
    """A project may only be pointed at an account granted to it or to one of its owners."""

    grant_account = forms.BooleanField(
        required=False,
        label="Grant the account to this project",
        help_text="Lets this project spend the account chosen above, whoever owns it.",
    )

    class Meta:
        model = Project
        fields = ["name", "account", "created_by"]

    def clean(self):
        data = super().clean()
        account = data.get("account")
        if account is None or "account" not in self.changed_data:
            return data
        # Refused here, before the scenes' rows are judged on the new account (they would be
        # refused on fields this page does not show). self.instance still has its saved
        # account: the form's values reach it only after clean().
        problem = self.instance.engine_move_problem(account) if self.instance.pk else ""
        if problem:
            self.add_error("account", problem)
            return data
        if data.get("grant_account"):
            return data
        if self.instance.pk is None or not account.may_be_spent_by(self.instance):
            self.add_error(
                "account",
                f"The account {account} is not granted to this project or to one of its "
                "owners. Tick “Grant the account to this project”, or grant it to an owner "
                "first.",
            )
        return data


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectAdminForm
    list_display = ["name", "account", "created_by", "member_count", "scene_count", "created"]
    list_filter = ["account"]
    list_select_related = ["account", "created_by"]
    search_fields = ["name", "=uuid"]
    readonly_fields = ["uuid", "flow_project_id", "created"]
    raw_id_fields = ["created_by"]
    inlines = [MembershipInline, ProjectAccountInline, SceneInline]
    date_hierarchy = "created"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_total=Count("memberships", distinct=True),
                scene_total=Count("scenes", distinct=True),
            )
        )

    def save_model(self, request, obj: Project, form, change) -> None:
        if _moves_account(form, change):
            # Saved with the account it had: set_accounts moves it in save_related, after the
            # members' rows, so the allowances this page sent (in the old unit) are cleared
            # with the others when the unit changes.
            obj.account_id = form.initial["account"]
        super().save_model(request, obj, form, change)
        if not change:
            AuditEvent.record(
                AuditEvent.Action.PROJECT_CREATED,
                request.user,
                obj,
                how="admin",
                account=obj.account.label if obj.account is not None else None,
            )

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        project = form.instance
        if _moves_account(form, change):
            first = form.cleaned_data["account"]
            # The account it had is replaced, not kept as a later one.
            later = [
                account
                for account in project.accounts_in_order()
                if account.pk not in (project.account_id, first.pk)
            ]
            cleared = project.set_accounts([first, *later])
            AuditEvent.accounts_chosen(project, [first, *later], cleared, request.user)
            if cleared is not None:
                self.message_user(request, cleared_words(cleared, first), messages.WARNING)
        if form.cleaned_data.get("grant_account") and project.account_id is not None:
            grant, created = AccountGrant.objects.get_or_create(
                account_id=project.account_id,
                project=project,
                defaults={"granted_by": request.user},
            )
            if created:
                record_grant(AuditEvent.Action.ACCOUNT_GRANTED, grant, request.user)

    def save_formset(self, request, form, formset, change) -> None:
        members_before = member_rows_as_saved(formset) if formset.model is Membership else {}
        if formset.model is Scene:
            # The scenes ticked for deletion lose their takes through delete_takes first, so
            # what those spent stays counted (the formset's own delete would cascade).
            gone = [f.instance.pk for f in formset.deleted_forms if f.instance.pk is not None]
            if gone:
                delete_takes(list(Generation.objects.filter(scene_id__in=gone)))
        super().save_formset(request, form, formset, change)
        if formset.model is Membership:
            record_member_rows(formset, members_before, request.user)
        if formset.model is Scene and (
            formset.new_objects or formset.changed_objects or formset.deleted_objects
        ):
            _scenes_edited_in_admin(
                form.instance,
                [*formset.new_objects, *(scene for scene, _ in formset.changed_objects)],
            )

    def delete_model(self, request, obj: Project) -> None:
        _delete_project(obj, request.user)

    def delete_queryset(self, request, queryset: QuerySet[Project]) -> None:
        # All of them or none: the files go once the whole deletion is committed.
        with transaction.atomic():
            for project in queryset:
                _delete_project(project, request.user)

    def get_deleted_objects(self, objs, request: HttpRequest):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Nobody deletes kept spend alone (the admin lists it read-only), but a project goes
        # with it: nothing is left to budget.
        perms_needed.discard(KeptSpend._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    @admin.display(description="Members", ordering="member_total")
    def member_count(self, project: Project) -> int:
        return project.member_total

    @admin.display(description="Scenes", ordering="scene_total")
    def scene_count(self, project: Project) -> int:
        return project.scene_total


class GenerationInline(admin.TabularInline):
    """A scene's takes, read-only: takes are made by Generate and changed by the actions."""

    model = Generation
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["take", "status", "reason", "requested_by", "seed", "created", "finished_at"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Scene)
class SceneAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "project",
        "position",
        "aspect",
        "model_key",
        "takes",
        "take_count",
        "updated",
    ]
    list_filter = ["aspect", "model_key", "project"]
    list_select_related = ["project"]
    search_fields = ["title", "prompt", "project__name", "=uuid"]
    readonly_fields = ["uuid", "created", "updated", "start_image_preview", "mode", "source_take"]
    raw_id_fields = ["start_image", "end_image", "reference_1", "reference_2", "reference_3"]
    inlines = [GenerationInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Scene]:
        return super().get_queryset(request).annotate(take_total=Count("generations"))

    def get_fields(self, request: HttpRequest, obj=None) -> list[str]:
        # The preview beside the start image it shows, not after every other field.
        fields = [
            name for name in super().get_fields(request, obj) if name != "start_image_preview"
        ]
        if "start_image" in fields:
            fields.insert(fields.index("start_image") + 1, "start_image_preview")
        return fields

    def save_model(self, request, obj: Scene, form, change) -> None:
        super().save_model(request, obj, form, change)
        _scenes_edited_in_admin(obj.project, [obj])

    # A scene's takes go through delete_takes before the scene, so what they spent stays
    # counted (the scene's cascade would take it away) and their files go too.
    def delete_model(self, request, obj: Scene) -> None:
        project = obj.project
        with transaction.atomic():
            delete_takes(list(obj.generations.all()))
            super().delete_model(request, obj)
            project.mark_scenes_changed()

    def delete_queryset(self, request, queryset: QuerySet[Scene]) -> None:
        with transaction.atomic():
            projects = list(Project.objects.filter(pk__in=queryset.values("project_id")))
            delete_takes(list(Generation.objects.filter(scene__in=queryset)))
            super().delete_queryset(request, queryset)
            for project in projects:
                project.mark_scenes_changed()

    @admin.display(description="Takes made", ordering="take_total")
    def take_count(self, scene: Scene) -> int:
        return scene.take_total

    @admin.display(description="Start image")
    def start_image_preview(self, scene: Scene):
        if scene.start_image_id is None:
            return NONE
        image = scene.start_image
        return thumbnail_html(media_url("media-image", image.uuid), str(image), height=120)


def _moves_account(form: ProjectAdminForm, change: bool) -> bool:
    """Whether staff gave a saved project another account. Taking its account away is not
    moving it: set_accounts needs one to move to (its limits stay as they were)."""
    return change and "account" in form.changed_data and form.cleaned_data["account"] is not None


def _delete_project(project: Project, actor) -> None:
    """As Settings › Delete: the files its takes made go with the rows (a plain delete would
    leave them on disk for ever, see ``delete_with_media``), and the trail says who deleted
    what."""
    name = project.name
    counts = project.delete_with_media()
    AuditEvent.project_deleted(name, counts, actor)


def _scenes_edited_in_admin(project: Project, scenes: list[Scene]) -> None:
    """Open storyboards follow admin edits too: the edited cards and the list are refreshed."""
    Scene.objects.filter(pk__in=[scene.pk for scene in scenes]).update(updated=timezone.now())
    project.mark_scenes_changed()


@admin.register(ImageAsset)
class ImageAssetAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail",
        "__str__",
        "project",
        "mime_type",
        "width",
        "height",
        "size",
        "uploaded_by",
        "created",
    ]
    list_filter = ["mime_type"]
    list_select_related = ["project", "uploaded_by"]
    search_fields = ["original_name", "sha256", "project__name", "=uuid"]
    # The file itself is shown as a link to the checking media view, never as a file input.
    fields = [
        "uuid",
        "project",
        "stored_file",
        "original_name",
        "mime_type",
        "width",
        "height",
        "size",
        "sha256",
        "uploaded_by",
        "created",
    ]
    readonly_fields = [
        "uuid",
        "project",
        "stored_file",
        "mime_type",
        "width",
        "height",
        "size",
        "sha256",
        "uploaded_by",
        "created",
    ]

    # Start images come in only through the studio or the storyboard import, which check and
    # re-encode them (generations.images); a raw admin upload would skip all of that.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Image")
    def thumbnail(self, image: ImageAsset):
        return thumbnail_html(media_url("media-image", image.uuid), str(image))

    @admin.display(description="File")
    def stored_file(self, image: ImageAsset):
        return stored_file_link(image.file, media_url("media-image", image.uuid))


@admin.register(ImageUpload)
class ImageUploadAdmin(admin.ModelAdmin):
    list_display = ["image", "account", "media_id", "created"]
    list_filter = ["account"]
    list_select_related = ["image", "account"]
    search_fields = ["media_id", "image__original_name"]
    readonly_fields = ["image", "account", "media_id", "created"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
