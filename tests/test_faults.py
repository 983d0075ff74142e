"""Nothing lost under faults: every upstream fault the emulator can play, injected over real
HTTP, and what each take, its files and Flow's bill look like afterwards.

Each test asserts the final state of every take, the files on disk (no partial file under a
final name, no stray temporary file) and how many submit calls and clips Flow saw.
"""

from __future__ import annotations

import io
import logging
import re
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import av
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from PIL import Image, ImageChops, ImageStat

from generations import pipeline, tasks, work
from generations.emulator import Emulator
from generations.models import FlowAccount, Generation, ImageUpload, Membership, Project
from generations.pipeline import policy
from generations.tasks import run_pass
from tests.conftest import make_image
from tests.conftest import make_ready_scene as make_scene
from tests.faults_support import assert_files_match, fresh, snapshot
from tests.tasks_support import UNCERTAIN_WORDS, run_at_once, run_until_account_problem, settle
from tests.views_support import client_for

S = Generation.Status
IN_FLOW = (S.PENDING, S.ACTIVE)


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.FLOWSITE_POLL_INTERVAL = 0.1


@pytest.fixture
def cookie_account(flow_emulator: Emulator, account: FlowAccount) -> FlowAccount:
    account.bearer_token, account.session_cookie = "", flow_emulator.session_cookie
    account.save(update_fields=["bearer_token", "session_cookie"])
    return account


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def closed_port_url() -> str:
    """A loopback address nobody listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def media_listing() -> list[tuple[str, int, int]]:
    root = Path(django_settings.MEDIA_ROOT)
    return sorted(
        (str(path.relative_to(root)), path.stat().st_size, path.stat().st_mtime_ns)
        for path in root.rglob("*")
        if path.is_file()
    )


def ceiling(attempt: int) -> float:
    """The top of the backoff window for failure number ``attempt`` (the floor is half)."""
    return min(policy.BACKOFF_CAP_SECONDS, policy.BACKOFF_BASE_SECONDS * 2 ** max(attempt - 1, 0))


# --- Never pay twice --------------------------------------------------------------------------


def test_a_lost_submit_answer_is_uncertain_never_resent_and_submit_again_sends_it_once_more(
    emu, project, alice, bob, settings, django_capture_on_commit_callbacks
):
    settings.FLOW_READ_TIMEOUT = 0.3
    scene = make_scene(project, "[fault:slow=1:once] a lighthouse blinks")
    [take] = scene.generate(alice)

    run_pass()
    take.refresh_from_db()
    assert take.status == S.UNCERTAIN
    assert take.reason == (
        f"{UNCERTAIN_WORDS} What happened: Flow did not answer in time (submitting clips)."
    )
    # Flow did get it and charged for it: exactly the case where resubmitting pays twice.
    wait_for(lambda: emu.stats["clips_submitted"] == 1)
    for hours in (1, 2, 3):
        run_pass(now=timezone.now() + timedelta(hours=hours))
    take.refresh_from_db()
    assert (take.status, emu.stats["submit"]) == (S.UNCERTAIN, 1)

    page = client_for(bob).get(reverse("project-detail", args=[project.uuid])).text
    assert "Submit again" in page
    assert "submitting again can pay for it twice" in page
    with django_capture_on_commit_callbacks(execute=True):
        client_for(bob).post(reverse("take-retry", args=[take.uuid]), {"last_take": "1"})

    again = scene.generations.get(take=2)
    [again] = settle([again])
    take.refresh_from_db()
    assert again.status == S.READY
    assert take.status == S.UNCERTAIN
    assert take.tried_again_words == "Submitted again as take 2."
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (2, 2)
    assert_files_match([take, again])


def test_a_pass_run_twice_on_the_same_state_changes_nothing(emu, project, alice):
    takes = make_scene(project, takes=2).generate(alice)
    passes = 0
    while True:
        now = timezone.now()
        run_pass(now=now)
        rows, stats, files = snapshot(), emu.stats, media_listing()
        # The same pass again, as if the task had been delivered twice.
        counts = run_pass(now=now)
        assert snapshot() == rows
        assert emu.stats == stats
        assert media_listing() == files
        assert not any(counts.values()), counts
        passes += 1
        if all(t.status == S.READY for t in fresh(takes)):
            break
        assert passes < 200, "takes did not settle"
        time.sleep(0.05)
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (1, 2)
    assert emu.stats["media"] == 4, "each clip and poster fetched once"
    assert_files_match(fresh(takes))


@pytest.mark.django_db(transaction=True)
def test_two_pumps_started_at_once_do_the_work_once(emu, project, alice):
    takes = make_scene(project, takes=3).generate(alice)

    results = run_at_once(lambda: tasks.pump(budget_seconds=20))

    assert sorted(result.get("busy", 0) for result in results) == [0, 1]
    takes = fresh(takes)
    assert [t.status for t in takes] == [S.READY] * 3
    assert (emu.stats["submit"], emu.stats["clips_submitted"], emu.stats["media"]) == (1, 3, 6)

    # And once more when everything is done: one pass that changes nothing.
    rows, stats = snapshot(), emu.stats
    again = tasks.pump(budget_seconds=5)
    assert {name: count for name, count in again.items() if count} == {"passes": 1}
    assert (snapshot(), emu.stats) == (rows, stats)
    assert_files_match(takes)


# --- Throttling, Flow's 500s, the network ---------------------------------------------------


def test_a_throttled_account_gets_no_call_at_all_until_retry_after_has_passed(emu, project, alice):
    [rendering] = settle(make_scene(project).generate(alice), until=IN_FLOW)
    image = make_image(project, color=(200, 120, 40))
    [throttled] = make_scene(project, "[fault:throttle=2:once] a gull", image=image).generate(alice)
    before = emu.stats

    now = timezone.now()
    counts = run_pass(now=now)
    assert counts["requeued"] == 1
    account = FlowAccount.objects.get(pk=project.account_id)
    throttled.refresh_from_db()
    rest = (account.cool_down_until - now).total_seconds()
    assert 2.0 <= rest <= 2.2, "Retry-After: 2, honoured with a little spread"
    assert throttled.next_check_at == account.cool_down_until
    assert (throttled.status, throttled.attempts) == (S.QUEUED, 1)
    assert "rate-limiting" in throttled.reason
    assert emu.stats["check"] == before["check"], "the rendering take is not asked about either"
    calls = emu.stats

    for moment in (now + timedelta(seconds=1), account.cool_down_until - timedelta(milliseconds=5)):
        run_pass(now=moment)
        assert emu.stats == calls, "no call to Flow for this account while it rests"

    run_pass(now=account.cool_down_until)
    assert emu.stats["submit"] == calls["submit"] + 1
    assert emu.stats["check"] == calls["check"] + 1
    takes = settle([rendering, throttled], ahead=timedelta(seconds=3))
    assert [t.status for t in takes] == [S.READY, S.READY]
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (3, 2)
    assert_files_match(takes)


def test_flows_500s_are_retried_with_capped_exponential_backoff_and_jitter_then_given_up(
    emu, project, alice, monkeypatch
):
    monkeypatch.setattr(policy, "BACKOFF_CAP_SECONDS", 10.0)
    second = Project.objects.create(name="Second", account=project.account, created_by=alice)
    second.add_member(alice, Membership.Role.OWNER)
    # Two projects: two submit groups, each with its own jittered delay.
    takes = [
        make_scene(project, "[fault:error500] a storm").generate(alice)[0],
        make_scene(second, "[fault:error500] a squall").generate(alice)[0],
    ]
    now = timezone.now()
    spreads = []
    for attempt in range(1, policy.SUBMIT_ATTEMPTS):
        run_pass(now=now)
        delays = []
        for take in fresh(takes):
            assert (take.status, take.attempts) == (S.QUEUED, attempt)
            assert "internal error" in take.reason
            delays.append((take.next_check_at - now).total_seconds())
        top = ceiling(attempt)
        assert all(top / 2 <= delay <= top for delay in delays), (attempt, delays)
        spreads.append(abs(delays[0] - delays[1]))
        now = max(take.next_check_at for take in fresh(takes))
    assert ceiling(policy.SUBMIT_ATTEMPTS - 1) == 10.0, "the cap was reached"
    assert max(spreads) > 0, "jittered, so throttled takes do not come back in lockstep"

    run_pass(now=now)
    for take in fresh(takes):
        assert take.status == S.FAILED
        assert "Flowsite gave up after 6 attempts." in take.reason
    assert emu.stats["submit"] == 2 * policy.SUBMIT_ATTEMPTS
    assert emu.stats["clips_submitted"] == 0
    assert_files_match(fresh(takes))


def test_network_errors_back_off_exponentially_on_uploads_and_status_checks(
    emu, project, alice, settings
):
    settings.FLOW_API_BASE_URL = closed_port_url()
    [take] = make_scene(project).generate(alice)
    now = timezone.now()
    run_pass(now=now)
    take.refresh_from_db()
    assert (take.status, take.attempts) == (S.QUEUED, 1)
    assert "could not reach Flow" in take.reason
    assert ceiling(1) / 2 <= (take.next_check_at - now).total_seconds() <= ceiling(1)

    settings.FLOW_API_BASE_URL = emu.url
    [take] = settle([take], until=IN_FLOW, ahead=timedelta(seconds=ceiling(1)))
    assert take.reason == ""

    settings.FLOW_API_BASE_URL = closed_port_url()
    now = take.next_check_at
    for failures in range(1, 5):
        run_pass(now=now)
        take.refresh_from_db()
        assert take.status in IN_FLOW
        assert take.check_errors == failures
        delay = (take.next_check_at - now).total_seconds()
        assert ceiling(failures) / 2 <= delay <= ceiling(failures), (failures, delay)
        now = take.next_check_at

    settings.FLOW_API_BASE_URL = emu.url
    [take] = settle([take], ahead=now - timezone.now())
    assert (take.status, take.check_errors, take.reason) == (S.READY, 0, "")
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (1, 1)
    assert_files_match([take])


def test_alices_rendering_takes_say_flow_cannot_be_reached_and_go_on_once_it_answers(
    emu, project, alice, settings
):
    takes = settle(make_scene(project, takes=3).generate(alice), until=IN_FLOW)
    page = reverse("project-detail", args=[project.uuid])
    cannot_reach = re.compile(
        r"Flowsite could not reach Flow \(checking clips\)\. Flowsite will check on this take "
        r"again in about \d+ seconds?\."
    )

    # Flow stops answering while the clips render.
    settings.FLOW_API_BASE_URL = closed_port_url()
    now = max(take.next_check_at for take in fresh(takes))
    for _ in range(3):
        run_pass(now=now)
        now = max(take.next_check_at for take in fresh(takes))
    card = client_for(alice).get(page).text
    assert len(cannot_reach.findall(card)) == 3, "every rendering take says why it is not moving"
    assert all(take.status in IN_FLOW for take in fresh(takes))

    settings.FLOW_API_BASE_URL = emu.url
    takes = settle(takes, ahead=now - timezone.now())
    assert [(take.status, take.reason) for take in takes] == [(S.READY, "")] * 3
    assert not cannot_reach.search(client_for(alice).get(page).text)
    assert_files_match(takes)


# --- Tokens and sessions ----------------------------------------------------------------------


def test_a_revoked_access_token_is_minted_again_once_and_the_take_goes_on(
    flow_emulator, cookie_account, project, alice
):
    [take] = settle(make_scene(project).generate(alice), until=IN_FLOW)
    cookie_account.refresh_from_db()
    first_token = cookie_account.access_token
    assert flow_emulator.stats["session"] == 1

    flow_emulator.expire_tokens()
    [take] = settle([take])

    assert take.status == S.READY
    assert flow_emulator.stats["session"] == 2, "one new token, minted once"
    cookie_account.refresh_from_db()
    assert cookie_account.access_token not in ("", first_token)
    assert cookie_account.problem == ""
    assert (flow_emulator.stats["submit"], flow_emulator.stats["clips_submitted"]) == (1, 1)
    assert_files_match([take])


def test_a_dead_session_holds_every_take_saying_so_and_all_resume_once_a_new_cookie_is_saved(
    flow_emulator, cookie_account, project, alice, django_capture_on_commit_callbacks, task_queue
):
    [rendering] = settle(make_scene(project).generate(alice), until=IN_FLOW)
    # Google ends the session: the cookie and every token minted from it stop working.
    cookie_account.session_cookie = "an-ended-session"
    cookie_account.save(update_fields=["session_cookie"])
    flow_emulator.expire_tokens()
    other = make_image(project, color=(10, 160, 90))
    [queued] = make_scene(project, "a heron", image=other).generate(alice)
    # Refused through every re-check (tests/test_account_rechecks.py).
    now = run_until_account_problem(cookie_account)
    # Queued after the account broke: it waits too, and says why.
    [later] = make_scene(project, "a cormorant", image=other).generate(alice)
    run_pass(now=now)
    calls = flow_emulator.stats
    run_pass(now=now + timedelta(minutes=5))
    assert flow_emulator.stats == calls, "a signed-out account is re-checked only rarely"

    message = (
        f"The Flow session for account Studio was refused {policy.CREDENTIAL_RECHECKS + 1} "
        "times in a row: it has expired — paste a new cookie. Flowsite re-checks it every "
        "15 minutes meanwhile."
    )
    takes = fresh([rendering, queued, later])
    assert [t.status in IN_FLOW for t in takes] == [True, False, False]
    assert [t.status for t in takes[1:]] == [S.QUEUED, S.QUEUED]
    assert [t.reason for t in takes] == [message] * 3
    cookie_account.refresh_from_db()
    assert cookie_account.problem == message
    assert pipeline.seconds_until_due() is None, "no pump spins on takes only an admin can free"
    assert flow_emulator.stats["clips_submitted"] == 1
    assert_files_match(takes)

    task_queue.clear()
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "flow_account",
            "update",
            "Studio",
            "--session-cookie",
            flow_emulator.session_cookie,
            stdout=io.StringIO(),
        )
    cookie_account.refresh_from_db()
    assert (cookie_account.problem, cookie_account.access_token) == ("", "")
    assert [t.reason for t in fresh(takes)] == ["", "", ""]
    assert task_queue.count() == 1, "a pump was started for them"

    takes = settle(takes)
    assert [t.status for t in takes] == [S.READY] * 3
    assert (flow_emulator.stats["submit"], flow_emulator.stats["clips_submitted"]) == (2, 3)
    assert_files_match(takes)


def test_a_revoked_bearer_token_holds_the_takes_until_an_admin_pastes_new_credentials(
    emu, project, alice, account, django_capture_on_commit_callbacks
):
    [rendering] = settle(make_scene(project).generate(alice), until=IN_FLOW)
    emu.expire_tokens()
    run_until_account_problem(account)

    message = (
        f"The Flow access token of account Studio was refused {policy.CREDENTIAL_RECHECKS + 1} "
        "times in a row: it has expired or was revoked — paste a new one. Flowsite re-checks "
        "it every 15 minutes meanwhile."
    )
    [rendering] = fresh([rendering])
    assert rendering.status in IN_FLOW
    assert rendering.reason == message
    account.refresh_from_db()
    assert account.problem == message

    with django_capture_on_commit_callbacks(execute=True):
        account.replace_credentials(session_cookie=emu.session_cookie)
        account.save(update_fields=FlowAccount.CREDENTIAL_FIELDS)
        work.resume_waiting(account)
    [rendering] = settle([rendering])
    assert (rendering.status, rendering.reason) == (S.READY, "")
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (1, 1)
    assert_files_match([rendering])


# --- Refusals and odd answers -----------------------------------------------------------------


def test_an_image_flow_forgot_is_uploaded_again_once_and_the_take_is_submitted(emu, project, alice):
    scene = make_scene(project)
    ImageUpload.objects.create(image=scene.start_image, account=project.account, media_id="gone")
    [take] = settle(scene.generate(alice))
    assert take.status == S.READY
    assert emu.stats["upload"] == 1
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (2, 1), "refused, then sent"
    assert_files_match([take])


def _ultra_take(project, alice) -> Generation:
    """A take of a model the account's tier does not allow (the scene form would refuse it;
    Flow is the one refusing here, as when an account is downgraded after queueing)."""
    scene = make_scene(project, "a whale breaches")
    now = timezone.now()
    return Generation.objects.create(
        scene=scene,
        project=project,
        requested_by=alice,
        account=project.account,
        prompt=scene.prompt,
        model_key="veo_3_1_i2v_s_fast_ultra",
        aspect=scene.aspect,
        seed=7,
        start_image=scene.start_image,
        created=now,
        updated=now,
    )


@pytest.mark.parametrize(
    ("make_take", "words"),
    [
        (
            lambda p, u: make_scene(p, "[fault:unsafe] x").generate(u)[0],
            "safety filter refused the prompt or the start image (PUBLIC_ERROR_UNSAFE_GENERATION).",
        ),
        (
            lambda p, u: make_scene(p, "[fault:quota] x").generate(u)[0],
            "run out of credits (Flow refused the take, so nothing was spent), and the project "
            "has no other account. Add credits, or ask an admin for another account "
            "(PUBLIC_ERROR_USER_QUOTA_REACHED).",
        ),
        (_ultra_take, "needs a Ultra (tier two) account; this account is Pro (tier one)"),
    ],
    ids=["safety", "quota", "tier"],
)
def test_safety_quota_and_tier_refusals_fail_at_once_with_the_reason_and_are_never_retried(
    emu, project, alice, make_take, words
):
    take = make_take(project, alice)
    run_pass()
    for hours in (1, 2):
        run_pass(now=timezone.now() + timedelta(hours=hours))
    [take] = fresh([take])
    assert take.status == S.FAILED
    assert words in take.reason
    assert (take.attempts, take.finished_at is not None) == (0, True)
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (1, 0)
    assert_files_match([take])


def test_an_expired_download_link_is_replaced_by_asking_flow_for_the_status_again(
    emu, project, alice
):
    [take] = settle(make_scene(project, "[fault:expired-url:once] a crab").generate(alice))
    assert take.status == S.READY
    assert take.download_attempts == 1
    assert emu.stats["media"] == 3, "the expired clip link, then the fresh clip and poster"
    assert emu.stats["check"] >= 2
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (1, 1)
    assert_files_match([take])


@pytest.mark.parametrize("broken", ["missing", "denied", "expired", "garbled"])
def test_a_flow_poster_that_cannot_be_fetched_is_made_from_the_clips_first_frame(
    emu, project, alice, broken
):
    # A poster Flow's link failed to give was a grey card; a failing one once failed the take.
    [take] = settle(make_scene(project, f"[fault:broken-poster={broken}] a kite").generate(alice))

    assert (take.status, take.reason, take.download_attempts) == (S.READY, "", 0)
    assert emu.stats["media"] == 2, "the clip once, then the poster once"
    media = Path(django_settings.MEDIA_ROOT)
    assert take.poster.name == f"{take.media_dir()}/poster.jpg"
    with av.open(str(media / take.video.name)) as container:
        first = next(container.decode(video=0)).to_image()
    with Image.open(media / take.poster.name) as poster:
        assert (poster.format, poster.size) == ("JPEG", first.size)
        assert ImageStat.Stat(ImageChops.difference(poster.convert("RGB"), first)).mean[0] < 2
    assert_files_match([take])


def test_a_download_cut_short_every_time_fails_after_bounded_attempts_leaving_no_file(
    emu, project, alice
):
    [take] = settle(make_scene(project, "[fault:truncated-download] a reef").generate(alice))
    assert take.status == S.FAILED
    assert "stopped after" in take.reason
    assert "Flowsite gave up after 4 download attempts." in take.reason
    assert emu.stats["media"] == policy.DOWNLOAD_ATTEMPTS
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (1, 1)
    assert_files_match([take])


def test_a_take_flow_keeps_rendering_far_too_long_fails_as_stuck_saying_how_long(
    emu, project, alice, settings
):
    settings.FLOWSITE_STUCK_AFTER = 1.0
    [take] = settle(make_scene(project, "[fault:stuck] an endless wave").generate(alice))
    assert take.status == S.FAILED
    waited = re.search(
        r"still working on this take (\d+) seconds? after it was submitted", take.reason
    )
    assert waited and int(waited[1]) >= 1, take.reason
    assert "stuck" in take.reason
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (1, 1)
    assert_files_match([take])


def test_a_status_answer_of_unknown_shape_fails_the_take_and_logs_the_redacted_body(
    emu, project, alice, caplog
):
    caplog.set_level(logging.WARNING)
    [take] = settle(make_scene(project, "[fault:badshape] an odd one").generate(alice))
    assert take.status == S.FAILED
    assert take.reason.startswith("Flow answered in a shape Flowsite does not know")
    # The card says what was odd in words; the answer itself is for whoever reads the log.
    assert "{" not in take.reason and take.reason.endswith("in the worker's log for an admin.")
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("mediaGenerationStatus" in line for line in logged), logged
    assert not any(emu.token in line for line in logged)
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (1, 1)
    assert_files_match([take])
