"""Leases a live worker keeps and a dead one loses: the pump's keeper renews the takes it
works on; the reaper takes back a dead worker's downloads and removes their half-written
files, never those of a download still alive."""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from generations import tasks, work
from generations.models import Generation
from generations.pipeline import Keeper, Pass, reap
from generations.pipeline.claims import Hold
from generations.pipeline.download import temp_folder
from tests.conftest import make_ready_scene, use_vertex, vertex_scene
from tests.faults_support import assert_files_match, fresh, stray_temp_files
from tests.tasks_support import settle

S = Generation.Status


def downloading(take: Generation, *, lease_until) -> Path:
    """Make ``take`` a download in progress (its worker's claim and lease), with a
    half-written clip in its folder; returns that file."""
    Generation.objects.filter(pk=take.pk).update(
        status=S.DOWNLOADING, claim=uuid.uuid4(), lease_until=lease_until
    )
    take.refresh_from_db()
    folder = temp_folder(take)
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / ".clip.mp4.abc123.part"
    part.write_bytes(b"\x00" * 100)
    return part


@pytest.mark.django_db
def test_the_reaper_removes_the_half_written_files_of_a_dead_download_only(
    flow_emulator, project, alice
):
    dead, alive = work.generate(make_ready_scene(project, takes=2), alice)
    now = timezone.now()
    dead_part = downloading(dead, lease_until=now - timedelta(seconds=1))
    alive_part = downloading(alive, lease_until=now + timedelta(seconds=20))

    run = Pass(now)
    reap.reap(run)

    assert not dead_part.exists(), "the dead worker's .part file is gone"
    assert alive_part.exists(), "a live worker is still writing this one"
    assert run.counts["download_reaped"] == 1
    assert run.counts["temp_files_removed"] == 1
    dead.refresh_from_db()
    assert (dead.status, dead.claim, dead.lease_until) == (S.ACTIVE, None, None)
    assert dead.next_check_at <= timezone.now(), "checked again at once, for fresh links"
    alive.refresh_from_db()
    assert alive.status == S.DOWNLOADING
    assert alive.lease_until == now + timedelta(seconds=20)


@pytest.mark.django_db
def test_reaping_with_nothing_to_take_back_touches_no_file(flow_emulator, project, alice):
    [take] = work.generate(make_ready_scene(project), alice)
    part = downloading(take, lease_until=timezone.now() + timedelta(seconds=20))

    run = Pass(timezone.now())
    reap.reap(run)

    assert part.exists()
    assert run.counts["download_reaped"] == 0
    assert sorted(Path(settings.MEDIA_ROOT).rglob("*.part")) == [part]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("on_vertex", "upstream", "other"), [(False, "Flow", "Vertex AI"), (True, "Vertex AI", "Flow")]
)
def test_a_take_whose_worker_died_mid_submit_names_its_own_engine(
    flow_emulator, project, alice, on_vertex, upstream, other
):
    if on_vertex:
        use_vertex(project.account, flow_emulator)
        scene = vertex_scene(project)
    else:
        scene = make_ready_scene(project)
    [take] = work.generate(scene, alice)
    now = timezone.now()
    Generation.objects.filter(pk=take.pk).update(
        status=S.SUBMITTING, claim=uuid.uuid4(), lease_until=now - timedelta(seconds=1)
    )

    run = Pass(now)
    reap.reap(run)

    take.refresh_from_db()
    assert (take.status, run.counts["uncertain"]) == (S.UNCERTAIN, 1)
    assert take.reason == (
        f"Flowsite could not confirm that {upstream} received this take; it was not "
        "resubmitted so it is not paid for twice. What happened: The worker sending it "
        f"stopped before it could save {upstream}'s answer."
    )
    assert not re.search(rf"\b{other}\b", take.reason) and "credits" not in take.reason


