"""A take the upstream made (and charged for) but whose download failed: it counts as spent,
and its card fetches the same clip again for nothing instead of paying for a new one.

Everything runs against the emulator over loopback HTTP, which counts what was submitted and
charged, and a real SQLite file.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from generations import work
from generations.models import CannotGenerate, Generation, Project
from generations.pipeline import policy
from tests.conftest import make_ready_scene, vertex_scene
from tests.faults_support import assert_files_match
from tests.tasks_support import run_at_once, settle
from tests.views_support import client_for, seen_settings

S = Generation.Status
# Veo 3.1 Fast from a start image, on the account's tier one.
CREDITS = 20
FETCH_AGAIN = "Fetch the clip again"


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.FLOWSITE_POLL_INTERVAL = 0.1


def failed_download(project, alice, marker: str) -> Generation:
    """alice's take, made by the emulator, whose download fails every time it is tried."""
    [take] = settle(work.generate(make_ready_scene(project, f"{marker} a reef"), alice))
    assert take.status == S.FAILED, take.reason
    return take


def fetch_again(client: Client, take: Generation):
    return client.post(
        reverse("take-fetch-again", args=[take.uuid]), headers={"HX-Request": "true"}
    )


def storyboard(client: Client, project: Project) -> str:
    return client.get(reverse("project-detail", args=[project.uuid])).text


def generate(client: Client, scene, last_take: int = 0):
    return client.post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": str(last_take), "seen_settings": seen_settings(scene)},
        follow=True,
    )


# --- what such a take costs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "words"),
    [
        ("[fault:truncated-download]", "Flowsite gave up after 4 download attempts."),
        ("[fault:expired-url]", "The download link has expired"),
    ],
    ids=["cut-short", "expired-link"],
)
def test_a_clip_flow_made_whose_download_failed_counts_on_the_spend_page_and_in_the_budget(
    emu, project, alice, bob, marker, words
):
    take = failed_download(project, alice, marker)
    assert words in take.reason
    assert take.download_attempts == policy.DOWNLOAD_ATTEMPTS
    assert emu.accepted == {str(take.request_id): 1}, "Flow made and charged this clip"

    spend = client_for(bob).get(reverse("project-spend", args=[project.uuid])).text
    assert f"{CREDITS} credits spent this month" in spend
    rows = list(
        csv.reader(
            io.StringIO(
                client_for(bob)
                .get(reverse("project-spend-csv", args=[project.uuid]))
                .content.decode()
            )
        )
    )
    assert [row[1:] for row in rows[1:]] == [["alice", "1", str(CREDITS), "0"]]

    Project.objects.filter(pk=project.pk).update(monthly_budget=30)
    assert (
        "20 credits this month of 30 credits" in client_for(bob).get(reverse("project-list")).text
    )
    refused = generate(client_for(bob), make_ready_scene(project, "a gull"))
    assert (
        "This would spend 20 credits, but Poseidon has 10 credits left of its monthly budget "
        "of 30 credits." in refused.text
    )
    assert Generation.objects.count() == 1


@pytest.mark.parametrize(
    ("marker", "words"),
    [
        ("[fault:fail]", "PUBLIC_ERROR_AUDIO_FILTERED"),
        ("[fault:unsafe]", "PUBLIC_ERROR_UNSAFE_GENERATION"),
    ],
    ids=["failed-upstream", "refused-upstream"],
)
def test_a_clip_flow_failed_or_refused_costs_nothing_and_offers_no_fetch_again(
    emu, project, alice, bob, marker, words
):
    take = failed_download(project, alice, marker)
    assert words in take.reason
    assert (take.cost, take.download_attempts) == (CREDITS, 0)

    spend = client_for(bob).get(reverse("project-spend", args=[project.uuid])).text
    assert "0 credits spent this month" in spend
    page = storyboard(client_for(bob), project)
    assert FETCH_AGAIN not in page
    assert "Retry as a new take" in page

    refused = fetch_again(client_for(bob), take)
    assert "Only a failed take whose clip was made can be fetched again" in refused.text
    take.refresh_from_db()
    assert take.status == S.FAILED
    assert emu.stats["clips_submitted"] == (1 if marker == "[fault:fail]" else 0)


