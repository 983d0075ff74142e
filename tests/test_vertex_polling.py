"""A pass polls a Vertex AI account one operation per call on K threads: its batches are whole
rounds of those threads, and a scene's takes (one operation) are asked about once."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from generations.models import Generation
from generations.pipeline import poll_interval
from generations.pipeline.policy import batches_by
from generations.tasks import run_pass
from tests.conftest import vertex_scene
from tests.tasks_support import settle

S = Generation.Status
IN_FLOW = (S.PENDING, S.ACTIVE)


def rendering(project, alice, scenes: int, takes: int) -> list[Generation]:
    asked = [
        take
        for index in range(scenes)
        for take in vertex_scene(project, f"[fault:stuck] shot {index}", takes=takes).generate(
            alice
        )
    ]
    return settle(asked, until=IN_FLOW, timeout=60)


def fetches_per_batch(emu) -> list[int]:
    """One pass when every take is due, and the status calls made by each of its batches."""
    seen = [emu.stats["vertex_fetch"]]
    run_pass(
        now=timezone.now() + timedelta(seconds=poll_interval() + 1),
        heartbeat=lambda: seen.append(emu.stats["vertex_fetch"]),
    )
    counts = [later - earlier for earlier, later in zip(seen, seen[1:], strict=False)]
    return [count for count in counts if count]


def test_a_batch_of_status_calls_is_whole_rounds_of_the_polling_threads(
    vertex_project, flow_emulator, alice, settings
):
    settings.VERTEX_MAX_CONCURRENT_POLLS = 4
    settings.FLOW_STATUS_BATCH_SIZE = 5
    rendering(vertex_project, alice, scenes=5, takes=1)

    # 5 calls on 4 threads would be 2 rounds, the second with 3 threads idle.
    assert fetches_per_batch(flow_emulator) == [4, 1]


def test_a_scenes_takes_are_asked_about_in_one_call_even_at_a_batchs_edge(
    vertex_project, flow_emulator, alice, settings
):
    settings.VERTEX_MAX_CONCURRENT_POLLS = 2
    settings.FLOW_STATUS_BATCH_SIZE = 5
    takes = rendering(vertex_project, alice, scenes=3, takes=2)

    assert fetches_per_batch(flow_emulator) == [3], "three operations, three calls"
    assert {take.status for take in Generation.objects.filter(pk__in=[t.pk for t in takes])} <= {
        S.PENDING,
        S.ACTIVE,
    }


def test_batches_keep_items_of_one_key_together_in_first_seen_order():
    items = ["a1", "b1", "a2", "c1", "d1", "c2", "e1"]

    assert batches_by(items, 2, key=lambda item: item[0]) == [
        ["a1", "a2", "b1"],
        ["c1", "c2", "d1"],
        ["e1"],
    ]
