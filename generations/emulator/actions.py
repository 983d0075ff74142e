"""``POST /v1/video:batchAsyncGenerateVideoExtendVideo`` and ``…UpsampleVideo``: clips made
from clips the emulator made (Flow's README §6).

Same envelope and answers as the start-image submit (``submit.py``); the refusals come in the
same order: the shape (unknown fields too, as Google's JSON parser refuses them), a source
clip the emulator does not know, the tier, then credits. An accepted call is charged at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .contract import (
    SEED_MAX,
    SUCCESSFUL,
    VIDEO_ASPECTS,
    ApiError,
    invalid,
    missing,
    not_found,
    only_known,
)
from .faults import Fault, FaultSyntaxError, faults_in, refuse_submit
from .reframe import count_frames, render_extension, render_upscale
from .state import EmulatorState, Operation
from .submit import need_distinct_scene_ids, need_tier, pending_answer, read_batch
from .wire import Request, Response, need_enum, need_object, need_string

EXTEND_MODELS = (
    "veo_3_1_extend_fast_landscape",
    "veo_3_1_extend_fast_portrait",
    "veo_3_1_extend_fast_landscape_ultra",
    "veo_3_1_extend_fast_portrait_ultra",
    "veo_3_1_extend_landscape",
    "veo_3_1_extend_portrait",
    "veo_3_1_extension_lite",
)
# Resolution -> (the model key that makes it, the lowest tier, credits, landscape size).
UPSCALES = {
    "VIDEO_RESOLUTION_1080P": ("veo_3_1_upsampler_1080p", "PAYGATE_TIER_ONE", 0, (1920, 1080)),
    "VIDEO_RESOLUTION_4K": ("veo_3_1_upsampler_4k", "PAYGATE_TIER_TWO", 50, (3840, 2160)),
}
EXTEND_FIELDS = ("aspectRatio", "seed", "textInput", "videoModelKey", "videoInput", "metadata")
UPSCALE_FIELDS = ("aspectRatio", "seed", "videoModelKey", "videoInput", "metadata", "resolution")


@dataclass
class Asked:
    aspect: str
    seed: int
    model: str
    source: Operation
    scene_id: str
    prompt: str = ""
    window: tuple[int, int] = (0, 0)
    resolution: str = ""
    faults: list[Fault] = field(default_factory=list)


def extend(state: EmulatorState, request: Request) -> Response:
    rank, requests = _envelope(state, request)
    asked = []
    for index, item in enumerate(requests):
        path = f"requests[{index}]"
        clip = _common(state, item, path, EXTEND_FIELDS, EXTEND_MODELS)
        text_input = need_object(item, "textInput", f"{path}.textInput")
        only_known(text_input, ("prompt",), f"{path}.textInput")
        clip.prompt = need_string(text_input, "prompt", f"{path}.textInput.prompt")
        try:
            clip.faults = faults_in(clip.prompt)
        except FaultSyntaxError as exc:
            raise ApiError(400, "INVALID_ARGUMENT", str(exc)) from None
        video = need_object(item, "videoInput", f"{path}.videoInput")
        frames = count_frames(clip.source.clip().video_path)
        window = []
        for key in ("startFrameIndex", "endFrameIndex"):
            value = video.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= frames:
                raise invalid(f"{path}.videoInput.{key}", value, f"a frame from 1 to {frames}")
            window.append(value)
        if window[0] > window[1]:
            raise invalid(f"{path}.videoInput.startFrameIndex", window[0], "not after the end")
        clip.window = (window[0], window[1])
        asked.append(clip)
    need_tier(rank, [clip.model for clip in asked], "PAYGATE_TIER_ONE")
    return _accept(state, asked, state.config.credits_per_clip * len(asked))


def upscale(state: EmulatorState, request: Request) -> Response:
    rank, requests = _envelope(state, request)
    asked = []
    cost = 0
    for index, item in enumerate(requests):
        path = f"requests[{index}]"
        clip = _common(state, item, path, UPSCALE_FIELDS, [up[0] for up in UPSCALES.values()])
        clip.resolution = need_enum(item, "resolution", f"{path}.resolution", UPSCALES)
        model, tier, credits, _ = UPSCALES[clip.resolution]
        if clip.model != model:
            raise invalid(f"{path}.videoModelKey", clip.model, f"{model} for {clip.resolution}")
        need_tier(rank, [], tier)
        cost += credits
        asked.append(clip)
    return _accept(state, asked, cost)


def _envelope(state: EmulatorState, request: Request) -> tuple[int, list[Any]]:
    rank, requests = read_batch(state, request)
    need_distinct_scene_ids(
        [item.get("metadata", {}).get("sceneId") for item in requests if isinstance(item, dict)]
    )
    return rank, requests


def _common(state: EmulatorState, item: Any, path: str, fields: tuple[str, ...], models) -> Asked:
    if not isinstance(item, dict):
        raise invalid(path, item, "object")
    only_known(item, fields, path)
    aspect = need_enum(item, "aspectRatio", f"{path}.aspectRatio", VIDEO_ASPECTS)
    if "seed" not in item:
        raise missing(f"{path}.seed")
    seed = item["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise invalid(f"{path}.seed", seed, f"TYPE_UINT32, 0 to {SEED_MAX}")
    model = need_enum(item, "videoModelKey", f"{path}.videoModelKey", models)
    media_id = need_string(
        need_object(item, "videoInput", f"{path}.videoInput"),
        "mediaId",
        f"{path}.videoInput.mediaId",
    )
    scene_id = need_string(
        need_object(item, "metadata", f"{path}.metadata"), "sceneId", f"{path}.metadata.sceneId"
    )
    source = _source(state, media_id)
    return Asked(aspect=aspect, seed=seed, model=model, source=source, scene_id=scene_id)


def _source(state: EmulatorState, media_id: str) -> Operation:
    """The finished clip a media id names; Flow answers 404 for any other (a failed clip, an
    upload, another account's clip)."""
    with state.lock:
        found = [op for op in state.operations.values() if op.media_generation_id == media_id]
    now = time.monotonic()
    for op in found:
        if op.status(now) == SUCCESSFUL and op.clip() is not None:
            return op
    raise not_found()


def _accept(state: EmulatorState, asked: list[Asked], cost: int) -> Response:
    with state.lock:
        faults = list(state.global_faults)
    refuse_submit(state.fault_book, faults + [fault for clip in asked for fault in clip.faults])
    remaining = state.charge(asked, cost)
    operations = []
    now = time.monotonic()
    config = state.config
    for clip in asked:
        source = clip.source.clip()
        assert source is not None
        if clip.resolution:
            width, height = UPSCALES[clip.resolution][3]
            size = (height, width) if VIDEO_ASPECTS[clip.aspect] else (width, height)
            render = state.renderer.derive(
                ("upscale", str(source.video_path), size),
                render_upscale,
                source=source.video_path,
                size=size,
                fps=config.fps,
            )
        else:
            render = state.renderer.derive(
                ("extend", str(source.video_path), clip.window, clip.prompt, clip.seed % 4),
                render_extension,
                source=source.video_path,
                prompt=clip.prompt,
                window=clip.window,
                clip_seconds=config.clip_seconds,
                fps=config.fps,
                move=clip.seed % 4,
            )
        faults = {
            fault.name: fault
            for fault in clip.faults
            if fault.name in ("fail", "stuck") and state.fault_book.take(fault)
        }
        operations.append(state.add_operation(clip, faults, render, now))
    return pending_answer(operations, remaining)
