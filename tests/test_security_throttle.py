"""Sign-in throttling: 5 failures per username from one address and 20 per address in 15
minutes, a username failing from many addresses slowed down rather than locked, counted in
the database before any password is checked, answered with 429 and a sentence."""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from generations.models import SignInFailure
from generations.throttle import client_address, username_key
from tests.conftest import PASSWORD

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
HOME = "10.0.0.7"


def sign_in(client, username, password, address=HOME, url=LOGIN, **extra):
    return client.post(
        url, {"username": username, "password": password}, REMOTE_ADDR=address, **extra
    )


def fail(client, username, times, address=HOME, url=LOGIN):
    for _ in range(times):
        response = sign_in(client, username, "wrong password", address, url)
        assert response.status_code == 200, "a wrong password is re-asked, not throttled yet"


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.FLOWSITE_SIGNIN_WINDOW_MINUTES = 15
    settings.FLOWSITE_SIGNIN_FAILURES_PER_ACCOUNT = 5
    settings.FLOWSITE_SIGNIN_FAILURES_PER_ADDRESS = 20
    settings.FLOWSITE_SIGNIN_SLOWDOWN_AFTER = 10
    settings.FLOWSITE_SIGNIN_SLOWDOWN_SECONDS = 10
    settings.FLOWSITE_TRUSTED_PROXIES = 0


@pytest.fixture
def password_never_checked(monkeypatch):
    def refuse(self, raw_password):
        raise AssertionError("the password was checked during a throttled attempt")

    monkeypatch.setattr(AbstractBaseUser, "check_password", refuse)


def test_five_failures_for_alice_make_the_sixth_attempt_a_429_in_words(client, alice):
    fail(client, "alice", 5)
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-ins for this account; try again in 15 minutes." in response.text
    assert not signed_in(client)


def test_a_throttled_attempt_does_not_even_check_the_password(client, alice, request):
    fail(client, "alice", 5)
    recorded = SignInFailure.objects.count()
    request.getfixturevalue("password_never_checked")
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 429
    # Nor is it counted: waiting out the window is enough, hammering does not extend it.
    assert SignInFailure.objects.count() == recorded


def test_four_failures_still_let_alice_in(client, alice):
    fail(client, "alice", 4)
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)


def test_the_throttle_lifts_when_the_failures_leave_the_window(client, alice):
    fail(client, "alice", 5)
    SignInFailure.objects.update(at=timezone.now() - timedelta(minutes=15, seconds=1))
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_the_wait_is_counted_from_the_failure_that_will_leave_the_window_first(client, alice):
    fail(client, "alice", 5)
    SignInFailure.objects.update(at=timezone.now() - timedelta(minutes=14, seconds=30))
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert "try again in 1 minute." in response.text


def test_the_username_counts_whatever_its_case_and_spaces(client, alice):
    for typed in ["alice", "Alice", "ALICE", " alice ", "ａｌｉｃｅ"]:
        sign_in(client, typed, "wrong password")
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 429


def test_alice_being_throttled_does_not_stop_bob(client, alice, bob):
    fail(client, "alice", 5)
    assert sign_in(client, "bob", PASSWORD).status_code == 302


def test_signing_in_forgets_that_accounts_failures_from_that_address(client, alice):
    fail(client, "alice", 4)
    assert sign_in(client, "alice", PASSWORD).status_code == 302
    client.post(reverse("logout"))
    fail(client, "alice", 4)
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_twenty_failures_from_one_address_throttle_every_account_from_it(client, bob):
    for number in range(20):
        sign_in(client, f"guess{number}", "wrong password")
    response = sign_in(client, "bob", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-ins from your network address; try again in 15 minutes." in (
        response.text
    )
    # Bob from his own address is not held back by someone else's guessing.
    assert sign_in(client, "bob", PASSWORD, address="10.0.0.8").status_code == 302


def test_failures_at_the_admin_door_count_and_it_answers_429(client, alice, request):
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    fail(client, "alice", 5, url=ADMIN_LOGIN)
    assert SignInFailure.objects.filter(username="alice").count() == 5
    request.getfixturevalue("password_never_checked")
    for url in (ADMIN_LOGIN, LOGIN):
        response = sign_in(client, "alice", PASSWORD, url=url)
        assert response.status_code == 429
        assert "Too many failed sign-ins for this account" in response.text


def test_old_failures_are_pruned_when_a_new_one_is_recorded(client, alice):
    SignInFailure.objects.create(
        username="someone", address="10.9.9.9", at=timezone.now() - timedelta(hours=2)
    )
    fail(client, "alice", 1)
    assert list(SignInFailure.objects.values_list("username", flat=True)) == ["alice"]


