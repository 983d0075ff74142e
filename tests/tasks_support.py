"""Helpers shared by the background-work tests (tests/test_tasks*.py)."""

from __future__ import annotations

import time
from datetime import timedelta

from django.utils import timezone

from generations.models import Generation
from generations.tasks import run_pass


def settle(
    takes: list[Generation],
    *,
    timeout: float = 60.0,
    ahead: timedelta = timedelta(0),
    until: tuple[str, ...] = Generation.FINAL,
) -> list[Generation]:
    """Run passes (as the pump would) until every take reaches one of ``until``."""
    pks = [take.pk for take in takes]
    deadline = time.monotonic() + timeout
    while True:
        run_pass(now=timezone.now() + ahead)
        current = list(Generation.objects.filter(pk__in=pks).order_by("pk"))
        if all(take.status in until for take in current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(
                f"takes did not settle: {[(t.pk, t.status, t.reason) for t in current]}"
            )
        time.sleep(0.05)


def run_at_once(work, workers: int = 2, timeout: float = 30.0) -> list:
    """Run ``work()`` in several threads released together; their results, or the first error.

    Each thread closes its own database connection, as a worker process would have its own.
    """
    import threading

    from django.db import connection

    start = threading.Barrier(workers)
    results: list = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            results.append(work())
        except BaseException as error:  # surfaced below, in the caller's thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if errors:
        raise errors[0]
    return results


def takes_keep_rendering(project, alice, count: int) -> list[Generation]:
    """``count`` active takes submitted for real to the emulator, which never finishes them.

    On a Flow account: one uploaded start image, clips sent in batches of 50. On a Vertex AI
    account: the image inside each call, and each take its own operation (its own scene as
    Vertex AI sees it), as a storyboard of one-take scenes is.
    """
    import uuid

    from generations.engines import get_engine
    from generations.engines.base import Aspect, ClipRequest, ClipState, OperationRef
    from tests.conftest import VERTEX_FAST, make_image, make_scene

    vertex = project.account.is_vertex
    scene = make_scene(
        project,
        make_image(project, alice),
        prompt="[fault:stuck] a long shot",
        **({"model_key": VERTEX_FAST, "duration": 4} if vertex else {}),
    )
    engine = get_engine(project.account.credentials())
    data = scene.start_image.image_data()
    image = (
        {"start_image": data}
        if vertex
        else {"start_image_media_id": engine.upload_image(data).media_id}
    )
    now = timezone.now()
    rows = []
    try:
        for start in range(0, count, 50):
            clips = [
                ClipRequest(
                    str(uuid.uuid4()),
                    scene.prompt,
                    scene.model_key,
                    Aspect.LANDSCAPE,
                    n,
                    scene_ref=f"shot-{n}" if vertex else "",
                    duration=scene.duration,
                    **image,
                )
                for n in range(start, min(count, start + 50))
            ]
            answer = engine.submit(str(project.flow_project_id), clips)
            rows += [
                Generation(
                    scene=scene,
                    project=project,
                    requested_by=alice,
                    account=project.account,
                    take=len(rows) + n + 1,
                    prompt=scene.prompt,
                    model_key=scene.model_key,
                    aspect=scene.aspect,
                    duration=scene.duration,
                    seed=clip.seed,
                    status=Generation.Status.ACTIVE,
                    request_id=clip.request_id,
                    operation_name=submitted.operation_name,
                    submitted_at=now,
                    created=now,
                    updated=now,
                )
                for n, (clip, submitted) in enumerate(zip(clips, answer.clips, strict=True))
            ]
        # The emulator answers "pending" for a moment before "active": wait until it says what
        # the rows say, so that a pass sees no change of state it did not cause.
        operations = [OperationRef(row.operation_name, row.request_id) for row in rows]
        deadline = time.monotonic() + 20
        while any(
            clip.state != ClipState.ACTIVE
            for start in range(0, len(operations), 50)
            for clip in engine.check(operations[start : start + 50]).clips
        ):
            assert time.monotonic() < deadline, "the emulator never started rendering the takes"
            time.sleep(0.05)
    finally:
        close = getattr(engine, "close", None)
        if callable(close):
            close()
    return Generation.objects.bulk_create(rows)


# Why a take whose submission may have reached Flow was not sent again, before what happened.
UNCERTAIN_WORDS = (
    "Flowsite could not confirm that Flow received this take; it was not resubmitted so it is "
    "not paid for twice."
)


def run_until_account_problem(account, *, limit: int = 10):
    """Run a pass at each re-check of ``account``'s refused credentials until Flowsite sets
    its problem (they stayed refused); returns the moment of the last pass."""
    from generations.models import FlowAccount

    now = timezone.now()
    for _ in range(limit):
        state = FlowAccount.objects.get(pk=account.pk)
        if state.problem:
            return now
        if state.cool_down_until is not None and state.cool_down_until > now:
            now = state.cool_down_until
        else:
            # Nothing refused yet: a second on, so that a take checked a moment ago is due.
            now = max(now, timezone.now()) + timedelta(seconds=1)
        run_pass(now=now)
    raise AssertionError("the account's problem was never set")
