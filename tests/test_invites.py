"""Owners invite people into a project by email or by link; the link is followed once."""

from __future__ import annotations

import re
import socket
import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from generations.models import Invite, Membership, hash_invite_token
from tests.conftest import PASSWORD
from tests.views_support import client_for

LINK = re.compile(r"https?://[^/\s]+(/join/[^/\s\"]+/)")


def make_invite(client: Client, project, role: str = "editor", email: str = "") -> str:
    """Alice's invite, made on the invites page; returns the link's path."""
    response = client.post(
        reverse("project-invites", args=[project.uuid]), {"role": role, "email": email}
    )
    assert response.status_code == 200
    return LINK.search(response.text).group(1)


def sign_up(client: Client, path: str, username: str, password: str = PASSWORD):
    return client.post(
        path, {"username": username, "password1": password, "password2": password, "email": ""}
    )


def test_alice_sees_the_link_once_and_only_its_hash_is_stored(project, alice):
    path = make_invite(client_for(alice), project)
    token = path.split("/")[2]

    invite = Invite.objects.get()
    assert invite.token_hash == hash_invite_token(token)
    assert token not in str(Invite.objects.values().get())
    assert (invite.project, invite.role, invite.invited_by) == (project, "editor", alice)
    # The list shows the invite but never its link again.
    page = client_for(alice).get(reverse("project-invites", args=[project.uuid])).text
    assert "open until" in page and token not in page


def test_an_invite_expires_after_the_configured_days(project, alice, settings):
    settings.FLOWSITE_INVITE_DAYS = 3
    make_invite(client_for(alice), project)

    invite = Invite.objects.get()
    assert invite.expires - invite.created == timedelta(days=3)


def test_an_invite_by_email_sends_the_link_and_shows_it_to_alice(project, alice):
    response = client_for(alice).post(
        reverse("project-invites", args=[project.uuid]),
        {"role": "viewer", "email": "dora@example.org"},
    )

    path = LINK.search(response.text).group(1)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["dora@example.org"]
    assert "Poseidon" in message.subject
    assert path in message.body and "viewer" in message.body
    assert "Sent an invite to dora@example.org" in response.text


def test_an_email_that_cannot_be_sent_still_leaves_alice_the_link(project, alice, settings):
    with socket.socket() as probe:  # a port on loopback nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 5},
        }
    }

    response = client_for(alice).post(
        reverse("project-invites", args=[project.uuid]),
        {"role": "editor", "email": "dora@example.org"},
    )

    assert "could not be sent" in response.text
    assert LINK.search(response.text)


def test_alice_is_told_when_an_address_is_not_one(project, alice):
    response = client_for(alice).post(
        reverse("project-invites", args=[project.uuid]), {"role": "editor", "email": "dora@"}
    )

    assert "does not look like an email address" in response.text
    assert not Invite.objects.exists()


def test_dora_signs_up_through_the_link_and_lands_in_the_project(project, alice, client):
    path = make_invite(client_for(alice), project, role="editor")

    page = client.get(path)
    assert page.status_code == 200
    assert "Join Poseidon" in page.text and "alice invites you to join as editor" in page.text
    response = sign_up(client, path, "dora")

    assert response.status_code == 302
    assert response["Location"] == reverse("project-detail", args=[project.uuid])
    dora = User.objects.get(username="dora")
    assert Membership.objects.get(project=project, user=dora).role == "editor"
    invite = Invite.objects.get()
    assert invite.used_by == dora and invite.used_at is not None
    # Signed in: the project opens.
    assert client.get(response["Location"]).status_code == 200


def test_dora_is_held_to_djangos_password_rules(project, alice, client):
    path = make_invite(client_for(alice), project)

    response = sign_up(client, path, "dora", password="password")

    assert response.status_code == 200
    assert "This password is too common" in response.text
    assert not User.objects.filter(username="dora").exists()
    assert Invite.objects.get().used_at is None


