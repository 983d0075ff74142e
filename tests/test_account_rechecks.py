"""A token or session Flow refuses once does not stop the account until an admin acts: its
takes wait while Flowsite re-checks the credentials with backoff, and go on by themselves as
soon as a re-check passes; only credentials refused through every re-check set the account's
problem, and even then a later re-check that passes lets the takes resume."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from generations import pipeline
from generations.emulator import Emulator
from generations.models import FlowAccount, Generation
from generations.pipeline import policy
from generations.tasks import run_pass
from tests.conftest import make_image
from tests.conftest import make_ready_scene as make_scene
from tests.faults_support import assert_files_match, fresh
from tests.tasks_support import settle
from tests.views_support import client_for

S = Generation.Status
IN_FLOW = (S.PENDING, S.ACTIVE)
RECHECKING = (
    "Flow refused the {what} of account Studio. Flowsite is re-checking the account and goes "
    "on by itself as soon as Flow accepts it again."
)
DEAD_TOKEN = (
    "The Flow access token of account Studio was refused {n} times in a row: it has expired "
    "or was revoked — paste a new one. Flowsite re-checks it every 15 minutes meanwhile."
)
DEAD_SESSION = (
    "The Flow session for account Studio was refused {n} times in a row: it has expired — "
    "paste a new cookie. Flowsite re-checks it every 15 minutes meanwhile."
)


@pytest.fixture
def cookie_account(flow_emulator: Emulator, account: FlowAccount, settings) -> FlowAccount:
    settings.FLOWSITE_POLL_INTERVAL = 0.1
    account.bearer_token, account.session_cookie = "", flow_emulator.session_cookie
    account.save(update_fields=["bearer_token", "session_cookie"])
    return account


def closed_port_url() -> str:
    """A loopback address nobody listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def studio() -> FlowAccount:
    return FlowAccount.objects.get(label="Studio")


def test_a_token_refused_once_on_submit_is_re_checked_and_the_take_goes_on_by_itself(
    emu, project, alice, bob
):
    [take] = make_scene(project, "[fault:token-expiry:once] a heron lands").generate(alice)
    now = timezone.now()

    run_pass(now=now)

    take.refresh_from_db()
    waiting = RECHECKING.format(what="access token")
    assert (take.status, take.reason, take.attempts) == (S.QUEUED, waiting, 0)
    account = studio()
    assert (account.problem, account.credential_refusals) == ("", 1)
    assert account.cool_down_until == now + timedelta(seconds=policy.CREDENTIAL_RECHECK_SECONDS)
    page = client_for(bob).get(reverse("project-detail", args=[project.uuid])).text
    assert "Flowsite is re-checking the account" in page
    calls = emu.stats
    run_pass(now=now + timedelta(seconds=5))
    assert emu.stats == calls, "nothing is asked of the account before its re-check"

    [take] = settle([take], ahead=timedelta(seconds=policy.CREDENTIAL_RECHECK_SECONDS + 1))

    assert (take.status, take.reason) == (S.READY, "")
    account = studio()
    assert (account.problem, account.credential_refusals, account.cool_down_until) == ("", 0, None)
    assert emu.stats["credits"] == 1, "one re-check"
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (2, 1)
    assert emu.accepted == {str(take.request_id): 1}
    assert_files_match([take])


def test_a_token_refused_once_while_rendering_lets_every_take_go_on_after_a_re_check(
    emu, project, alice
):
    rendering = settle(make_scene(project, takes=2).generate(alice), until=IN_FLOW)
    [queued] = make_scene(project, "a cormorant", image=make_image(project)).generate(alice)
    emu.expire_tokens()
    now = timezone.now()

    run_pass(now=now)

    waiting = RECHECKING.format(what="access token")
    takes = fresh([*rendering, queued])
    assert [t.reason for t in takes] == [waiting] * 3
    assert [t.status for t in takes[2:]] == [S.QUEUED], "not submitted while re-checking"
    assert studio().problem == ""

    # Google accepts the token again: the next re-check finds it so.
    emu.accept_tokens()
    takes = settle(takes, ahead=timedelta(seconds=policy.CREDENTIAL_RECHECK_SECONDS + 1))

    assert [(t.status, t.reason) for t in takes] == [(S.READY, "")] * 3
    assert studio().credential_refusals == 0
    assert emu.stats["clips_submitted"] == 3
    assert_files_match(takes)


