"""Signing in, the project list, creating projects and managing their members."""

from html import unescape

import pytest
from django.urls import reverse

from generations.engines.catalogue import TIER_TWO
from generations.models import AccountGrant, FlowAccount, Membership, Project
from tests.conftest import PASSWORD
from tests.views_support import client_for

Role = Membership.Role


def test_the_sign_in_page_signs_alice_in(alice, client):
    page = client.get(reverse("login"))
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})

    assert page.status_code == 200
    assert 'name="password"' in page.text
    assert response.status_code == 302
    assert response["Location"] == reverse("project-list")


def test_a_wrong_password_is_refused_in_words(alice, client):
    response = client.post(reverse("login"), {"username": "alice", "password": "nope"})

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.text


def test_signing_out_is_a_post_form(alice):
    client = client_for(alice)
    html = client.get(reverse("project-list")).text

    assert f'<form method="post" action="{reverse("logout")}"' in html
    assert client.get(reverse("logout")).status_code == 405
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("project-list")).status_code == 302


def test_the_project_list_shows_only_my_projects(project, carol, charlie, account):
    Project.objects.create(name="Secret", account=account).add_member(charlie, Role.OWNER)

    mine = client_for(carol).get(reverse("project-list")).text
    theirs = client_for(charlie).get(reverse("project-list")).text

    assert "Poseidon" in mine and "Secret" not in mine
    assert "Secret" in theirs and "Poseidon" not in theirs
    assert "Viewer" in mine


def test_creating_a_project_uses_the_only_account_granted_to_me_and_makes_me_owner(
    charlie, account
):
    AccountGrant.objects.create(account=account, user=charlie)
    response = client_for(charlie).post(reverse("project-create"), {"name": "  Atlantis "})

    project = Project.objects.get(name="Atlantis")
    assert response.status_code == 302
    assert response["Location"] == reverse("project-detail", args=[project.uuid])
    assert project.account == account
    assert project.created_by == charlie
    assert project.memberships.get().role == Role.OWNER


def test_charlies_new_project_says_which_account_pays_in_its_own_money(charlie, account):
    AccountGrant.objects.create(account=account, user=charlie)
    client = client_for(charlie)

    flow = client.get(reverse("project-create")).text
    account.kind = FlowAccount.Kind.VERTEX
    account.save(update_fields=["kind"])
    vertex = client.get(reverse("project-create")).text

    assert "Clips will spend the credits of the Flow account Studio." in flow
    assert "Clips will be billed in US dollars to the Vertex AI account Studio." in vertex
    assert "Flow" not in vertex.split("<h1>")[1] and "credits" not in vertex


def test_charlie_choosing_among_accounts_is_asked_who_pays_not_for_a_flow_account(charlie, account):
    vertex = FlowAccount.objects.create(label="Cloud", kind=FlowAccount.Kind.VERTEX)
    for granted in (account, vertex):
        AccountGrant.objects.create(account=granted, user=charlie)

    form = unescape(client_for(charlie).get(reverse("project-create")).text)

    assert "Who pays for the project's clips." in form
    assert "Flow account" not in form and "credits" not in form


def test_with_several_accounts_granted_the_creator_must_choose_one(charlie, account):
    other = FlowAccount.objects.create(label="Ultra", tier=TIER_TWO)
    for granted in (account, other):
        AccountGrant.objects.create(account=granted, user=charlie)
    client = client_for(charlie)

    form = client.get(reverse("project-create")).text
    missing = client.post(reverse("project-create"), {"name": "Atlantis"})
    chosen = client.post(reverse("project-create"), {"name": "Atlantis", "account": other.pk})

    assert "<select" in form and "Ultra" in form and "Studio" in form
    assert "Choose the account that pays for this project's clips." in unescape(missing.text)
    assert chosen.status_code == 302
    assert Project.objects.get().account == other


