"""``POST /v1/video:batchAsyncGenerateVideo{StartImage,Text,StartAndEndImage,ReferenceImages}``:
a batch of clips from start images, from the prompt alone, from a start and an end frame, or
from 1 to 3 reference images.

The routes share the envelope and differ in the image keys of a request and the model keys
they take (``VideoRoute``); a key of another route, or a field the route does not know, is
refused as Google refuses it. The refusals come in the order Flow's come (README.md, "What it
refuses"), and a refused batch costs nothing; an accepted one is charged whole at once and
starts its renders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .auth import authenticate
from .contract import (
    FRAMES_MODELS,
    MAX_REFERENCES,
    PENDING,
    QUALITY_MODELS,
    REFERENCE_MODELS,
    REFERENCE_USAGE_TYPES,
    SEED_MAX,
    START_IMAGE_MODELS,
    TEXT_MODELS,
    TIER_RANK,
    TOOLS,
    VIDEO_ASPECTS,
    ApiError,
    invalid,
    missing,
    not_found,
    only_known,
)
from .faults import CALL_FAULTS, OPERATION_FAULTS, Fault, FaultSyntaxError, faults_in, refuse_submit
from .pictures import render_mode
from .state import EmulatorState, Operation, StoredImage
from .wire import Request, Response, need_enum, need_list, need_object, need_string


@dataclass(frozen=True)
class VideoRoute:
    """One way of making a clip: the model keys it takes and the image keys of a request."""

    mode: str
    models: tuple[str, ...]
    image_keys: tuple[str, ...]


START_IMAGE = VideoRoute("image", START_IMAGE_MODELS, ("startImage",))
TEXT = VideoRoute("text", TEXT_MODELS, ())
FRAMES = VideoRoute("frames", FRAMES_MODELS, ("startImage", "endImage"))
REFERENCES = VideoRoute("ingredients", REFERENCE_MODELS, ("referenceImages",))
REQUEST_KEYS = ("aspectRatio", "seed", "textInput", "videoModelKey", "metadata")
CONTEXT_KEYS = ("projectId", "tool", "userPaygateTier", "sessionId")
IMAGE_REF_KEYS = ("mediaId", "cropCoordinates")


@dataclass
class ClipAsked:
    """One entry of ``requests``, checked."""

    aspect: str
    portrait: bool
    seed: int
    prompt: str
    model: str
    # The uploaded images it is made from: the start (and end) frame, or the references.
    media_ids: list[str]
    scene_id: str
    faults: list[Fault]
    mode: str = "image"


def generate(state: EmulatorState, request: Request, route: VideoRoute = START_IMAGE) -> Response:
    """The handler of each generate route (``app.ROUTES`` gives the ``route``)."""
    rank, requests = read_batch(state, request)
    clips = [read_clip(item, f"requests[{index}]", route) for index, item in enumerate(requests)]
    need_distinct_scene_ids([clip.scene_id for clip in clips])

    with state.lock:
        images = [[state.images.get(media_id) for media_id in clip.media_ids] for clip in clips]
        global_faults = list(state.global_faults)
    if any(image is None for clip_images in images for image in clip_images):
        raise not_found()

    need_tier(rank, [clip.model for clip in clips])
    refuse_submit(
        state.fault_book, global_faults + [fault for clip in clips for fault in clip.faults]
    )
    now = time.monotonic()
    remaining = state.charge(clips, state.config.credits_per_clip * len(clips))
    operations = []
    for clip, clip_images in zip(clips, images, strict=True):
        known = [image for image in clip_images if image is not None]
        operations.append(start_operation(state, clip, known, global_faults, now))
    return pending_answer(operations, remaining)


def read_batch(state: EmulatorState, request: Request) -> tuple[int, list[Any]]:
    """Count and authenticate a generate, extend or upscale call, then read its envelope (keys
    it does not have refused): the tier rank the batch is made at (the account's, unless the
    client claims a lower one) and its ``requests``."""
    state.count("submit")
    authenticate(state, request)
    body = request.json()
    only_known(body, ("clientContext", "requests"), "")
    context = need_object(body, "clientContext", "clientContext")
    only_known(context, CONTEXT_KEYS, "clientContext")
    need_string(context, "projectId", "clientContext.projectId")
    need_enum(context, "tool", "clientContext.tool", TOOLS)
    claimed = state.config.tier
    if "userPaygateTier" in context:
        claimed = need_enum(context, "userPaygateTier", "clientContext.userPaygateTier", TIER_RANK)
    requests = need_list(body, "requests")
    return min(TIER_RANK.get(state.config.tier, 0), TIER_RANK[claimed]), requests


def need_distinct_scene_ids(scene_ids: list[Any]) -> None:
    if len(set(scene_ids)) != len(scene_ids):
        raise ApiError(
            400,
            "INVALID_ARGUMENT",
            "Each request in a batch needs its own 'metadata.sceneId'.",
            field_path="requests.metadata.sceneId",
        )


def need_tier(rank: int, models: list[str], least: str = "PAYGATE_TIER_NOT_PAID") -> None:
    """Refuse a batch made below the ``least`` tier, or with an ``_ultra`` model below tier two."""
    if rank < TIER_RANK[least] or (
        any("_ultra" in model for model in models) and rank < TIER_RANK["PAYGATE_TIER_TWO"]
    ):
        raise ApiError(
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
            reason="PUBLIC_ERROR_MODEL_ACCESS_DENIED",
        )


def pending_answer(operations: list[Operation], remaining: int) -> Response:
    """The answer to an accepted batch: each clip's operation, PENDING."""
    entries = [
        {"operation": {"name": op.name}, "sceneId": op.scene_id, "status": PENDING}
        for op in operations
    ]
    return Response.json({"operations": entries, "remainingCredits": remaining})