@pytest.mark.django_db
def test_a_vertex_take_whose_account_was_removed_ends_naming_no_engine(
    flow_emulator, project, alice
):
    use_vertex(project.account, flow_emulator)
    [take] = work.generate(vertex_scene(project), alice)
    Generation.objects.filter(pk=take.pk).update(account=None)

    reap.reap(Pass(timezone.now()))

    take.refresh_from_db()
    assert take.status == S.FAILED
    assert take.reason == "The account of this take was removed, so Flowsite cannot follow it."


@pytest.mark.django_db(transaction=True)
def test_the_keeper_renews_the_takes_a_pass_holds_and_no_other(flow_emulator, project, alice):
    mine, theirs = work.generate(make_ready_scene(project, takes=2), alice)
    token, other = uuid.uuid4(), uuid.uuid4()
    start = timezone.now()
    Generation.objects.filter(pk=mine.pk).update(claim=token, lease_until=start)
    Generation.objects.filter(pk=theirs.pk).update(claim=other, lease_until=start)
    keeper = Keeper(every=0.05).start()
    try:
        with keeper.holding(Hold(token, [S.QUEUED]), timedelta(seconds=30), seconds=60):
            deadline = time.monotonic() + 10
            while Generation.objects.get(pk=mine.pk).lease_until == start:
                assert time.monotonic() < deadline, "the keeper never renewed the lease"
                time.sleep(0.02)
    finally:
        keeper.stop()
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.lease_until >= start + timedelta(seconds=30)
    assert theirs.lease_until == start, "held by another worker: not ours to renew"
    assert not keeper.thread.is_alive()


@pytest.mark.django_db(transaction=True)
def test_the_keeper_stops_renewing_work_past_its_own_deadline(flow_emulator, project, alice):
    [take] = work.generate(make_ready_scene(project), alice)
    token = uuid.uuid4()
    start = timezone.now()
    Generation.objects.filter(pk=take.pk).update(claim=token, lease_until=start)
    keeper = Keeper(every=0.05)
    with keeper.holding(Hold(token, [S.QUEUED]), timedelta(seconds=30), seconds=0):
        # A wedged worker: the work overran its deadline, so its takes must lapse.
        keeper.beat()
    take.refresh_from_db()
    assert take.lease_until == start
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_the_pump_downloads_no_more_clips_at_once_than_its_slots(emu, project, alice, settings):
    settings.FLOWSITE_DOWNLOAD_SLOTS = 2
    takes = work.generate(
        make_ready_scene(project, "[fault:slow-download=1] a reef", takes=3), alice
    )
    most = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal most
        while not done.is_set():
            most = max(most, len(stray_temp_files()))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        totals = tasks.pump(budget_seconds=30)
    finally:
        done.set()
        watcher.join()
        connection.close()

    assert totals["ready"] == 3
    assert most == 2, "two downloads at once, the third waiting for a slot"
    assert emu.stats["media"] == 6, "each clip and poster fetched once"
    assert_files_match(fresh(takes))


def test_a_clip_found_after_a_slow_status_call_is_leased_from_when_its_download_starts(
    emu, project, alice, settings, monkeypatch
):
    # A status call may take longer than a lease (Flow's read timeout is a minute): a download
    # leased from the pass's start would be over before it began, and the reaper would remove
    # the file being written (an outside probe saw it fetched six times).
    from generations.engines import download as download_module

    settings.FLOWSITE_POLL_INTERVAL = 0.1
    settings.FLOWSITE_DOWNLOAD_LEASE = 1
    take = work.generate(make_ready_scene(project, "[fault:slow=1.5] a lighthouse"), alice)[0]
    left: list[float] = []
    real_download = download_module.download_to

    def download_to(url, dest, **kwargs):
        if kwargs.get("kind") == "video":
            lease_until = Generation.objects.values_list("lease_until", flat=True).get(pk=take.pk)
            left.append((lease_until - timezone.now()).total_seconds())
        return real_download(url, dest, **kwargs)

    monkeypatch.setattr(download_module, "download_to", download_to)
    [take] = settle([take])

    assert take.status == S.READY
    assert left and left[0] > 0.5, f"the download began with {left} s of lease left"
