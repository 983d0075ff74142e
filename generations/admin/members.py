"""The admin of project members: their rows on a project's page and their own pages.

Every change staff make here is in the audit trail as the Members and Spend pages record it,
and no change may leave a project without an owner (``last_owner_refusals``).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from ..budgets import typed_limit
from ..models import AuditEvent, Membership, last_owner_refusals


class LimitField(forms.CharField):
    """A budget or an allowance as typed, read in its project's unit by ``read_limit`` once
    the form knows the project: the Spend page's amounts ("1,000", "$7.50") and its words for
    wrong ones (a DecimalField would refuse "1,000" with "Enter a number")."""

    def to_python(self, value):
        return super().to_python(value) or None

    def has_changed(self, initial, data) -> bool:
        # The saved amount comes back as the page showed it (str of the Decimal) when untouched.
        return ("" if initial is None else str(initial)) != (self.to_python(data) or "")


def read_limit(form: forms.ModelForm, name: str, project) -> None:
    """Put the amount typed in ``form``'s ``name`` (a ``LimitField``) into its cleaned data
    as a Decimal in ``project``'s unit, or refuse it there in the Spend page's words."""
    typed = form.cleaned_data.get(name)
    if typed is None or project is None:
        return
    try:
        form.cleaned_data[name] = typed_limit(typed, project.limits_unit)
    except ValueError as error:
        form.add_error(name, str(error))


class MembershipRowForm(forms.ModelForm):
    """A member's row on the project's page: the allowance is read in the project's unit."""

    monthly_allowance = LimitField(required=False, label="Monthly allowance")

    class Meta:
        model = Membership
        fields = ["user", "role", "monthly_allowance"]

    def clean(self):
        data = super().clean()
        # The page's project (set on every row before it is cleaned, new rows too).
        read_limit(self, "monthly_allowance", self.instance.project)
        return data


class MembershipInlineFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        # As on the Members page: staff may change any row, but not leave the project
        # without an owner to invite, re-role and budget (make another owner first). The
        # page lists every member, so an owner is left exactly when a row says so.
        OWNER = Membership.Role.OWNER
        kept = [row for row in self.forms if row.has_changed() or row.instance.pk is not None]
        if any(
            row.cleaned_data.get("role") == OWNER and not self._should_delete_form(row)
            for row in kept
        ):
            return
        # The rows' instances already hold the form's values: the saved ones are read again.
        was_owner = [
            row.instance.pk for row in self.initial_forms if row.initial.get("role") == OWNER
        ]
        leaving = Membership.objects.select_related("project", "user").filter(pk__in=was_owner)
        refusals = last_owner_refusals(list(leaving)) if was_owner else []
        if refusals:
            raise forms.ValidationError(refusals)


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipRowForm
    formset = MembershipInlineFormSet
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created"]


class MembershipAdminForm(forms.ModelForm):
    monthly_allowance = LimitField(required=False, label="Monthly allowance")

    class Meta:
        model = Membership
        fields = ["project", "user", "role", "monthly_allowance"]

    def clean(self):
        data = super().clean()
        # In the unit of the project chosen on the form (staff may move the row).
        read_limit(self, "monthly_allowance", data.get("project"))
        saved = self.instance
        if saved.pk is None or saved.role != Membership.Role.OWNER:
            return data
        # self.instance still holds the saved row: the form's values reach it after clean().
        stays = (
            data.get("role") == Membership.Role.OWNER
            and data.get("project", saved.project) == saved.project
            and data.get("user", saved.user) == saved.user
        )
        refusal = "" if stays else saved.project.last_owner_words([saved])
        if refusal:
            raise forms.ValidationError(refusal)
        return data


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipAdminForm
    list_display = ["project", "user", "role", "created"]
    list_filter = ["role"]
    list_select_related = ["project", "user"]
    search_fields = ["project__name", "user__username", "user__email"]
    autocomplete_fields = ["project", "user"]
    readonly_fields = ["created"]

    def save_model(self, request, obj: Membership, form, change) -> None:
        before = _memberships_as_saved([obj.pk] if change else [])
        super().save_model(request, obj, form, change)
        record_membership(before.get(obj.pk), obj, request.user)

    def get_deleted_objects(self, objs, request: HttpRequest):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Listed as "protected", the admin's own way of refusing a delete on its
        # confirmation page (for one row and for the bulk action alike).
        rows = list(objs.select_related("project", "user")) if isinstance(objs, QuerySet) else objs
        protected = [*protected, *last_owner_refusals(rows)]
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj: Membership) -> None:
        super().delete_model(request, obj)
        AuditEvent.member_removed(obj, request.user)

    def delete_queryset(self, request, queryset: QuerySet[Membership]) -> None:
        memberships = list(queryset.select_related("project", "user"))
        super().delete_queryset(request, queryset)
        for membership in memberships:
            AuditEvent.member_removed(membership, request.user)


def member_rows_as_saved(formset) -> dict[int, Membership]:
    """The project page's member rows that staff changed or deleted, as saved, by id."""
    return _memberships_as_saved(
        [row.instance.pk for row in formset.initial_forms if row.has_changed()]
    )


def record_member_rows(formset, before: dict[int, Membership], actor) -> None:
    """The project page's member rows just saved, each change in the trail."""
    for membership in formset.new_objects:
        record_membership(None, membership, actor)
    changed = {membership.pk for membership, _ in formset.changed_objects}
    for membership, _ in formset.changed_objects:
        record_membership(before[membership.pk], membership, actor)
    # The other rows that changed were deleted (their instances have lost their ids).
    for pk, membership in before.items():
        if pk not in changed:
            AuditEvent.member_removed(membership, actor)


def _memberships_as_saved(ids: list[int]) -> dict[int, Membership]:
    """These rows as saved, by id, read before a form's values are written over them."""
    if not ids:
        return {}
    rows = Membership.objects.select_related("project", "user").filter(pk__in=ids)
    return {row.pk: row for row in rows}


def record_membership(before: Membership | None, after: Membership, actor) -> None:
    """A member's row that staff added or changed, in the trail as the Members and Spend pages
    record the same change (``before`` is None for a new row). A row moved to another person
    or project removes the one member and adds the other."""
    if before is not None and (before.project_id, before.user_id) != (
        after.project_id,
        after.user_id,
    ):
        AuditEvent.member_removed(before, actor)
        before = None
    if before is None:
        AuditEvent.member_added(after, actor)
    elif before.role != after.role:
        AuditEvent.member_role(after, before.role, actor)
    was = before.monthly_allowance if before is not None else None
    if was != after.monthly_allowance:
        project = after.project
        AuditEvent.allowance_changed(
            project,
            after.user.get_username(),
            was,
            after.monthly_allowance,
            project.limits_unit,
            actor,
        )
