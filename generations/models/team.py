"""Sign-in failures, invites and the audit trail."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

from django.conf import settings
from django.db import models
from django.utils import timezone

from ..budgets import amount
from . import activity
from .accounts import COST_USD
from .projects import ClearedLimits, Membership, Project


class SignInFailure(models.Model):
    """One failed sign-in, kept while it counts towards the throttle (generations/throttle.py).

    In the database rather than Django's cache: the default cache lives in each process, and
    with several web workers each would count (and forgive) on its own.
    """

    # Case-folded, so "Alice" and "ALICE" count against the same account.
    username = models.CharField(max_length=150)
    # The client's address; for IPv6 its /64 network, which one client usually holds whole.
    address = models.CharField(max_length=64)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["username", "at"], name="signin_failure_username"),
            models.Index(fields=["address", "at"], name="signin_failure_address"),
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.address} at {self.at:%Y-%m-%d %H:%M:%S}"


def hash_invite_token(token: str) -> str:
    """What an invite stores of its token: a link leaked from the database opens nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


class PasswordResetRequest(models.Model):
    """One request of the password-reset form, counted by the reset throttle
    (generations/reset_throttle.py) for the address typed and for the client it came from."""

    # A keyed hash of the case-folded address typed: counted, never read back, and an address
    # that belongs to nobody here is not kept in the clear.
    email_key = models.CharField(max_length=64)
    address = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["email_key", "at"], name="reset_email_at"),
            models.Index(fields=["address", "at"], name="reset_address_at"),
        ]

    def __str__(self) -> str:
        return f"{self.address or 'unknown'} at {self.at:%Y-%m-%d %H:%M}"


class InviteQuerySet(models.QuerySet):
    def usable(self) -> InviteQuerySet:
        return self.filter(
            used_at__isnull=True, revoked_at__isnull=True, expires__gt=timezone.now()
        )


class Invite(models.Model):
    """An owner's invitation into one project with one role, followed once by whoever has the link.

    Only a hash of the link's token is kept (``hash_invite_token``); the link itself is shown
    to the owner and emailed once, when the invite is made.
    """

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, models.CASCADE, related_name="invites")
    role = models.CharField(max_length=10, choices=Membership.Role, default=Membership.Role.EDITOR)
    email = models.EmailField(blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = InviteQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.get_role_display()} of {self.project} for {self.email or 'a link'}"

    @classmethod
    def issue(cls, project: Project, role: str, by, email: str = "") -> tuple[Invite, str]:
        """A new invite and the token of its link (the token is not stored)."""
        token = secrets.token_urlsafe(32)
        now = timezone.now()
        invite = cls.objects.create(
            project=project,
            role=role,
            email=email,
            token_hash=hash_invite_token(token),
            invited_by=by,
            created=now,
            expires=now + timedelta(days=settings.FLOWSITE_INVITE_DAYS),
        )
        return invite, token

    @classmethod
    def for_token(cls, token: str) -> Invite | None:
        return (
            cls.objects.select_related("project")
            .filter(token_hash=hash_invite_token(token))
            .first()
        )

    @property
    def state(self) -> str:
        if self.used_at is not None:
            return "used"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires <= timezone.now():
            return "expired"
        return "open"

    @property
    def state_words(self) -> str:
        """The state as the Invites page names it (a revoked invite is "withdrawn" there)."""
        return "withdrawn" if self.state == "revoked" else self.state

    def problem(self) -> str:
        """Why this invite cannot be followed, in words, or "" when it can."""
        return {
            "used": "This invite has already been used. Ask the project's owner for a new one.",
            "revoked": "This invite was withdrawn by the project's owner.",
            "expired": "This invite has expired. Ask the project's owner for a new one.",
        }.get(self.state, "")

    def revoke(self) -> bool:
        """Withdraw the invite; False when it was already used or withdrawn."""
        now = timezone.now()
        changed = Invite.objects.filter(
            pk=self.pk, used_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=now)
        if changed:
            self.revoked_at = now
        return bool(changed)

    def claim(self, user) -> bool:
        """Use the invite for ``user`` (call inside the transaction that adds them).

        One conditional UPDATE: of two people following the link at once, the database lets
        exactly one change the row; the other finds it used and gets False.
        """
        now = timezone.now()
        changed = Invite.objects.usable().filter(pk=self.pk).update(used_at=now, used_by=user)
        if changed:
            self.used_at, self.used_by = now, user
        return bool(changed)


