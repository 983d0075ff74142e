"""Under load: 100 team members with their project page open, zero errors, p95 < 150 ms.

    .venv/bin/python benchmarks/load/run.py [--duration 60] [--users 100] [--sign-ins 10]
                                            [--database sqlite|postgres|both]

For each database, starts on 127.0.0.1: the Flow emulator, gunicorn with 4 workers on the
production settings (DEBUG off, hashed static files, plain HTTP), and the django-q2 worker whose
pump submits, polls and downloads takes (the emulator niced: it stands in for Google, whose
rendering is not on Flowsite's cores). Seeds USERS people, each owning a project of four
scenes (finished takes, a take that finishes during the run, one that renders past its end, a
draft) and each already signed in, as someone whose page has been open all day is. Then runs
the load driver (driver.py, one asyncio process) for DURATION seconds: every member opens the project page, polls it exactly as
its poller does (FLOWSITE_PAGE_POLL_SECONDS while takes are in flight,
FLOWSITE_IDLE_POLL_SECONDS otherwise: the cadence and the since token are read from the
rendered poller) and opens the gallery about every 30 s. The p95 printed is over every request
of the run; beside it, each kind of request (polls split into 204, nothing changed, and 200,
cards sent) and, per 5 s window, the requests, their p95 and each process group's share of
the machine's CPU (gunicorn, worker, emulator, driver, and the whole machine).

Signing in is measured apart, after the load: SIGN_INS members sign in through the real form,
one a second, and the p50/p95 of those POSTs are printed next to the PBKDF2 iteration count
that makes them slow on purpose.

SQLite runs in WAL mode (the default settings); PostgreSQL runs when it answers at
127.0.0.1:5432 (database ``flowsite_load``, created and dropped here; --postgres-url overrides).
Everything else lives in a temporary folder that is removed afterwards. The load generator
shares the machine with the servers, so its figures include that contention.

Long because it starts, seeds, watches and stops a whole deployment (web, worker, emulator,
database) and prints the per-kind and per-window breakdown; the driver is its own module.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness.run import postgres_database  # noqa: E402

PYTHON = sys.executable
TARGET_P95_MS = 150.0
WINDOW_SECONDS = 5
# The takes rendering on every page finish about two thirds into the run, so the run sees
# pages polling while they render, then the cards changing as the worker downloads them.
EMULATOR_PENDING_SECONDS = 5
EMULATOR_CLIP_SECONDS = 2
EMULATOR_NICE = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(workdir: Path, emulator_port: int, database_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "flowsite.settings",
        "DEBUG": "0",
        "SECRET_KEY": "flowsite-load-test-" + base64.b16encode(os.urandom(8)).decode(),
        "FLOWSITE_FERNET_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on loopback: the production HTTPS defaults would redirect every request.
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "FLOWSITE_VAR_DIR": str(workdir),
        "STATIC_ROOT": str(workdir / "static"),
        "FLOWSITE_EMULATOR": "1",
        "FLOW_EMULATOR_PORT": str(emulator_port),
        "FLOWSITE_POLL_INTERVAL": "2",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": database_url,
        "Q_REDIS_URL": "",
        "PYTHONUNBUFFERED": "1",
    }
    return env


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)


def wait_for_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer within {seconds:g} s")
        time.sleep(0.2)


def stop(processes: list[subprocess.Popen]) -> None:
    # Last started first, one at a time: the worker stops before the emulator it talks to.
    # Each runs in a process group of its own, and the whole group goes: the worker's cluster
    # and gunicorn's workers are children that would otherwise outlive their parent and keep
    # polling a database this script has already deleted.
    for process in reversed(processes):
        _signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        _signal_group(process, signal.SIGKILL)
        process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summarise(summary: dict) -> dict:
    """Counts, errors and percentiles over every request of the run, per kind and per window."""
    rows = summary["requests"]
    result: dict = {"per_name": {}, "users": summary["users"], "windows": {}}
    for name in sorted({name for _, name, _, _, _ in rows}):
        times = [ms for _, n, ms, _, _ in rows if n == name]
        result["per_name"][name] = {
            "count": len(times),
            "p50": percentile(times, 0.50),
            "p95": percentile(times, 0.95),
            "max": max(times),
        }
    # When the slow answers came: every request by the window it started in.
    windows: dict[int, list[tuple[str, float]]] = {}
    for at, name, ms, _, _ in rows:
        windows.setdefault(int(at // WINDOW_SECONDS) * WINDOW_SECONDS, []).append((name, ms))
    for start, requests in sorted(windows.items()):
        result["windows"][start] = {
            "count": len(requests),
            "cards": sum(1 for name, _ in requests if name == "poll 200"),
            "p95": percentile([ms for _, ms in requests], 0.95),
            "p95_204": percentile([ms for name, ms in requests if name == "poll 204"], 0.95),
        }
    result["errors"] = [(name, error) for _, name, _, _, error in rows if error]
    everything = [ms for _, _, ms, _, _ in rows]
    result["requests"] = len(rows)
    result["p50"] = percentile(everything, 0.50)
    result["p95"] = percentile(everything, 0.95)
    return result


class CpuSampler:
    """CPU time of each role's process group (the servers and the driver each run in a session
    of their own), and of the whole machine, per window of the run, read from /proc."""

    def __init__(self, roles: dict[str, subprocess.Popen], window: float) -> None:
        self.groups = {process.pid: name for name, process in roles.items()}
        self.window = window
        self.started = time.monotonic()
        self.index = 0
        self.last = self.read()
        self.windows: dict[int, dict[str, float]] = {}

    def read(self) -> dict[str, float]:
        ticks = os.sysconf("SC_CLK_TCK")
        used = dict.fromkeys(self.groups.values(), 0.0)
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            name = self.groups.get(int(fields[2]))  # the process group
            if name is not None:
                used[name] += (int(fields[11]) + int(fields[12])) / ticks
        cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        idle = int(cpu[3]) + int(cpu[4])
        used["machine"] = (sum(int(value) for value in cpu) - idle) / ticks
        return used

    def sample(self) -> None:
        index = int((time.monotonic() - self.started) // self.window)
        if index == self.index:
            return
        now = self.read()
        self.windows[int(self.index * self.window)] = {
            name: max(0.0, now[name] - self.last[name]) for name in now
        }
        self.index, self.last = index, now

    def shares(self) -> dict[int, dict[str, float]]:
        """Per window: each role's share of the machine's cores, in per cent."""
        cores = os.cpu_count() or 1
        return {
            start: {name: 100 * seconds / (self.window * cores) for name, seconds in used.items()}
            for start, used in self.windows.items()
        }


def sign_in_phase(host: str, people: list[dict], count: int) -> dict:
    """``count`` members sign in through the real form, one a second; the POSTs' times in ms.

    Apart from the load on purpose: a sign-in hashes the password (PBKDF2) and happens once a
    day per person, while the pages poll all day.
    """
    import http.cookiejar
    import re
    import urllib.error
    import urllib.request
    from urllib.parse import urlencode

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    times: list[float] = []
    errors: list[str] = []
    for n, person in enumerate(people[:count]):
        slot = time.monotonic() + 1.0
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())
        with opener.open(f"{host}/accounts/login/", timeout=30) as form:
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.read().decode())
        body = urlencode(
            {
                "username": person["username"],
                "password": person["password"],
                "csrfmiddlewaretoken": token.group(1) if token else "",
            }
        ).encode()
        request = urllib.request.Request(
            f"{host}/accounts/login/", data=body, headers={"Referer": f"{host}/accounts/login/"}
        )
        started = time.perf_counter()
        try:
            status = opener.open(request, timeout=30).status
        except urllib.error.HTTPError as answer:
            status = answer.code
        times.append((time.perf_counter() - started) * 1000)
        if status != 302:
            errors.append(f"sign-in {n} answered {status}")
        time.sleep(max(0.0, slot - time.monotonic()))
    return {
        "count": len(times),
        "p50": percentile(times, 0.50),
        "p95": percentile(times, 0.95),
        "errors": errors,
    }


def takes_state(env: dict[str, str]) -> dict[str, int]:
    code = (
        "import django, json; django.setup();"
        "from django.db.models import Count;"
        "from generations.models import Generation;"
        "print(json.dumps(dict(Generation.objects.values_list('status')"
        ".annotate(n=Count('pk')).values_list('status', 'n'))))"
    )
    return _django_json(env, code)


def server_facts(env: dict[str, str]) -> dict:
    """What the servers run with: the page's poll cadence and the password hasher's cost."""
    code = (
        "import django, json; django.setup();"
        "from django.conf import settings;"
        "from django.contrib.auth.hashers import get_hasher;"
        "h = get_hasher();"
        "print(json.dumps({'page_poll_seconds': settings.FLOWSITE_PAGE_POLL_SECONDS,"
        "'idle_poll_seconds': settings.FLOWSITE_IDLE_POLL_SECONDS,"
        "'worker_interval': settings.FLOWSITE_POLL_INTERVAL,"
        "'hasher': h.algorithm, 'iterations': getattr(h, 'iterations', None)}))"
    )
    return _django_json(env, code)


def _django_json(env: dict[str, str], code: str):
    """What ``code`` prints last as JSON, run in a Django process with the servers' settings."""
    done = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def lower_priority(pid: int, nice: int) -> None:
    """Give the process (and its render workers) ``nice``, against the other sessions too.

    Each server runs in its own session, so that it can be stopped as a group, and where the
    kernel groups CPU time by session (``sched_autogroup``, the default on Debian) a process's
    own nice value only weighs it against its session mates: a plain ``nice -n 10`` emulator
    still got as much CPU as all four gunicorn workers together. The session's nice value is
    what weighs it against the servers under test.
    """
    os.setpriority(os.PRIO_PROCESS, pid, nice)
    with contextlib.suppress(OSError):  # no autogroups on this kernel: the nice above applies
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def run_once(label: str, database_url: str, args: argparse.Namespace, static: Path) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="flowsite-load-"))
    emulator_port, web_port = free_port(), free_port()
    env = base_env(workdir, emulator_port, database_url)
    env["STATIC_ROOT"] = str(static)
    host = f"http://127.0.0.1:{web_port}"
    processes: list[subprocess.Popen] = []
    logs = workdir / "logs"
    logs.mkdir()
    print(f"\n=== {label}: {args.users} users for {args.duration} s against {host} ===")
    try:
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        users_file = workdir / "users.json"
        subprocess.run(
            [PYTHON, "-m", "benchmarks.load.seed", "--users", str(args.users), "--out", users_file],
            cwd=ROOT,
            env=env,
            check=True,
        )

        def start(name: str, *command: str, nice: int = 0) -> None:
            log = (logs / f"{name}.log").open("w")
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            if nice:
                lower_priority(process.pid, nice)
            processes.append(process)

        # The emulator stands in for Google, whose rendering does not run on Flowsite's cores:
        # niced, it renders and answers with what the servers under test leave over.
        start(
            "emulator",
            PYTHON,
            "manage.py",
            "flow_emulator",
            "--port",
            str(emulator_port),
            "--pending-seconds",
            str(EMULATOR_PENDING_SECONDS),
            "--active-seconds",
            str(max(5, round(args.duration * 2 / 3) - EMULATOR_PENDING_SECONDS)),
            "--clip-seconds",
            str(EMULATOR_CLIP_SECONDS),
            "--render-workers",
            "1",
            nice=EMULATOR_NICE,
        )
        start(
            "gunicorn",
            PYTHON,
            "-m",
            "gunicorn",
            "flowsite.wsgi",
            "--bind",
            f"127.0.0.1:{web_port}",
            "--workers",
            "4",
            "--log-level",
            "warning",
        )
        start("worker", PYTHON, "manage.py", "qcluster")
        wait_for_http(f"http://127.0.0.1:{emulator_port}/")
        wait_for_http(f"{host}/accounts/login/")

        summary_file = workdir / "summary.json"
        start(
            "driver",
            PYTHON,
            "-m",
            "benchmarks.load.driver",
            "--users-file",
            str(users_file),
            "--out",
            str(summary_file),
            "--host",
            host,
            "--users",
            str(args.users),
            "--duration",
            str(args.duration),
            "--spawn-rate",
            str(args.spawn_rate),
        )
        roles = dict(zip(("emulator", "gunicorn", "worker", "driver"), processes, strict=True))
        cpu = CpuSampler(roles, WINDOW_SECONDS)
        driver = processes[-1]
        while driver.poll() is None:
            cpu.sample()
            time.sleep(0.25)
        if driver.returncode:
            raise SystemExit(f"the load driver failed; see {logs / 'driver.log'} (--keep)")
        result = summarise(json.loads(summary_file.read_text()))
        result["cpu"] = cpu.shares()
        result["takes"] = takes_state(env)
        result["label"] = label
        result["duration"] = args.duration
        result["facts"] = server_facts(env)
        people = json.loads(users_file.read_text())
        result["sign_in"] = sign_in_phase(host, people, args.sign_ins)
        for name, process in roles.items():
            if name != "driver" and process.poll() is not None:
                result["errors"].append((name, f"exited with {process.returncode}"))
        return result
    finally:
        stop(processes)
        if not args.keep:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
        else:
            # The servers' settings (keys included), to look at the kept database afterwards.
            (workdir / "env.json").write_text(json.dumps(env))
            print(f"Kept {workdir} (the servers' environment in env.json)")