def test_dora_cannot_take_a_username_that_exists(project, alice, client):
    path = make_invite(client_for(alice), project)

    response = sign_up(client, path, "bob")

    assert "A user with that username already exists" in response.text
    assert Invite.objects.get().used_at is None


def test_charlie_signed_in_joins_with_a_click(project, alice, charlie):
    path = make_invite(client_for(alice), project, role="viewer")
    client = client_for(charlie)

    assert "Join as charlie" in client.get(path).text
    assert not Membership.objects.filter(user=charlie).exists()  # a GET changes nothing
    response = client.post(path)

    assert response["Location"] == reverse("project-detail", args=[project.uuid])
    assert Membership.objects.get(project=project, user=charlie).role == "viewer"


def test_charlie_signed_out_signs_in_and_then_joins(project, alice, charlie, client):
    path = make_invite(client_for(alice), project)

    page = client.get(path).text
    sign_in = f"{reverse('login')}?next={path}"
    assert sign_in.replace("/", "%2F").split("?")[1] in page.replace("/", "%2F")
    signed_in = client.post(
        reverse("login"), {"username": "charlie", "password": PASSWORD, "next": path}
    )
    assert signed_in["Location"] == path
    client.post(path)

    assert Membership.objects.get(project=project, user=charlie).role == "editor"


def test_an_invite_is_used_once(project, alice, charlie, client):
    path = make_invite(client_for(alice), project)
    sign_up(client, path, "dora")

    again = client_for(charlie).get(path)
    assert again.status_code == 410
    assert "already been used" in again.text
    assert client_for(charlie).post(path).status_code == 410
    assert not Membership.objects.filter(user=charlie).exists()


def test_dora_following_her_used_link_again_is_taken_to_the_project(project, alice, client):
    path = make_invite(client_for(alice), project)
    sign_up(client, path, "dora")

    again = client.get(path, follow=True)

    assert again.redirect_chain[-1][0] == reverse("project-detail", args=[project.uuid])
    assert "You are already a member of Poseidon." in again.text
    assert "already been used" not in again.text


def test_the_join_page_says_whom_an_emailed_invite_was_made_for(project, alice, charlie):
    path = make_invite(client_for(alice), project, email="dora@example.com")

    page = client_for(charlie).get(path).text

    assert "This invite was made for dora@example.com." in page


def test_an_expired_invite_opens_nothing(project, alice, client):
    path = make_invite(client_for(alice), project)
    Invite.objects.update(expires=timezone.now() - timedelta(seconds=1))

    response = sign_up(client, path, "dora")

    assert response.status_code == 410
    assert "expired" in response.text
    assert not User.objects.filter(username="dora").exists()


def test_alice_withdraws_an_invite_and_its_link_opens_nothing(project, alice, client):
    path = make_invite(client_for(alice), project)
    invite = Invite.objects.get()

    response = client_for(alice).post(reverse("invite-revoke", args=[invite.uuid]), follow=True)
    assert "withdrawn" in response.text
    assert client.get(path).status_code == 410
    again = client_for(alice).post(reverse("invite-revoke", args=[invite.uuid]), follow=True)
    assert "it was already withdrawn." in again.text


def test_a_made_up_link_is_not_found(db, client):
    response = client.get(reverse("invite-accept", args=["not-a-token"]))

    assert response.status_code == 404
    assert "not valid" in response.text


def test_bob_already_a_member_keeps_his_role_and_the_invite_stays_open(project, alice, bob):
    path = make_invite(client_for(alice), project, role="viewer")

    response = client_for(bob).post(path)

    assert response["Location"] == reverse("project-detail", args=[project.uuid])
    assert Membership.objects.get(project=project, user=bob).role == "editor"
    assert Invite.objects.get().used_at is None


def test_only_owners_make_or_withdraw_invites(project, alice, bob):
    make_invite(client_for(alice), project)
    invite = Invite.objects.get()

    assert client_for(bob).get(reverse("project-invites", args=[project.uuid])).status_code == 403
    assert client_for(bob).post(reverse("invite-revoke", args=[invite.uuid])).status_code == 403
    assert Invite.objects.get().revoked_at is None


