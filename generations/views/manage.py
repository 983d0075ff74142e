"""Owners run their project: rename, choose its accounts, archive and restore, duplicate,
delete."""

from __future__ import annotations

from uuid import UUID

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from .. import rules
from ..budgets import cleared_words
from ..models import AuditEvent, Project
from .access import Role, get_project_for_user
from .accounts import account_order_form


class RenameForm(forms.Form):
    name = forms.CharField(
        max_length=120,
        validators=[rules.PROJECT_NAME],
        error_messages={"required": rules.PROJECT_NAME_REQUIRED},
    )

    def clean_name(self) -> str:
        return rules.clean_project_name(self.cleaned_data["name"])


class DeleteForm(forms.Form):
    confirm = forms.CharField(
        label="Type the project's name to delete it",
        required=False,
        strip=True,
    )

    def __init__(self, project: Project, *args, **kwargs) -> None:
        self.project = project
        super().__init__(*args, **kwargs)

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"]
        if typed != self.project.name:
            raise ValidationError(
                f"Type the project's name, {self.project.name}, exactly as shown to delete it."
            )
        return typed


def _settings_page(
    request, project, membership, *, rename=None, delete=None, accounts=None, status=200
):
    accounts = accounts or account_order_form(project)
    return render(
        request,
        "generations/project_settings.html",
        {
            "project": project,
            "membership": membership,
            "rename_form": rename or RenameForm(initial={"name": project.name}),
            "delete_form": delete or DeleteForm(project),
            "accounts_form": accounts,
            "counts": project.deletion_counts(),
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@login_required
def project_settings(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """The owner's page: rename here; archive, duplicate and delete post to their own URLs."""
    project, membership = get_project_for_user(request, uuid, Role.OWNER)
    if request.method == "POST":
        form = RenameForm(request.POST)
        if form.is_valid():
            old = project.name
            project.rename(form.cleaned_data["name"])
            AuditEvent.record(
                AuditEvent.Action.PROJECT_RENAMED, request.user, project, old=old, new=project.name
            )
            messages.success(request, f"Renamed {old} to {project.name}.")
            return redirect("project-settings", uuid=project.uuid)
        return _settings_page(request, project, membership, rename=form)
    return _settings_page(request, project, membership)


@require_POST
@login_required
def project_accounts(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Set the project's accounts and their order (owners only)."""
    project, membership = get_project_for_user(request, uuid, Role.OWNER)
    form = account_order_form(project, request.POST)
    if not form.is_valid():
        return _settings_page(request, project, membership, accounts=form, status=400)
    ordered = form.cleaned_data["ordered"]
    cleared = project.set_accounts(ordered)
    AuditEvent.accounts_chosen(project, ordered, cleared, request.user)
    names = ", then ".join(str(account) for account in ordered)
    said = f"{project} now spends {names}."
    if cleared is not None:
        said += " " + cleared_words(cleared, ordered[0])
    messages.success(request, said)
    return redirect("project-settings", uuid=project.uuid)


@require_POST
@login_required
def project_archive(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """``archive=1`` archives, ``archive=0`` restores."""
    project, _ = get_project_for_user(request, uuid, Role.OWNER, with_account=False)
    archive = request.POST.get("archive") != "0"
    if project.set_archived(archive):
        AuditEvent.record(
            AuditEvent.Action.PROJECT_ARCHIVED if archive else AuditEvent.Action.PROJECT_RESTORED,
            request.user,
            project,
        )
        if archive:
            messages.success(
                request,
                f"Archived {project}: it is read-only and out of your project list "
                "(“Show archived” lists it).",
            )
        else:
            messages.success(request, f"Restored {project}: it can be edited and generated again.")
    else:
        messages.info(request, f"{project} was already {'archived' if archive else 'restored'}.")
    return redirect("project-detail", uuid=project.uuid)


@require_POST
@login_required
def project_duplicate(request: HttpRequest, uuid: UUID) -> HttpResponse:
    project, _ = get_project_for_user(request, uuid, Role.OWNER)
    copy = project.duplicate(request.user)
    AuditEvent.record(AuditEvent.Action.PROJECT_DUPLICATED, request.user, project, copy=copy.name)
    AuditEvent.record(
        AuditEvent.Action.PROJECT_DUPLICATED, request.user, copy, copy_of=project.name
    )
    said = f"Made {copy}: the same members and scenes with their start images, and no takes."
    kept = copy.limits_words()
    if kept:
        # Limits count per project: said, so nobody takes the copy for a share of the original's.
        said += (
            f" It keeps {kept}, counted on its own from nothing this month; an owner changes "
            "them on its Spend page."
        )
    messages.success(request, said)
    return redirect("project-detail", uuid=copy.uuid)


@require_POST
@login_required
def project_delete(request: HttpRequest, uuid: UUID) -> HttpResponse:
    project, membership = get_project_for_user(request, uuid, Role.OWNER)
    form = DeleteForm(project, request.POST)
    if not form.is_valid():
        return _settings_page(request, project, membership, delete=form, status=400)
    name = project.name
    counts = project.delete_with_media()
    AuditEvent.project_deleted(name, counts, request.user)
    messages.success(
        request,
        f"Deleted {name} with its {counts['scenes']} scene{'s' if counts['scenes'] != 1 else ''} "
        f"and {counts['takes']} take{'s' if counts['takes'] != 1 else ''}.",
    )
    return redirect("project-list")
