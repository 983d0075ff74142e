"""The Django admin: accounts, projects, scenes, takes, and what to do with stuck takes.

Secrets never leave the server: the account form shows a masked hint and takes a new value in
an empty password box. Thumbnails use the private media views, so the admin sees only what the
media view lets the signed-in person see.

Long because every model has its admin here; it is due to be split by area (accounts and
grants, projects and team, takes, film) into a package, which has not been done yet.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.tokens import default_token_generator
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.html import format_html
from django.utils.http import urlsafe_base64_encode

from . import account_checks, tasks, work
from .engines.vertex import clean_service_account_key, key_email
from .management.commands.flow_account import clean_bearer_token, clean_session_cookie, mask
from .models import (
    AccountGrant,
    AuditEvent,
    CannotGenerate,
    FlowAccount,
    Generation,
    ImageAsset,
    ImageUpload,
    Invite,
    Membership,
    Project,
    ProjectAccount,
    Scene,
    SignInFailure,
    WorkerLease,
)

NONE = "—"


def _media_url(name: str, uuid) -> str | None:
    # The media views belong to the studio; until they are routed the admin just shows no image.
    try:
        return reverse(name, args=[uuid])
    except NoReverseMatch:
        return None


def _thumbnail(url: str | None, alt: str, height: int = 48):
    if url is None:
        return NONE
    return format_html(
        '<img src="{}" alt="{}" height="{}" loading="lazy">',
        url,
        alt,
        height,
    )


def _stored_file(field_file, url: str | None):
    # FieldFile.url would fail: media has no public URL, only the checking views.
    if not field_file:
        return NONE
    if url is None:
        return field_file.name
    return format_html('<a href="{}">{}</a>', url, field_file.name)


# --- accounts -------------------------------------------------------------------------------


class FlowAccountForm(forms.ModelForm):
    """Edits an account without ever sending its secret to the browser."""

    new_bearer_token = forms.CharField(
        label="New bearer token",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Paste to replace the account's credentials; leave empty to keep them.",
    )
    new_session_cookie = forms.CharField(
        label="New session cookie",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="The labs.google __Secure-next-auth.session-token value. Flowsite mints "
        "access tokens from it.",
    )

    new_service_account_key = forms.FileField(
        label="New service-account key (Vertex AI)",
        required=False,
        help_text="The JSON key file of a service account with the Vertex AI User role "
        "(and Storage Object Viewer on the bucket, if a results prefix is set).",
    )

    SECRETS = ("new_bearer_token", "new_session_cookie", "new_service_account_key")

    class Meta:
        model = FlowAccount
        fields = [
            "label",
            "kind",
            "tier",
            "vertex_project",
            "vertex_location",
            "storage_uri",
            "cool_down_until",
            "problem",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # An account that does not say otherwise is a Flow account, as before Vertex AI.
        self.fields["kind"].required = False

    def clean_kind(self) -> str:
        return self.cleaned_data.get("kind") or self.instance.kind or FlowAccount.Kind.FLOW

    def clean(self):
        data = super().clean()
        given = [name for name in self.SECRETS if data.get(name)]
        if len(given) > 1:
            raise forms.ValidationError(
                "Give one credential: a bearer token, a session cookie or a service-account "
                "key, not several (not both)."
            )
        vertex = data.get("kind") == FlowAccount.Kind.VERTEX
        if not self.instance.pk and not given:
            raise forms.ValidationError(
                "Upload a service-account key or paste an access token."
                if vertex
                else "Paste a bearer token or a session cookie."
            )
        if vertex and data.get("new_session_cookie"):
            self.add_error("new_session_cookie", "A Vertex AI account takes no session cookie.")
        if not vertex and data.get("new_service_account_key"):
            self.add_error(
                "new_service_account_key", "Only a Vertex AI account signs in with a key file."
            )
        if self.instance.pk and data.get("kind") != self.instance.kind and not given:
            self.add_error(
                "kind", "Changing the engine needs new credentials for it; give them too."
            )
        for name in given:
            if name not in data:
                continue  # already refused above
            try:
                if name == "new_bearer_token":
                    data[name] = clean_bearer_token(data[name])
                elif name == "new_session_cookie":
                    data[name] = clean_session_cookie(data[name])
                else:
                    upload = data[name]
                    if upload.size > 100_000:
                        raise ValueError("A service-account key file is a few kilobytes at most.")
                    text = upload.read().decode("utf-8", "replace")
                    data[name] = clean_service_account_key(text)
            except ValueError as error:
                self.add_error(name, str(error))
        return data

    def save(self, commit: bool = True) -> FlowAccount:
        account = super().save(commit=False)
        token = self.cleaned_data.get("new_bearer_token")
        cookie = self.cleaned_data.get("new_session_cookie")
        key = self.cleaned_data.get("new_service_account_key")
        # Another project or region is the fix for a refusal Google made about those (API not
        # enabled, no permission, no model there): tried again at once, like new credentials.
        moved = self.instance.pk and {"vertex_project", "vertex_location"} & set(self.changed_data)
        if token or cookie or key:
            # Forgets the token minted from the old ones and the old trouble; once saved, the
            # takes that waited for this fix resume.
            account.replace_credentials(token or "", cookie or "", key or "")
        elif moved:
            account.problem, account.cool_down_until, account.credential_refusals = "", None, 0
        if commit:
            account.save()
        if token or cookie or key or moved:
            # Deferred to the commit (the admin saves inside a transaction, after this).
            work.resume_waiting(account)
        return account


class AccountGrantInline(admin.TabularInline):
    """Who may spend the account: people (their new projects) or single projects."""

    model = AccountGrant
    extra = 0
    fields = ["user", "project", "granted_by", "created"]
    readonly_fields = ["granted_by", "created"]
    raw_id_fields = ["user", "project"]
    verbose_name = "grant"
    verbose_name_plural = "Who may spend this account"


def _save_grants(request: HttpRequest, formset) -> None:
    grants = formset.save(commit=False)
    for grant in grants:
        if grant.granted_by_id is None:
            grant.granted_by = request.user
        created = grant._state.adding
        grant.save()
        if created:
            record_grant(AuditEvent.Action.ACCOUNT_GRANTED, grant, request.user)
    for grant in formset.deleted_objects:
        grant.delete()
        record_grant(AuditEvent.Action.ACCOUNT_REVOKED, grant, request.user)


def record_grant(action: str, grant: AccountGrant, actor=None) -> None:
    """An account granted to (or revoked from) a person or a project, in the audit trail."""
    AuditEvent.record(
        action,
        actor,
        grant.project if grant.project_id else None,
        account=grant.account.label,
        to=f"project {grant.project}" if grant.project_id else str(grant.user),
    )


@admin.register(FlowAccount)
class FlowAccountAdmin(admin.ModelAdmin):
    form = FlowAccountForm
    inlines = [AccountGrantInline]
    list_display = [
        "label",
        "kind",
        "tier",
        "auth_kind",
        "masked_secret",
        "credits",
        "credits_checked_at",
        "state",
    ]
    list_filter = ["kind", "tier"]
    search_fields = ["label", "vertex_project"]
    actions = ["check_again_now"]
    readonly_fields = [
        "what_happened",
        "uuid",
        "auth_kind",
        "masked_secret",
        "credits",
        "credits_checked_at",
        "access_token_expires",
        "created",
    ]
    fieldsets = [
        (None, {"fields": ["label", "kind", "tier", "uuid", "created"]}),
        ("Vertex AI", {"fields": ["vertex_project", "vertex_location", "storage_uri"]}),
        (
            "Credentials",
            {
                "fields": [
                    "auth_kind",
                    "masked_secret",
                    "new_bearer_token",
                    "new_session_cookie",
                    "new_service_account_key",
                ]
            },
        ),
        (
            "State",
            {
                "fields": [
                    "what_happened",
                    "credits",
                    "credits_checked_at",
                    "access_token_expires",
                    "cool_down_until",
                    "problem",
                ]
            },
        ),
    ]

    @admin.display(description="State")
    def state(self, account: FlowAccount) -> str:
        """Cooling down until…, re-checking, the problem for an admin, or ready."""
        return account.state_words(timezone.now()) or "Ready"

    @admin.display(description="What happened")
    def what_happened(self, account: FlowAccount) -> str:
        return account_checks.what_happened(account) if account.pk else NONE

    @admin.action(description="Check again now (after fixing the cause in Google Cloud)")
    def check_again_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        checked = [
            account.label
            for account in queryset
            if account_checks.check_again(account, request.user)
        ]
        if checked:
            self.message_user(
                request,
                f"Checking {', '.join(checked)} again now: the waiting takes go to the worker, "
                "whose next call to Google is the check.",
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request, "Nothing to check again: Google has refused none of them.", messages.INFO
            )

    def response_change(self, request: HttpRequest, account: FlowAccount):
        # The change page's own "Check again now" button (saves the form first, as every
        # button of the page does).
        if "_check_again" in request.POST:
            self.check_again_now(request, FlowAccount.objects.filter(pk=account.pk))
            return HttpResponseRedirect(request.path)
        return super().response_change(request, account)

    @admin.display(description="Secret")
    def masked_secret(self, account: FlowAccount) -> str:
        if account.service_account_key:
            return key_email(account.service_account_key) or "key file"
        return mask(account.secret)

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is AccountGrant:
            _save_grants(request, formset)
        else:
            super().save_formset(request, form, formset, change)


@admin.register(AccountGrant)
class AccountGrantAdmin(admin.ModelAdmin):
    list_display = ["account", "user", "project", "granted_by", "created"]
    list_filter = ["account"]
    list_select_related = ["account", "user", "project", "granted_by"]
    search_fields = ["account__label", "user__username", "project__name"]
    raw_id_fields = ["user", "project"]
    readonly_fields = ["granted_by", "created"]

    def save_model(self, request, grant, form, change) -> None:
        if grant.granted_by_id is None:
            grant.granted_by = request.user
        super().save_model(request, grant, form, change)
        if not change:
            record_grant(AuditEvent.Action.ACCOUNT_GRANTED, grant, request.user)

    def delete_model(self, request, grant) -> None:
        super().delete_model(request, grant)
        record_grant(AuditEvent.Action.ACCOUNT_REVOKED, grant, request.user)

    def delete_queryset(self, request, queryset) -> None:
        grants = list(queryset.select_related("account", "user", "project"))
        super().delete_queryset(request, queryset)
        for grant in grants:
            record_grant(AuditEvent.Action.ACCOUNT_REVOKED, grant, request.user)


# --- projects -------------------------------------------------------------------------------


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created"]


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
        if account is None or data.get("grant_account") or "account" not in self.changed_data:
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

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        project = form.instance
        if form.cleaned_data.get("grant_account") and project.account_id is not None:
            AccountGrant.objects.get_or_create(
                account_id=project.account_id,
                project=project,
                defaults={"granted_by": request.user},
            )

    def save_formset(self, request, form, formset, change) -> None:
        super().save_formset(request, form, formset, change)
        if formset.model is Scene and (
            formset.new_objects or formset.changed_objects or formset.deleted_objects
        ):
            _scenes_edited_in_admin(
                form.instance,
                [*formset.new_objects, *(scene for scene, _ in formset.changed_objects)],
            )

    @admin.display(description="Members", ordering="member_total")
    def member_count(self, project: Project) -> int:
        return project.member_total

    @admin.display(description="Scenes", ordering="scene_total")
    def scene_count(self, project: Project) -> int:
        return project.scene_total


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role", "created"]
    list_filter = ["role"]
    list_select_related = ["project", "user"]
    search_fields = ["project__name", "user__username", "user__email"]
    autocomplete_fields = ["project", "user"]
    readonly_fields = ["created"]


# --- scenes and takes -----------------------------------------------------------------------


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

    def delete_model(self, request, obj: Scene) -> None:
        project = obj.project
        super().delete_model(request, obj)
        project.mark_scenes_changed()

    def delete_queryset(self, request, queryset: QuerySet[Scene]) -> None:
        projects = list(Project.objects.filter(pk__in=queryset.values("project_id")))
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
        return _thumbnail(_media_url("media-image", image.uuid), str(image), height=120)


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
        return _thumbnail(_media_url("media-image", image.uuid), str(image))

    @admin.display(description="File")
    def stored_file(self, image: ImageAsset):
        return _stored_file(image.file, _media_url("media-image", image.uuid))


@admin.register(ImageUpload)
class ImageUploadAdmin(admin.ModelAdmin):
    list_display = ["image", "account", "media_id", "created"]
    list_filter = ["account"]
    list_select_related = ["image", "account"]
    search_fields = ["media_id", "image__original_name"]
    readonly_fields = ["image", "account", "media_id", "created"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


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
    # Takes change through the worker and the actions only; the form is for reading.
    readonly_fields = [
        "uuid",
        "scene",
        "project",
        "requested_by",
        "account",
        "take",
        "prompt",
        "model_key",
        "aspect",
        "seed",
        "mode",
        "start_image",
        "end_image",
        "reference_1",
        "reference_2",
        "reference_3",
        "status",
        "reason",
        "request_id",
        "operation_name",
        "media_generation_id",
        "credits_after",
        "attempts",
        "lease_until",
        "next_check_at",
        "video_file",
        "video_size",
        "video_sha256",
        "poster_file",
        "poster_sha256",
        "poster_preview",
        "created",
        "submitted_at",
        "finished_at",
        "updated",
    ]
    fieldsets = [
        (None, {"fields": ["uuid", "scene", "project", "take", "requested_by", "account"]}),
        (
            "Asked of Flow",
            {
                "fields": [
                    "prompt",
                    "model_key",
                    "aspect",
                    "seed",
                    "mode",
                    "start_image",
                    "end_image",
                    "reference_1",
                    "reference_2",
                    "reference_3",
                ]
            },
        ),
        (
            "Progress",
            {
                "fields": [
                    "status",
                    "reason",
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
                    "video_sha256",
                    "poster_file",
                    "poster_sha256",
                ]
            },
        ),
        ("Times", {"fields": ["created", "submitted_at", "finished_at", "updated"]}),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

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
        return _thumbnail(_media_url("media-take-poster", take.uuid), str(take))

    @admin.display(description="Poster")
    def poster_preview(self, take: Generation):
        if not take.poster:
            return NONE
        return _thumbnail(_media_url("media-take-poster", take.uuid), str(take), height=180)

    @admin.display(description="Video")
    def video_file(self, take: Generation):
        return _stored_file(take.video, _media_url("media-take-video", take.uuid))

    @admin.display(description="Poster file")
    def poster_file(self, take: Generation):
        return _stored_file(take.poster, _media_url("media-take-poster", take.uuid))

    @admin.display(description="Reason")
    def short_reason(self, take: Generation) -> str:
        reason = take.reason
        return reason if len(reason) <= 80 else reason[:79] + "…"

    @admin.action(description="Poll Flow now for the selected takes", permissions=["change"])
    def poll_now(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        count = tasks.poll_now(ids)
        message = f"Asked the worker to check {count} take{_s(count)} now."
        if count < len(ids):
            message += f" {len(ids) - count} {_were(len(ids) - count)} not waiting on Flow."
        self.message_user(request, message, messages.SUCCESS if count else messages.WARNING)

    @admin.action(description="Retry the selected takes as new takes", permissions=["change"])
    def retry_as_new_take(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        self._new_takes(request, queryset, work.retry_as_new_take, "Queued {n} new take{s}.")

    @admin.action(description="Cancel the selected takes", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        takes = list(queryset.select_related("project", "scene"))
        cancelled = sum(work.cancel(take, request.user) for take in takes)
        message = f"Cancelled {cancelled} take{_s(cancelled)}."
        if cancelled < len(takes):
            finished = len(takes) - cancelled
            message += f" {finished} had already finished and {_were(finished)} left as they are."
        self.message_user(request, message, messages.SUCCESS if cancelled else messages.WARNING)

    @admin.action(
        description="Submit uncertain takes again (Flow may charge twice)", permissions=["change"]
    )
    def resubmit(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        self._new_takes(request, queryset, work.resubmit, "Submitted {n} take{s} again.")

    def _new_takes(self, request, queryset, make_take, done: str) -> None:
        """Run ``make_take(take, user)`` on each selected take; report what was refused."""
        made, refused = 0, []
        for take in queryset.select_related("scene", "project__account"):
            try:
                make_take(take, request.user)
                made += 1
            except CannotGenerate as error:
                refused.append(f"{take}: {error}")
        if made:
            self.message_user(request, done.format(n=made, s=_s(made)))
        for line in refused:
            self.message_user(request, line, messages.ERROR)


@admin.register(WorkerLease)
class WorkerLeaseAdmin(admin.ModelAdmin):
    list_display = ["name", "holder", "until"]
    readonly_fields = ["name", "holder", "until"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(SignInFailure)
class SignInFailureAdmin(admin.ModelAdmin):
    """Failed sign-ins still counting towards the throttle; staff lift a lockout here."""

    list_display = ["username", "address", "at"]
    list_filter = ["at"]
    search_fields = ["username", "address"]
    readonly_fields = ["username", "address", "at"]
    ordering = ["-at"]
    actions = ["unlock_usernames", "unlock_addresses"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(
        description="Unlock the selected usernames (forget their failures from every address)",
        permissions=["delete"],
    )
    def unlock_usernames(self, request: HttpRequest, queryset: QuerySet[SignInFailure]) -> None:
        usernames = sorted(set(queryset.values_list("username", flat=True)))
        SignInFailure.objects.filter(username__in=usernames).delete()
        self.message_user(request, f"Unlocked {', '.join(usernames)}: they may sign in again.")

    @admin.action(
        description="Unlock the selected addresses (forget every failure from them)",
        permissions=["delete"],
    )
    def unlock_addresses(self, request: HttpRequest, queryset: QuerySet[SignInFailure]) -> None:
        addresses = sorted(set(queryset.values_list("address", flat=True)))
        SignInFailure.objects.filter(address__in=addresses).delete()
        self.message_user(request, f"Unlocked {', '.join(addresses)}: sign-ins from there resume.")


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _were(count: int) -> str:
    return "was" if count == 1 else "were"


# --- people ---------------------------------------------------------------------------------

User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class FlowsiteUserAdmin(UserAdmin):
    actions = ["make_reset_link"]

    @admin.action(description="Make a one-time password reset link")
    def make_reset_link(self, request: HttpRequest, queryset: QuerySet) -> None:
        """For people without an email address: staff pass the link on themselves. Django's
        reset token stops working once the password is changed (or the person signs in)."""
        for user in queryset.filter(is_active=True):
            link = request.build_absolute_uri(
                reverse(
                    "password_reset_confirm",
                    kwargs={
                        "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                        "token": default_token_generator.make_token(user),
                    },
                )
            )
            self.message_user(
                request, f"Password reset link for {user.get_username()}: {link}", messages.INFO
            )
        inactive = queryset.filter(is_active=False).count()
        if inactive:
            self.message_user(
                request,
                f"{inactive} inactive user{'s' if inactive != 1 else ''} got no link: "
                "make them active first.",
                messages.WARNING,
            )


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ("project", "role", "email", "invited_by", "created", "expires", "state")
    list_filter = ("role",)
    search_fields = ("project__name", "email")
    readonly_fields = (
        "project",
        "role",
        "email",
        "invited_by",
        "created",
        "expires",
        "used_at",
        "used_by",
        "revoked_at",
    )
    exclude = ("token_hash",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # An invite's link exists only when an owner makes it on the project's invite page.
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit trail: browsed and searched, never added to, changed or deleted here."""

    list_display = ("at", "actor_name", "action", "project_name", "summary")
    list_filter = ("action",)
    search_fields = ("actor_name", "project_name")
    date_hierarchy = "at"
    fields = ("at", "actor_name", "actor", "action", "project_name", "project", "details")
    readonly_fields = fields

    @admin.display(description="Details")
    def summary(self, event: AuditEvent) -> str:
        return event.summary()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
