"""Claims, leases and take state changes that need only the database (no Flow at all)."""

from __future__ import annotations

import importlib
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from django.apps import apps as django_apps
from django.utils import timezone
from django_q.models import Schedule

from generations import pipeline, tasks, work
from generations.engines import flow
from generations.engines.flow import FlowEngine
from generations.models import CannotGenerate, Generation, Upscale, WorkerLease
from generations.pipeline import accounts, claims, policy
from tests.conftest import make_ready_scene as make_scene
from tests.tasks_support import UNCERTAIN_WORDS

S = Generation.Status


@pytest.fixture
def scene(project):
    return make_scene(project)


@pytest.fixture
def take(scene, alice):
    return scene.generate(alice)[0]


@pytest.fixture
def no_engine(monkeypatch):
    """Fail the test if a pass tries to reach Flow at all."""

    def refuse(account):
        raise AssertionError("this pass must not talk to Flow")

    monkeypatch.setattr(accounts, "engine_for", refuse)


def set_status(take: Generation, status: str, **fields) -> Generation:
    Generation.objects.filter(pk=take.pk).update(status=status, **fields)
    take.refresh_from_db()
    return take


# --- The pump's lease ---------------------------------------------------------------------


def test_a_lease_is_held_by_one_holder_until_it_lapses(db):
    assert WorkerLease.acquire("pump", "first", 60)
    assert not WorkerLease.acquire("pump", "second", 60)
    assert WorkerLease.acquire("pump", "first", 60), "the holder can renew"
    WorkerLease.objects.filter(name="pump").update(until=timezone.now() - timedelta(seconds=1))
    assert WorkerLease.acquire("pump", "second", 60), "a lapsed lease is free"
    WorkerLease.release("pump", "first")
    assert WorkerLease.is_held("pump"), "only the holder can release"
    WorkerLease.release("pump", "second")
    assert not WorkerLease.is_held("pump")


def test_start_pump_enqueues_a_task_only_when_no_pump_holds_the_lease(db, task_queue):
    assert tasks.start_pump()
    assert task_queue.count() == 1
    WorkerLease.acquire(tasks.PUMP, "running", 60)
    assert not tasks.start_pump()
    assert task_queue.count() == 1


def test_a_pump_that_finds_the_lease_held_stops_at_once(db):
    WorkerLease.acquire(tasks.PUMP, "running", 60)
    assert tasks.pump() == {"busy": 1}


def test_a_pump_with_nothing_in_flight_runs_one_pass_and_lets_go(db, no_engine):
    assert tasks.pump()["passes"] == 1
    assert not WorkerLease.is_held(tasks.PUMP)


def test_the_watchdog_starts_a_pump_only_for_work_in_flight(take, task_queue):
    task_queue.clear()
    assert tasks.watchdog()
    assert task_queue.count() == 1
    take.cancel()
    task_queue.clear()
    assert not tasks.watchdog()
    assert task_queue.count() == 0


def test_the_watchdog_schedule_exists_once_even_when_the_migration_runs_again(db):
    schedules = Schedule.objects.filter(func="generations.tasks.watchdog")
    assert schedules.count() == 1
    assert schedules.get().schedule_type == Schedule.MINUTES
    assert schedules.get().repeats == -1
    migration = importlib.import_module("generations.migrations.0003_pump_schedule")
    migration.create_schedule(django_apps, None)
    assert schedules.count() == 1


# --- Taking rows --------------------------------------------------------------------------


def test_generate_queues_the_submission_once_committed(
    scene, alice, django_capture_on_commit_callbacks, task_queue
):
    with django_capture_on_commit_callbacks(execute=True):
        work.generate(scene, alice)
    assert task_queue.count() == 1, "a pump task was enqueued"


def test_the_models_only_write_rows_and_leave_the_worker_to_their_caller(
    scene, take, alice, django_capture_on_commit_callbacks, task_queue
):
    account = scene.project.account
    take.status = S.FAILED
    take.save(update_fields=["status"])
    with django_capture_on_commit_callbacks() as callbacks:
        scene.generate(alice)
        take.retry_as_new_take(alice)
        scene.project.generate_scenes([scene], alice)
        account.replace_credentials(session_cookie="a-new-session")
        account.save()
    assert callbacks == []
    assert task_queue.count() == 0