def test_a_revoked_token_sets_the_problem_after_the_re_checks_and_a_later_re_check_resumes(
    emu, project, alice, settings
):
    settings.FLOWSITE_STUCK_AFTER = 24 * 3600
    [rendering] = settle(make_scene(project).generate(alice), until=IN_FLOW)
    [queued] = make_scene(project, "a cormorant", image=make_image(project)).generate(alice)
    emu.expire_tokens()
    now = timezone.now()
    run_pass(now=now)
    waits = []
    for refusals in range(1, policy.CREDENTIAL_RECHECKS + 1):
        account = studio()
        assert (account.credential_refusals, account.problem) == (refusals, "")
        waits.append((account.cool_down_until - now).total_seconds())
        now = account.cool_down_until
        run_pass(now=now)
    assert waits == [15.0, 60.0, 240.0], "backing off"
    assert emu.stats["credits"] == policy.CREDENTIAL_RECHECKS

    dead = DEAD_TOKEN.format(n=policy.CREDENTIAL_RECHECKS + 1)
    account = studio()
    assert account.problem == dead
    run_pass(now=now)
    takes = fresh([rendering, queued])
    assert [t.reason for t in takes] == [dead] * 2
    assert (takes[0].status in IN_FLOW, takes[1].status) == (True, S.QUEUED)
    assert pipeline.seconds_until_due() is None, "no pump spins for a dead account"
    calls = emu.stats
    run_pass(now=account.cool_down_until - timedelta(seconds=1))
    assert emu.stats == calls, "re-checked only every 15 minutes"
    run_pass(now=account.cool_down_until)
    assert emu.stats["credits"] == calls["credits"] + 1
    assert studio().problem == DEAD_TOKEN.format(n=policy.CREDENTIAL_RECHECKS + 2), "still refused"

    # Google accepts the token again: no admin needed, the next re-check lets the takes go.
    emu.accept_tokens()
    later = studio().cool_down_until
    run_pass(now=later)
    account = studio()
    assert (account.problem, account.credential_refusals) == ("", 0)
    takes = settle(takes, ahead=later - timezone.now() + timedelta(seconds=1))
    assert [(t.status, t.reason) for t in takes] == [(S.READY, "")] * 2
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (2, 2)
    assert_files_match(takes)


def test_a_cookie_account_mints_a_fresh_token_at_each_re_check_until_the_session_works_again(
    flow_emulator, cookie_account, project, alice, settings
):
    settings.FLOWSITE_STUCK_AFTER = 24 * 3600
    [take] = make_scene(project).generate(alice)
    flow_emulator.kill_session()
    now = timezone.now()
    run_pass(now=now)
    take.refresh_from_db()
    assert take.reason == RECHECKING.format(what="session")
    assert flow_emulator.stats["session"] == 1
    for refusals in range(1, policy.CREDENTIAL_RECHECKS + 1):
        now = studio().cool_down_until
        run_pass(now=now)
        assert flow_emulator.stats["session"] == refusals + 1, "a fresh token asked for"
    assert studio().problem == DEAD_SESSION.format(n=policy.CREDENTIAL_RECHECKS + 1)
    assert flow_emulator.stats["submit"] == 0

    flow_emulator.accept_tokens()
    later = studio().cool_down_until
    [take] = settle([take], ahead=later - timezone.now() + timedelta(seconds=1))

    assert (take.status, take.reason) == (S.READY, "")
    assert studio().problem == ""
    assert studio().access_token.startswith("ya29.")
    assert (flow_emulator.stats["submit"], flow_emulator.stats["clips_submitted"]) == (1, 1)
    assert_files_match([take])


def test_a_submit_whose_token_could_not_be_minted_was_never_sent_so_it_is_not_uncertain(
    flow_emulator, cookie_account, project, alice, settings
):
    scene = make_scene(project)
    settle(scene.generate(alice))
    # The token has run out and labs.google cannot be reached right now; the start image is
    # already uploaded, so the submit is the first call that needs a token.
    FlowAccount.objects.filter(pk=cookie_account.pk).update(access_token="")
    settings.FLOW_LABS_BASE_URL = closed_port_url()
    [take] = scene.generate(alice)

    run_pass()

    take.refresh_from_db()
    assert (take.status, take.attempts) == (S.QUEUED, 1)
    assert take.reason.startswith("Flowsite could not reach labs.google to sign in")
    assert flow_emulator.stats["submit"] == 1, "only the first take's"
    settings.FLOW_LABS_BASE_URL = flow_emulator.url
    [take] = settle([take], ahead=timedelta(seconds=policy.BACKOFF_BASE_SECONDS))
    assert take.status == S.READY
    assert flow_emulator.stats["clips_submitted"] == 2