class AuditEvent(models.Model):
    """Who did what, when, in which project: written once, never changed (the admin shows it
    read-only). Names are copied in, so the trail still reads after a person or a project is
    deleted."""

    class Action(models.TextChoices):
        INVITE_SENT = "invite.sent", "Invite made"
        INVITE_USED = "invite.used", "Invite used"
        INVITE_REVOKED = "invite.revoked", "Invite withdrawn"
        MEMBER_ADDED = "member.added", "Member added"
        MEMBER_ROLE = "member.role", "Role changed"
        MEMBER_REMOVED = "member.removed", "Member removed"
        PROJECT_CREATED = "project.created", "Project created"
        PROJECT_RENAMED = "project.renamed", "Project renamed"
        PROJECT_ARCHIVED = "project.archived", "Project archived"
        PROJECT_RESTORED = "project.restored", "Project restored"
        PROJECT_DELETED = "project.deleted", "Project deleted"
        PROJECT_DUPLICATED = "project.duplicated", "Project duplicated"
        TAKES_GENERATED = "takes.generated", "Takes generated"
        TAKE_CANCELLED = "take.cancelled", "Take cancelled"
        ACCOUNT_GRANTED = "account.granted", "Account granted"
        ACCOUNT_REVOKED = "account.revoked", "Account revoked"
        ACCOUNT_CHECKED = "account.checked", "Account checked again"
        BUDGET_CHANGED = "budget.changed", "Budget changed"
        ALLOWANCE_CHANGED = "allowance.changed", "Allowance changed"
        ACCOUNTS_ORDERED = "accounts.ordered", "Accounts chosen"
        USER_DELETED = "user.deleted", "User deleted"

    at = models.DateTimeField(default=timezone.now, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    actor_name = models.CharField(max_length=150, blank=True, editable=False)
    project = models.ForeignKey(
        Project, models.SET_NULL, null=True, blank=True, related_name="audit_events", editable=False
    )
    project_name = models.CharField(max_length=120, blank=True, editable=False)
    action = models.CharField(max_length=30, choices=Action, editable=False)
    details = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["project", "-at", "-id"], name="audit_project_at")]

    def __str__(self) -> str:
        return (
            f"{self.at:%Y-%m-%d %H:%M} {self.actor_name or 'system'}: {self.get_action_display()}"
        )

    @classmethod
    def record(
        cls, action: str, actor=None, project: Project | None = None, **details
    ) -> AuditEvent:
        event = cls._unsaved(action, actor, project, details)
        event.save()
        return event

    @classmethod
    def _unsaved(cls, action: str, actor, project: Project | None, details: dict) -> AuditEvent:
        actor = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
        return cls(
            action=action,
            actor=actor,
            actor_name=actor.get_username() if actor else "",
            project=project if project is not None and project.pk else None,
            project_name=project.name if project is not None else "",
            details=details,
        )

    @classmethod
    def people_deleted(cls, users: list, actor=None) -> list[AuditEvent]:
        """Staff deleting people in the admin, one event for each, with the projects they
        were in. Recorded just before they are deleted, in the same transaction: their user
        rows and memberships go, and the events keep their names (and the actor's, should
        staff delete themselves). Two queries."""
        projects: dict[int, list[str]] = {}
        memberships = Membership.objects.filter(user__in=users).order_by("project__name")
        for user_id, name in memberships.values_list("user_id", "project__name"):
            projects.setdefault(user_id, []).append(name)
        events = []
        for user in sorted(users, key=lambda user: user.get_username()):
            details: dict = {"user": user.get_username()}
            if user.pk in projects:
                details["projects"] = projects[user.pk]
            events.append(cls._unsaved(cls.Action.USER_DELETED, actor, None, details))
        return cls.objects.bulk_create(events)

    @classmethod
    def member_added(cls, membership: Membership, actor=None) -> AuditEvent:
        return cls._member_event(cls.Action.MEMBER_ADDED, membership, actor)

    @classmethod
    def member_role(cls, membership: Membership, old_role: str, actor=None) -> AuditEvent:
        return cls.record(
            cls.Action.MEMBER_ROLE,
            actor,
            membership.project,
            member=membership.user.get_username(),
            old=old_role,
            new=membership.role,
        )

    @classmethod
    def member_removed(cls, membership: Membership, actor=None) -> AuditEvent:
        return cls._member_event(cls.Action.MEMBER_REMOVED, membership, actor)

    @classmethod
    def _member_event(cls, action: str, membership: Membership, actor) -> AuditEvent:
        member = membership.user.get_username()
        return cls.record(action, actor, membership.project, member=member, role=membership.role)

    @classmethod
    def budget_changed(
        cls, project: Project, old: Decimal | None, new: Decimal | None, unit: str, actor=None
    ) -> AuditEvent:
        return cls.record(
            cls.Action.BUDGET_CHANGED,
            actor,
            project,
            old=_audited(old, unit),
            new=_audited(new, unit),
            unit=unit,
        )

    @classmethod
    def allowance_changed(
        cls,
        project: Project,
        member: str,
        old: Decimal | None,
        new: Decimal | None,
        unit: str,
        actor=None,
    ) -> AuditEvent:
        return cls.record(
            cls.Action.ALLOWANCE_CHANGED,
            actor,
            project,
            member=member,
            old=_audited(old, unit),
            new=_audited(new, unit),
            unit=unit,
        )

    @classmethod
    def project_deleted(cls, name: str, counts: dict[str, int], actor=None) -> AuditEvent:
        """``Project.delete_with_media`` in the trail, whoever deleted it (its owner or staff
        in the admin). Recorded after the deletion: the event keeps the project's name, not
        the vanished row."""
        return cls.record(cls.Action.PROJECT_DELETED, actor, Project(name=name), **counts)

    @classmethod
    def accounts_chosen(
        cls, project: Project, accounts: list, cleared: ClearedLimits | None, actor=None
    ) -> AuditEvent:
        """``Project.set_accounts`` in the trail, whoever moved the project (its owner, staff
        in the admin, an import): the accounts in order and what limits went with the unit."""
        details: dict = {"accounts": [account.label for account in accounts]}
        if cleared is not None and cleared.budget is not None:
            details["budget_cleared"] = amount(cleared.budget, cleared.unit)
        if cleared is not None and cleared.allowances:
            details["allowances_cleared"] = [
                f"{name} ({amount(value, cleared.unit)})"
                for name, value in cleared.allowances.items()
            ]
        return cls.record(cls.Action.ACCOUNTS_ORDERED, actor, project, **details)

    def summary(self) -> str:
        """The event in a sentence an owner reads (``activity.sentence``), rendered from the
        details so events stored long ago read in the same words as new ones."""
        return activity.sentence(self.action, self.details)


def _audited(value: Decimal | None, unit: str) -> int | str | None:
    """A limit as the audit's JSON keeps it: whole credits as a number, as they always were;
    dollars as "7.50" (JSON has no decimals, and a float would not keep the cents exact)."""
    if value is None:
        return None
    return f"{value:.2f}" if unit == COST_USD else int(value)
