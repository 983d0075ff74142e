"""Q_REDIS_URL really puts django-q2's queue on Redis, and a real cluster works from it.

Settings are read once per process, so the settings under test run in subprocesses started
with the environment a deployment would have. The Redis tests use Q_REDIS_URL when it is set
(CI's PostgreSQL pass) or the local default, and skip, saying why, when nothing answers there.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection

from tests.conftest import TEST_FERNET_KEY

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("Q_REDIS_URL") or "redis://127.0.0.1:6379/15"

BROKER_PROBE = """
import json
import django
django.setup()
from django_q.brokers import get_broker
broker = get_broker()
print(json.dumps({"broker": f"{type(broker).__module__}.{type(broker).__name__}",
                  "list_key": broker.list_key}))
"""

ENQUEUE = """
import django
django.setup()
from django_q.tasks import async_task
print(async_task("operator.concat", "round-", "{token}", task_name="scaleout-{token}"))
"""


def _redis_reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 0.5):
            return True
    except OSError:
        return False


needs_redis = pytest.mark.skipif(
    not _redis_reachable(REDIS_URL),
    reason=f"Redis is not reachable at {urlsplit(REDIS_URL).netloc} (start redis-server or "
    "set Q_REDIS_URL); the Redis broker was not tested",
)


def _env(**overrides: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "flowsite.settings",
        "FLOWSITE_FERNET_KEYS": TEST_FERNET_KEY,
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides)
    return env


def _python(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _database_env() -> dict[str, str]:
    """The environment that points another process at this test run's database."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return {"DATABASE_URL": "", "SQLITE_PATH": str(db["NAME"])}
    assert connection.vendor == "postgresql", connection.vendor
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return {"DATABASE_URL": f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"}


@pytest.fixture
def queue_name() -> Iterator[str]:
    """A cluster name of this test's own, so no other queue's tasks are mixed in."""
    import redis

    name = f"flowsite-test-{uuid.uuid4().hex[:10]}"
    yield name
    redis.Redis.from_url(REDIS_URL).delete(f"django_q:{name}:q")


def test_without_q_redis_url_the_broker_is_the_database():
    probe = json.loads(_python(BROKER_PROBE, _env(Q_REDIS_URL="", DATABASE_URL="")))

    assert probe["broker"] == "django_q.brokers.orm.ORM"


def test_with_q_redis_url_the_broker_is_redis_on_the_named_queue():
    # Only settings are read: no connection is made, so this needs no Redis.
    env = _env(Q_REDIS_URL="redis://127.0.0.1:6379/15", Q_CLUSTER_NAME="studio-two")

    probe = json.loads(_python(BROKER_PROBE, env))

    assert probe["broker"] == "django_q.brokers.redis_broker.Redis"
    assert probe["list_key"] == "django_q:studio-two:q"


@needs_redis
@pytest.mark.skipif(
    not os.environ.get("Q_REDIS_URL"), reason="this run uses the database broker (no Q_REDIS_URL)"
)
def test_this_run_queues_tasks_on_redis_and_they_come_back_out():
    from django_q.brokers import get_broker
    from django_q.brokers.redis_broker import Redis

    assert isinstance(get_broker(), Redis)
    broker = Redis(list_key=f"flowsite-test-{uuid.uuid4().hex[:10]}")
    try:
        broker.enqueue("a package")

        assert broker.queue_size() == 1
        assert broker.dequeue() == [(None, b"a package")]
        assert broker.queue_size() == 0
    finally:
        broker.delete_queue()


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_task_queued_with_async_task_waits_in_redis_and_a_real_qcluster_runs_it(queue_name):
    import redis
    from django_q.models import OrmQ, Task

    env = _env(Q_REDIS_URL=REDIS_URL, Q_CLUSTER_NAME=queue_name, Q_WORKERS="1", **_database_env())
    token = uuid.uuid4().hex[:8]
    client = redis.Redis.from_url(REDIS_URL)

    task_id = _python(ENQUEUE.format(token=token), env)

    # Queued on Redis, not in the database, before any worker runs.
    assert client.llen(f"django_q:{queue_name}:q") == 1
    assert OrmQ.objects.count() == 0
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while (task := Task.objects.filter(id=task_id).first()) is None:
            assert cluster.poll() is None, cluster.stdout.read()
            assert time.monotonic() < deadline, "the cluster did not run the task in 30 s"
            time.sleep(0.2)
    finally:
        # The cluster's parent stops its workers itself; signalling them too hangs the stop.
        cluster.send_signal(signal.SIGTERM)
        try:
            cluster.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()

    assert task.success, task.result
    assert task.result == f"round-{token}"
    assert task.name == f"scaleout-{token}"
    assert client.llen(f"django_q:{queue_name}:q") == 0
