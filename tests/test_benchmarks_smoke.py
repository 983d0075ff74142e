"""Every benchmark still runs: each script under benchmarks/ with --quick, in its own process.

A quick run is too short to judge a timing, so it only has to finish, keep its guarantees
(query counts, call counts, flat memory, empty bodies; the exit code says) and print its ratios.
The real figures come from full runs, listed in benchmarks/README.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(
    path.name for path in (ROOT / "benchmarks").glob("*.py") if not path.name.startswith("_")
)


def test_every_benchmark_is_listed_in_the_benchmarks_readme():
    readme = (ROOT / "benchmarks" / "README.md").read_text()

    assert [name for name in SCRIPTS if name not in readme] == []


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_benchmark_runs_quickly_and_prints_its_ratios(script, tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    # A benchmark makes its own SQLite database; it must not inherit the test run's choice.
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "×" in done.stdout, done.stdout
    assert "FAILED" not in done.stdout, done.stdout


def _postgres_answers() -> bool:
    import psycopg

    try:
        psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


@pytest.mark.skipif(not _postgres_answers(), reason="no PostgreSQL at 127.0.0.1:5432")
def test_the_page_poll_benchmark_runs_on_postgresql_and_drops_its_database(tmp_path):
    import psycopg

    url = "postgres://postgres@127.0.0.1:5432/flowsite_smoke_page_poll"
    done = subprocess.run(
        [sys.executable, "benchmarks/page_poll.py", "--quick", "--database", "postgres"]
        + ["--postgres-url", url],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "PostgreSQL" in done.stdout.splitlines()[0]
    assert "unchanged poll: HTTP 204, 0 body bytes, 3 SQL statements" in done.stdout
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres") as connection:
        names = [row[0] for row in connection.execute("SELECT datname FROM pg_database")]
    assert "flowsite_smoke_page_poll" not in names
