"""``POST /v1/video:batchAsyncGenerateVideoStartImage``: a batch of clips from start images.

The refusals come in the order Flow's come (README.md, "What it refuses"), and a refused
batch costs nothing; an accepted one is charged whole at once and starts its renders.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .auth import authenticate
from .contract import (
    PENDING,
    SEED_MAX,
    START_IMAGE_MODELS,
    TIER_RANK,
    TOOLS,
    VIDEO_ASPECTS,
    ApiError,
    invalid,
    missing,
    not_found,
    quota_reached,
)
from .faults import (
    CALL_FAULTS,
    OPERATION_FAULTS,
    SUBMIT_ERRORS,
    SUBMIT_FAULTS,
    Fault,
    FaultSyntaxError,
    delay,
    faults_in,
)
from .state import EmulatorState, Operation, StoredImage
from .wire import Request, Response, need_enum, need_list, need_object, need_string


@dataclass
class ClipAsked:
    """One entry of ``requests``, checked."""

    aspect: str
    portrait: bool
    seed: int
    prompt: str
    model: str
    media_id: str
    scene_id: str
    faults: list[Fault]


def submit(state: EmulatorState, request: Request) -> Response:
    state.count("submit")
    authenticate(state, request)
    config = state.config
    body = request.json()
    context = need_object(body, "clientContext", "clientContext")
    need_string(context, "projectId", "clientContext.projectId")
    need_enum(context, "tool", "clientContext.tool", TOOLS)
    claimed_tier = config.tier
    if "userPaygateTier" in context:
        claimed_tier = need_enum(
            context, "userPaygateTier", "clientContext.userPaygateTier", TIER_RANK
        )
    requests = need_list(body, "requests")

    clips = [read_clip(item, f"requests[{index}]") for index, item in enumerate(requests)]
    scene_ids = [clip.scene_id for clip in clips]
    if len(set(scene_ids)) != len(scene_ids):
        raise ApiError(
            400,
            "INVALID_ARGUMENT",
            "Each request in a batch needs its own 'metadata.sceneId'.",
            field_path="requests.metadata.sceneId",
        )

    with state.lock:
        images = [state.images.get(clip.media_id) for clip in clips]
        global_faults = list(state.global_faults)
    if any(image is None for image in images):
        raise not_found()

    # The account's tier, unless the client claims a lower one.
    rank = min(TIER_RANK.get(config.tier, 0), TIER_RANK[claimed_tier])
    for clip in clips:
        if "_ultra" in clip.model and rank < TIER_RANK["PAYGATE_TIER_TWO"]:
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                "The caller does not have permission",
                reason="PUBLIC_ERROR_MODEL_ACCESS_DENIED",
            )

    all_faults = global_faults + [fault for clip in clips for fault in clip.faults]
    delay(state.fault_book, all_faults)
    for fault in all_faults:
        if fault.name in SUBMIT_FAULTS and state.fault_book.take(fault):
            raise SUBMIT_ERRORS[fault.name](fault)

    now = time.monotonic()
    cost = config.credits_per_clip * len(clips)
    with state.lock:
        if state.credits < cost:
            raise quota_reached()
        state.credits -= cost
        remaining = state.credits
        state.stats["clips_submitted"] += len(clips)
        for clip in clips:
            state.accepted[clip.scene_id] = state.accepted.get(clip.scene_id, 0) + 1

    operations = []
    for clip, image in zip(clips, images, strict=True):
        assert image is not None
        operation = start_operation(state, clip, image, global_faults, now)
        operations.append(
            {
                "operation": {"name": operation.name},
                "sceneId": operation.scene_id,
                "status": PENDING,
            }
        )
    return Response.json({"operations": operations, "remainingCredits": remaining})


def start_operation(
    state: EmulatorState,
    clip: ClipAsked,
    image: StoredImage,
    global_faults: list[Fault],
    now: float,
) -> Operation:
    """Record an accepted clip's operation with the faults that shape it, and start its
    render unless it is never going to succeed."""
    faults: dict[str, Fault] = {}
    for fault in global_faults + clip.faults:
        if fault.name in OPERATION_FAULTS + CALL_FAULTS and fault.name not in faults:
            # A ":once" slow fault was spent on this submit already.
            if fault.name in CALL_FAULTS and fault.once:
                continue
            if state.fault_book.take(fault):
                faults[fault.name] = fault
    render = None
    if "fail" not in faults and "stuck" not in faults:
        render = state.renderer.render(image, clip.prompt, clip.portrait, clip.seed)
    operation = Operation(
        name=uuid.uuid4().hex,
        scene_id=clip.scene_id,
        prompt=clip.prompt,
        seed=clip.seed,
        model=clip.model,
        aspect=clip.aspect,
        media_generation_id="CAUS" + secrets.token_urlsafe(45),
        object_id=str(uuid.uuid4()),
        created=now,
        pending_seconds=state.config.pending_seconds,
        active_seconds=state.config.active_seconds,
        faults=faults,
        render=render,
    )
    with state.lock:
        state.operations[operation.name] = operation
        state.objects[operation.object_id] = operation
    return operation


def read_clip(item: Any, path: str) -> ClipAsked:
    if not isinstance(item, dict):
        raise invalid(path, item, "object")
    aspect = need_enum(item, "aspectRatio", f"{path}.aspectRatio", VIDEO_ASPECTS)
    if "seed" not in item or item["seed"] is None:
        raise missing(f"{path}.seed")
    seed = item["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise invalid(f"{path}.seed", seed, f"TYPE_UINT32, 0 to {SEED_MAX}")
    prompt = need_string(
        need_object(item, "textInput", f"{path}.textInput"), "prompt", f"{path}.textInput.prompt"
    )
    model = need_enum(item, "videoModelKey", f"{path}.videoModelKey", START_IMAGE_MODELS)
    media_id = need_string(
        need_object(item, "startImage", f"{path}.startImage"),
        "mediaId",
        f"{path}.startImage.mediaId",
    )
    scene_id = need_string(
        need_object(item, "metadata", f"{path}.metadata"), "sceneId", f"{path}.metadata.sceneId"
    )
    try:
        faults = faults_in(prompt)
    except FaultSyntaxError as exc:
        raise ApiError(
            400,
            "INVALID_ARGUMENT",
            f"{exc} (in '{path}.textInput.prompt')",
            field_path=f"{path}.textInput.prompt",
        ) from None
    return ClipAsked(
        aspect=aspect,
        portrait=VIDEO_ASPECTS[aspect],
        seed=seed,
        prompt=prompt,
        model=model,
        media_id=media_id,
        scene_id=scene_id,
        faults=faults,
    )
