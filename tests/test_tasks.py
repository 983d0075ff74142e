"""Background work against the Flow emulator over real HTTP: submit, poll, download."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from pathlib import Path

import av
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generations.models import AccountGrant, FlowAccount, Generation, ImageUpload
from generations.pipeline import policy, poll, submit
from generations.tasks import run_pass
from tests import conftest
from tests.conftest import make_image, vertex_scene
from tests.conftest import make_ready_scene as make_scene
from tests.tasks_support import UNCERTAIN_WORDS, run_at_once, run_until_account_problem, settle

S = Generation.Status


@pytest.fixture(autouse=True)
def _fast(settings):
    # The emulator renders in well under a second; poll as often as a test can use.
    settings.FLOWSITE_POLL_INTERVAL = 0.1


def media_file(name: str) -> Path:
    from django.conf import settings

    return Path(settings.MEDIA_ROOT) / name


def test_two_takes_are_submitted_in_one_call_downloaded_and_ready(emu, project, alice):
    scene = make_scene(project, takes=2)
    takes = settle(scene.generate(alice))

    assert [t.status for t in takes] == [S.READY, S.READY]
    assert emu.stats["submit"] == 1, "one submit call carried both clips"
    assert emu.stats["clips_submitted"] == 2
    assert emu.stats["upload"] == 1
    for take in takes:
        assert take.video.name == f"{take.media_dir()}/clip.mp4"
        assert take.poster.name == f"{take.media_dir()}/poster.jpg"
        data = media_file(take.video.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == take.video_sha256
        assert len(data) == take.video_size
        poster = media_file(take.poster.name).read_bytes()
        assert hashlib.sha256(poster).hexdigest() == take.poster_sha256
        with av.open(str(media_file(take.video.name))) as container:
            frame = next(container.decode(video=0))
            assert frame.width > frame.height, "a landscape clip"
        assert take.operation_name and take.submitted_at and take.finished_at
        assert take.credits_after is not None
        assert take.updated >= take.finished_at
    project.account.refresh_from_db()
    assert project.account.credits == takes[0].credits_after


def test_a_second_generate_reuses_the_uploaded_start_image(emu, project, alice):
    scene = make_scene(project)
    settle(scene.generate(alice))
    settle(scene.generate(alice))
    assert emu.stats["upload"] == 1
    assert emu.stats["submit"] == 2
    assert ImageUpload.objects.filter(image=scene.start_image).count() == 1


def test_an_image_flow_forgot_is_uploaded_again_once(emu, project, alice):
    scene = make_scene(project)
    ImageUpload.objects.create(image=scene.start_image, account=project.account, media_id="gone")
    [take] = settle(scene.generate(alice))
    assert take.status == S.READY
    assert emu.stats["upload"] == 1
    assert emu.stats["submit"] == 2, "refused once for the unknown image, then accepted"
    assert ImageUpload.objects.get(image=scene.start_image).media_id != "gone"


def test_a_take_flow_fails_says_why_in_words(emu, project, alice):
    scene = make_scene(project, "[fault:fail=PUBLIC_ERROR_AUDIO_FILTERED] a gull sings")
    [take] = settle(scene.generate(alice))
    assert take.status == S.FAILED
    assert take.reason == (
        "Flow's safety filter blocked the clip's generated audio (PUBLIC_ERROR_AUDIO_FILTERED)."
    )
    assert take.finished_at is not None
    assert not take.video


@pytest.mark.parametrize(
    "marker", ["[fault:unsafe]", "[fault:fail=PUBLIC_ERROR_UNSAFE_GENERATION]"]
)
def test_a_text_scene_flow_refuses_names_only_its_prompt(emu, project, alice, marker):
    # Refused at submit or failed while rendering alike: a text scene has no start image.
    scene = conftest.make_scene(
        project, prompt=f"{marker} a storm at sea", mode="text", model_key="veo_3_1_t2v_fast"
    )
    [take] = settle(scene.generate(alice))
    assert take.status == S.FAILED
    assert take.reason == (
        "Flow's safety filter refused the prompt (PUBLIC_ERROR_UNSAFE_GENERATION)."
    )


def test_a_start_image_scene_flow_fails_while_rendering_names_its_prompt_and_image(
    emu, project, alice
):
    scene = make_scene(project, "[fault:fail=PUBLIC_ERROR_PROMINENT_PEOPLE_FILTER_FAILED] x")
    [take] = settle(scene.generate(alice))
    assert take.reason == (
        "Flow refused the prompt or the start image because it appears to show a well-known "
        "person (PUBLIC_ERROR_PROMINENT_PEOPLE_FILTER_FAILED)."
    )


def test_an_unsafe_prompt_fails_at_once_and_is_not_retried(emu, project, alice):
    scene = make_scene(project, "[fault:unsafe] something Flow refuses")
    [take] = settle(scene.generate(alice))
    assert take.status == S.FAILED
    assert "PUBLIC_ERROR_UNSAFE_GENERATION" in take.reason
    for _ in range(3):
        run_pass(now=timezone.now() + timedelta(hours=1))
    assert emu.stats["submit"] == 1


def test_a_throttled_submit_waits_for_retry_after_then_succeeds(emu, project, alice):
    scene = make_scene(project, "[fault:throttle=1:once] a slow tide")
    [take] = scene.generate(alice)
    before = timezone.now()
    counts = run_pass(now=before)
    assert counts["requeued"] == 1
    take.refresh_from_db()
    account = FlowAccount.objects.get(pk=project.account_id)
    assert take.status == S.QUEUED
    assert take.attempts == 1
    assert "rate-limiting" in take.reason, "the card says why it waits"
    assert before + timedelta(seconds=1) <= take.next_check_at
    assert account.cool_down_until >= before + timedelta(seconds=1), "the account rests"

    run_pass(now=before + timedelta(seconds=0.5))
    assert emu.stats["submit"] == 1, "not before Retry-After"

    [take] = settle([take], ahead=timedelta(seconds=2))
    assert take.status == S.READY
    assert take.reason == ""
    assert emu.stats["submit"] == 2
    assert emu.stats["clips_submitted"] == 1


def test_flow_running_out_of_credits_fails_the_take_without_retrying(emu, project, alice):
    [take] = settle(make_scene(project, "[fault:quota] one too many").generate(alice))
    assert take.status == S.FAILED
    assert "PUBLIC_ERROR_USER_QUOTA_REACHED" in take.reason
    run_pass(now=timezone.now() + timedelta(hours=1))
    assert emu.stats["submit"] == 1


@pytest.mark.parametrize("fault", ["error500", "botcheck"])
def test_a_passing_upstream_refusal_is_retried_with_backoff(emu, project, alice, fault):
    [take] = make_scene(project, f"[fault:{fault}:once] a ferry leaves").generate(alice)
    run_pass()
    take.refresh_from_db()
    assert (take.status, take.attempts) == (S.QUEUED, 1)
    assert take.next_check_at > timezone.now()
    [take] = settle([take], ahead=timedelta(seconds=policy.BACKOFF_BASE_SECONDS))
    assert take.status == S.READY
    assert emu.stats["submit"] == 2


def test_retryable_refusals_give_up_after_a_bounded_number_of_attempts(emu, project, alice):
    [take] = make_scene(project, "[fault:error500] a storm").generate(alice)
    for hour in range(policy.SUBMIT_ATTEMPTS + 2):
        # Each pass an hour after the last: every backoff (capped well below) has run out.
        run_pass(now=timezone.now() + timedelta(hours=hour))
    take.refresh_from_db()
    assert take.status == S.FAILED
    assert take.reason == (
        "Flow had an internal error (HTTP 500) while submitting clips. "
        "Flowsite gave up after 6 attempts."
    ), "what happened, and that Flowsite stopped: no promise to try again"
    assert emu.stats["submit"] == policy.SUBMIT_ATTEMPTS
    assert emu.stats["clips_submitted"] == 0


def test_the_pump_runs_passes_until_nothing_is_in_flight_then_lets_go(emu, project, alice):
    from generations import tasks
    from generations.models import WorkerLease

    takes = make_scene(project, takes=2).generate(alice)
    started = time.monotonic()
    totals = tasks.pump(budget_seconds=30)
    assert time.monotonic() - started < 10
    assert totals["ready"] == 2
    assert totals["passes"] > 1
    assert not WorkerLease.is_held(tasks.PUMP)
    assert {t.status for t in Generation.objects.filter(pk__in=[t.pk for t in takes])} == {S.READY}


def test_a_lost_submit_answer_makes_the_take_uncertain_and_never_resubmits_it(
    emu, project, alice, settings
):
    settings.FLOW_READ_TIMEOUT = 0.3
    scene = make_scene(project, "[fault:slow=1] a lighthouse blinks")
    [take] = scene.generate(alice)
    counts = run_pass()
    assert counts["uncertain"] == 1
    take.refresh_from_db()
    assert take.status == S.UNCERTAIN
    assert take.reason == (
        f"{UNCERTAIN_WORDS} What happened: Flow did not answer in time (submitting clips)."
    )
    # Flow did receive it (the answer was merely late): exactly the case resubmitting pays twice.
    deadline = time.monotonic() + 5
    while emu.stats["clips_submitted"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(3):
        run_pass(now=timezone.now() + timedelta(hours=1))
    assert emu.stats["submit"] == 1
    take.refresh_from_db()
    assert take.status == S.UNCERTAIN


def test_a_clip_whose_links_keep_expiring_fails_after_bounded_attempts(emu, project, alice):
    scene = make_scene(project, "[fault:expired-url] a crab waves")
    [take] = settle(scene.generate(alice))
    assert take.status == S.FAILED
    assert take.reason == (
        "The download link has expired. Flowsite gave up after 4 download attempts."
    ), "what happened, and that Flowsite stopped: no promise to try again"
    assert emu.stats["check"] >= policy.DOWNLOAD_ATTEMPTS
    assert not media_file(f"{take.media_dir()}/clip.mp4").exists()
    assert not take.video


def test_one_operation_in_an_odd_shape_does_not_hold_up_the_others(emu, project, alice):
    odd = make_scene(project, "[fault:badshape] an odd one").generate(alice)[0]
    image = make_image(project, color=(200, 60, 60))
    fine = make_scene(project, "a calm one", image=image).generate(alice)[0]
    [fine] = settle([fine])
    assert fine.status == S.READY
    odd.refresh_from_db()
    # Asking again would get the same answer: the odd one ends, saying why.
    assert odd.status == S.FAILED
    assert odd.reason.startswith("Flow answered in a shape Flowsite does not know")


def test_a_take_flow_never_finishes_fails_as_stuck_with_the_time_it_waited(emu, project, alice):
    scene = make_scene(project, "[fault:stuck] an endless wave")
    [take] = settle(scene.generate(alice), until=(S.ACTIVE,))
    [take] = settle([take], ahead=timedelta(minutes=21))
    assert take.status == S.FAILED
    assert "21 minutes" in take.reason
    assert "stuck" in take.reason


def test_a_cancelled_take_is_neither_updated_nor_downloaded_afterwards(emu, project, alice):
    scene = make_scene(project)
    [take] = settle(scene.generate(alice), until=(S.PENDING, S.ACTIVE))
    assert take.cancel(by=alice)
    time.sleep(0.8)  # Flow finishes the clip meanwhile
    for _ in range(3):
        run_pass()
    take.refresh_from_db()
    assert take.status == S.CANCELLED
    assert take.reason == "Cancelled by alice."
    assert emu.stats["media"] == 0
    assert not take.video


def test_a_session_cookie_account_mints_one_token_and_shares_it_through_the_database(
    flow_emulator, project, alice, account
):
    account.bearer_token = ""
    account.session_cookie = flow_emulator.session_cookie
    account.save(update_fields=["bearer_token", "session_cookie"])
    settle(make_scene(project).generate(alice))
    account.refresh_from_db()
    assert account.access_token.startswith("ya29.")
    assert account.access_token_expires > timezone.now()
    assert flow_emulator.stats["session"] == 1, "every pass (a new engine) reused the token"


def test_a_dead_session_holds_the_take_re_checks_it_then_flags_the_account(
    flow_emulator, project, alice, account
):
    account.bearer_token = ""
    account.session_cookie = flow_emulator.session_cookie
    account.save(update_fields=["bearer_token", "session_cookie"])
    flow_emulator.kill_session()
    [take] = make_scene(project).generate(alice)
    run_pass()
    run_pass()
    take.refresh_from_db()
    # It waits while Flowsite re-checks the account (tests/test_account_rechecks.py).
    assert take.status == S.QUEUED
    assert flow_emulator.stats["session"] == 1, "not asked again before its re-check"
    assert "Flowsite is re-checking the account" in take.reason
    account.refresh_from_db()
    assert account.problem == ""

    run_until_account_problem(account)
    take.refresh_from_db()
    message = (
        f"The Flow session for account Studio was refused {policy.CREDENTIAL_RECHECKS + 1} "
        "times in a row: it has expired — paste a new cookie. Flowsite re-checks it every "
        "15 minutes meanwhile."
    )
    assert (take.status, take.reason) == (S.QUEUED, message)
    account.refresh_from_db()
    assert account.problem == message
    assert flow_emulator.stats["session"] == policy.CREDENTIAL_RECHECKS + 1
    assert flow_emulator.stats["submit"] == 0


@pytest.mark.django_db(transaction=True)
def test_two_passes_at_once_never_submit_a_take_twice(flow_emulator, settings):
    from django.contrib.auth.models import User

    from generations.models import Membership, Project

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.FLOWSITE_POLL_INTERVAL = 0.1
    account = FlowAccount.objects.create(label="Race", bearer_token=flow_emulator.token)
    alice = User.objects.create_user("alice")
    project = Project.objects.create(name="Race", account=account, created_by=alice)
    project.add_member(alice, Membership.Role.OWNER)
    AccountGrant.objects.create(account=account, user=alice)
    takes = make_scene(project, takes=4).generate(alice)

    run_at_once(run_pass)

    assert flow_emulator.stats["clips_submitted"] == 4
    assert flow_emulator.stats["submit"] == 1
    takes = settle(takes)
    assert [t.status for t in takes] == [S.READY] * 4
    assert len({t.operation_name for t in takes}) == 4


def _in_flight_takes(project, alice, count: int) -> list[Generation]:
    """``count`` takes Flow keeps rendering for ever (no clip is drawn)."""
    scene = make_scene(project, "[fault:stuck] a long shot")
    now = timezone.now()
    takes = Generation.objects.bulk_create(
        Generation(
            scene=scene,
            project=project,
            requested_by=alice,
            account=project.account,
            take=n + 1,
            prompt=scene.prompt,
            model_key=scene.model_key,
            aspect=scene.aspect,
            seed=n,
            start_image=scene.start_image,
            created=now,
            updated=now,
        )
        for n in range(count)
    )
    return settle(takes, until=(S.ACTIVE,))


@pytest.mark.parametrize("count", [5, 50])
def test_a_poll_pass_costs_the_same_queries_for_5_or_50_takes(emu, project, alice, settings, count):
    settings.FLOW_STATUS_BATCH_SIZE = 100
    takes = _in_flight_takes(project, alice, count)
    later = timezone.now() + timedelta(seconds=5)
    with CaptureQueriesContext(connection) as queries:
        counts = run_pass(now=later)
    assert counts["checked"] == count
    # reap (4) + credential re-checks due (1) + submit lookup (1) + poll lookup, accounts,
    # claim, read, credits, apply (6) + upscales in flight (1)
    assert len(queries) == 13, [q["sql"][:80] for q in queries]
    assert Generation.objects.filter(pk__in=[t.pk for t in takes], status=S.ACTIVE).count() == (
        count
    )


def test_a_pass_near_its_end_leaves_downloads_to_the_next_pass(emu, project, alice, settings):
    settings.FLOW_CALL_DEADLINE = 2.0
    settings.FLOW_DOWNLOAD_DEADLINE = 30.0
    [take] = make_scene(project).generate(alice)
    deadline = time.monotonic() + 10
    deferred = 0
    while not deferred and time.monotonic() < deadline:
        # Time enough for a status call, not for a download.
        deferred = run_pass(stop_at=time.monotonic() + 10).get("download_deferred", 0)
        time.sleep(0.05)
    assert deferred == 1
    take.refresh_from_db()
    assert take.status == S.ACTIVE
    assert take.next_check_at <= timezone.now()
    assert emu.stats["media"] == 0
    [take] = settle([take])
    assert take.status == S.READY


def test_a_bug_in_one_poll_batch_does_not_end_the_pass(emu, project, alice, monkeypatch):
    [take] = settle(make_scene(project).generate(alice), until=(S.PENDING, S.ACTIVE))

    def broken(self, takes, clips):
        raise RuntimeError("a bug")

    monkeypatch.setattr(poll.PollBatch, "apply", broken)
    counts = run_pass(now=timezone.now() + timedelta(seconds=1))
    assert counts["checked"] == 1
    take.refresh_from_db()
    assert take.status in (S.PENDING, S.ACTIVE)
    assert take.claim is None
    assert take.next_check_at > timezone.now() + timedelta(seconds=5), "asked again later"
    monkeypatch.undo()
    [take] = settle([take], ahead=timedelta(seconds=15))
    assert take.status == S.READY


def test_a_bug_before_a_vertex_take_is_sent_fails_its_last_try_naming_no_engine(
    vertex_project, alice, monkeypatch
):
    [take] = vertex_scene(vertex_project).generate(alice)
    Generation.objects.filter(pk=take.pk).update(attempts=policy.SUBMIT_ATTEMPTS - 1)

    def broken(self):
        raise RuntimeError("a bug")

    monkeypatch.setattr(submit.SubmitGroup, "run", broken)
    assert run_pass()["failed"] == 1

    take.refresh_from_db()
    assert take.status == S.FAILED
    assert take.reason == (
        "Flowsite hit an internal error preparing this take to be sent; an admin can find the "
        "details in the worker's log."
    )


def test_a_polling_pass_records_the_credits_flow_reports_once_for_the_account(
    emu, project, alice, settings
):
    takes = make_scene(project, takes=2).generate(alice)
    settle(takes, until=(S.PENDING, S.ACTIVE))
    FlowAccount.objects.filter(pk=project.account_id).update(credits=1)
    settings.FLOW_STATUS_BATCH_SIZE = 1  # two status calls, each reporting the credits

    with CaptureQueriesContext(connection) as queries:
        run_pass(now=timezone.now() + timedelta(minutes=1))

    assert emu.stats["check"] >= 2
    project.account.refresh_from_db()
    assert project.account.credits == emu.credits
    credit_writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("UPDATE") and '"credits"' in q["sql"]
    ]
    assert len(credit_writes) == 1
