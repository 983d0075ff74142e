"""The admin of people: users, sign-in failures, invites and the audit trail."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from ..models import (
    AuditEvent,
    Invite,
    SignInFailure,
    deleting_people_refusals,
    left_without_members,
)
from .common import RecordAdmin


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


User = get_user_model()


admin.site.unregister(User)


@admin.register(User)
class FlowsiteUserAdmin(UserAdmin):
    actions = ["make_reset_link"]

    def get_deleted_objects(self, objs, request: HttpRequest):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # A person's memberships go with them, so as when staff delete a membership, a
        # project may not be left with members and no owner: listed as "protected", the
        # admin's own way of refusing a delete (on the one's page and in the bulk action).
        protected = [*protected, *deleting_people_refusals([user.pk for user in objs])]
        return deleted, counts, perms_needed, protected

    # Who deleted whom is recorded first, with the delete in one transaction: afterwards the
    # rows the event would name are gone.
    def delete_model(self, request: HttpRequest, obj) -> None:
        empty = left_without_members([obj.pk])
        with transaction.atomic():
            AuditEvent.people_deleted([obj], request.user)
            super().delete_model(request, obj)
        self._tell_left_without_members(request, empty)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        users = list(queryset)
        empty = left_without_members([user.pk for user in users])
        with transaction.atomic():
            AuditEvent.people_deleted(users, request.user)
            super().delete_queryset(request, queryset)
        self._tell_left_without_members(request, empty)

    def _tell_left_without_members(self, request: HttpRequest, projects: list) -> None:
        for project in projects:
            self.message_user(
                request,
                f"Nobody is a member of {project} now, so only staff reach it, here in the "
                "admin: give it an owner on its page, or delete it.",
                messages.WARNING,
            )

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
class AuditEventAdmin(RecordAdmin):
    """The audit trail: browsed and searched, never added to, changed or deleted here."""

    list_display = ("at", "actor_name", "action", "project_name", "summary")
    list_filter = ("action",)
    search_fields = ("actor_name", "project_name")
    date_hierarchy = "at"
    fields = ("at", "actor_name", "actor", "action", "project_name", "project", "details")
    readonly_fields = fields

    @admin.display(description="What happened")
    def summary(self, event: AuditEvent) -> str:
        return event.summary()
