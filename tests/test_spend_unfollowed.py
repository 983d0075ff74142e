"""Takes Flow accepted but Flowsite stopped following (stuck, an answer it could not read, an
operation Flow no longer knows): Flow may have made and charged their clips, so they count
on alice's Spend page, in its CSV and against her budget, as uncertain ones do; a clip Flow
reported failed stays free. And a take whose clip a dying worker left on disk leaves nothing
behind once deleted.

Everything runs against the emulator over loopback HTTP, which counts what it charged, and a
real SQLite file.
"""

from __future__ import annotations

import csv
import html
import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from generations import storage, work
from generations.engines.download import download_to
from generations.models import Generation, Project
from generations.pipeline.download import Download
from tests.conftest import make_ready_scene
from tests.tasks_support import settle
from tests.views_support import client_for, seen_settings

S = Generation.Status
# Veo 3.1 Fast from a start image, on the account's tier one.
CREDITS = 20
COUNTED = "counts: Flow may have charged it"
OPERATION_GONE = "Flow no longer knows this take's operation, so Flowsite cannot fetch its clip"


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.FLOWSITE_POLL_INTERVAL = 0.1


def spend_page(client: Client, project: Project) -> str:
    return client.get(reverse("project-spend", args=[project.uuid])).text


def spend_csv(client: Client, project: Project) -> list[list[str]]:
    response = client.get(reverse("project-spend-csv", args=[project.uuid]))
    return list(csv.reader(io.StringIO(response.content.decode())))


def storyboard(client: Client, project: Project) -> str:
    """The storyboard's words as alice reads them (entities unescaped)."""
    return html.unescape(client.get(reverse("project-detail", args=[project.uuid])).text)


def charged(emu, credits_before: int) -> int:
    return credits_before - emu.credits


def files_of(take: Generation) -> list[str]:
    folder = Path(django_settings.MEDIA_ROOT) / take.media_dir()
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def submitted(project, alice, prompt: str) -> Generation:
    """alice's take, accepted by the emulator and still rendering there."""
    [take] = settle(
        work.generate(make_ready_scene(project, prompt), alice), until=(S.PENDING, S.ACTIVE)
    )
    return take


def test_a_take_flowsite_gave_up_on_as_stuck_counts_on_alices_spend_page_and_csv(
    emu, project, alice, settings
):
    credits = emu.credits
    [ready] = settle(work.generate(make_ready_scene(project, "a calm harbour"), alice))
    settings.FLOWSITE_STUCK_AFTER = 1.0
    [stuck] = settle(work.generate(make_ready_scene(project, "[fault:stuck] a wave"), alice))
    assert ready.status == S.READY
    assert stuck.status == S.FAILED and "Flowsite stopped waiting (stuck)" in stuck.reason

    page = spend_page(client_for(alice), project)
    rows = spend_csv(client_for(alice), project)

    assert charged(emu, credits) == 2 * CREDITS, "the emulator charged both clips"
    assert f"{2 * CREDITS} credits spent this month" in page
    assert COUNTED in page
    today = timezone.localdate().isoformat()
    assert rows[1:] == [[today, "alice", "2", str(2 * CREDITS), "0"]]


def test_a_take_whose_status_answer_flowsite_could_not_read_counts_as_spent(emu, project, alice):
    credits = emu.credits
    [take] = settle(work.generate(make_ready_scene(project, "[fault:badshape] a reef"), alice))
    assert take.reason.startswith("Flow answered in a shape Flowsite does not know")

    page = spend_page(client_for(alice), project)

    assert charged(emu, credits) == CREDITS
    assert f"{CREDITS} credits spent this month" in page


def test_a_take_whose_operation_flow_forgot_says_so_and_counts_as_spent(emu, project, alice):
    credits = emu.credits
    take = submitted(project, alice, "[fault:stuck] a long swell")
    assert charged(emu, credits) == CREDITS
    emu.reset()  # Flow restarted: it no longer knows the operation

    [take] = settle([take])

    assert take.status == S.FAILED
    card = storyboard(client_for(alice), project)
    assert f"{OPERATION_GONE}." in card
    assert "could not render" not in card
    assert f"{CREDITS} credits spent this month" in spend_page(client_for(alice), project)


