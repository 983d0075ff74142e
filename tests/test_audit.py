"""The audit trail: who did what, when, in which project; shown to owners and staff, never
editable."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from generations.models import AccountGrant, AuditEvent, FlowAccount, Generation, Project
from tests.conftest import PASSWORD, make_image, make_scene
from tests.views_support import (
    client_for,
    htmx_client_for,
    make_take,
    seen_settings,
    storyboard_seen,
)

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
    client_for(bob).post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "0", "seen_settings": seen_settings(scene)},
    )
    client_for(bob).post(
        reverse("project-generate-all", args=[project.uuid]),
        {
            "last_generation": str(Generation.objects.latest("pk").pk),
            "seen_settings": storyboard_seen(project),
        },
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

    client_for(bob).post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "0", "seen_settings": seen_settings(scene)},
    )

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

    assert page.index("Archived the project") < page.index("Renamed the project")
    assert "Renamed the project from Poseidon to Neptune" in page
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

    assert "Granted the account Other" not in page


# --- what an owner reads ----------------------------------------------------------------------
#
# Each kind of event as a sentence in the app's own words. Most are recorded here with the
# details their call sites write, as events already stored hold them: the page renders the
# details, so an event kept from before reads the same as a new one.


def activity(project: Project, user) -> str:
    """The Activity page as its reader sees the text (entities such as &#x27; read back)."""
    response = client_for(user).get(reverse("project-audit", args=[project.uuid]))
    assert response.status_code == 200
    return html.unescape(response.text)


FAST = "veo_3_1_i2v_s_fast"


def test_alice_reads_which_takes_of_which_scene_bob_generated_with_which_model(
    project, alice, bob, queued
):
    make_scene(project, make_image(project, alice), title="Harbour")
    scene = make_scene(project, make_image(project, alice), takes=4)
    client_for(bob).post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "0", "seen_settings": seen_settings(scene)},
    )

    assert "Generated takes 1–4 of Scene 2 (Veo 3.1 Fast)" in activity(project, alice)


def test_alice_reads_a_generate_recorded_before_take_numbers_were_kept_as_a_count(
    project, alice, bob
):
    AuditEvent.record(Action.TAKES_GENERATED, bob, project, takes=4, models=[FAST], scene="Scene 2")
    AuditEvent.record(Action.TAKES_GENERATED, bob, project, takes=1, models=[FAST], scene="Reef")

    page = activity(project, alice)

    assert "Generated 4 takes of Scene 2 (Veo 3.1 Fast)" in page
    assert "Generated 1 take of Reef (Veo 3.1 Fast)" in page
    assert "veo_3_1" not in page


def test_alice_reads_bobs_generate_all_as_scenes_and_takes_with_each_model_once(
    project, alice, bob, queued
):
    image = make_image(project, alice)
    make_scene(project, image, takes=2)
    make_scene(project, image, takes=1, model_key="veo_3_1_i2v_s")
    make_scene(project, image, takes=1, model_key="veo_3_1_i2v_s_fast_portrait", aspect="portrait")
    client_for(bob).post(
        reverse("project-generate-all", args=[project.uuid]),
        {"last_generation": "0", "seen_settings": storyboard_seen(project)},
    )

    page = activity(project, alice)

    assert "Generate all: 3 scenes, 4 takes (Veo 3.1 Fast, Veo 3.1 Quality)" in page


