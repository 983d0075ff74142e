"""The pump's download threads and their database connections."""

from __future__ import annotations

import threading
from collections import Counter
from types import SimpleNamespace

import pytest
from django.db import connections
from django.db.backends.signals import connection_created

from generations.models import Generation
from generations.pipeline.download import Downloads


class StandIn:
    """A download that only reads the database, after ``gate`` opens."""

    def __init__(self, gate: threading.Event, seen: list) -> None:
        self.gate, self.seen = gate, seen
        self.counts = Counter()
        self.generation = SimpleNamespace(pk=0)

    def run(self) -> None:
        self.gate.wait(10)
        Generation.objects.count()
        self.seen.append(connections["default"])


@pytest.mark.django_db(transaction=True)
def test_clips_waiting_for_a_slot_reuse_the_busy_threads_connection_and_the_last_closes_it():
    # A hundred takes finishing together opened a hundred PostgreSQL connections, one a clip.
    opened = []

    def note(sender, connection, **kwargs):
        if threading.current_thread().name.startswith("flowsite-download"):
            opened.append(connection)

    gate, seen = threading.Event(), []
    downloads = Downloads(slots=1)
    connection_created.connect(note)
    try:
        for _ in range(4):
            downloads.start(StandIn(gate, seen), None)
        gate.set()
        assert downloads.wait(20)
    finally:
        connection_created.disconnect(note)

    assert len(seen) == 4
    assert len(opened) == 1
    # Nothing waited after the last one: its thread let the connection go.
    assert seen[-1].connection is None