def test_a_clip_flow_reported_failed_while_rendering_costs_alice_nothing(emu, project, alice):
    [take] = settle(work.generate(make_ready_scene(project, "[fault:fail] a"), alice))
    assert take.status == S.FAILED and take.submitted_at is not None, take.reason

    assert "0 credits spent this month" in spend_page(client_for(alice), project)


def test_alices_budget_refuses_a_generate_because_a_stuck_take_counted(
    emu, project, alice, settings
):
    settings.FLOWSITE_STUCK_AFTER = 1.0
    Project.objects.filter(pk=project.pk).update(monthly_budget=30)
    [stuck] = settle(work.generate(make_ready_scene(project, "[fault:stuck] a wave"), alice))
    assert stuck.status == S.FAILED
    scene = make_ready_scene(project, "a gull over the quay")

    refused = client_for(alice).post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "0", "seen_settings": seen_settings(scene)},
        follow=True,
    )

    assert (
        "This would spend 20 credits, but Poseidon has 10 credits left of its monthly budget "
        "of 30 credits." in refused.text
    )
    assert not scene.generations.exists()


def dies_after_saving_the_clip(download: Download) -> None:
    """A worker that wrote the whole clip under its final name, then died before recording it."""
    name = f"{download.generation.media_dir()}/clip.mp4"
    download_to(download.clip.video_url, storage.local_path(name), kind="video", deadline=30)


def test_a_clip_flow_made_whose_worker_died_then_flow_forgot_counts_and_leaves_no_file(
    emu, project, alice, monkeypatch, django_capture_on_commit_callbacks
):
    credits = emu.credits
    monkeypatch.setattr(Download, "run", dies_after_saving_the_clip)
    [take] = settle(
        work.generate(make_ready_scene(project, "a reef"), alice), until=(S.DOWNLOADING,)
    )
    assert take.media_generation_id and files_of(take) == ["clip.mp4"]
    assert charged(emu, credits) == CREDITS
    monkeypatch.undo()
    emu.reset()  # Flow restarted meanwhile

    # Past the dead worker's lease: the reaper takes the take back, and Flow is asked again.
    [take] = settle([take], ahead=timedelta(minutes=5))

    assert take.status == S.FAILED
    card = storyboard(client_for(alice), project)
    assert OPERATION_GONE in card
    assert "Flow said: Requested entity was not found" in card
    assert "could not render" not in card
    assert "Fetch the clip again" not in card
    assert f"{CREDITS} credits spent this month" in spend_page(client_for(alice), project)

    with django_capture_on_commit_callbacks(execute=True):
        client_for(alice).post(reverse("take-delete", args=[take.uuid]))

    assert not Generation.objects.filter(pk=take.pk).exists()
    assert files_of(take) == []
    assert not (Path(django_settings.MEDIA_ROOT) / take.media_dir()).exists()
    assert f"{CREDITS} credits spent this month" in spend_page(client_for(alice), project)


def test_deleting_alices_failed_take_removes_a_clip_file_no_row_named(
    emu, project, alice, settings, django_capture_on_commit_callbacks
):
    settings.FLOWSITE_STUCK_AFTER = 1.0
    [take] = settle(work.generate(make_ready_scene(project, "[fault:stuck] a wave"), alice))
    # A whole clip a worker wrote and died before recording, and a half-written one.
    folder = Path(django_settings.MEDIA_ROOT) / take.media_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "clip.mp4").write_bytes(b"a clip nobody recorded")
    (folder / ".clip.mp4.x1.part").write_bytes(b"half")

    with django_capture_on_commit_callbacks(execute=True):
        client_for(alice).post(reverse("take-delete", args=[take.uuid]))

    assert not Generation.objects.filter(pk=take.pk).exists()
    assert files_of(take) == []
    assert not folder.exists()
