"""Only the people and projects staff granted a Flow account may spend its credits.

Alice owns Poseidon and was granted the Studio account; bob edits it; carol watches it;
charlie is signed in but was granted nothing.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from generations import tasks
from generations.engines.catalogue import TIER_TWO
from generations.models import AccountGrant, FlowAccount, Generation, Membership, Project
from tests.conftest import VERTEX_FAST, make_image, make_scene
from tests.views_support import (
    client_for,
    htmx_client_for,
    make_take,
    seen_settings,
    storyboard_seen,
)

Role = Membership.Role
REFUSED = "may not spend the Flow account Studio"


def flow_account(*args: str) -> str:
    out = io.StringIO()
    call_command("flow_account", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def queued(monkeypatch) -> list[list[int]]:
    """Record what would be queued for the worker instead of queueing it."""
    calls: list[list[int]] = []
    monkeypatch.setattr(tasks, "queue_submission", lambda ids: calls.append(list(ids)))
    return calls


@pytest.fixture
def ultra(db) -> FlowAccount:
    return FlowAccount.objects.create(label="Ultra", tier=TIER_TWO, bearer_token="ya29.u")


@pytest.fixture
def charlies_project(charlie, account) -> Project:
    """A project charlie made and pointed at Studio without anyone granting it to him."""
    own = Project.objects.create(name="Charlie's", account=account, created_by=charlie)
    own.add_member(charlie, Role.OWNER)
    return own


# --- the new-project form -------------------------------------------------------------------


def test_the_new_project_form_offers_charlie_no_account_he_was_not_granted(
    project, charlie, account
):
    client = client_for(charlie)

    form = client.get(reverse("project-create")).text
    client.post(reverse("project-create"), {"name": "Mine", "account": account.pk})

    assert "Studio" not in form
    # Not even the only account is picked for him.
    assert Project.objects.get(name="Mine").account is None


def test_a_viewer_cannot_point_a_new_project_at_an_account_by_forging_the_form(
    project, carol, account, ultra
):
    AccountGrant.objects.create(account=ultra, user=carol)
    other = FlowAccount.objects.create(label="Backup", bearer_token="ya29.b")
    AccountGrant.objects.create(account=other, user=carol)

    response = client_for(carol).post(
        reverse("project-create"), {"name": "Mine", "account": account.pk}
    )

    assert response.status_code == 200
    assert "That account is not one you may spend" in response.text
    assert not Project.objects.filter(name="Mine").exists()


def test_only_the_accounts_granted_to_alice_are_offered_and_the_only_one_is_picked(
    project, alice, account, ultra
):
    client = client_for(alice)

    form = client.get(reverse("project-create")).text
    client.post(reverse("project-create"), {"name": "Atlantis"})

    assert "Ultra" not in form
    assert Project.objects.get(name="Atlantis").account == account


# --- generating checks the grant again ------------------------------------------------------


def test_charlie_cannot_generate_on_an_account_nobody_granted_his_project(
    charlies_project, charlie, queued
):
    scene = make_scene(charlies_project, make_image(charlies_project, charlie))

    response = htmx_client_for(charlie).post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "0", "seen_settings": seen_settings(scene)},
    )

    assert response.status_code == 200
    assert REFUSED in response.text
    assert not Generation.objects.exists()
    assert queued == []


def test_generate_all_is_refused_in_words_when_the_account_is_not_granted(
    charlies_project, charlie, queued
):
    make_scene(charlies_project, make_image(charlies_project, charlie))

    response = client_for(charlie).post(
        reverse("project-generate-all", args=[charlies_project.uuid]),
        {"last_generation": "0", "seen_settings": storyboard_seen(charlies_project)},
        follow=True,
    )

    assert "Nothing was generated: This project may not spend the Flow account Studio" in (
        response.text
    )
    assert not Generation.objects.exists()


def test_charlie_is_refused_in_vertex_ai_words_when_the_ungranted_account_is_vertex_ai(
    charlies_project, charlie, account, queued
):
    FlowAccount.objects.filter(pk=account.pk).update(kind=FlowAccount.Kind.VERTEX)
    scene = make_scene(
        charlies_project, make_image(charlies_project, charlie), model_key=VERTEX_FAST
    )

    response = htmx_client_for(charlie).post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "0", "seen_settings": seen_settings(scene)},
    )

    assert "may not spend the Vertex AI account Studio" in response.text
    assert REFUSED not in response.text
    assert not Generation.objects.exists()


@pytest.mark.parametrize("status", [Generation.Status.FAILED, Generation.Status.UNCERTAIN])
def test_retry_and_resubmit_are_refused_once_the_grant_is_revoked(
    project, alice, bob, queued, status
):
    scene = make_scene(project, make_image(project, bob))
    take = make_take(scene, bob, status=status)
    AccountGrant.objects.filter(user=alice).delete()

    response = htmx_client_for(bob).post(
        reverse("take-retry", args=[take.uuid]), {"last_take": "1"}
    )

    assert REFUSED in response.text
    assert scene.generations.count() == 1
    assert queued == []


def test_a_grant_to_an_editor_does_not_let_the_project_spend(project, alice, bob, queued):
    AccountGrant.objects.filter(user=alice).delete()
    AccountGrant.objects.create(account=project.account, user=bob)
    scene = make_scene(project, make_image(project, bob))

    response = htmx_client_for(bob).post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "0", "seen_settings": seen_settings(scene)},
    )

    assert REFUSED in response.text


def test_a_grant_to_the_project_itself_lets_its_members_generate(
    charlies_project, charlie, account, queued, django_capture_on_commit_callbacks
):
    AccountGrant.objects.create(account=account, project=charlies_project)
    scene = make_scene(charlies_project, make_image(charlies_project, charlie))

    with django_capture_on_commit_callbacks(execute=True):
        response = htmx_client_for(charlie).post(
            reverse("scene-generate", args=[scene.uuid]),
            {"last_take": "0", "seen_settings": seen_settings(scene)},
        )

    assert "Queued 1 take." in response.text
    assert scene.generations.count() == 1


def test_a_deactivated_owners_grant_no_longer_counts(project, alice, bob, queued):
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    scene = make_scene(project, make_image(project, bob))

    response = htmx_client_for(bob).post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "0", "seen_settings": seen_settings(scene)},
    )

    assert REFUSED in response.text


def test_the_storyboard_command_refuses_to_generate_without_a_grant(
    charlies_project, charlie, queued
):
    make_scene(charlies_project, make_image(charlies_project, charlie))

    with pytest.raises(CommandError, match=f"Nothing was queued: This project {REFUSED}"):
        call_command(
            "storyboard", "generate", "--project", "Charlie's", "--user", "charlie",
            stdout=io.StringIO(),
        )  # fmt: skip
    assert not Generation.objects.exists()


def test_the_storyboard_import_will_not_make_charlie_a_project_on_studio(
    charlie, account, tmp_path
):
    with pytest.raises(CommandError, match="No Flow or Vertex AI account is granted to charlie"):
        call_command(
            "storyboard", "import", str(tmp_path / "none.csv"), "--project", "New",
            "--user", "charlie", stdout=io.StringIO(),
        )  # fmt: skip
    with pytest.raises(CommandError, match="'Studio' is not granted to charlie"):
        call_command(
            "storyboard", "import", str(tmp_path / "none.csv"), "--project", "New",
            "--user", "charlie", "--account", "Studio", stdout=io.StringIO(),
        )  # fmt: skip


# --- staff grant and revoke -----------------------------------------------------------------


def test_flow_account_grant_revoke_and_list(project, charlie, account, ultra):
    assert flow_account("grant", "Ultra", "--user", "charlie") == (
        "Granted account 'Ultra' to charlie.\n"
    )
    assert "already granted" in flow_account("grant", "Ultra", "--user", "charlie")
    assert flow_account("grant", "Ultra", "--project", "Poseidon") == (
        "Granted account 'Ultra' to project 'Poseidon'.\n"
    )
    listing = flow_account("list")
    assert "GRANTS" in listing.splitlines()[0]
    assert "charlie, project 'Poseidon'" in listing
    assert [line for line in listing.splitlines() if line.startswith("Studio")][0].count("alice")

    flow_account("revoke", "Ultra", "--user", "charlie")

    assert list(FlowAccount.objects.granted_to(charlie)) == []
    with pytest.raises(CommandError, match="Account 'Ultra' is not granted to charlie."):
        flow_account("revoke", "Ultra", "--user", "charlie")


def test_flow_account_grant_says_what_it_cannot_find(account, project):
    with pytest.raises(CommandError, match="No user is called 'zed'"):
        flow_account("grant", "Studio", "--user", "zed")
    with pytest.raises(CommandError, match="No project is named 'Atlantis'"):
        flow_account("grant", "Studio", "--project", "Atlantis")
    with pytest.raises(CommandError, match="No account is labelled 'Nope'"):
        flow_account("grant", "Nope", "--user", "alice")
    Project.objects.create(name="Poseidon")
    with pytest.raises(CommandError, match="give the project's UUID instead"):
        flow_account("grant", "Studio", "--project", "Poseidon")
    flow_account("grant", "Studio", "--project", str(project.uuid))
    assert AccountGrant.objects.filter(project=project).exists()


@pytest.fixture
def staff_client(client, db):
    from django.contrib.auth.models import User

    staff = User.objects.create_superuser("root", "root@example.org", "pw")
    client.force_login(staff)
    client.staff = staff
    return client


def project_admin_form(project, **fields) -> dict[str, str]:
    return {
        "name": project.name,
        "account": str(project.account_id or ""),
        "created_by": str(project.created_by_id or ""),
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "later_accounts-TOTAL_FORMS": "0",
        "later_accounts-INITIAL_FORMS": "0",
        "scenes-TOTAL_FORMS": "0",
        "scenes-INITIAL_FORMS": "0",
        **fields,
    }


def test_the_admin_will_not_point_a_project_at_an_account_its_owner_was_not_granted(
    staff_client, project, ultra
):
    url = reverse("admin:generations_project_change", args=[project.pk])

    refused = staff_client.post(url, project_admin_form(project, account=str(ultra.pk)))
    project.refresh_from_db()
    assert "The account Ultra is not granted to this project or to one of its owners" in (
        refused.text
    )
    assert project.account.label == "Studio"

    granted = staff_client.post(
        url, project_admin_form(project, account=str(ultra.pk), grant_account="on")
    )
    project.refresh_from_db()
    assert granted.status_code == 302
    assert project.account == ultra
    grant = AccountGrant.objects.get(account=ultra, project=project)
    assert grant.granted_by == staff_client.staff


def test_staff_grant_an_account_to_a_person_on_the_accounts_admin_page(
    staff_client, charlie, ultra
):
    url = reverse("admin:generations_flowaccount_change", args=[ultra.pk])
    page = staff_client.get(url).text
    response = staff_client.post(
        url,
        {
            "label": "Ultra",
            "tier": TIER_TWO,
            "cool_down_until_0": "",
            "cool_down_until_1": "",
            "problem": "",
            "new_bearer_token": "",
            "new_session_cookie": "",
            "grants-TOTAL_FORMS": "1",
            "grants-INITIAL_FORMS": "0",
            "grants-0-user": str(charlie.pk),
            "grants-0-project": "",
        },
    )

    assert "Who may spend this account" in page
    assert response.status_code == 302
    grant = AccountGrant.objects.get(account=ultra)
    assert (grant.user, grant.granted_by) == (charlie, staff_client.staff)


# --- upgrading ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_on_upgrade_every_project_keeps_the_account_it_had_through_a_project_grant():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("generations", "0010_scene_rules")]
    after = [("generations", "0011_account_grants")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    studio = old.get_model("generations", "FlowAccount").objects.create(label="Studio")
    OldProject = old.get_model("generations", "Project")
    spending = OldProject.objects.create(name="Poseidon", account=studio)
    OldProject.objects.create(name="Draft")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    new = executor.loader.project_state(after).apps

    grants = new.get_model("generations", "AccountGrant").objects.values_list(
        "account__label", "project_id", "user_id"
    )
    assert list(grants) == [("Studio", spending.pk, None)]
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