def test_alice_reads_which_take_bobs_retry_became(
    project, alice, bob, queued, django_capture_on_commit_callbacks
):
    scene = make_scene(project, make_image(project, bob))
    failed = make_take(scene, bob, status=Generation.Status.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        htmx_client_for(bob).post(reverse("take-retry", args=[failed.uuid]), {"last_take": "1"})

    assert "Retried take 1 of Scene 1 as take 2 (Veo 3.1 Fast)" in activity(project, alice)


def test_alice_reads_a_retry_recorded_before_the_new_takes_number_was_kept(project, alice, bob):
    AuditEvent.record(
        Action.TAKES_GENERATED,
        bob,
        project,
        takes=1,
        models=["veo_3_1_t2v_fast"],
        scene="Scene 1",
        retry_of=1,
    )
    AuditEvent.record(
        Action.TAKES_GENERATED, bob, project, takes=1, models=[FAST], scene="Reef", resubmitted=3
    )

    page = activity(project, alice)

    assert "Retried take 1 of Scene 1 as a new take (Veo 3.1 Fast)" in page
    assert "Submitted take 3 of Reef again as a new take (Veo 3.1 Fast)" in page


def test_alice_reads_that_bob_submitted_an_uncertain_take_again_and_as_which(
    project, alice, bob, queued, django_capture_on_commit_callbacks
):
    scene = make_scene(project, make_image(project, bob), title="Reef")
    uncertain = make_take(scene, bob, status=Generation.Status.UNCERTAIN)
    with django_capture_on_commit_callbacks(execute=True):
        client_for(bob).post(reverse("take-retry", args=[uncertain.uuid]), {"last_take": "1"})

    assert "Submitted take 1 of Reef again as take 2 (Veo 3.1 Fast)" in activity(project, alice)


def test_alice_reads_which_take_she_cancelled(project, alice):
    AuditEvent.record(Action.TAKE_CANCELLED, alice, project, scene="Harbour", take=3)

    assert "Cancelled take 3 of Harbour" in activity(project, alice)


def test_alice_reads_where_each_project_was_created_and_on_which_account(alice):
    project = Project.objects.create(name="Atlantis")
    project.add_member(alice, "owner")
    for how, account in [
        ("page", "A1"),
        ("admin", "Studio"),
        ("import", "Studio"),
        ("demo", "Emulator"),
        ("page", None),
    ]:
        AuditEvent.record(Action.PROJECT_CREATED, alice, project, how=how, account=account)

    page = activity(project, alice)

    assert "Created the project on the New project page, spending the account A1" in page
    assert "Created the project in the admin, spending the account Studio" in page
    assert (
        "Created the project by importing a storyboard on the server (manage.py storyboard), "
        "spending the account Studio"
    ) in page
    assert (
        "Created the demo project on the server (manage.py flowsite_demo), "
        "spending the account Emulator" in page
    )
    assert "Created the project on the New project page, with no account yet" in page
    assert "how:" not in page


def test_alice_reads_her_projects_renames_archives_restores_and_copies(project, alice):
    AuditEvent.record(Action.PROJECT_RENAMED, alice, project, old="Poseidon", new="Neptune")
    AuditEvent.record(Action.PROJECT_ARCHIVED, alice, project)
    AuditEvent.record(Action.PROJECT_RESTORED, alice, project)
    AuditEvent.record(Action.PROJECT_DUPLICATED, alice, project, copy="Neptune (copy)")
    AuditEvent.record(Action.PROJECT_DUPLICATED, alice, project, copy_of="Triton")

    page = activity(project, alice)

    assert "Renamed the project from Poseidon to Neptune" in page
    assert "Archived the project" in page
    assert "Restored the project" in page
    assert "Duplicated the project as Neptune (copy)" in page
    assert "Made the project by duplicating Triton" in page


def test_a_deleted_project_reads_with_what_went_with_it(alice):
    deleted = AuditEvent.project_deleted("Poseidon", {"scenes": 3, "takes": 1}, alice)
    empty = AuditEvent.project_deleted("Triton", {"scenes": 0, "takes": 0}, alice)

    assert deleted.summary() == "Deleted the project with its 3 scenes and 1 take"
    assert empty.summary() == "Deleted the project, which had no scenes and no takes"


def test_alice_reads_invites_made_used_and_withdrawn(project, alice):
    for action, to in [
        (Action.INVITE_SENT, "dora@example.org"),
        (Action.INVITE_SENT, "a link"),
        (Action.INVITE_REVOKED, "erin@example.org"),
        (Action.INVITE_REVOKED, "a link"),
    ]:
        AuditEvent.record(action, alice, project, role="viewer", to=to, invite="u-u-i-d")
    AuditEvent.record(
        Action.INVITE_USED, None, project, role="editor", invited_by="alice", invite="u-u-i-d"
    )
    AuditEvent.record(
        Action.INVITE_USED, None, project, role="viewer", invited_by="", invite="u-u-i-d"
    )

    page = activity(project, alice)

    assert "Invited dora@example.org to join as viewer" in page
    assert "Made an invite link to join as viewer" in page
    assert "Withdrew the invite for erin@example.org to join as viewer" in page
    assert "Withdrew an invite link to join as viewer" in page
    assert "Joined as editor with alice's invite" in page
    assert "Joined as viewer with an invite" in page
    assert "u-u-i-d" not in page


def test_alice_reads_members_added_given_another_role_and_removed(project, alice, bob):
    membership = project.memberships.get(user=bob)
    AuditEvent.member_added(membership, alice)
    AuditEvent.member_role(membership, "owner", alice)
    AuditEvent.member_removed(membership, alice)

    page = activity(project, alice)

    assert "Added bob as editor" in page
    assert "Changed bob's role from owner to editor" in page
    assert "Removed bob, who was editor" in page


def test_alice_reads_accounts_granted_and_taken_back(project, alice):
    AuditEvent.record(
        Action.ACCOUNT_GRANTED, alice, project, account="Studio", to="project Poseidon"
    )
    AuditEvent.record(
        Action.ACCOUNT_REVOKED,
        None,
        project,
        account="Backup",
        to="project 'Poseidon'",
        by="manage.py flow_account",
    )

    page = activity(project, alice)

    assert "Granted the account Studio to project Poseidon" in page
    assert (
        "Took the account Backup back from project 'Poseidon' (on the server, with "
        "manage.py flow_account)"
    ) in page


def test_staff_read_an_account_grant_to_bob_and_a_check_again_in_sentences(alice):
    granted = AuditEvent.record(Action.ACCOUNT_GRANTED, alice, account="Studio", to="bob")
    checked = AuditEvent.record(
        Action.ACCOUNT_CHECKED, alice, account="Studio", was="resting after throttling"
    )

    assert granted.summary() == "Granted the account Studio to bob"
    assert checked.summary() == (
        "Checked the account Studio again, clearing “resting after throttling”"
    )


def test_alice_reads_the_accounts_chosen_and_the_limits_that_went_with_the_unit(project, alice):
    AuditEvent.record(Action.ACCOUNTS_ORDERED, alice, project, accounts=["Studio"])
    AuditEvent.record(
        Action.ACCOUNTS_ORDERED,
        alice,
        project,
        accounts=["Vertex", "Studio"],
        budget_cleared="1,000 credits",
        allowances_cleared=["bob (40 credits)", "carol (5 credits)"],
    )

    page = activity(project, alice)

    assert "Set the project to spend the account Studio" in page
    assert (
        "Set the project to spend the account Vertex, then Studio; cleared the limits set in "
        "the other unit: the monthly budget of 1,000 credits and the allowances of "
        "bob (40 credits), carol (5 credits)"
    ) in page


def test_alice_reads_budgets_and_allowances_in_their_own_unit(project, alice):
    AuditEvent.record(Action.BUDGET_CHANGED, alice, project, old=None, new=1000, unit="credits")
    AuditEvent.record(Action.BUDGET_CHANGED, alice, project, old="7.50", new=None, unit="USD")
    AuditEvent.record(
        Action.ALLOWANCE_CHANGED, alice, project, member="bob", old=40, new=60, unit="credits"
    )

    page = activity(project, alice)

    assert "Changed the monthly budget from unlimited to 1,000 credits" in page
    assert "Changed the monthly budget from $7.50 to unlimited" in page
    assert "Changed bob's monthly allowance from 40 credits to 60 credits" in page


def test_staff_read_a_deleted_user_with_the_projects_they_were_in(alice, bob, charlie, project):
    Project.objects.create(name="Atlantis").add_member(bob, "viewer")

    events = AuditEvent.people_deleted([bob, charlie], alice)

    assert [event.summary() for event in events] == [
        "Deleted the user bob, who was in Atlantis and Poseidon",
        "Deleted the user charlie, who was in no project",
    ]


def test_every_action_reads_as_a_sentence_even_with_its_details_missing(project, alice):
    for action in Action:
        AuditEvent.record(action, alice, project)

    summaries = {event.action: event.summary() for event in AuditEvent.objects.all()}

    assert set(summaries) == set(Action)
    for action, summary in summaries.items():
        assert summary and summary[0].isupper() and ":" not in summary, (action, summary)


def test_staff_read_the_same_sentences_in_the_admins_audit_list(project, alice, staff):
    AuditEvent.record(Action.PROJECT_CREATED, alice, project, how="page", account="A1")

    listing = client_for(staff).get(reverse("admin:generations_auditevent_changelist")).text

    assert "Created the project on the New project page, spending the account A1" in listing


def test_the_activity_page_costs_as_many_queries_for_20_events_as_for_2(project, alice, bob):
    def queries() -> int:
        client = client_for(alice)
        url = reverse("project-audit", args=[project.uuid])
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured.captured_queries)

    def record(count: int) -> None:
        for number in range(count):
            AuditEvent.record(
                Action.TAKES_GENERATED,
                bob,
                project,
                takes=1,
                models=[FAST],
                scene="Reef",
                retry_of=number,
                take_numbers=[number + 1],
            )
            AuditEvent.member_added(project.memberships.get(user=bob), alice)

    record(1)
    two = queries()
    record(9)
    assert queries() == two
