"""``POST /v1/video:batchCheckAsyncVideoGenerationStatus``: where each operation is, with
freshly signed media URLs for the finished ones."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from .auth import authenticate
from .contract import ACTIVE, FAILED, MEDIA_TYPE, PENDING, invalid
from .faults import delay
from .state import EmulatorState, Operation
from .wire import Request, Response, need_list, need_object, need_string

GOOGLE_ACCESS_ID = "flow-emulator@localhost.invalid"


def check(state: EmulatorState, request: Request) -> Response:
    state.count("check")
    authenticate(state, request)
    entries = need_list(request.json(), "operations")
    asked: list[tuple[str, str]] = []
    for index, entry in enumerate(entries):
        path = f"operations[{index}]"
        if not isinstance(entry, dict):
            raise invalid(path, entry, "object")
        inner = need_object(entry, "operation", f"{path}.operation")
        name = need_string(inner, "name", f"{path}.operation.name")
        scene_id = entry.get("sceneId", "")
        if not isinstance(scene_id, str):
            raise invalid(f"{path}.sceneId", scene_id, "TYPE_STRING")
        asked.append((name, scene_id))

    with state.lock:
        found = [state.operations.get(name) for name, _ in asked]
        global_faults = list(state.global_faults)
        remaining = state.credits
    slow = [fault for fault in global_faults if fault.name == "slow"] + [
        op.faults["slow"] for op in found if op is not None and "slow" in op.faults
    ]
    delay(state.fault_book, slow)

    now = time.monotonic()
    answers = []
    for (name, scene_id), operation in zip(asked, found, strict=True):
        if operation is None:
            # An operation this run never issued (or forgot on reset): a FAILED entry
            # rather than failing the whole batch, so the other operations still get
            # their answer.
            answers.append(
                {
                    "operation": {
                        "name": name,
                        "error": {"code": 5, "message": "Requested entity was not found."},
                    },
                    "sceneId": scene_id,
                    "status": FAILED,
                }
            )
            continue
        answers.append(operation_answer(state, operation, now, request.base_url))
    return Response.json({"operations": answers, "remainingCredits": remaining})


def operation_answer(
    state: EmulatorState, op: Operation, now: float, base_url: str
) -> dict[str, Any]:
    status = op.status(now)
    if "badshape" in op.faults:
        return {"sceneId": op.scene_id, "mediaGenerationStatus": status, "media": {"name": op.name}}
    if status in (PENDING, ACTIVE):
        return {"operation": {"name": op.name}, "sceneId": op.scene_id, "status": status}
    if status == FAILED:
        return {
            "operation": {"name": op.name, "error": op.failure()},
            "sceneId": op.scene_id,
            "status": status,
        }
    expired = expired_urls(state, op)
    return {
        "operation": {
            "name": op.name,
            "metadata": {
                "@type": MEDIA_TYPE,
                "name": op.media_generation_id,
                "video": {
                    "seed": op.seed,
                    "mediaGenerationId": op.media_generation_id,
                    "prompt": op.prompt,
                    "fifeUrl": signed_url(state, base_url, "video", op, expired),
                    "mediaVisibility": "PRIVATE",
                    "servingBaseUri": signed_url(state, base_url, "image", op, expired),
                    "model": op.model,
                    "isLooped": False,
                    "aspectRatio": op.aspect,
                },
            },
        },
        "sceneId": op.scene_id,
        "mediaGenerationId": op.media_generation_id,
        "status": status,
    }


def expired_urls(state: EmulatorState, op: Operation) -> bool:
    """Whether this answer signs already-expired URLs; with ``:once``, only the first
    answer that signs any, with ``=N`` the first N (a client asking again then gets fresh
    ones)."""
    fault = op.faults.get("expired-url")
    if fault is None:
        return False
    limit = 1 if fault.once else int(fault.arg) if fault.arg else None
    with state.lock:
        expired = limit is None or op.expired_urls_served < limit
        op.expired_urls_served += 1
    return expired


def signed_url(state: EmulatorState, base_url: str, kind: str, op: Operation, expired: bool) -> str:
    """A Cloud Storage style signed URL for the operation's video or poster; media.py checks
    the signature and expiry."""
    path = f"/storage/{kind}/{op.object_id}.{'mp4' if kind == 'video' else 'jpg'}"
    expires = int(time.time()) + (-60 if expired else state.config.url_ttl_seconds)
    query = urlencode(
        {
            "GoogleAccessId": GOOGLE_ACCESS_ID,
            "Expires": str(expires),
            "Signature": state.sign(path, expires),
        }
    )
    return f"{base_url}{path}?{query}"
