"""The audit trail: who did what, when, in which project; shown to owners and staff, never
editable."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse

from generations.models import AccountGrant, AuditEvent, FlowAccount, Generation, Project
from tests.conftest import PASSWORD, make_image, make_scene
from tests.views_support import client_for

Action = AuditEvent.Action


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def the_event(action: str) -> AuditEvent:
    (event,) = events(action)
    return event


# --- invites and members ----------------------------------------------------------------------


def test_an_invite_made_used_and_another_withdrawn_are_recorded(project, alice, client):
    owner = client_for(alice)
    page = owner.post(
        reverse("project-invites", args=[project.uuid]),
        {"role": "viewer", "email": "dora@example.org"},
    ).text
    path = re.search(r"(/join/[^/\s\"]+/)", page).group(1)
    client.post(
        path, {"username": "dora", "password1": PASSWORD, "password2": PASSWORD, "email": ""}
    )
    owner.post(reverse("project-invites", args=[project.uuid]), {"role": "editor", "email": ""})
    second = project.invites.get(used_at=None)
    owner.post(reverse("invite-revoke", args=[second.uuid]))

    sent = events(Action.INVITE_SENT)
    assert [(e.actor, e.project, e.details["role"], e.details["to"]) for e in sent] == [
        (alice, project, "viewer", "dora@example.org"),
        (alice, project, "editor", "a link"),
    ]
    used = the_event(Action.INVITE_USED)
    assert (used.actor_name, used.project, used.details["invited_by"]) == ("dora", project, "alice")
    revoked = the_event(Action.INVITE_REVOKED)
    assert (revoked.actor, revoked.details["invite"]) == (alice, str(second.uuid))


def test_members_added_rerolled_and_removed_are_recorded(project, alice, bob, charlie):
    owner = client_for(alice)
    members = reverse("project-members", args=[project.uuid])
    owner.post(members, {"action": "add", "username": "charlie", "role": "viewer"})
    owner.post(members, {"action": "role", "username": "bob", "role": "viewer"})
    owner.post(members, {"action": "remove", "username": "carol"})

    assert the_event(Action.MEMBER_ADDED).details == {"member": "charlie", "role": "viewer"}
    assert the_event(Action.MEMBER_ROLE).details == {
        "member": "bob",
        "old": "editor",
        "new": "viewer",
    }
    removed = the_event(Action.MEMBER_REMOVED)
    assert (removed.actor, removed.details) == (alice, {"member": "carol", "role": "viewer"})


def test_a_refused_role_change_records_nothing(project, alice):
    client_for(alice).post(
        reverse("project-members", args=[project.uuid]),
        {"action": "role", "username": "alice", "role": "editor"},
    )

    assert not AuditEvent.objects.exists()


# --- projects ---------------------------------------------------------------------------------


def test_renaming_archiving_restoring_and_duplicating_are_recorded(project, alice):
    owner = client_for(alice)
    owner.post(reverse("project-settings", args=[project.uuid]), {"name": "Neptune"})
    owner.post(reverse("project-archive", args=[project.uuid]), {"archive": "1"})
    owner.post(reverse("project-archive", args=[project.uuid]), {"archive": "1"})  # no change
    owner.post(reverse("project-archive", args=[project.uuid]), {"archive": "0"})
    owner.post(reverse("project-duplicate", args=[project.uuid]))

    assert the_event(Action.PROJECT_RENAMED).details == {"old": "Poseidon", "new": "Neptune"}
    assert the_event(Action.PROJECT_ARCHIVED).project == project
    assert the_event(Action.PROJECT_RESTORED).actor == alice
    copy = Project.objects.exclude(pk=project.pk).get()
    duplicated = events(Action.PROJECT_DUPLICATED)
    assert [(e.project, e.details) for e in duplicated] == [
        (project, {"copy": "Neptune (copy)"}),
        (copy, {"copy_of": "Neptune"}),
    ]


def test_charlie_creating_a_project_on_the_page_and_staff_in_the_admin_are_recorded(
    charlie, account, staff
):
    AccountGrant.objects.create(account=account, user=charlie)
    client_for(charlie).post(reverse("project-create"), {"name": "Atlantis"})
    added = client_for(staff).post(
        reverse("admin:generations_project_add"),
        {
            "name": "Lemuria",
            "account": account.pk,
            "created_by": staff.pk,
            "grant_account": "on",
            **{
                f"{prefix}-{key}": "0"
                for prefix in ("memberships", "later_accounts", "scenes")
                for key in ("TOTAL_FORMS", "INITIAL_FORMS")
            },
        },
    )

    assert added.status_code == 302
    created = events(Action.PROJECT_CREATED)
    assert [(e.project_name, e.actor, e.details) for e in created] == [
        ("Atlantis", charlie, {"how": "page", "account": account.label}),
        ("Lemuria", staff, {"how": "admin", "account": account.label}),
    ]


def test_a_deleted_projects_trail_keeps_its_name(project, alice):
    client_for(alice).post(reverse("project-archive", args=[project.uuid]), {"archive": "1"})
    client_for(alice).post(reverse("project-delete", args=[project.uuid]), {"confirm": "Poseidon"})

    deleted = the_event(Action.PROJECT_DELETED)
    assert (deleted.project, deleted.project_name, deleted.actor) == (None, "Poseidon", alice)
    assert deleted.details == {"scenes": 0, "takes": 0}
    archived = the_event(Action.PROJECT_ARCHIVED)
    assert (archived.project, archived.project_name) == (None, "Poseidon")


# --- takes ------------------------------------------------------------------------------------


def test_generating_and_cancelling_takes_are_recorded(project, alice, bob, queued):
    scene = make_scene(project, make_image(project, alice), title="Harbour", takes=2)
    client_for(bob).post(reverse("scene-generate", args=[scene.uuid]), {"last_take": "0"})
    client_for(bob).post(
        reverse("project-generate-all", args=[project.uuid]),
        {"last_generation": str(Generation.objects.latest("pk").pk)},
    )
    take = Generation.objects.earliest("pk")
    client_for(alice).post(reverse("take-cancel", args=[take.uuid]))
    client_for(alice).post(reverse("take-cancel", args=[take.uuid]))  # already finished

    generated = events(Action.TAKES_GENERATED)
    assert [(e.actor, e.details["takes"]) for e in generated] == [(bob, 2), (bob, 2)]
    assert generated[0].details["scene"] == "Harbour"
    assert generated[1].details["by"] == "Generate all"
    cancelled = the_event(Action.TAKE_CANCELLED)
    assert (cancelled.actor, cancelled.details) == (alice, {"scene": "Harbour", "take": 1})


def test_a_refused_generate_records_nothing(project, alice, bob, queued):
    scene = make_scene(project, None)  # no start image

    client_for(bob).post(reverse("scene-generate", args=[scene.uuid]), {"last_take": "0"})

    assert not AuditEvent.objects.exists()


# --- accounts ---------------------------------------------------------------------------------


def test_the_command_records_accounts_granted_and_revoked(project, account, bob):
    call_command("flow_account", "grant", "Studio", "--user", "bob")
    call_command("flow_account", "grant", "Studio", "--project", "Poseidon")
    call_command("flow_account", "revoke", "Studio", "--project", "Poseidon")

    granted = events(Action.ACCOUNT_GRANTED)
    assert [(e.project, e.details["to"]) for e in granted] == [
        (None, "bob"),
        (project, "project 'Poseidon'"),
    ]
    revoked = the_event(Action.ACCOUNT_REVOKED)
    assert (revoked.project, revoked.details["account"]) == (project, "Studio")
    assert revoked.actor is None and revoked.details["by"] == "manage.py flow_account"


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_superuser("root", "root@example.org", PASSWORD)


def test_the_admin_records_accounts_granted_and_revoked(project, account, bob, staff):
    client = client_for(staff)
    client.post(
        reverse("admin:generations_accountgrant_add"),
        {"account": account.pk, "user": bob.pk, "project": ""},
    )
    grant = AccountGrant.objects.get(user=bob)
    client.post(reverse("admin:generations_accountgrant_delete", args=[grant.pk]), {"post": "yes"})

    granted = the_event(Action.ACCOUNT_GRANTED)
    assert (granted.actor, granted.details["to"]) == (staff, "bob")
    assert the_event(Action.ACCOUNT_REVOKED).actor == staff


def test_the_accounts_own_page_records_grants_made_there(project, account, bob, staff):
    client = client_for(staff)
    prefix = "grants"
    response = client.post(
        reverse("admin:generations_flowaccount_change", args=[account.pk]),
        {
            "label": "Studio",
            "tier": account.tier,
            "new_bearer_token": "",
            "new_session_cookie": "",
            "cool_down_until_0": "",
            "cool_down_until_1": "",
            "problem": "",
            f"{prefix}-TOTAL_FORMS": "2",
            f"{prefix}-INITIAL_FORMS": "1",
            f"{prefix}-0-id": AccountGrant.objects.get(user__username="alice").pk,
            f"{prefix}-0-account": account.pk,
            f"{prefix}-0-user": project.memberships.get(role="owner").user_id,
            f"{prefix}-0-project": "",
            f"{prefix}-1-account": account.pk,
            f"{prefix}-1-user": bob.pk,
            f"{prefix}-1-project": "",
        },
    )

    assert response.status_code == 302, response.text
    assert the_event(Action.ACCOUNT_GRANTED).details == {"account": "Studio", "to": "bob"}


# --- who sees it ------------------------------------------------------------------------------


def test_alice_reads_her_projects_activity_newest_first(project, alice):
    client_for(alice).post(reverse("project-settings", args=[project.uuid]), {"name": "Neptune"})
    client_for(alice).post(reverse("project-archive", args=[project.uuid]), {"archive": "1"})
    AuditEvent.record(Action.PROJECT_RENAMED, alice, Project.objects.create(name="Elsewhere"))

    page = client_for(alice).get(reverse("project-audit", args=[project.uuid])).text

    assert page.index("Project archived") < page.index("Project renamed")
    assert "new: Neptune; old: Poseidon" in page
    assert "Elsewhere" not in page


def test_staff_read_the_trail_in_the_admin_and_cannot_change_it(project, alice, staff):
    AuditEvent.record(Action.PROJECT_RENAMED, alice, project, old="Poseidon", new="Neptune")
    event = AuditEvent.objects.get()
    client = client_for(staff)

    listing = client.get(reverse("admin:generations_auditevent_changelist"))
    assert listing.status_code == 200 and "Neptune" in listing.text
    assert client.get(reverse("admin:generations_auditevent_add")).status_code == 403
    change = reverse("admin:generations_auditevent_change", args=[event.pk])
    assert "Save" not in client.get(change).text
    assert client.post(change, {"action": "member.removed"}).status_code == 403
    delete = reverse("admin:generations_auditevent_delete", args=[event.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.action == Action.PROJECT_RENAMED


def test_staff_grants_outside_a_project_are_not_on_any_projects_page(project, account, bob):
    FlowAccount.objects.create(label="Other")
    call_command("flow_account", "grant", "Other", "--user", "bob")

    page = client_for(project.created_by).get(reverse("project-audit", args=[project.uuid])).text

    assert "Account granted" not in page