# Spaces; a zero-width space; a word joiner and a byte-order mark: each shows as nothing.
@pytest.mark.parametrize("name", ["   ", "\u200b", "\u2060\ufeff"])
def test_a_project_needs_a_name(charlie, account, name):
    response = client_for(charlie).post(reverse("project-create"), {"name": name})

    assert "Give the project a name." in response.text
    assert not Project.objects.exists()


def members_url(project) -> str:
    return reverse("project-members", args=[project.uuid])


def test_the_owner_adds_a_member_by_username_with_a_role(project, alice, charlie):
    response = client_for(alice).post(
        members_url(project), {"action": "add", "username": "charlie", "role": "viewer"}
    )

    assert response.status_code == 302
    assert project.memberships.get(user=charlie).role == Role.VIEWER


def test_adding_an_unknown_or_existing_member_is_refused_in_words(project, alice):
    client = client_for(alice)

    unknown = client.post(
        members_url(project), {"action": "add", "username": "zed", "role": "editor"}
    )
    existing = client.post(
        members_url(project), {"action": "add", "username": "bob", "role": "owner"}
    )

    assert "Nobody here has the username “zed”." in unknown.text
    assert "bob is already a member of Poseidon; change their role below." in existing.text
    assert project.memberships.count() == 3
    assert project.memberships.get(user__username="bob").role == Role.EDITOR


def test_the_owner_changes_a_role_and_removes_a_member(project, alice, bob, carol):
    client = client_for(alice)

    client.post(members_url(project), {"action": "role", "username": "carol", "role": "editor"})
    client.post(members_url(project), {"action": "remove", "username": "bob"})

    assert project.memberships.get(user=carol).role == Role.EDITOR
    assert not project.memberships.filter(user=bob).exists()


def test_the_last_owner_can_be_neither_removed_nor_demoted(project, alice):
    client = client_for(alice)

    removed = client.post(
        members_url(project), {"action": "remove", "username": "alice"}, follow=True
    )
    demoted = client.post(
        members_url(project), {"action": "role", "username": "alice", "role": "viewer"}, follow=True
    )

    message = "alice is the only owner of Poseidon; make someone else an owner first."
    assert message in removed.text
    assert message in demoted.text
    assert project.memberships.get(user=alice).role == Role.OWNER


def test_an_owner_may_leave_once_someone_else_owns_the_project(project, alice, bob):
    client = client_for(alice)
    client.post(members_url(project), {"action": "role", "username": "bob", "role": "owner"})

    response = client.post(members_url(project), {"action": "remove", "username": "alice"})

    assert response["Location"] == reverse("project-list")
    assert not project.memberships.filter(user=alice).exists()


def test_bob_demoting_alice_who_holds_the_accounts_grant_is_told_the_project_stops_spending(
    project, alice, bob
):
    project.add_member(bob, Role.OWNER)

    response = client_for(bob).post(
        members_url(project), {"action": "role", "username": "alice", "role": "editor"}, follow=True
    )

    assert (
        "alice is now editor. Poseidon can no longer spend the Flow account Studio: staff "
        "granted it to alice, not to the project, and alice is no longer an owner. Generate is "
        "refused until you make alice an owner again or an admin grants Studio to Poseidon."
    ) in unescape(response.text)
    assert project.memberships.get(user=alice).role == Role.EDITOR
    assert "staff have not granted it" in Project.objects.get(pk=project.pk).spending_problem()


def test_alice_leaving_the_project_her_grant_pays_for_is_told_so(project, alice, bob):
    project.add_member(bob, Role.OWNER)

    response = client_for(alice).post(
        members_url(project), {"action": "remove", "username": "alice"}, follow=True
    )

    assert (
        "Removed alice from Poseidon. Poseidon can no longer spend the Flow account Studio: "
        "staff granted it to you, not to the project, and you are no longer a member. Generate "
        "is refused until an owner adds you back as an owner or an admin grants Studio to "
        "Poseidon."
    ) in unescape(response.text)
    assert not project.memberships.filter(user=alice).exists()


