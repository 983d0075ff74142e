"""`make run` starts the web server, the worker and the emulator, and Ctrl-C stops all of it."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_in_session(sid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state, ppid, pgrp, session, ...; zombies are already gone.
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def ctrl_c(pid: int) -> None:
    # What a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
    os.killpg(pid, signal.SIGINT)


def terminate_script_only(pid: int) -> None:
    # What `timeout` or a process manager does: SIGTERM to the script alone.
    os.kill(pid, signal.SIGTERM)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("stop", [ctrl_c, terminate_script_only])
def test_make_run_serves_the_studio_and_the_emulator_and_stopping_it_stops_everything(
    tmp_path, stop
):
    web, emulator = free_port(), free_port()
    env = {
        **os.environ,
        "PORT": str(web),
        "FLOW_EMULATOR_PORT": str(emulator),
        "FLOWSITE_VAR_DIR": str(tmp_path),
    }
    env.pop("DATABASE_URL", None)
    env.pop("Q_REDIS_URL", None)
    run = subprocess.Popen(
        [str(ROOT / "scripts" / "run")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = run.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Press Ctrl-C to stop" in line:
                break
        text = "".join(output)
        assert f"http://127.0.0.1:{web}/" in text, text
        assert "demo / flowsite-demo" in text, text

        login = httpx.get(f"http://127.0.0.1:{web}/accounts/login/", timeout=10)
        assert login.status_code == 200
        credits = httpx.get(
            f"http://127.0.0.1:{emulator}/v1/credits",
            headers={"authorization": "Bearer ya29.emulator-token"},
            timeout=10,
        )
        assert credits.json()["credits"] > 0
        assert len(processes_in_session(run.pid)) >= 4, "script, web, worker and emulator"
    finally:
        stop(run.pid)
        try:
            run.wait(timeout=30)
        finally:
            deadline = time.monotonic() + 15
            while processes_in_session(run.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            leftovers = processes_in_session(run.pid)
            for pid in leftovers:
                os.kill(pid, signal.SIGKILL)
    assert leftovers == [], "every process of make run stopped"