# --- fetching it again ----------------------------------------------------------------------


def test_bob_fetches_the_clip_again_and_it_is_ready_without_a_second_clip_or_charge(
    emu, project, alice, bob
):
    # The first four answers sign expired links, so the take fails; the fifth's work.
    take = failed_download(project, alice, "[fault:expired-url=4]")
    page = storyboard(client_for(bob), project)
    assert FETCH_AGAIN in page
    assert "free: this clip was made and paid for; no new clip is asked for" in page

    answer = fetch_again(client_for(bob), take)

    assert "Fetching the clip of take 1 again; no new clip is paid for." in answer.text
    take.refresh_from_db()
    assert (take.status, take.download_attempts) == (S.ACTIVE, policy.DOWNLOAD_ATTEMPTS)
    [take] = settle([take])
    assert (take.status, take.reason) == (S.READY, "")
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (1, 1)
    assert emu.accepted == {str(take.request_id): 1}
    assert Generation.objects.count() == 1
    spend = client_for(bob).get(reverse("project-spend", args=[project.uuid])).text
    assert f"{CREDITS} credits spent this month" in spend
    assert_files_match([take])


def test_a_take_fetched_again_gets_every_download_attempt_again(emu, project, alice, bob):
    take = failed_download(project, alice, "[fault:truncated-download]")
    assert emu.stats["media"] == policy.DOWNLOAD_ATTEMPTS

    fetch_again(client_for(bob), take)
    [take] = settle([take])

    assert take.status == S.FAILED
    assert "Flowsite gave up after 4 download attempts." in take.reason
    assert emu.stats["media"] == 2 * policy.DOWNLOAD_ATTEMPTS
    assert take.download_attempts == 2 * policy.DOWNLOAD_ATTEMPTS
    assert emu.stats["clips_submitted"] == 1
    assert take.can_fetch_again
    assert_files_match([take])


def test_carol_a_viewer_is_offered_no_fetch_again_and_is_refused_it(emu, project, alice, carol):
    take = failed_download(project, alice, "[fault:expired-url]")
    assert FETCH_AGAIN not in storyboard(client_for(carol), project)

    assert fetch_again(client_for(carol), take).status_code == 403
    take.refresh_from_db()
    assert (take.status, take.download_attempts) == (S.FAILED, policy.DOWNLOAD_ATTEMPTS)


def test_charlie_an_outsider_is_told_nothing_exists(emu, project, alice, charlie):
    take = failed_download(project, alice, "[fault:expired-url]")
    assert fetch_again(client_for(charlie), take).status_code == 404


def test_bobs_second_click_is_told_the_clip_is_already_being_fetched(emu, project, alice, bob):
    take = failed_download(project, alice, "[fault:expired-url=4]")
    fetch_again(client_for(bob), take)

    second = fetch_again(client_for(bob), take)

    assert "Take 1 is already being fetched again." in second.text
    [take] = settle([take])
    assert take.status == S.READY
    assert take.download_attempts == policy.DOWNLOAD_ATTEMPTS
    assert emu.stats["clips_submitted"] == 1


@pytest.mark.django_db(transaction=True)
def test_two_clicks_at_once_fetch_the_clip_once(emu, project, alice, bob):
    take = failed_download(project, alice, "[fault:expired-url=4]")
    media_before = emu.stats["media"]

    def click() -> str:
        try:
            Generation.objects.get(pk=take.pk).fetch_again()
        except CannotGenerate as refusal:
            return str(refusal)
        return "fetched"

    answers = sorted(run_at_once(click))

    assert answers == ["Take 1 is already being fetched again.", "fetched"]
    [take] = settle([take])
    assert take.status == S.READY
    assert emu.stats["media"] - media_before == 2, "the clip and its poster, once"
    assert emu.stats["clips_submitted"] == 1