def test_a_pass_writes_only_rows_that_still_carry_its_claim(scene, alice):
    first, second = make_scene(scene.project, takes=2).generate(alice)
    token = uuid4()
    Generation.objects.filter(pk__in=[first.pk, second.pk]).update(status=S.ACTIVE, claim=token)
    first.cancel(by=alice)
    written = claims.write_held(
        token,
        {first.pk: {"status": S.DOWNLOADING}, second.pk: {"status": S.DOWNLOADING}},
        [S.ACTIVE],
    )
    assert written == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.reason) == (S.CANCELLED, "Cancelled by alice.")
    assert second.status == S.DOWNLOADING


def test_a_pass_writes_each_held_row_its_own_change_in_one_statement(
    scene, alice, django_assert_num_queries
):
    first, second, third = make_scene(scene.project, takes=3).generate(alice)
    token = uuid4()
    Generation.objects.filter(pk__in=[first.pk, second.pk, third.pk]).update(
        status=S.ACTIVE, claim=token
    )
    later = timezone.now() + timedelta(minutes=3)
    changes = {
        first.pk: {"status": S.DOWNLOADING, "next_check_at": later, "check_errors": 2},
        second.pk: {"status": S.FAILED, "reason": "Flow could not render this take."},
        third.pk: {"status": S.DOWNLOADING, "next_check_at": None, "claim": None},
    }
    with django_assert_num_queries(1):
        assert claims.write_held(token, changes, [S.ACTIVE]) == 3
    first, second, third = (Generation.objects.get(pk=t.pk) for t in (first, second, third))
    assert (first.status, first.next_check_at, first.check_errors) == (S.DOWNLOADING, later, 2)
    assert (first.claim, first.reason) == (token, "")
    assert (second.status, second.reason) == (S.FAILED, "Flow could not render this take.")
    assert (second.claim, second.check_errors) == (token, 0)
    assert (third.status, third.next_check_at, third.claim) == (S.DOWNLOADING, None, None)


def test_a_submitting_take_whose_lease_lapsed_becomes_uncertain_and_is_never_resubmitted(
    take, no_engine
):
    set_status(take, S.SUBMITTING, claim=uuid4(), lease_until=timezone.now())
    counts = tasks.run_pass(now=timezone.now() + timedelta(seconds=1))
    assert counts["uncertain"] == 1
    take.refresh_from_db()
    assert take.status == S.UNCERTAIN
    assert "not resubmitted so it is not paid for twice" in take.reason
    # Later passes (no engine at all: it would fail the test) leave it alone.
    tasks.run_pass(now=timezone.now() + timedelta(hours=1))
    take.refresh_from_db()
    assert take.status == S.UNCERTAIN


def test_a_submitting_take_inside_its_lease_is_left_to_its_worker(take, no_engine):
    set_status(take, S.SUBMITTING, claim=uuid4(), lease_until=timezone.now() + timedelta(minutes=3))
    tasks.run_pass()
    take.refresh_from_db()
    assert take.status == S.SUBMITTING


def test_a_download_whose_worker_vanished_goes_back_to_checking(take, no_engine):
    before = timezone.now()
    set_status(take, S.DOWNLOADING, claim=uuid4(), lease_until=before)
    tasks.run_pass(now=before + timedelta(seconds=1))
    take.refresh_from_db()
    assert take.status == S.ACTIVE
    assert take.claim is None
    assert take.updated >= before


def test_a_take_whose_account_was_removed_fails_with_a_reason(take, no_engine):
    set_status(take, S.QUEUED, account=None)
    tasks.run_pass()
    take.refresh_from_db()
    assert take.status == S.FAILED
    assert "account" in take.reason


def test_a_queued_take_held_by_a_worker_is_not_taken_by_another(take, no_engine):
    set_status(take, S.QUEUED, claim=uuid4(), lease_until=timezone.now() + timedelta(minutes=1))
    assert tasks.run_pass().get("submit_calls", 0) == 0


# --- What a team member can do to a take ------------------------------------------------


def test_cancel_stops_a_take_in_flight(take, alice):
    set_status(take, S.ACTIVE, claim=uuid4())
    assert take.cancel(by=alice)
    take.refresh_from_db()
    assert take.status == S.CANCELLED
    assert take.reason == "Cancelled by alice."
    assert take.claim is None
    assert take.finished_at is not None


def test_cancel_refuses_a_take_that_already_finished(take):
    set_status(take, S.READY)
    assert not take.cancel()
    take.refresh_from_db()
    assert take.status == S.READY