def test_demoting_alice_says_nothing_of_accounts_bob_or_the_project_still_holds(
    project, alice, bob, account
):
    project.add_member(bob, Role.OWNER)
    backup = FlowAccount.objects.create(label="Backup", bearer_token="ya29.backup")
    AccountGrant.objects.create(account=account, user=bob)
    AccountGrant.objects.create(account=backup, project=project)
    project.set_accounts([account, backup])

    response = client_for(bob).post(
        members_url(project), {"action": "role", "username": "alice", "role": "viewer"}, follow=True
    )

    assert "alice is now viewer." in response.text
    assert "can no longer" not in response.text and "falls back" not in response.text


def test_demoting_alice_tells_bob_the_project_no_longer_falls_back_on_her_account(
    project, alice, bob, account
):
    project.add_member(bob, Role.OWNER)
    backup = FlowAccount.objects.create(label="Backup", bearer_token="ya29.backup")
    AccountGrant.objects.create(account=account, project=project)
    AccountGrant.objects.create(account=backup, user=alice)
    project.set_accounts([account, backup])

    response = client_for(bob).post(
        members_url(project), {"action": "role", "username": "alice", "role": "editor"}, follow=True
    )

    assert (
        "alice is now editor. Poseidon no longer falls back on Backup: staff granted it to "
        "alice, not to the project, and alice is no longer an owner; it is skipped until you "
        "make alice an owner again or an admin grants it to Poseidon."
    ) in unescape(response.text)


def test_an_editor_sees_the_members_but_cannot_change_them(project, bob):
    client = client_for(bob)

    page = client.get(members_url(project))
    post = client.post(members_url(project), {"action": "remove", "username": "carol"})

    assert page.status_code == 200
    assert "carol" in page.text and 'name="action"' not in page.text
    assert post.status_code == 403
    assert project.memberships.count() == 3


def test_the_project_page_shows_the_account_credits(project, alice, account):
    account.record_credits(1180)

    html = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text

    assert "1,180 credits" in html
    assert "Studio" in html


def test_the_emulator_banner_shows_only_against_the_emulator(project, alice, settings):
    client = client_for(alice)
    banner = "Running against the local emulator: nothing is sent to Google and nothing is spent."

    settings.FLOWSITE_EMULATOR = True
    shown = client.get(reverse("project-detail", args=[project.uuid])).text
    settings.FLOWSITE_EMULATOR = False
    hidden = client.get(reverse("project-detail", args=[project.uuid])).text

    assert banner in shown
    assert banner not in hidden


def test_pages_carry_the_csrf_token_for_htmx_and_no_inline_script_or_style(project, alice):
    html = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text

    assert '<body hx-headers=\'{"X-CSRFToken": "' in html
    assert "/static/django_htmx/htmx-2.min.js" in html
    assert "style=" not in html
    assert "<script>" not in html and "<script " not in html.replace("<script src=", "")


def test_a_role_that_does_not_exist_is_refused_in_words(project, alice, charlie):
    client = client_for(alice)

    added = client.post(
        members_url(project), {"action": "add", "username": "charlie", "role": "admin"}
    )
    changed = client.post(
        members_url(project), {"action": "role", "username": "bob", "role": "god"}, follow=True
    )

    assert "Choose owner, editor or viewer." in added.text
    assert "Choose owner, editor or viewer." in changed.text
    assert not project.memberships.filter(user=charlie).exists()
    assert project.memberships.get(user__username="bob").role == Role.EDITOR


def test_with_debug_on_alice_gets_no_helper_that_replaces_her_page_with_an_error(
    project, alice, settings
):
    # django-htmx's debug helper would swap Django's error page over the storyboard for any
    # refused htmx request, hiding the refusal's words (and it needs eval, which the CSP bans).
    settings.DEBUG = True

    html = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text

    assert "/static/django_htmx/htmx-2.min.js" in html
    assert "django-htmx.js" not in html
