"""The admin of Flow and Vertex AI accounts and who may use them."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.utils import timezone
from django.utils.text import get_text_list

from .. import account_checks, work
from ..engines.vertex import clean_service_account_key, key_email
from ..management.commands.flow_account import clean_bearer_token, clean_session_cookie, mask
from ..models import AccountGrant, AuditEvent, FlowAccount, Project
from ..rules import ENGINE_LABELS
from .common import NONE


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
        if self.instance.pk and data.get("kind") != self.instance.kind:
            if problem := self.engine_change_problem(data["kind"]):
                self.add_error("kind", problem)
            elif not given:
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

    def engine_change_problem(self, kind: str) -> str:
        """Why this account may not change engine: projects spend it, and their scenes (made
        for one engine's models), prices and budgets (in its unit) would silently change
        meaning. "" when none does."""
        account = self.instance
        names = list(
            Project.objects.filter(Q(account=account) | Q(later_accounts__account=account))
            .order_by("name")
            .values_list("name", flat=True)
            .distinct()
        )
        if not names:
            return ""
        shown = names[:3] + ([f"{len(names) - 3} more"] if len(names) > 3 else [])
        one = len(names) == 1
        return (
            f"{get_text_list(shown, 'and')} spend{'s' if one else ''} {account}, and "
            f"{'its' if one else 'their'} scenes, prices and budgets are made for "
            f"{ENGINE_LABELS[account.kind]}. Add a new {ENGINE_LABELS[kind]} account and move "
            f"{'the project' if one else 'the projects'} to it instead."
        )

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


GRANTEE_FIELDS = {"account", "user", "project"}


def _save_grants(request: HttpRequest, formset) -> None:
    grants = formset.save(commit=False)
    before = grants_before(
        [grant for grant, fields in formset.changed_objects if GRANTEE_FIELDS & set(fields)]
    )
    for grant in grants:
        if grant.granted_by_id is None:
            grant.granted_by = request.user
        created = grant._state.adding
        grant.save()
        if created:
            record_grant(AuditEvent.Action.ACCOUNT_GRANTED, grant, request.user)
        elif grant.pk in before:
            record_grant_moved(before[grant.pk], grant, request.user)
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


def grants_before(grants: list[AccountGrant]) -> dict[int, AccountGrant]:
    """These grants as saved, by id, read before a form's values are written over them."""
    if not grants:
        return {}
    saved = AccountGrant.objects.select_related("account", "user", "project")
    return {grant.pk: grant for grant in saved.filter(pk__in=[grant.pk for grant in grants])}


def record_grant_moved(before: AccountGrant, grant: AccountGrant, actor) -> None:
    """A grant edited to another account, person or project: whoever had it lost it, and the
    new grantee got it, in the trail as if staff had revoked one grant and added another."""
    record_grant(AuditEvent.Action.ACCOUNT_REVOKED, before, actor)
    record_grant(AuditEvent.Action.ACCOUNT_GRANTED, grant, actor)


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
        if account.secret_sealed:
            return account.SEALED_HINT
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
        moved = change and GRANTEE_FIELDS & set(form.changed_data)
        before = grants_before([grant] if moved else [])
        super().save_model(request, grant, form, change)
        if not change:
            record_grant(AuditEvent.Action.ACCOUNT_GRANTED, grant, request.user)
        elif before:
            record_grant_moved(before[grant.pk], grant, request.user)

    def delete_model(self, request, grant) -> None:
        super().delete_model(request, grant)
        record_grant(AuditEvent.Action.ACCOUNT_REVOKED, grant, request.user)

    def delete_queryset(self, request, queryset) -> None:
        grants = list(queryset.select_related("account", "user", "project"))
        super().delete_queryset(request, queryset)
        for grant in grants:
            record_grant(AuditEvent.Action.ACCOUNT_REVOKED, grant, request.user)