def test_retry_as_new_take_copies_the_snapshot_and_queues_it(
    take, bob, django_capture_on_commit_callbacks, task_queue
):
    scene = take.scene
    scene.prompt = "something else entirely"
    scene.save(update_fields=["prompt"])
    set_status(take, S.FAILED, reason="Flow could not render this take.")
    with django_capture_on_commit_callbacks(execute=True):
        again = work.retry_as_new_take(take, bob)
    assert again.pk != take.pk
    assert again.status == S.QUEUED
    assert again.take == take.take + 1
    assert again.requested_by == bob
    snapshot = ("prompt", "model_key", "aspect", "seed", "start_image_id", "scene_id")
    assert [getattr(again, f) for f in snapshot] == [getattr(take, f) for f in snapshot]
    assert again.request_id != take.request_id
    assert task_queue.count() > 0, "the new take was queued for submission"


def test_retry_refuses_in_words_when_the_start_image_is_gone(take, bob):
    set_status(take, S.FAILED, start_image=None)
    with pytest.raises(CannotGenerate, match="start image"):
        take.retry_as_new_take(bob)


def test_resubmit_is_only_for_uncertain_takes(take, bob):
    set_status(take, S.FAILED)
    with pytest.raises(CannotGenerate, match="uncertain"):
        take.resubmit(bob)


def test_resubmit_makes_a_new_take_and_says_so_on_the_old_one(take, bob):
    set_status(take, S.UNCERTAIN, reason=UNCERTAIN_WORDS)
    again = take.resubmit(bob)
    take.refresh_from_db()
    assert again.status == S.QUEUED
    assert take.status == S.UNCERTAIN
    # Why it is uncertain is still true: whether Flow made it is still unknown.
    assert take.reason == UNCERTAIN_WORDS
    assert take.tried_again_words == f"Submitted again as take {again.take}."


@pytest.mark.parametrize("status", [S.UNCERTAIN, S.FAILED, S.CANCELLED])
def test_a_take_is_tried_again_once_even_from_a_copy_read_before_it_was(take, bob, status):
    set_status(take, status)
    read_earlier = Generation.objects.get(pk=take.pk)
    again = work.try_again(take, bob)

    with pytest.raises(CannotGenerate, match=f"as take {again.take}"):
        work.try_again(read_earlier, bob)

    assert take.scene.generations.count() == 2


def test_poll_now_makes_takes_due_and_starts_a_pump(take, task_queue):
    future = timezone.now() + timedelta(minutes=5)
    set_status(take, S.ACTIVE, next_check_at=future)
    task_queue.clear()
    assert tasks.poll_now([take.pk]) == 1
    take.refresh_from_db()
    assert take.next_check_at <= timezone.now()
    assert task_queue.count() == 1


# --- When the pump wakes ------------------------------------------------------------------


def test_nothing_in_flight_means_nothing_due(db):
    assert pipeline.seconds_until_due() is None


def test_a_fresh_take_is_due_now(take):
    assert pipeline.seconds_until_due() == 0


def test_a_take_waits_for_its_next_check_and_for_its_account_cool_down(take, account):
    now = timezone.now()
    set_status(take, S.QUEUED, next_check_at=now + timedelta(seconds=10))
    assert 9 < pipeline.seconds_until_due(now) <= 10
    account.cool_down_until = now + timedelta(seconds=30)
    account.save(update_fields=["cool_down_until"])
    assert 29 < pipeline.seconds_until_due(now) <= 30
    set_status(take, S.ACTIVE, next_check_at=now + timedelta(seconds=4))
    assert 29 < pipeline.seconds_until_due(now) <= 30, "no status call while the account rests"
    account.cool_down_until = None
    account.save(update_fields=["cool_down_until"])
    assert 3 < pipeline.seconds_until_due(now) <= 4


# --- Small pure pieces ---------------------------------------------------------------------


def test_flow_failure_codes_become_sentences_that_keep_the_code():
    given = "the prompt or the start image"
    assert flow.reason_words("PUBLIC_ERROR_AUDIO_FILTERED", given) == (
        "Flow's safety filter blocked the clip's generated audio (PUBLIC_ERROR_AUDIO_FILTERED)."
    )
    assert flow.reason_words("PUBLIC_ERROR_NEW_THING", given) == (
        "Flow could not render this take (PUBLIC_ERROR_NEW_THING)."
    )
    assert flow.reason_words("", given) == "Flow could not render this take and gave no reason."


def test_log_text_is_stripped_of_tokens_cookies_and_signatures():
    text = (
        "Bearer ya29.a0AfH6SMBx-secret https://storage.googleapis.com/v/x?GoogleAccessId=svc"
        "&Expires=1&Signature=abc%2Fdef __Secure-next-auth.session-token=cookie123"
    )
    clean = policy.redact_log(text)
    for secret in ("a0AfH6SMBx", "abc%2Fdef", "cookie123", "=svc"):
        assert secret not in clean