# --- racing, victims and unlocking ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_forty_wrong_passwords_at_once_get_no_more_than_five_checked(alice, monkeypatch):
    checked: list[str] = []
    lock = threading.Lock()
    original = AbstractBaseUser.check_password

    def counting(self, raw_password):
        with lock:
            checked.append(raw_password)
        return original(self, raw_password)

    monkeypatch.setattr(AbstractBaseUser, "check_password", counting)
    start = threading.Barrier(40)
    statuses: list[int] = []

    def guess(number: int) -> None:
        try:
            start.wait()
            response = sign_in(Client(), "alice", f"guess {number}")
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(statuses) == 40
    assert len(checked) <= 5
    assert statuses.count(429) >= 35
    # Every refused attempt is forgotten: only the checked ones count as failures.
    assert SignInFailure.objects.count() == len(checked)


def test_five_wrong_passwords_from_elsewhere_do_not_lock_alice_out(client, alice):
    fail(client, "alice", 5, address="203.0.113.66")

    assert sign_in(client, "alice", "wrong", address="203.0.113.66").status_code == 429
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_a_username_tried_from_many_addresses_is_slowed_down_not_locked(client, alice, request):
    for number in range(10):
        fail(client, "alice", 1, address=f"198.51.100.{number}")

    request.getfixturevalue("password_never_checked")
    slowed = sign_in(client, "alice", PASSWORD, address="198.51.100.77")
    assert slowed.status_code == 429
    assert (
        "This account has had many failed sign-ins, so Flowsite tries one sign-in for it "
        "every 10 seconds; try again in 10 seconds."
    ) in slowed.text


def test_alice_gets_in_a_few_seconds_after_the_last_guess_however_many_there_were(client, alice):
    for number in range(10):
        fail(client, "alice", 1, address=f"198.51.100.{number}")
    SignInFailure.objects.update(at=timezone.now() - timedelta(seconds=11))

    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_past_the_slowdown_one_guess_at_a_time_gets_through(client, alice):
    for number in range(10):
        fail(client, "alice", 1, address=f"198.51.100.{number}")
    SignInFailure.objects.update(at=timezone.now() - timedelta(seconds=11))

    first = sign_in(client, "alice", "wrong", address="198.51.100.50")
    second = sign_in(client, "alice", "wrong", address="198.51.100.51")

    assert (first.status_code, second.status_code) == (200, 429)
    assert SignInFailure.objects.filter(username="alice").count() == 11


def test_staff_unlock_a_username_in_the_admin(client, alice, admin_client):
    fail(client, "alice", 5)
    assert sign_in(client, "alice", PASSWORD).status_code == 429

    response = admin_client.post(
        reverse("admin:generations_signinfailure_changelist"),
        {
            "action": "unlock_usernames",
            "_selected_action": [SignInFailure.objects.first().pk],
        },
        follow=True,
    )

    assert "Unlocked alice: they may sign in again." in response.text
    assert not SignInFailure.objects.exists()
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_staff_unlock_an_address_in_the_admin(client, bob, admin_client):
    for number in range(20):
        sign_in(client, f"guess{number}", "wrong password")
    assert sign_in(client, "bob", PASSWORD).status_code == 429
    row = SignInFailure.objects.first()

    admin_client.post(
        reverse("admin:generations_signinfailure_changelist"),
        {"action": "unlock_addresses", "_selected_action": [row.pk]},
    )

    assert sign_in(client, "bob", PASSWORD).status_code == 302


# --- who is "the client" --------------------------------------------------------------------


def request_from(remote: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().post(LOGIN, **extra)


def test_without_trusted_proxies_x_forwarded_for_is_ignored():
    assert client_address(request_from("203.0.113.9", "198.51.100.1")) == "203.0.113.9"


def test_behind_one_proxy_the_client_is_the_address_the_proxy_appended(settings):
    settings.FLOWSITE_TRUSTED_PROXIES = 1
    # The client wrote the first entry itself; only the last one, nginx's, is believed.
    request = request_from("127.0.0.1", "6.6.6.6, 198.51.100.1")
    assert client_address(request) == "198.51.100.1"


def test_behind_a_proxy_a_client_cannot_dodge_its_count_by_forging_the_header(
    client, bob, settings
):
    settings.FLOWSITE_TRUSTED_PROXIES = 1
    for number in range(20):
        sign_in(
            client,
            f"guess{number}",
            "wrong",
            address="127.0.0.1",
            HTTP_X_FORWARDED_FOR=f"10.1.1.{number}, 198.51.100.1",
        )
    response = sign_in(
        client, "bob", PASSWORD, address="127.0.0.1", HTTP_X_FORWARDED_FOR="1.1.1.1, 198.51.100.1"
    )
    assert response.status_code == 429
    other = sign_in(
        client, "bob", PASSWORD, address="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.2"
    )
    assert other.status_code == 302


def test_an_ipv6_client_is_counted_by_its_slash_64():
    first = client_address(request_from("2001:db8:1:2::1"))
    second = client_address(request_from("2001:db8:1:2:ffff::9"))
    assert first == second == "2001:db8:1:2::/64"
    assert client_address(request_from("2001:db8:1:3::1")) != first
    assert client_address(request_from("::ffff:192.0.2.4")) == "192.0.2.4"


def test_username_key_is_trimmed_normalised_and_case_folded():
    assert username_key(" ＡLİCE ") == username_key("ALİCE") == "ali̇ce"
    assert username_key(None) == ""