@pytest.mark.django_db(transaction=True)
def test_two_people_following_one_link_at_once_exactly_one_joins(project, alice):
    path = make_invite(client_for(alice), project)
    barrier = threading.Barrier(2)
    answers: dict[str, int] = {}

    def follow(username: str) -> None:
        try:
            client = Client()
            barrier.wait()
            answers[username] = sign_up(client, path, username).status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=follow, args=(name,)) for name in ("dora", "erin")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers.values()) == [302, 410]
    joined = Membership.objects.filter(project=project, user__username__in=["dora", "erin"])
    assert joined.count() == 1
    # The one refused has no login either: the account and the membership go together.
    assert User.objects.filter(username__in=["dora", "erin"]).count() == 1
    assert Invite.objects.get().used_by == joined.get().user


@pytest.mark.django_db(transaction=True)
def test_two_signed_in_people_clicking_join_at_once_exactly_one_joins(project, alice, charlie):
    path = make_invite(client_for(alice), project)
    dora = User.objects.create_user("dora", "", PASSWORD)
    barrier = threading.Barrier(2)
    answers: list[int] = []

    def join(user) -> None:
        try:
            client = client_for(user)
            barrier.wait()
            answers.append(client.post(path).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=join, args=(user,)) for user in (charlie, dora)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers) == [302, 410]
    assert Membership.objects.filter(project=project, user__in=[charlie, dora]).count() == 1


# --- passwords and the top bar ----------------------------------------------------------------

RESET_LINK = re.compile(r"https?://[^/\s]+(/accounts/reset/[^/\s]+/[^/\s]+/)")


def set_password(client: Client, path: str, password: str):
    form = client.get(path, follow=True)
    return client.post(
        form.redirect_chain[-1][0] if form.redirect_chain else path,
        {"new_password1": password, "new_password2": password},
    )


def test_alice_resets_a_forgotten_password_by_email_once(alice, client):
    assert "Forgot your password?" in client.get(reverse("login")).text
    sent = client.post(reverse("password_reset"), {"email": "alice@example.org"})
    assert sent["Location"] == reverse("password_reset_done")
    path = RESET_LINK.search(mail.outbox[0].body).group(1)

    done = set_password(client, path, "a brand new long passphrase")

    assert done["Location"] == reverse("password_reset_complete")
    assert Client().login(username="alice", password="a brand new long passphrase")
    again = Client().get(path, follow=True)
    assert "This reset link cannot be used" in again.text


def test_a_new_password_is_held_to_djangos_rules_too(alice, client):
    client.post(reverse("password_reset"), {"email": "alice@example.org"})
    path = RESET_LINK.search(mail.outbox[0].body).group(1)

    response = set_password(client, path, "password")

    assert "This password is too common" in response.text


def test_staff_make_a_one_time_reset_link_for_someone_without_email(db, client):
    staff = User.objects.create_superuser("root", "root@example.org", PASSWORD)
    dora = User.objects.create_user("dora", "", "an old long passphrase")
    client.force_login(staff)

    response = client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "make_reset_link", "_selected_action": [dora.pk]},
        follow=True,
    )

    path = RESET_LINK.search(response.text).group(1)
    assert "Password reset link for dora" in response.text
    visitor = Client()
    assert set_password(visitor, path, "dora's own long passphrase").status_code == 302
    assert Client().login(username="dora", password="dora's own long passphrase")
    assert "This reset link cannot be used" in Client().get(path, follow=True).text


def test_only_staff_see_the_admin_link(alice):
    staff = User.objects.create_user("root", "", PASSWORD, is_staff=True)
    admin_link = f'href="{reverse("admin:index")}"'

    assert admin_link in client_for(staff).get(reverse("project-list")).text
    assert admin_link not in client_for(alice).get(reverse("project-list")).text
