"""Races: two workers on one database never submit, download or update a take twice.

The first test runs two real processes looping over passes (as two worker machines would)
while takes keep being queued; the database is the test's file (or PostgreSQL database), so
every claim really crosses processes.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from generations import tasks
from generations.engines import download as download_module
from generations.models import Generation
from tests.conftest import make_image
from tests.conftest import make_ready_scene as make_scene
from tests.faults_support import PYTHON, ROOT, assert_files_match, fresh, worker_env
from tests.tasks_support import settle

pytestmark = pytest.mark.django_db(transaction=True)

S = Generation.Status

# One worker: passes until told the queue is complete and nothing is left in flight.
WORKER = """
import json, os, sys, time
import django
django.setup()
from generations.models import Generation
from generations.tasks import run_pass

done_flag, start_at, give_up = sys.argv[1], float(sys.argv[2]), time.monotonic() + 40
time.sleep(max(0.0, start_at - time.time()))
totals = {}
while time.monotonic() < give_up:
    for name, count in run_pass().items():
        totals[name] = totals.get(name, 0) + count
    in_flight = Generation.objects.filter(status__in=Generation.IN_FLIGHT).exists()
    if os.path.exists(done_flag) and not in_flight:
        break
    time.sleep(0.01)
print(json.dumps(totals))
"""


def test_two_worker_processes_submit_and_download_each_of_20_takes_exactly_once(
    emu, project, alice, tmp_path
):
    image = make_image(project)
    done = tmp_path / "queue-complete"
    # No pump of their own: these two processes are the only workers.
    takes = [t for _ in range(2) for t in make_scene(project, takes=4, image=image).generate(alice)]
    start_at = time.time() + 1.5  # both have imported Django by then
    workers = [
        subprocess.Popen(
            [PYTHON, "-c", WORKER, str(done), str(start_at)],
            cwd=ROOT,
            env=worker_env(emu.port),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        time.sleep(max(0.0, start_at - time.time()))
        # More takes arrive while both workers are busy, as the web would queue them.
        for _ in range(3):
            time.sleep(0.2)
            takes += make_scene(project, takes=4, image=image).generate(alice)
        done.touch()
        outputs = [worker.communicate(timeout=45) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        connection.close()
    assert [worker.returncode for worker in workers] == [0, 0], [err for _, err in outputs]
    totals = [json.loads(out) for out, _ in outputs]
    assert "database is locked" not in "".join(err for _, err in outputs)

    takes = fresh(takes)
    assert len(takes) == 20
    assert [t.status for t in takes] == [S.READY] * 20
    assert emu.stats["clips_submitted"] == 20
    assert len({t.operation_name for t in takes}) == 20, "each take has exactly one operation"
    assert emu.stats["media"] == 40, "each clip and poster downloaded once"
    assert sum(total.get("submitted", 0) for total in totals) == 20
    assert sum(total.get("ready", 0) for total in totals) == 20
    assert all(total.get("checked", 0) for total in totals), "both workers really took part"
    assert_files_match(takes)


def test_a_download_overtaken_by_another_worker_keeps_the_winners_files(
    emu, project, alice, settings, monkeypatch
):
    """A worker slower than its download lease (paused, not dead) loses the take to another
    worker; when it finally finishes it must not delete the clip the winner recorded."""
    settings.FLOWSITE_POLL_INTERVAL = 0.1
    settings.FLOWSITE_DOWNLOAD_LEASE = 0.5
    [take] = settle(make_scene(project).generate(alice), until=(S.PENDING, S.ACTIVE))
    real_download = download_module.download_to
    paused, resume = threading.Event(), threading.Event()
    slow_worker: list[threading.Thread] = []

    def download_to(url, dest, **kwargs):
        result = real_download(url, dest, **kwargs)
        if threading.current_thread() in slow_worker and kwargs.get("kind") == "video":
            paused.set()
            resume.wait(10)  # the worker stalls here, its clip already in place
        return result

    monkeypatch.setattr(download_module, "download_to", download_to)
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            while not paused.is_set() and not errors:
                tasks.run_pass()
                time.sleep(0.05)
        except BaseException as error:  # surfaced below, in the test's thread
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=slow)
    slow_worker.append(thread)
    thread.start()
    try:
        assert paused.wait(10), "the slow worker reached its download"
        # Its lease lapses: the next pass takes the clip over, fetches it and finishes first.
        tasks.run_pass(now=timezone.now() + timedelta(seconds=2))
        [take] = fresh([take])
        assert take.status == S.READY
    finally:
        resume.set()
        thread.join(15)
    assert not errors
    [take] = fresh([take])
    assert take.status == S.READY
    assert emu.stats["media"] == 4, "both workers fetched clip and poster"
    assert_files_match([take])
