"""Helpers the benchmark scripts share: set up a throw-away site, serve it, time it side by side.

The machine is noisy (two cores, other work running), so no figure is read on its own: every
benchmark measures the thing and its yardstick in the same run, interleaved request by request,
and prints the ratio of the medians.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from django.test.utils import CaptureQueriesContext

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SETTINGS = "benchmarks.harness.settings"
# What the TLS-terminating proxy in front of Flowsite adds to every request.
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}


def configure(var_dir: Path, database_url: str | None = None, **env: str) -> None:
    """Point Django at a fresh SQLite file (or the empty PostgreSQL database at
    ``database_url``) and a media folder under ``var_dir``, set it up and migrate. Extra ``env``
    entries are settings read from the environment (see the README)."""
    for folder in (var_dir, var_dir / "media", var_dir / "static"):
        folder.mkdir(parents=True, exist_ok=True)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "FLOWSITE_VAR_DIR": str(var_dir),
            "SQLITE_PATH": str(var_dir / "bench.sqlite3"),
            "MEDIA_ROOT": str(var_dir / "media"),
            "STATIC_ROOT": str(var_dir / "static"),
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "DEBUG": "0",
            # As in production behind a TLS-terminating proxy: clients send X-Forwarded-Proto.
            "SECURE_PROXY_SSL_HEADER": "1",
            "FLOWSITE_EMULATOR": "0",
            "LOG_LEVEL": "WARNING",
            **env,
        }
    )
    if not os.environ.get("FLOWSITE_FERNET_KEYS"):
        from cryptography.fernet import Fernet

        os.environ["FLOWSITE_FERNET_KEYS"] = Fernet.generate_key().decode()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def postgres_database(url: str, action: str) -> bool:
    """Create (fresh) or drop the benchmark's database at ``url``; False when PostgreSQL does
    not answer."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if action == "create":
                connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        print(f"PostgreSQL is not reachable at {parts.hostname}:{parts.port}: {error}")
        return False
    return True


def session_cookies(user) -> dict[str, str]:
    """Cookies of a signed-in browser session for ``user`` (stored in the database)."""
    from django.conf import settings
    from django.test import Client

    client = Client(headers=PROXY_HEADERS)
    client.force_login(user)
    return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn serving the timed site on 127.0.0.1, in its own process.

    The gthread worker keeps connections alive (the sync worker of the Dockerfile closes each
    one), so a client measures requests, not TCP handshakes. One worker process, so its memory
    can be watched.
    """

    def __init__(self, *, threads: int = 2, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.threads = threads
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "benchmarks.harness.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--worker-class",
            "gthread",
            "--workers",
            "1",
            "--threads",
            str(self.threads),
            "--keep-alive",
            "60",
            "--timeout",
            "120",
            "--log-level",
            "warning",
            "--chdir",
            str(ROOT),
        ]
        self.process = subprocess.Popen(command, cwd=ROOT, env=self.env)
        try:
            self._wait_until_up()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_up(self, timeout: float = 30.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                answer = httpx.get(self.url + "/bench/hello/", headers=PROXY_HEADERS, timeout=2)
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not answer within 30 s")

    @property
    def worker_pid(self) -> int:
        """The one worker process (the master only forks and watches it)."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(pid) for pid in children.read_text().split()]
        if len(pids) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {pids}")
        return pids[0]

    def __exit__(self, *exc_info: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def proc_status_kib(pid: int, key: str) -> int:
    """A memory figure from /proc/<pid>/status (VmRSS, VmHWM, ...) in KiB."""
    match = re.search(rf"^{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    if match is None:
        raise RuntimeError(f"no {key} for process {pid}")
    return int(match.group(1))


def reset_peak_rss(pid: int) -> bool:
    """Start a fresh VmHWM (peak RSS) for ``pid``; False when the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def server_ms(response: Any) -> float:
    """The application's own time for one answer, from its Server-Timing header."""
    match = re.search(r"app;dur=([\d.]+)", response.headers.get("server-timing", ""))
    if match is None:
        raise RuntimeError(f"no Server-Timing on the answer to {response.request.url}")
    return float(match.group(1))


@dataclass
class Samples:
    server: list[float] = field(default_factory=list)  # ms inside the application
    roundtrip: list[float] = field(default_factory=list)  # ms seen by the client

    @property
    def server_median(self) -> float:
        return statistics.median(self.server)

    @property
    def roundtrip_median(self) -> float:
        return statistics.median(self.roundtrip)


def interleaved(
    requests: dict[str, Callable[[], Any]],
    rounds: int,
    *,
    warmup: int = 20,
    expect: dict[str, int] | None = None,
) -> dict[str, Samples]:
    """Send each request once per round, in an order that rotates, and time every answer.

    ``expect`` maps a name to the status code its answer must have (200 when absent); anything
    else stops the benchmark, since a timing of the wrong answer means nothing.
    """
    names = list(requests)
    expect = expect or {}
    for _ in range(warmup):
        for name in names:
            _checked(name, requests[name](), expect)
    samples = {name: Samples() for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            response = requests[name]()
            elapsed = (time.perf_counter() - started) * 1000
            _checked(name, response, expect)
            samples[name].roundtrip.append(elapsed)
            samples[name].server.append(server_ms(response))
    return samples


def _checked(name: str, response: Any, expect: dict[str, int]) -> Any:
    wanted = expect.get(name, 200)
    if response.status_code != wanted:
        raise RuntimeError(f"{name}: expected HTTP {wanted}, got {response.status_code}")
    return response


@contextmanager
def captured_queries() -> Iterator[CaptureQueriesContext]:
    """The SQL statements run in this process inside the block (DEBUG or not); read
    ``len(context)`` or ``context.captured_queries`` after the block."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as context:
        yield context


class Verdicts:
    """Targets and guarantees checked by one run, and the exit code they add up to.

    A guarantee (a query count, a call count, an empty body) must hold in every run. A timing
    target is judged on a full run; ``--quick`` runs are too short to judge timings, so they print
    the verdict but only guarantees decide their exit code.
    """

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.failed_guarantees: list[str] = []
        self.missed_targets: list[str] = []

    def guarantee(self, label: str, ok: bool) -> str:
        if not ok:
            self.failed_guarantees.append(label)
        return "OK" if ok else "FAILED"

    def target(self, label: str, ok: bool) -> str:
        if not ok:
            self.missed_targets.append(label)
        return "OK" if ok else "MISSED"

    def exit_code(self) -> int:
        if self.failed_guarantees:
            print(f"FAILED guarantees: {', '.join(self.failed_guarantees)}")
            return 1
        if self.missed_targets:
            note = " (quick run: timings not judged)" if self.quick else ""
            print(f"Missed targets: {', '.join(self.missed_targets)}{note}")
            return 0 if self.quick else 1
        print("All targets met." if not self.quick else "Quick run: every guarantee held.")
        return 0


def ratio_line(label: str, value_ms: float, base_label: str, base_ms: float) -> tuple[str, float]:
    ratio = value_ms / base_ms if base_ms > 0 else float("inf")
    return f"{label}: {value_ms:.3f} ms = {ratio:.2f}× {base_label} ({base_ms:.3f} ms)", ratio
