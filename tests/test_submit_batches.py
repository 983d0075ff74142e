"""Takes go to Flow in batches no bigger than Flow's own client sends, and one clip Flow
refuses fails alone: its batch is split, never a call whose answer was lost."""

import time
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from generations import tasks, work
from generations.models import Generation
from generations.pipeline import policy
from generations.tasks import run_pass
from tests.conftest import make_image
from tests.conftest import make_ready_scene as make_scene
from tests.faults_support import assert_files_match, fresh
from tests.tasks_support import settle
from tests.views_support import client_for, storyboard_seen


def test_six_takes_of_one_project_go_out_in_two_calls_of_at_most_four(emu, project, alice):
    image = make_image(project)
    first = make_scene(project, "the harbour at dawn", takes=4, image=image)
    second = make_scene(project, "the harbour at dusk", takes=2, image=image)
    takes = first.generate(alice) + second.generate(alice)

    settled = settle(takes)

    assert {take.status for take in settled} == {Generation.Status.READY}
    assert emu.stats["submit"] == 2
    assert emu.stats["clips_submitted"] == 6


def test_the_batch_size_is_a_setting(emu, project, alice, settings):
    settings.FLOW_SUBMIT_BATCH_SIZE = 1
    takes = make_scene(project, "the harbour at noon", takes=3).generate(alice)

    settle(takes)

    assert emu.stats["submit"] == 3


# --- One refused clip does not sink its batch ------------------------------------------------

S = Generation.Status
UNSAFE_WORDS = (
    "Flow's safety filter refused the prompt or the start image (PUBLIC_ERROR_UNSAFE_GENERATION)."
)


def four_scenes(project, guilty_prompt: str) -> list:
    """Four one-take scenes of one project sharing a start image, the third one ``guilty``."""
    image = make_image(project)
    prompts = ["a calm lake", "the harbour at dawn", guilty_prompt, "gulls over the pier"]
    return [make_scene(project, prompt, image=image) for prompt in prompts]


def assert_each_clip_accepted_at_most_once(emu, takes) -> None:
    accepted = emu.accepted
    assert all(count == 1 for count in accepted.values()), accepted
    ready = {str(take.request_id) for take in takes if take.status == S.READY}
    assert set(accepted) == ready


def test_an_unsafe_prompt_in_a_batch_of_four_fails_alone_and_the_other_three_are_ready(
    emu, project, alice
):
    scenes = four_scenes(project, "[fault:unsafe] a crowd at the quay")
    takes = [take for scene in scenes for take in scene.generate(alice)]

    takes = settle(takes)

    assert [take.status for take in takes] == [S.READY, S.READY, S.FAILED, S.READY]
    assert takes[2].reason == UNSAFE_WORDS
    assert [take.reason for take in takes if take.status == S.READY] == ["", "", ""]
    # The batch once, then each clip on its own: the refused one is refused again, for nothing.
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (5, 3)
    assert_each_clip_accepted_at_most_once(emu, takes)


def test_a_refused_batch_is_split_in_the_same_pass(emu, project, alice):
    takes = [
        take
        for scene in four_scenes(project, "[fault:unsafe] a crowd at the quay")
        for take in scene.generate(alice)
    ]

    run_pass()

    statuses = [take.status for take in fresh(takes)]
    assert statuses[2] == S.FAILED
    assert all(status in (S.PENDING, S.ACTIVE) for i, status in enumerate(statuses) if i != 2)


def test_a_clip_flow_keeps_answering_500_fails_alone_after_its_tries_the_others_go_on(
    emu, project, alice
):
    takes = [
        take
        for scene in four_scenes(project, "[fault:error500] a storm over the quay")
        for take in scene.generate(alice)
    ]
    now = timezone.now()
    # Flow's 500s pass more often than not: the batch is retried whole first.
    for attempt in range(1, policy.BATCH_500_TRIES):
        run_pass(now=now)
        assert [(t.status, t.attempts) for t in fresh(takes)] == [(S.QUEUED, attempt)] * 4
        now = max(take.next_check_at for take in fresh(takes))
    assert emu.stats["submit"] == policy.BATCH_500_TRIES - 1

    # Persisting: from now on one clip per call, and only the guilty one is tried again.
    run_pass(now=now)
    statuses = [take.status for take in fresh(takes)]
    assert statuses[2] == S.QUEUED
    assert all(status in (S.PENDING, S.ACTIVE) for i, status in enumerate(statuses) if i != 2)

    others = settle([take for index, take in enumerate(takes) if index != 2])
    assert [take.status for take in others] == [S.READY] * 3
    for hours in range(1, policy.SUBMIT_ATTEMPTS + 2):
        # An hour apart: every backoff (capped well below) has run out.
        run_pass(now=timezone.now() + timedelta(hours=hours))
    takes = fresh(takes)
    assert [take.status for take in takes] == [S.READY, S.READY, S.FAILED, S.READY]
    assert takes[2].reason == (
        "Flow had an internal error (HTTP 500) while submitting clips. "
        f"Flowsite gave up after {policy.SUBMIT_ATTEMPTS} attempts."
    )
    assert takes[2].attempts == policy.SUBMIT_ATTEMPTS, "each call it was part of is counted"
    # Every call the guilty clip was part of, and one for each of the three others alone.
    assert emu.stats["submit"] == policy.SUBMIT_ATTEMPTS + 3
    assert emu.stats["clips_submitted"] == 3
    assert_each_clip_accepted_at_most_once(emu, takes)