def report(result: dict) -> bool:
    ok = not result["errors"] and result["p95"] < TARGET_P95_MS
    facts, sign_in = result["facts"], result["sign_in"]
    print(f"\n--- {result['label']} ---")
    print(
        f"{result['users']} signed-in members for {result['duration']} s; the page polls every "
        f"{facts['page_poll_seconds']:g} s while takes are in flight "
        f"({facts['idle_poll_seconds']:g} s otherwise), the worker every "
        f"{facts['worker_interval']:g} s"
    )
    print(f"{'request':<16}{'count':>8}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for name, row in result["per_name"].items():
        print(
            f"{name:<16}{row['count']:>8}{row['p50']:>10.0f}{row['p95']:>10.0f}{row['max']:>10.0f}"
        )
    print(
        f"whole run: {result['requests']} requests, {len(result['errors'])} errors, "
        f"p50 {result['p50']:.0f} ms, p95 {result['p95']:.0f} ms"
        + "".join(f"\n  {name}: {error}" for name, error in result["errors"][:10])
    )
    polls = sum(row["count"] for name, row in result["per_name"].items() if "poll" in name)
    print(
        f"polls per member per second: {polls / max(1, result['users']) / result['duration']:.2f}"
    )
    roles = ("gunicorn", "worker", "emulator", "driver", "machine")
    print(
        f"per {WINDOW_SECONDS} s: requests, polls answered with cards, p95 ms (all, unchanged "
        "polls), CPU % of the machine's cores by role ('machine': everything, other work and "
        "PostgreSQL included)"
    )
    print(
        f"{'from':>5}{'reqs':>6}{'cards':>6}{'p95':>7}{'p95 204':>8}"
        + "".join(f"{r:>10}" for r in roles)
    )
    for start, window in result["windows"].items():
        cpu = result["cpu"].get(start, {})
        print(
            f"{start:>4}s{window['count']:>6}{window['cards']:>6}{window['p95']:>7.0f}"
            f"{window['p95_204']:>8.0f}"
            + "".join(f"{cpu.get(r, float('nan')):>10.0f}" for r in roles)
        )
    print(f"takes at the end: {result['takes']}")
    iterations = f", {facts['iterations']:,} iterations" if facts["iterations"] else ""
    print(
        f"sign-in phase, apart ({sign_in['count']} members through the form, one a second; "
        f"{facts['hasher']}{iterations}): p50 {sign_in['p50']:.0f} ms, "
        f"p95 {sign_in['p95']:.0f} ms, {len(sign_in['errors'])} errors"
        + "".join(f"\n  {error}" for error in sign_in["errors"][:5])
    )
    print(
        f"target (0 errors, p95 of the whole run < {TARGET_P95_MS:.0f} ms): "
        f"{'met' if ok else 'NOT met'} ({result['p95'] / TARGET_P95_MS:.2f}× the p95 limit)",
        flush=True,
    )
    return ok and not sign_in["errors"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of load (default 60)")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--spawn-rate", type=float, default=10.0)
    parser.add_argument(
        "--sign-ins", type=int, default=10, help="members signing in, one a second, after the load"
    )
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--postgres-url", default="postgres://postgres@127.0.0.1:5432/flowsite_load"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    static = Path(tempfile.mkdtemp(prefix="flowsite-load-static-"))
    results = []
    try:
        env = base_env(static, 0, "")
        env["STATIC_ROOT"] = str(static)
        manage(env, "collectstatic", "--noinput", "--verbosity", "0")
        if args.database in ("sqlite", "both"):
            results.append(run_once("SQLite (WAL)", "", args, static))
        if args.database in ("postgres", "both"):
            if postgres_database(args.postgres_url, "create"):
                try:
                    results.append(run_once("PostgreSQL", args.postgres_url, args, static))
                finally:
                    postgres_database(args.postgres_url, "drop")
            else:
                print("PostgreSQL pass skipped.")
    finally:
        subprocess.run(["rm", "-rf", str(static)], check=False)
    verdicts = [report(result) for result in results]
    sys.exit(0 if all(verdicts) else 1)


if __name__ == "__main__":
    main()
