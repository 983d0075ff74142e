"""Crash recovery: a real ``manage.py qcluster`` is SIGKILLed in the middle of each step of a
take (submit, poll, download), then a fresh cluster picks up the pieces.

The cluster runs as its own process group on this test's database file (or PostgreSQL
database), media folder and emulator, with leases of a second or two (FLOWSITE_*_LEASE) so
that recovery does not wait minutes. After each crash every take must end ready, or uncertain
or failed with a reason; no take is left in flight, no partial file sits under a final name,
no half-written file is left behind, and a submit that may have reached Flow is not resent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection

from generations import tasks, work
from generations.emulator import Emulator
from generations.models import AccountGrant, Generation, Membership, Project
from tests.conftest import make_ready_scene as make_scene
from tests.faults_support import (
    PYTHON,
    ROOT,
    assert_files_match,
    fresh,
    stray_temp_files,
    worker_env,
)
from tests.tasks_support import UNCERTAIN_WORDS

pytestmark = pytest.mark.django_db(transaction=True)

S = Generation.Status
LEASES = {
    "FLOWSITE_SUBMIT_LEASE": "1.5",
    # Longer than one slow status call below, so a live worker keeps its claim.
    "FLOWSITE_CHECK_LEASE": "2.5",
    # Longer than a slow clip plus its poster (1 s each).
    "FLOWSITE_DOWNLOAD_LEASE": "3",
    "FLOWSITE_PUMP_LEASE": "1",
}


class Clusters:
    """Real ``qcluster`` processes; whatever is still running at the end is killed."""

    def __init__(self, emulator: Emulator, logs: Path) -> None:
        self.emulator = emulator
        self.logs = logs
        self.running: list[subprocess.Popen] = []

    def start(self, **env: str) -> subprocess.Popen:
        """A cluster with one worker and the short leases above, unless ``env`` says else."""
        log = (self.logs / f"qcluster-{len(self.running)}.log").open("wb")
        process = subprocess.Popen(
            [PYTHON, "manage.py", "qcluster"],
            cwd=ROOT,
            env=worker_env(self.emulator.port, **{"Q_WORKERS": "1", **LEASES, **env}),
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: the sentinel, worker, pusher and monitor die together.
            start_new_session=True,
        )
        log.close()
        self.running.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def kill_all(self) -> None:
        for process in self.running:
            with contextlib.suppress(ProcessLookupError):
                self.kill(process)

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in sorted(self.logs.iterdir()))


@pytest.fixture
def clusters(flow_emulator, tmp_path) -> Iterator[Clusters]:
    logs = tmp_path / "logs"
    logs.mkdir()
    clusters = Clusters(flow_emulator, logs)
    try:
        yield clusters
    finally:
        clusters.kill_all()
        connection.close()


def wait_until(condition: Callable[[], bool], what: str, clusters: Clusters, timeout: float = 45):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{clusters.log_text()[-3000:]}")
        time.sleep(0.02)


def status(take: Generation) -> str:
    return Generation.objects.values_list("status", flat=True).get(pk=take.pk)


def recover(
    takes: list[Generation], clusters: Clusters, timeout: float = 60, **env: str
) -> list[Generation]:
    """Start a fresh cluster and run the watchdog (what the every-minute schedule runs, here
    every half second) until every take is final; then stop the cluster."""
    process = clusters.start(**env)
    deadline = time.monotonic() + timeout

    def settled() -> bool:
        return all(t.status in Generation.FINAL for t in fresh(takes))

    while not settled():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"takes did not recover: {[(t.status, t.reason) for t in fresh(takes)]}\n"
                f"{clusters.log_text()[-3000:]}"
            )
        tasks.watchdog()
        time.sleep(0.5)
    clusters.kill(process)
    return fresh(takes)


def test_a_worker_killed_while_its_submit_is_in_flight_leaves_the_take_uncertain(
    emu, clusters, project, alice
):
    # Generate commits, then queues a pump task on the ORM broker for the cluster to take.
    [take] = work.generate(make_scene(project, "[fault:slow=3:once] a lighthouse"), alice)
    first = clusters.start()
    wait_until(lambda: emu.stats["submit"] == 1, "the submit call", clusters)
    assert status(take) == S.SUBMITTING
    clusters.kill(first)
    # The request had left: Flow renders and charges it although nobody hears the answer.
    wait_until(lambda: emu.stats["clips_submitted"] == 1, "Flow to accept it", clusters)

    [take] = recover([take], clusters)

    assert take.status == S.UNCERTAIN
    assert take.reason == (
        f"{UNCERTAIN_WORDS} What happened: "
        "The worker sending it stopped before it could save Flow's answer."
    )
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (1, 1), "never sent again"
    assert_files_match([take])


def test_a_worker_killed_while_asking_flow_for_the_status_is_replaced_and_the_take_is_ready(
    emu, clusters, project, alice
):
    takes = work.generate(make_scene(project, "[fault:slow=1] a tide", takes=2), alice)
    first = clusters.start()
    wait_until(lambda: emu.stats["check"] >= 1, "a status call", clusters)
    # The status call is in flight (Flow takes a second to answer it).
    assert {status(t) for t in takes} <= {S.PENDING, S.ACTIVE}
    clusters.kill(first)

    takes = recover(takes, clusters)

    assert [t.status for t in takes] == [S.READY, S.READY]
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (1, 2)
    assert emu.stats["media"] == 4, "each clip and poster fetched once"
    assert_files_match(takes)


def test_a_worker_killed_mid_download_leaves_no_partial_file_and_the_clip_is_fetched_again(
    emu, clusters, project, alice
):
    [take] = work.generate(make_scene(project, "[fault:slow-download=1] a reef"), alice)
    first = clusters.start()
    wait_until(lambda: bool(stray_temp_files()), "a download to start writing", clusters)
    assert status(take) == S.DOWNLOADING
    clusters.kill(first)
    partial = stray_temp_files()
    assert partial, "killed while writing the clip"
    assert not (partial[0].parent / "clip.mp4").exists(), "nothing under the final name"

    [take] = recover([take], clusters)

    assert take.status == S.READY
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (1, 1)
    assert emu.stats["media"] >= 3, "the clip was fetched again"
    assert_files_match([take])  # includes: the half-written file of the killed worker is gone


# The settings of a production worker: no lease shortened for the test.
DEFAULT_LEASES = dict.fromkeys(LEASES, "0")


def test_a_worker_killed_mid_download_gives_its_take_back_within_a_minute_with_default_leases(
    emu, clusters, project, alice
):
    [take] = work.generate(make_scene(project, "[fault:slow-download=4] a kelp forest"), alice)
    first = clusters.start(**DEFAULT_LEASES)
    wait_until(lambda: bool(stray_temp_files()), "a download to start writing", clusters)
    clusters.kill(first)
    assert status(take) == S.DOWNLOADING
    assert stray_temp_files(), "killed while writing the clip"

    # A fresh worker takes the clip over once the dead one's leases (pump and take) lapse:
    # seconds, not the ten minutes the download alone used to hold it.
    [take] = recover([take], clusters, timeout=60, **DEFAULT_LEASES)

    assert take.status == S.READY
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (1, 1)
    assert_files_match([take])  # includes: the dead worker's half-written file is gone


def test_a_live_download_slower_than_its_lease_keeps_its_take(emu, clusters, project, alice):
    # Each file trickles in for longer than the lease: only the keeper's renewals keep it.
    [take] = work.generate(make_scene(project, "[fault:slow-download=3] a sandbar"), alice)
    process = clusters.start(Q_WORKERS="2", FLOWSITE_DOWNLOAD_LEASE="1")

    def ready() -> bool:
        # What the every-minute schedule runs: a second pump if the first one looked dead.
        tasks.watchdog()
        return status(take) == S.READY

    wait_until(ready, "the take to be ready", clusters, timeout=30)
    clusters.kill(process)

    assert emu.stats["media"] == 2, "the clip and its poster fetched once, by one worker"
    assert_files_match(fresh([take]))


def test_a_slow_download_does_not_hold_up_another_projects_take(emu, clusters, project, alice, bob):
    [slow] = work.generate(make_scene(project, "[fault:slow-download=10] a tide pool"), alice)
    triton = Project.objects.create(name="Triton", account=project.account, created_by=bob)
    triton.add_member(bob, Membership.Role.OWNER)
    AccountGrant.objects.get_or_create(account=project.account, user=bob)
    process = clusters.start()
    wait_until(lambda: bool(stray_temp_files()), "the slow download to start", clusters)

    [other] = work.generate(make_scene(triton, "a harbour seal"), bob)

    wait_until(lambda: status(other) != S.QUEUED, "bob's take to be submitted", clusters)
    assert status(slow) == S.DOWNLOADING, "submitted while alice's clip is still trickling in"
    wait_until(
        lambda: {status(slow), status(other)} == {S.READY}, "both takes", clusters, timeout=40
    )
    clusters.kill(process)
    assert (emu.stats["submit"], emu.stats["clips_submitted"]) == (2, 2)
    assert_files_match(fresh([slow, other]))