def test_a_clip_flow_no_longer_has_fails_again_saying_to_retry_as_a_new_take(
    emu, project, alice, bob
):
    take = failed_download(project, alice, "[fault:expired-url]")
    emu.reset()  # Flow forgets the operation, as it does a clip it no longer keeps

    fetch_again(client_for(bob), take)
    [take] = settle([take])

    assert take.status == S.FAILED
    # Only Flow's own words follow "Flow said:", not a sentence of Flowsite's.
    assert take.reason == (
        "Flow no longer knows this take's operation, so Flowsite cannot fetch its clip (Flow "
        "said: Requested entity was not found). Retry as a new take to make it again; that "
        "pays for a new clip."
    )
    page = storyboard(client_for(bob), project)
    assert FETCH_AGAIN not in page
    assert "Retry as a new take" in page
    refused = fetch_again(client_for(bob), take)
    assert "The clip of take 1 is gone upstream; retry it as a new take" in refused.text
    spend = client_for(bob).get(reverse("project-spend", args=[project.uuid])).text
    assert f"{CREDITS} credits spent this month" in spend
    assert emu.stats["clips_submitted"] == 0, "nothing was submitted after the reset"


# --- on Vertex AI --------------------------------------------------------------------------------


def test_on_vertex_ai_a_clip_too_large_to_keep_counts_and_is_fetched_again_for_nothing(
    vertex_project, flow_emulator, alice, bob, settings
):
    settings.FLOW_DOWNLOAD_MAX_BYTES = 1000
    [take] = settle(work.generate(vertex_scene(vertex_project), alice))
    assert take.status == S.FAILED
    assert "more than the" in take.reason and take.download_attempts == 1
    spend = client_for(bob).get(reverse("project-spend", args=[vertex_project.uuid])).text
    assert f"${take.cost:.2f} spent this month" in spend
    assert FETCH_AGAIN in storyboard(client_for(bob), vertex_project)

    settings.FLOW_DOWNLOAD_MAX_BYTES = 512 * 1024 * 1024
    fetch_again(client_for(bob), take)
    [take] = settle([take])

    assert (take.status, take.reason) == (S.READY, "")
    assert flow_emulator.stats["vertex_predict"] == 1
    assert flow_emulator.stats["clips_submitted"] == 1
    spend = client_for(bob).get(reverse("project-spend", args=[vertex_project.uuid])).text
    assert f"${take.cost:.2f} spent this month" in spend
    assert_files_match([take])


def test_on_vertex_ai_a_clip_whose_operation_was_lost_fails_again_alone_saying_to_retry(
    vertex_project, flow_emulator, alice, bob, settings
):
    settings.FLOW_DOWNLOAD_MAX_BYTES = 1000
    [take] = settle(work.generate(vertex_scene(vertex_project), alice))
    assert take.status == S.FAILED and take.download_attempts == 1
    flow_emulator.reset()  # Vertex AI forgets the operation, as after a restart
    settings.FLOW_DOWNLOAD_MAX_BYTES = 512 * 1024 * 1024

    fetch_again(client_for(bob), take)
    [take] = settle([take])

    assert take.status == S.FAILED
    # Vertex AI gave no words of its own (a 404): none are quoted as said by it.
    assert take.reason == (
        "Vertex AI no longer knows this take's operation, so Flowsite cannot fetch its clip. "
        "Retry as a new take to make it again; that pays for a new clip."
    )
    assert take.account.problem == ""
    assert FETCH_AGAIN not in storyboard(client_for(bob), vertex_project)
    assert flow_emulator.stats["vertex_predict"] == 0, "nothing was submitted after the reset"


def test_on_vertex_ai_a_clip_the_safety_filter_removed_costs_nothing(
    vertex_project, flow_emulator, alice, bob
):
    [take] = settle(work.generate(vertex_scene(vertex_project, "[fault:unsafe]"), alice))
    assert take.status == S.FAILED and take.download_attempts == 0
    spend = client_for(bob).get(reverse("project-spend", args=[vertex_project.uuid])).text
    assert "$0.00 spent this month" in spend
    assert FETCH_AGAIN not in storyboard(client_for(bob), vertex_project)
