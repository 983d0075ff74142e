"""The team: owners invite people by email or by link, and people follow the link to join."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import invites
from ..models import AuditEvent, Invite
from .access import Role, get_invite_for_user, get_project_for_user


def _invites_page(request, project, membership, form, **extra) -> HttpResponse:
    listed = project.invites.select_related("invited_by", "used_by")[:50]
    ctx = {
        "project": project,
        "membership": membership,
        "invites": listed,
        "form": form,
        **extra,
    }
    return render(request, "generations/invites.html", ctx)


@require_http_methods(["GET", "POST"])
@login_required
def project_invites(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Owners see the project's invites and make new ones; the link is shown once, here."""
    project, membership = get_project_for_user(request, uuid, Role.OWNER, with_account=False)
    form = invites.InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        invite, token = Invite.issue(project, form.cleaned_data["role"], request.user, email)
        link = request.build_absolute_uri(reverse("invite-accept", args=[token]))
        AuditEvent.record(
            AuditEvent.Action.INVITE_SENT,
            request.user,
            project,
            role=invite.role,
            to=email or "a link",
            invite=str(invite.uuid),
        )
        mail_problem = invites.send_invite_email(invite, link) if email else ""
        if mail_problem:
            messages.warning(request, mail_problem)
        elif email:
            messages.success(request, f"Sent an invite to {email}.")
        # Rendered, not redirected: the token is not stored, so this answer is the only
        # place the owner can ever see the link.
        return _invites_page(
            request,
            project,
            membership,
            invites.InviteForm(),
            new_invite=invite,
            new_link=link,
        )
    return _invites_page(request, project, membership, form)


@require_POST
@login_required
def invite_revoke(request: HttpRequest, uuid: UUID) -> HttpResponse:
    invite, _ = get_invite_for_user(request, uuid, Role.OWNER)
    if invite.revoke():
        AuditEvent.record(
            AuditEvent.Action.INVITE_REVOKED,
            request.user,
            invite.project,
            role=invite.role,
            to=invite.email or "a link",
            invite=str(invite.uuid),
        )
        messages.success(request, "The invite is withdrawn; its link opens nothing now.")
    else:
        messages.error(
            request, f"That invite could not be withdrawn: it was already {invite.state_words}."
        )
    return redirect("project-invites", uuid=invite.project.uuid)


@require_http_methods(["GET", "POST"])
def invite_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Follow an invite link: sign up, or join as the person signed in (who may sign in first)."""
    invite = Invite.for_token(token)
    if invite is None:
        return render(
            request,
            "generations/invite_accept.html",
            {"problem": "This invite link is not valid. Check that the whole link was copied."},
            status=404,
        )
    ctx = {"invite": invite, "project": invite.project}
    # A member is sent to the project whatever became of the link: following it again after
    # joining with it is not a mistake.
    if request.user.is_authenticated and invites.already_member(invite.project, request.user):
        messages.info(request, f"You are already a member of {invite.project}.")
        return redirect("project-detail", uuid=invite.project.uuid)
    problem = invite.problem()
    if problem:
        return render(
            request, "generations/invite_accept.html", {**ctx, "problem": problem}, status=410
        )

    if request.user.is_authenticated:
        if request.method == "POST":
            try:
                invites.join(invite, request.user)
            except invites.InviteUnusable as refusal:
                return render(
                    request,
                    "generations/invite_accept.html",
                    {**ctx, "problem": str(refusal)},
                    status=410,
                )
            return _welcome(request, invite)
        return render(request, "generations/invite_accept.html", ctx)

    form = invites.SignUpForm(request.POST or None, initial={"email": invite.email})
    if request.method == "POST" and form.is_valid():
        try:
            user = invites.sign_up_and_join(invite, form)
        except invites.InviteUnusable as refusal:
            return render(
                request,
                "generations/invite_accept.html",
                {**ctx, "problem": str(refusal)},
                status=410,
            )
        if user is not None:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return _welcome(request, invite)
    return render(request, "generations/invite_accept.html", {**ctx, "form": form})


def _welcome(request: HttpRequest, invite: Invite) -> HttpResponse:
    messages.success(
        request,
        f"Welcome to {invite.project}: you joined as {invite.get_role_display().lower()}.",
    )
    return redirect("project-detail", uuid=invite.project.uuid)


AUDIT_PAGE_SIZE = 50


@require_GET
@login_required
def project_audit(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Who did what in the project, newest first; owners only."""
    project, membership = get_project_for_user(request, uuid, Role.OWNER, with_account=False)
    events = Paginator(project.audit_events.order_by("-at", "-id"), AUDIT_PAGE_SIZE)
    page = events.get_page(request.GET.get("page"))
    return render(
        request,
        "generations/audit.html",
        {"project": project, "membership": membership, "page": page},
    )
