"""A cluster whose idle workers are SIGKILLed goes on working: ``manage.py flowsite_worker``
(what `make run` and the worker container start) restarts it once no worker has run for
FLOWSITE_WORKER_STALE seconds, here a few.

Killed while waiting for a task, a django-q2 worker dies holding the task queue's read lock:
the workers put in its place wait on that lock for good, and a bare ``qcluster`` runs nothing
again (its log says it "reincarnated" them) until someone restarts it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection

from generations import heartbeat, work
from generations.models import Generation
from tests.conftest import make_ready_scene as make_scene
from tests.faults_support import PYTHON, ROOT, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

S = Generation.Status
STALE = 8


def in_session(sid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int(entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[3]) == sid:
                    found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


class Supervisor:
    def __init__(self, emulator_port: int, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [PYTHON, "manage.py", "flowsite_worker", "--grace", "2"],
                cwd=ROOT,
                env=worker_env(emulator_port, Q_WORKERS="2", FLOWSITE_WORKER_STALE=str(STALE)),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self, what: str) -> list[int]:
        """Processes of every cluster it started, from django-q2's log: "ready for work at"."""
        return [int(pid) for pid in re.findall(rf"{what} at (\d+)", self.text())]

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.text()[-4000:]}")
            time.sleep(0.1)


@pytest.fixture
def supervisor(flow_emulator, tmp_path) -> Iterator[Supervisor]:
    running = Supervisor(flow_emulator.port, tmp_path / "worker.log")
    try:
        yield running
    finally:
        # The supervisor started its own session; each cluster is a process group in it.
        for pid in in_session(running.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        running.process.wait(10)
        connection.close()


def test_a_cluster_whose_idle_workers_were_killed_is_restarted_and_alices_take_gets_ready(
    emu, supervisor, project, alice
):
    supervisor.wait_until(lambda: len(supervisor.pids("ready for work")) == 2, "workers", 30)
    # Asked for by the supervisor once the beat is late (half the stale time): the cluster works.
    supervisor.wait_until(lambda: heartbeat.last_beat() is not None, "a first beat", 30)
    idle = supervisor.pids("ready for work")
    for pid in idle:
        os.kill(pid, signal.SIGKILL)
    supervisor.wait_until(lambda: len(supervisor.pids("ready for work")) >= 4, "new workers", 10)
    killed_at = time.monotonic()

    [take] = work.generate(make_scene(project, "a lighthouse at dusk"), alice)

    supervisor.wait_until(
        lambda: Generation.objects.get(pk=take.pk).status == S.READY,
        "Alice's take to be ready",
        # Stale time, grace, a fresh cluster's start and its first beat, the clip.
        timeout=STALE + 45,
    )
    assert time.monotonic() - killed_at < STALE + 45
    assert "No worker has run for" in supervisor.text()
    assert not any(alive(pid) for pid in idle)

    # Ctrl-C on `make run` and `docker compose stop` send SIGTERM: nothing is left running.
    supervisor.process.send_signal(signal.SIGTERM)
    assert supervisor.process.wait(15) == 0
    everyone = supervisor.pids("ready for work") + supervisor.pids("pushing tasks")
    supervisor.wait_until(lambda: not any(alive(pid) for pid in everyone), "all stopped", 5)
    assert not [pid for pid in in_session(supervisor.process.pid) if alive(pid)]