def start_operation(
    state: EmulatorState,
    clip: ClipAsked,
    images: list[StoredImage],
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
        render = render_mode(state, clip.mode, images, clip.prompt, clip.portrait, clip.seed)
    return state.add_operation(clip, faults, render, now)


def read_clip(item: Any, path: str, route: VideoRoute = START_IMAGE) -> ClipAsked:
    if not isinstance(item, dict):
        raise invalid(path, item, "object")
    only_known(item, REQUEST_KEYS + route.image_keys, path)
    aspect = need_enum(item, "aspectRatio", f"{path}.aspectRatio", VIDEO_ASPECTS)
    if "seed" not in item or item["seed"] is None:
        raise missing(f"{path}.seed")
    seed = item["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise invalid(f"{path}.seed", seed, f"TYPE_UINT32, 0 to {SEED_MAX}")
    text_input = need_object(item, "textInput", f"{path}.textInput")
    only_known(text_input, ("prompt",), f"{path}.textInput")
    prompt = need_string(text_input, "prompt", f"{path}.textInput.prompt")
    model = item.get("videoModelKey")
    if route is REFERENCES and model in QUALITY_MODELS:
        raise ApiError(
            400,
            "INVALID_ARGUMENT",
            f"The model {model} does not support reference images.",
            field_path=f"{path}.videoModelKey",
        )
    model = need_enum(item, "videoModelKey", f"{path}.videoModelKey", route.models)
    media_ids = [
        read_image_ref(item, key, f"{path}.{key}")
        for key in ("startImage", "endImage")
        if key in route.image_keys
    ]
    if "referenceImages" in route.image_keys:
        media_ids = read_references(item, f"{path}.referenceImages")
    metadata = need_object(item, "metadata", f"{path}.metadata")
    only_known(metadata, ("sceneId",), f"{path}.metadata")
    scene_id = need_string(metadata, "sceneId", f"{path}.metadata.sceneId")
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
        media_ids=media_ids,
        scene_id=scene_id,
        faults=faults,
        mode=route.mode,
    )


def read_image_ref(item: dict[str, Any], key: str, path: str) -> str:
    ref = need_object(item, key, path)
    only_known(ref, IMAGE_REF_KEYS, path)
    return need_string(ref, "mediaId", f"{path}.mediaId")


def read_references(item: dict[str, Any], path: str) -> list[str]:
    references = item.get("referenceImages")
    if references is None or references == []:
        raise missing(path)
    if not isinstance(references, list):
        raise invalid(path, references, "list")
    if len(references) > MAX_REFERENCES:
        raise invalid(path, f"{len(references)} images", f"1 to {MAX_REFERENCES} images")
    media_ids = []
    for index, reference in enumerate(references):
        at = f"{path}[{index}]"
        if not isinstance(reference, dict):
            raise invalid(at, reference, "object")
        only_known(reference, ("mediaId", "imageUsageType"), at)
        media_ids.append(need_string(reference, "mediaId", f"{at}.mediaId"))
        need_enum(reference, "imageUsageType", f"{at}.imageUsageType", REFERENCE_USAGE_TYPES)
    return media_ids
