"""The web process and the worker write to one database at once without "database is locked".

SQLite runs in WAL mode with IMMEDIATE transactions and a busy timeout (flowsite/settings.py):
a transaction takes the write lock when it begins, so a read-then-write never has to upgrade a
lock mid-way (the one case SQLite's busy timeout cannot wait out), and a writer that finds the
lock taken waits for it. These tests run web-like and worker-like writers in threads and in a
second process on the test's database file, and count every lost write. They run on
PostgreSQL too (DATABASE_URL), where the row locks do the same job.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from django.db import OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from generations.models import Generation, Scene
from tests.conftest import make_ready_scene as make_scene
from tests.faults_support import PYTHON, ROOT, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

S = Generation.Status
THREAD_WRITES = 150
PROCESS_WRITES = 200

# The second process: what its connection says, then worker-like and web-like writes.
SECOND_PROCESS = """
import json, sys, time
import django
django.setup()
from django.db import OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone
from generations.models import Generation, Scene

scene_pk, take_pks, writes, start_at = int(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
pragmas = {}
if connection.vendor == "sqlite":
    with connection.cursor() as cursor:
        for name in ("journal_mode", "busy_timeout"):
            cursor.execute(f"PRAGMA {name}")
            pragmas[name] = cursor.fetchone()[0]
time.sleep(max(0.0, start_at - time.time()))
errors = []
for n in range(writes):
    try:
        pk = take_pks[n % len(take_pks)]
        Generation.objects.filter(pk=pk).update(attempts=F("attempts") + 1, updated=timezone.now())
        if n % 4 == 0:
            with transaction.atomic():
                scene = Scene.objects.select_for_update().get(pk=scene_pk)
                scene.position += 1
                scene.save(update_fields=["position"])
    except OperationalError as error:
        errors.append(str(error))
print(json.dumps({"pragmas": pragmas, "errors": errors}))
"""


def web_edits(scene_pk: int, count: int, errors: list[str], start: threading.Barrier) -> None:
    """What the scene form does: read the scene, change it, save it, in one transaction."""
    start.wait()
    try:
        for n in range(count):
            try:
                with transaction.atomic():
                    scene = Scene.objects.select_for_update().get(pk=scene_pk)
                    scene.prompt = f"a heron, edit {n}"
                    scene.position += 1
                    scene.updated = timezone.now()
                    scene.save(update_fields=["prompt", "position", "updated"])
            except OperationalError as error:
                errors.append(str(error))
    finally:
        connection.close()


def worker_updates(pks: list[int], count: int, errors: list[str], start: threading.Barrier):
    """What a pass does: conditional updates of take rows, some inside a transaction."""
    start.wait()
    try:
        for n in range(count):
            pk = pks[n % len(pks)]
            try:
                if n % 3:
                    Generation.objects.filter(pk=pk).update(
                        attempts=F("attempts") + 1, updated=timezone.now()
                    )
                else:
                    with transaction.atomic():
                        take = Generation.objects.select_for_update().get(pk=pk)
                        take.attempts += 1
                        take.status = S.ACTIVE if take.status == S.PENDING else S.PENDING
                        take.save(update_fields=["attempts", "status"])
            except OperationalError as error:
                errors.append(str(error))
    finally:
        connection.close()


def test_web_and_worker_writes_in_threads_and_a_second_process_never_meet_a_locked_database(
    flow_emulator, project, alice
):
    scene = make_scene(project)
    takes = scene.generate(alice) + make_scene(project, takes=4).generate(alice)
    pks = [take.pk for take in takes]
    Generation.objects.filter(pk__in=pks).update(status=S.PENDING)
    start_at = time.time() + 1.5  # the second process has imported Django by then
    second = subprocess.Popen(
        [PYTHON, "-c", SECOND_PROCESS, str(scene.pk), json.dumps(pks), str(PROCESS_WRITES)]
        + [str(start_at)],
        cwd=ROOT,
        env=worker_env(flow_emulator.port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    errors: list[str] = []
    start = threading.Barrier(3)
    threads = [
        threading.Thread(target=web_edits, args=(scene.pk, THREAD_WRITES, errors, start)),
        threading.Thread(target=worker_updates, args=(pks, THREAD_WRITES, errors, start)),
    ]
    try:
        for thread in threads:
            thread.start()
        time.sleep(max(0.0, start_at - time.time()))
        start.wait()
        for thread in threads:
            thread.join(60)
        out, err = second.communicate(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    assert second.returncode == 0, err
    report = json.loads(out)

    assert errors == []
    assert report["errors"] == []
    if connection.vendor == "sqlite":
        assert report["pragmas"]["journal_mode"] == "wal"
        assert report["pragmas"]["busy_timeout"] >= 5000
    # Not one write lost: every increment of every writer is there.
    scene.refresh_from_db()
    assert scene.position == THREAD_WRITES + len(range(0, PROCESS_WRITES, 4))
    assert scene.prompt == f"a heron, edit {THREAD_WRITES - 1}"
    total = sum(Generation.objects.filter(pk__in=pks).values_list("attempts", flat=True))
    assert total == THREAD_WRITES + PROCESS_WRITES
