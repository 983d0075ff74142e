"""`manage.py flow_account`: operators add and inspect the accounts projects spend."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from generations.engines.catalogue import TIER_ONE, TIER_TWO
from generations.models import FlowAccount

SECRET = "ya29.a0AfB_byC-very-long-secret-token-value-1234"
COOKIE = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..secret-cookie-value-XYZ9"


def run(*args: str, stdin: io.StringIO | None = None) -> str:
    out = io.StringIO()
    options = {"stdout": out}
    if stdin is not None:
        options["stdin"] = stdin
    call_command("flow_account", *args, **options)
    return out.getvalue()


def test_add_with_a_bearer_token_creates_the_account(db):
    output = run("add", "Studio", "--bearer-token", SECRET, "--tier", TIER_TWO)

    account = FlowAccount.objects.get(label="Studio")
    assert account.bearer_token == SECRET
    assert account.session_cookie == ""
    assert account.tier == TIER_TWO
    assert account.auth_kind == "bearer token"
    assert "Added account 'Studio'" in output
    assert SECRET not in output
    assert "ya29…1234" in output


def test_add_with_a_session_cookie_defaults_to_tier_one(db):
    run("add", "Cookie account", "--session-cookie", COOKIE)

    account = FlowAccount.objects.get(label="Cookie account")
    assert account.session_cookie == COOKIE
    assert account.bearer_token == ""
    assert account.tier == TIER_ONE
    assert account.auth_kind == "session cookie"


def test_a_pasted_authorization_header_keeps_only_the_token(db):
    run("add", "Studio", "--bearer-token", f"Bearer {SECRET}\n")

    assert FlowAccount.objects.get().bearer_token == SECRET


def test_a_pasted_cookie_header_keeps_only_the_session_cookie(db):
    run(
        "add",
        "Studio",
        "--session-cookie",
        f"_ga=GA1.1; __Secure-next-auth.session-token={COOKIE}; other=1",
    )

    assert FlowAccount.objects.get().session_cookie == COOKIE


def test_a_secret_given_as_a_dash_is_read_from_stdin(db):
    run("add", "Studio", "--bearer-token", "-", stdin=io.StringIO(SECRET + "\n"))

    assert FlowAccount.objects.get().bearer_token == SECRET


def test_add_needs_a_secret(db):
    with pytest.raises(CommandError, match="--bearer-token.*--session-cookie"):
        run("add", "Studio")

    assert not FlowAccount.objects.exists()


def test_add_refuses_both_kinds_of_secret(db):
    with pytest.raises(CommandError, match="not allowed with argument"):
        run("add", "Studio", "--bearer-token", SECRET, "--session-cookie", COOKIE)

    assert not FlowAccount.objects.exists()


def test_add_refuses_an_unknown_tier(db):
    with pytest.raises(CommandError, match="invalid choice: 'GOLD'"):
        run("add", "Studio", "--bearer-token", SECRET, "--tier", "GOLD")


def test_add_refuses_a_label_already_taken(account):
    with pytest.raises(CommandError, match="An account labelled 'Studio' already exists"):
        run("add", "Studio", "--bearer-token", SECRET)

    assert FlowAccount.objects.get().bearer_token == "ya29.test"


def test_add_refuses_an_empty_label_or_token(db):
    with pytest.raises(CommandError, match="The label is empty"):
        run("add", "  ", "--bearer-token", SECRET)
    with pytest.raises(CommandError, match="The bearer token is empty"):
        run("add", "Studio", "--bearer-token", "   ")
    with pytest.raises(CommandError, match="has no spaces"):
        run("add", "Studio", "--bearer-token", "ya29 abc")

    assert not FlowAccount.objects.exists()


def test_list_shows_every_account_with_its_secret_masked(db):
    FlowAccount.objects.create(label="Studio", tier=TIER_TWO, bearer_token=SECRET, credits=1200)
    FlowAccount.objects.create(
        label="Backup", session_cookie=COOKIE, problem="The Flow session has expired."
    )

    output = run("list")

    lines = output.splitlines()
    assert lines[0].split() == ["LABEL", "ENGINE", "AUTH", "SECRET", "CREDITS", "GRANTS", "PROBLEM"]
    assert lines[2].startswith("Backup")
    assert "session cookie" in lines[2] and "eyJh…XYZ9" in lines[2]
    assert "The Flow session has expired." in lines[2]
    assert "nobody" in lines[2]  # no grants yet: nobody may spend it
    assert lines[3].startswith("Studio")
    assert TIER_TWO in lines[3] and "bearer token" in lines[3] and "1200" in lines[3]
    assert SECRET not in output and COOKIE not in output


def test_list_with_no_accounts_says_how_to_add_one(db):
    assert "flow_account add" in run("list")


def test_update_replaces_the_secret_and_forgets_the_old_session(db):
    account = FlowAccount.objects.create(
        label="Studio",
        session_cookie=COOKIE,
        access_token="ya29.minted",
        problem="The Flow session for account Studio has expired.",
    )

    output = run("update", "Studio", "--bearer-token", SECRET, "--tier", TIER_TWO)

    account.refresh_from_db()
    assert account.bearer_token == SECRET
    assert account.session_cookie == ""
    assert account.access_token == ""
    assert account.problem == ""
    assert account.tier == TIER_TWO
    assert "Updated account 'Studio'" in output and SECRET not in output


def test_update_can_rename_an_account(account):
    run("update", "Studio", "--label", "Main studio")

    account.refresh_from_db()
    assert account.label == "Main studio"
    assert account.bearer_token == "ya29.test"


def test_update_of_an_unknown_account_is_refused(db):
    with pytest.raises(CommandError, match="No account is labelled 'Nope'"):
        run("update", "Nope", "--tier", TIER_TWO)


def test_update_with_nothing_to_change_is_refused(account):
    with pytest.raises(CommandError, match="Nothing to change"):
        run("update", "Studio")


def test_update_refuses_a_label_already_taken(account):
    FlowAccount.objects.create(label="Other", bearer_token=SECRET)

    with pytest.raises(CommandError, match="'Other' already exists"):
        run("update", "Studio", "--label", "Other")
