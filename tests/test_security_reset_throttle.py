"""The password-reset form cannot spam one address or probe many: at most 3 emails per
address typed and 10 requests per client address an hour, and the answer never says whether
an account has the address."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from generations.models import PasswordResetRequest
from generations.reset_throttle import email_key

HOME = "10.0.0.7"
ERRORS = re.compile(r'<div class="form-errors".*?</div>', re.S)
ELSEWHERE = "10.0.0.8"


def ask(email: str, address: str = HOME):
    return Client().post(reverse("password_reset"), {"email": email}, REMOTE_ADDR=address)


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.FLOWSITE_RESET_WINDOW_MINUTES = 60
    settings.FLOWSITE_RESET_REQUESTS_PER_ADDRESS = 10
    settings.FLOWSITE_RESET_EMAILS_PER_ADDRESS = 3


def test_alices_address_gets_three_emails_an_hour_and_then_none(alice):
    for number in range(5):
        response = ask("alice@example.org", address=f"10.0.1.{number}")
        assert response.status_code == 302
        assert response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 3
    assert {message.to[0] for message in mail.outbox} == {"alice@example.org"}


def test_the_address_counts_however_it_is_typed(alice):
    for typed in [
        "alice@example.org",
        " ALICE@example.org",
        "Alice@Example.org",
        "alice@example.org",
    ]:
        ask(typed, address=ELSEWHERE if "A" in typed else HOME)
    assert len(mail.outbox) == 3


def test_an_hour_later_alice_can_be_sent_a_link_again(alice):
    for _ in range(3):
        ask("alice@example.org")
    PasswordResetRequest.objects.update(at=timezone.now() - timedelta(minutes=61))
    ask("alice@example.org")
    assert len(mail.outbox) == 4


def test_the_answer_is_the_same_for_an_address_nobody_has_even_past_the_limit(alice):
    def answer(email):
        response = ask(email, address=ELSEWHERE)
        return response.status_code, response["Location"]

    for _ in range(4):
        known, unknown = answer("alice@example.org"), answer("nobody@example.org")
        assert known == unknown == (302, reverse("password_reset_done"))
    page = Client().get(reverse("password_reset_done")).text
    assert "If a login has that address" in page


def test_one_client_probing_many_addresses_is_refused_after_ten(alice):
    for number in range(10):
        assert ask(f"guess{number}@example.org").status_code == 302

    refused = ask("alice@example.org")
    assert refused.status_code == 429
    assert (
        "Too many password-reset requests from your network address; try again in 60 minutes."
        in refused.text
    )
    assert mail.outbox == [], "no email for a refused request"
    assert ask("alice@example.org", address=ELSEWHERE).status_code == 302, "others still may"
    assert len(mail.outbox) == 1


def refusal(page: str) -> str:
    return ERRORS.search(page).group(0)


def test_the_refusal_reads_the_same_for_an_address_that_exists_and_one_that_does_not(alice):
    for number in range(10):
        ask(f"guess{number}@example.org")
    known, unknown = ask("alice@example.org"), ask("nobody@example.org")
    assert known.status_code == unknown.status_code == 429
    assert refusal(known.text) == refusal(unknown.text)
    assert "Too many password-reset requests" in refusal(known.text)


def test_hammering_while_refused_does_not_extend_the_wait(alice):
    for number in range(10):
        ask(f"guess{number}@example.org")
    for _ in range(5):
        assert ask("alice@example.org").status_code == 429
    assert PasswordResetRequest.objects.filter(address=HOME).count() == 10


def test_an_address_typed_is_not_stored_in_the_clear(alice):
    ask("nobody@example.org")
    row = PasswordResetRequest.objects.get()
    assert "nobody" not in row.email_key
    assert row.email_key == email_key("NOBODY@example.org ")
    assert row.address == HOME