def test_backoff_grows_with_attempts_is_capped_and_honours_retry_after():
    first = [policy.backoff_seconds(1) for _ in range(50)]
    fifth = [policy.backoff_seconds(5) for _ in range(50)]
    assert max(first) <= policy.BACKOFF_BASE_SECONDS < min(fifth)
    assert len(set(fifth)) > 1, "jittered"
    assert max(policy.backoff_seconds(40) for _ in range(50)) <= policy.BACKOFF_CAP_SECONDS
    assert 7 <= policy.backoff_seconds(1, retry_after=7) <= 8


# --- Answers the emulator cannot give (replayed captured bodies) ------------------------


FLOW_DATA = Path(__file__).parent / "data" / "flow-api"


def _replaying_engine(submit_answer: bytes, status: int = 200):
    """A real FlowEngine whose HTTP is answered from captured bodies (Google mocked only)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(":uploadUserImage"):
            return httpx.Response(
                200, content=(FLOW_DATA / "upload_image.response.json").read_bytes()
            )
        return httpx.Response(status, content=submit_answer)

    def engine_for(account):
        return FlowEngine(account.credentials(), transport=httpx.MockTransport(answer))

    return engine_for


def test_a_submit_answer_in_an_unknown_shape_makes_the_take_uncertain(take, monkeypatch):
    # Flow answered 200, so the clip may well be rendering and paid for: not "failed" (which
    # invites a retry) but uncertain, and never sent again by the worker.
    monkeypatch.setattr(accounts, "engine_for", _replaying_engine(b'{"media": [{"name": "x"}]}'))
    tasks.run_pass()
    take.refresh_from_db()
    assert take.status == S.UNCERTAIN
    assert take.reason == (
        f"{UNCERTAIN_WORDS} What happened: Flow answered in a shape Flowsite does not know."
    )


def test_a_captured_unsafe_refusal_fails_the_take_with_flows_reason(take, monkeypatch):
    body = (FLOW_DATA / "error.unsafe.json").read_bytes()
    monkeypatch.setattr(accounts, "engine_for", _replaying_engine(body, status=400))
    tasks.run_pass()
    take.refresh_from_db()
    assert take.status == S.FAILED
    assert "PUBLIC_ERROR_UNSAFE_GENERATION" in take.reason


def test_a_take_submitted_again_before_its_number_was_kept_is_not_offered_again(take, bob):
    from importlib import import_module

    set_status(take, S.UNCERTAIN, reason="Submitted again by bob as take 12.")
    other = set_status(take.scene.generate(bob)[0], S.UNCERTAIN, reason=UNCERTAIN_WORDS)
    # A reason an operator edited since is left alone, not a failed migration.
    edited = set_status(
        take.scene.generate(bob)[0], S.UNCERTAIN, reason="Submitted again by bob as take 13. Ok"
    )

    migration = import_module("generations.migrations.0037_tried_again_and_user_deleted")
    migration.number_from_the_reasons(django_apps, None)

    for each in (take, other, edited):
        each.refresh_from_db()
    assert (take.tried_again_as, other.tried_again_as, edited.tried_again_as) == (12, None, None)


def test_uncertain_reasons_stored_with_their_invitation_lose_it_and_edited_ones_are_kept(take, bob):
    from importlib import import_module

    invitation = " Submit it again if you want it."
    said = f"{UNCERTAIN_WORDS}{invitation} What happened: Flow did not answer in time."
    set_status(take, S.UNCERTAIN, reason=said)
    # A reason an operator rewrote is kept as written, invitation and all.
    edited = set_status(
        take.scene.generate(bob)[0], S.UNCERTAIN, reason=f"Checked with Google.{invitation}"
    )
    upscale = Upscale.objects.create(
        take=take,
        project=take.project,
        resolution="1080p",
        status=S.UNCERTAIN,
        reason=said.replace("this take", "this upscale"),
    )

    migration = import_module("generations.migrations.0039_uncertain_reasons_invite_no_more")
    migration.drop_the_invitation(django_apps, None)

    for each in (take, edited, upscale):
        each.refresh_from_db()
    assert take.reason == f"{UNCERTAIN_WORDS} What happened: Flow did not answer in time."
    assert edited.reason == "Checked with Google. Submit it again if you want it."
    assert upscale.reason == (
        "Flowsite could not confirm that Flow received this upscale; it was not resubmitted so "
        "it is not paid for twice. What happened: Flow did not answer in time."
    )
