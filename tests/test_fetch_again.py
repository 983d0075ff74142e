"""A take the upstream made (and charged for) but whose download failed: it counts as spent.

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
from generations.models import Generation, Project
from generations.pipeline import policy
from tests.conftest import make_ready_scene, vertex_scene
from tests.tasks_support import settle
from tests.views_support import client_for

S = Generation.Status
# Veo 3.1 Fast from a start image, on the account's tier one.
CREDITS = 20


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.FLOWSITE_POLL_INTERVAL = 0.1


def failed_download(project, alice, marker: str) -> Generation:
    """alice's take, made by the emulator, whose download fails every time it is tried."""
    [take] = settle(work.generate(make_ready_scene(project, f"{marker} a reef"), alice))
    assert take.status == S.FAILED, take.reason
    return take


def generate(client: Client, scene, last_take: int = 0):
    return client.post(
        reverse("scene-generate", args=[scene.uuid]), {"last_take": str(last_take)}, follow=True
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
    assert emu.stats["clips_submitted"] == (1 if marker == "[fault:fail]" else 0)


# --- on Vertex AI --------------------------------------------------------------------------------


def test_on_vertex_ai_a_clip_the_safety_filter_removed_costs_nothing(
    vertex_project, flow_emulator, alice, bob
):
    [take] = settle(work.generate(vertex_scene(vertex_project, "[fault:unsafe]"), alice))
    assert take.status == S.FAILED and take.download_attempts == 0
    spend = client_for(bob).get(reverse("project-spend", args=[vertex_project.uuid])).text
    assert "$0.00 spent this month" in spend
