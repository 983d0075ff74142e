"""Helpers of the fault, crash and race tests (tests/test_faults*.py, test_crash*.py,
test_race*.py, test_sqlite_concurrency.py): what a take's files must look like, and how a
second process reaches the very database and emulator a test uses."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection

from generations.models import Generation
from tests.conftest import TEST_FERNET_KEY

S = Generation.Status
ROOT = Path(__file__).resolve().parent.parent


def stray_temp_files() -> list[Path]:
    """Half-written downloads (``download_to`` writes ``.<name>.*.part`` before renaming)."""
    return sorted(Path(settings.MEDIA_ROOT).rglob(".*.part"))


def assert_files_match(takes: list[Generation]) -> None:
    """Every take's folder holds exactly what its row says: a ready take its whole clip (and
    poster) with the recorded hashes, any other take nothing under a final name; and no
    half-written file is left anywhere."""
    media = Path(settings.MEDIA_ROOT)
    assert stray_temp_files() == []
    for take in takes:
        folder = media / take.media_dir()
        names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        if take.status != S.READY:
            assert names == [], (take.pk, take.status, names)
            continue
        expected = ["clip.mp4", "poster.jpg"] if take.poster else ["clip.mp4"]
        assert names == expected, (take.pk, names)
        data = (media / take.video.name).read_bytes()
        assert len(data) == take.video_size
        assert hashlib.sha256(data).hexdigest() == take.video_sha256
        if take.poster:
            poster = (media / take.poster.name).read_bytes()
            assert hashlib.sha256(poster).hexdigest() == take.poster_sha256


def fresh(takes: list[Generation]) -> list[Generation]:
    return list(Generation.objects.filter(pk__in=[t.pk for t in takes]).order_by("pk"))


def snapshot() -> list[dict]:
    """Every column of every take, to show that doing something again changed nothing."""
    return list(Generation.objects.order_by("pk").values())


def worker_env(emulator_port: int, **extra: str) -> dict[str, str]:
    """The environment of a second process using this test's database, media folder and
    emulator (file-based SQLite or PostgreSQL, whichever the tests run on)."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL",)}
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        env["SQLITE_PATH"] = str(db["NAME"])
    else:
        user = db["USER"] or ""
        password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
        auth = f"{user}{password}@" if user else ""
        port = f":{db['PORT']}" if db["PORT"] else ""
        env["DATABASE_URL"] = f"postgres://{auth}{db['HOST']}{port}/{db['NAME']}"
    env.update(
        DJANGO_SETTINGS_MODULE="flowsite.settings",
        FLOWSITE_FERNET_KEYS=TEST_FERNET_KEY,
        FLOWSITE_EMULATOR="1",
        FLOW_EMULATOR_PORT=str(emulator_port),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        FLOWSITE_POLL_INTERVAL="0.1",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


PYTHON = sys.executable