def test_a_batch_whose_answer_was_lost_is_never_split_or_sent_again(emu, project, alice, settings):
    settings.FLOW_READ_TIMEOUT = 0.3
    takes = [
        take
        for scene in four_scenes(project, "[fault:slow=1:once] a slow tide")
        for take in scene.generate(alice)
    ]

    run_pass()
    for hours in (1, 2):
        run_pass(now=timezone.now() + timedelta(hours=hours))

    assert [take.status for take in fresh(takes)] == [S.UNCERTAIN] * 4
    # Flow did get the batch and charged it: exactly when sending any clip again pays twice.
    deadline = time.monotonic() + 5
    while emu.stats["clips_submitted"] < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (1, 4)


def test_a_throttled_batch_is_not_split_the_account_rests_then_the_batch_goes_whole(
    emu, project, alice
):
    takes = [
        take
        for scene in four_scenes(project, "[fault:throttle=1:once] a gull")
        for take in scene.generate(alice)
    ]

    takes = settle(takes, ahead=timedelta(seconds=2))

    assert [take.status for take in takes] == [S.READY] * 4
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (2, 4)
    assert_each_clip_accepted_at_most_once(emu, takes)


def test_generate_all_with_one_refused_scene_fails_only_that_take_and_every_clip_is_paid_once(
    emu, project, alice, bob, queued, django_capture_on_commit_callbacks
):
    image = make_image(project)
    lake = make_scene(project, "a calm lake", image=image)
    make_scene(project, "the harbour at dawn", image=image)
    make_scene(project, "[fault:unsafe] a crowd at the quay", image=image)
    # bob's take of his scene waits in the queue when alice presses Generate all.
    with django_capture_on_commit_callbacks(execute=True):
        [bobs] = work.generate(lake, bob)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(alice).post(
            reverse("project-generate-all", args=[project.uuid]),
            {"last_generation": str(bobs.pk), "seen_settings": storyboard_seen(project)},
            follow=True,
        )
    assert "Queued 3 takes for 3 scenes." in response.text
    takes = list(Generation.objects.order_by("pk"))
    assert len(takes) == 4

    tasks.pump(budget_seconds=20)

    takes = fresh(takes)
    refused = [take for take in takes if take.status == S.FAILED]
    assert [take.prompt for take in refused] == ["[fault:unsafe] a crowd at the quay"]
    assert refused[0].reason == UNSAFE_WORDS
    assert [take.status for take in takes if take not in refused] == [S.READY] * 3
    assert {take.requested_by for take in takes if take.status == S.READY} == {alice, bob}
    assert emu.stats["clips_submitted"] == 3
    assert_each_clip_accepted_at_most_once(emu, takes)
    assert_files_match(takes)


def test_generate_all_with_one_scene_flow_answers_500_fails_only_that_take(
    emu, project, alice, queued, monkeypatch, django_capture_on_commit_callbacks
):
    # Backoff short enough for the pump to run every try within the test.
    monkeypatch.setattr(policy, "BACKOFF_CAP_SECONDS", 0.2)
    four_scenes(project, "[fault:error500] a storm over the quay")
    with django_capture_on_commit_callbacks(execute=True):
        work.generate_scenes(project, project.scenes.all(), alice)

    tasks.pump(budget_seconds=30)

    takes = list(Generation.objects.order_by("pk"))
    assert [take.status for take in takes] == [S.READY, S.READY, S.FAILED, S.READY]
    assert "internal error (HTTP 500)" in takes[2].reason
    assert "gave up after" in takes[2].reason
    assert "will try again" not in takes[2].reason
    assert emu.stats["clips_submitted"] == 3
    assert_each_clip_accepted_at_most_once(emu, takes)
    assert_files_match(takes)
