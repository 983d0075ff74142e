"""Bringing people into a project: the owner's invite, its email, and following the link.

An invite is used once. Joining through it (signing up, or joining as the person already
signed in) claims the invite with one conditional UPDATE inside the transaction that adds the
member, so two people following one link at once cannot both get in.
"""

from __future__ import annotations

import logging
import smtplib

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from .models import AuditEvent, Invite, Membership, Project

logger = logging.getLogger(__name__)


class InviteForm(forms.Form):
    email = forms.EmailField(
        required=False,
        label="Email address",
        help_text="Leave blank to invite by a link you copy and pass on yourself.",
        error_messages={"invalid": "That does not look like an email address."},
    )
    role = forms.ChoiceField(
        choices=Membership.Role.choices,
        initial=Membership.Role.EDITOR,
        error_messages={"invalid_choice": "Choose owner, editor or viewer."},
    )


class SignUpForm(UserCreationForm):
    """A new person's username and password (Django's password validators apply)."""

    email = forms.EmailField(
        required=False,
        help_text="Optional; lets you reset a forgotten password.",
        error_messages={"invalid": "That does not look like an email address."},
    )

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")


class InviteUnusable(Exception):
    """The invite was used, withdrawn or expired before this person could join; the message
    is for them."""


def send_invite_email(invite: Invite, link: str) -> str:
    """Mail the link to the invited address; "" when sent, else why not (in words)."""
    inviter = invite.invited_by.get_username() if invite.invited_by else "A project owner"
    body = (
        f"{inviter} invites you to the Flowsite project “{invite.project}” as "
        f"{invite.get_role_display().lower()}.\n\n"
        f"Follow this link to join (it works once, until "
        f"{invite.expires:%Y-%m-%d %H:%M %Z}):\n\n{link}\n"
    )
    try:
        send_mail(
            f"You are invited to {invite.project} on Flowsite",
            body,
            None,
            [invite.email],
        )
    except (smtplib.SMTPException, OSError) as error:
        logger.warning("Could not email invite %s: %s", invite.uuid, error)
        return (
            f"The email to {invite.email} could not be sent ({error.__class__.__name__}); "
            "copy the link below and send it yourself."
        )
    return ""


def join(invite: Invite, user) -> Membership:
    """Add ``user`` to the invite's project with its role, using the invite up."""
    with transaction.atomic():
        if not invite.claim(user):
            invite.refresh_from_db()
            raise InviteUnusable(invite.problem() or "This invite can no longer be used.")
        membership = invite.project.add_member(user, invite.role)
        AuditEvent.record(
            AuditEvent.Action.INVITE_USED,
            user,
            invite.project,
            role=invite.role,
            invited_by=invite.invited_by.get_username() if invite.invited_by else "",
            invite=str(invite.uuid),
        )
        return membership


def sign_up_and_join(invite: Invite, form: SignUpForm):
    """Create the person the form describes and add them to the project, or neither."""
    try:
        with transaction.atomic():
            user = form.save()
            join(invite, user)
    except IntegrityError:
        # Someone took the username between the form's check and the insert.
        form.add_error("username", "A user with that username already exists.")
        return None
    return user


def already_member(project: Project, user) -> bool:
    return Membership.objects.filter(project=project, user_id=user.pk).exists()
