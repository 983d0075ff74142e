"""`python manage.py flowsite_worker`: the django-q2 cluster, restarted when it stops working.

django-q2 replaces a worker process that died, but a worker killed while it waited for a task
(the OOM killer, an operator's `kill`) dies holding the task queue's read lock
(``multiprocessing.Queue.get`` takes it around its blocking read), and the worker put in its
place, like every other, then waits on that lock for good: the cluster looks alive and runs
nothing again. Nothing inside the cluster can free the lock, so this runs ``qcluster`` as a
child and starts it afresh once no worker has run for FLOWSITE_WORKER_STALE seconds
(``generations.heartbeat``: the watchdog task beats every minute, a running pump every few
seconds).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, connections
from django.utils import timezone

from generations import heartbeat

log = logging.getLogger("generations.worker")

# Between a cluster that exited by itself and its replacement: a cluster failing at start-up
# (database down) must not be restarted in a tight loop.
RESTART_PAUSE_SECONDS = 5.0


class Command(BaseCommand):
    help = (
        "Run the django-q2 worker cluster (manage.py qcluster) and restart it when no worker "
        "has run for FLOWSITE_WORKER_STALE seconds or it exits. SIGTERM or Ctrl-C stops it: "
        "the cluster gets SIGTERM, then SIGKILL after --grace seconds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace",
            type=float,
            default=30.0,
            help="seconds a cluster has to stop after SIGTERM before it is killed (default 30)",
        )

    def handle(self, *args: Any, grace: float, **options: Any) -> None:
        self.stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stopping.set())
        stale = heartbeat.stale_seconds()
        while not self.stopping.is_set():
            cluster = subprocess.Popen(
                [sys.executable, str(settings.BASE_DIR / "manage.py"), "qcluster"],
                # Its own process group (in our session, where `make run` looks for what is
                # left), so that a stalled cluster's sentinel, workers, pusher and monitor can
                # all be killed with it.
                process_group=0,
            )
            log.info("Started the worker cluster (process %s)", cluster.pid)
            why = self.watch(cluster, stale)
            self.stop(cluster, grace)
            if why:
                log.error("%s: starting it again.", why)
                self.stopping.wait(RESTART_PAUSE_SECONDS if cluster.returncode else 0)

    def watch(self, cluster: subprocess.Popen, stale: float) -> str:
        """Wait until the cluster exits, stalls (then say why) or we are asked to stop ("")."""
        started = timezone.now()
        check_every = max(min(stale / 4, 15.0), 0.2)
        prodded = None
        while not self.stopping.wait(check_every):
            if cluster.poll() is not None:
                return f"The worker cluster exited with code {cluster.returncode}"
            try:
                last = heartbeat.last_beat()
            except DatabaseError as error:
                # The workers cannot beat either; a restart would not bring the database back.
                log.warning("Cannot read the worker heartbeat: %s", error)
                continue
            finally:
                connections.close_all()
            now = timezone.now()
            since = max(last, started) if last else started
            quiet = (now - since).total_seconds()
            if quiet > stale:
                return f"No worker has run for {quiet:.0f} s (FLOWSITE_WORKER_STALE={stale:g})"
            if quiet > stale / 2 and (prodded is None or prodded < since):
                # Late: ask for a beat instead of waiting for the schedule, so that only a
                # cluster that cannot run it is restarted.
                self.prod()
                prodded = now
        return ""

    def prod(self) -> None:
        from django_q.tasks import async_task

        try:
            async_task("generations.tasks.watchdog", group="flowsite-heartbeat")
        except DatabaseError as error:
            log.warning("Cannot queue the watchdog: %s", error)
        finally:
            connections.close_all()

    def stop(self, cluster: subprocess.Popen, grace: float) -> None:
        if cluster.poll() is None:
            cluster.terminate()
            try:
                cluster.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("The worker cluster did not stop within %g s: killing it", grace)
        # Also what a stalled cluster left: its workers never stop by themselves.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait()
