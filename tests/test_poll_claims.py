"""A polling pass claims all of an account's due takes at once, then checks them batch by batch.

These are the safety properties of that claim for the takes still waiting for their batch:
whoever holds them (another worker, a cancel) wins, their lease is renewed while the pass is
slow, and the takes a pass does not get to are let go at once. Takes Flow is still rendering
are let go together after the last batch, in one write. Real emulator over loopback.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generations import pipeline
from generations.models import Generation
from tests.tasks_support import takes_keep_rendering

S = Generation.Status


@pytest.fixture
def three_takes(flow_emulator, project, alice, settings) -> list[Generation]:
    """Three active takes Flow keeps rendering, checked one per batch (three status calls)."""
    settings.FLOW_STATUS_BATCH_SIZE = 1
    project.account.bearer_token = flow_emulator.token
    project.account.save()
    takes = takes_keep_rendering(project, alice, 3)
    now = timezone.now()
    for n, take in enumerate(takes):
        # Oldest first, so the batches come in this order.
        take.next_check_at = now - timedelta(seconds=3 - n)
    Generation.objects.bulk_update(takes, ["next_check_at"])
    return takes


def _pass(beat: Callable[[pipeline.Pass, int], object]) -> pipeline.Pass:
    """A pass run a second from now, calling ``beat(pass, n)`` at its n-th heartbeat."""
    beats = [0]

    def heartbeat() -> None:
        beats[0] += 1
        beat(run, beats[0])

    run = pipeline.Pass(timezone.now() + timedelta(seconds=1), heartbeat)
    run.run()
    return run


# Heartbeats: after reaping, after submitting, then one after each batch.
AFTER_FIRST_BATCH = 3


def test_a_take_another_worker_took_over_while_waiting_for_its_batch_is_left_to_it(three_takes):
    first, second, third = three_takes
    other = uuid.uuid4()

    def beat(run: pipeline.Pass, n: int) -> None:
        if n == AFTER_FIRST_BATCH:
            # Another worker saw a lapsed lease and claimed the second take.
            Generation.objects.filter(pk=second.pk).update(claim=other)

    run = _pass(beat)
    assert run.counts["checked"] == 3
    for take in three_takes:
        take.refresh_from_db()
    assert second.claim == other, "the other worker still holds it"
    assert second.next_check_at < timezone.now(), "this pass wrote nothing to it"
    for take in (first, third):
        assert (take.claim, take.lease_until) == (None, None)
        assert take.next_check_at > timezone.now()


def test_a_take_cancelled_while_waiting_for_its_batch_stays_cancelled(three_takes, alice):
    first, second, third = three_takes

    def beat(run: pipeline.Pass, n: int) -> None:
        if n == AFTER_FIRST_BATCH:
            assert Generation.objects.get(pk=third.pk).claim is not None, "claimed by the pass"
            third.cancel(by=alice)

    _pass(beat)
    third.refresh_from_db()
    assert third.status == S.CANCELLED
    assert third.reason == "Cancelled by alice."
    assert (third.claim, third.lease_until, third.next_check_at) == (None, None, None)


def test_takes_a_pass_runs_out_of_time_for_are_let_go_at_once_and_still_due(three_takes):
    first, second, third = three_takes

    def beat(run: pipeline.Pass, n: int) -> None:
        if n == AFTER_FIRST_BATCH:
            run.stop_at = time.monotonic()  # the pump's task is about to end

    run = _pass(beat)
    assert run.counts["checked"] == 1
    first.refresh_from_db()
    assert first.next_check_at > timezone.now(), "checked"
    for take in (second, third):
        take.refresh_from_db()
        assert take.status == S.ACTIVE
        assert (take.claim, take.lease_until) == (None, None), "free for the next pass"
        assert take.next_check_at < timezone.now(), "due at once"


def test_the_takes_still_waiting_for_their_batch_get_their_lease_renewed_in_a_slow_pass(
    three_takes, settings
):
    settings.FLOWSITE_CHECK_LEASE = 0.2
    leases: dict[int, object] = {}

    def beat(run: pipeline.Pass, n: int) -> None:
        if n >= AFTER_FIRST_BATCH:
            leases[n] = Generation.objects.get(pk=three_takes[2].pk).lease_until
            time.sleep(0.15)  # more than half the lease goes by in each batch

    run = _pass(beat)
    assert run.counts["checked"] == 3
    first_lease, renewed = leases[AFTER_FIRST_BATCH], leases[AFTER_FIRST_BATCH + 1]
    # Leased from the pass's clock when the takes were claimed (its start, moved on).
    assert run.now + timedelta(seconds=0.2) <= first_lease <= run.clock() + timedelta(seconds=0.2)
    assert renewed >= first_lease + timedelta(seconds=0.15)
    third = Generation.objects.get(pk=three_takes[2].pk)
    assert (third.claim, third.lease_until) == (None, None), "written by this pass all the same"


def test_a_checked_take_flow_still_renders_keeps_the_claim_until_the_pass_settles_it_once(
    three_takes,
):
    first, second, third = three_takes
    seen: dict[str, object] = {}
    time.sleep(0.3)  # past the emulator's 0.2 s of "pending": Flow says active, as the rows do

    def beat(run: pipeline.Pass, n: int) -> None:
        if n == AFTER_FIRST_BATCH + 1:
            held = Generation.objects.get(pk=first.pk)
            # Checked, but held like the takes still to check: if the worker died now, the
            # take would be free once the lease lapsed, and due at once (next check unwritten).
            seen["first"] = (held.claim is not None, held.lease_until, held.next_check_at)

    with CaptureQueriesContext(connection) as captured:
        run = _pass(beat)

    claimed, lease_until, next_check_at = seen["first"]
    assert claimed and lease_until > run.now and next_check_at < run.now
    settles = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith('UPDATE "generations_generation" SET "claim" = ')
        and '"next_check_at" = ' in q["sql"]
    ]
    assert len(settles) == 1, "one write for all three, after the last batch"
    for take in three_takes:
        take.refresh_from_db()
        assert (take.claim, take.lease_until) == (None, None)
        assert take.next_check_at == run.now + timedelta(seconds=pipeline.poll_interval())
