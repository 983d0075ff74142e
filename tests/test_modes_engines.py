"""Every way of making a clip (text, start and end frames, ingredients) on both engines,
against the emulator over real HTTP: the clip each renders, the bodies the Flow engine sends,
and each refusal (Quality with ingredients, four references, a model that does not do the
mode)."""

from __future__ import annotations

import gzip
import io
import json
import time
import uuid
from pathlib import Path

import av
import httpx
import pytest
from PIL import Image, ImageStat

from generations.engines import base, get_engine
from generations.engines.download import download_to
from generations.engines.flow import FlowEngine, MemoryTokenCache
from generations.engines.vertex import VertexEngine, clean_service_account_key

RED, GREEN, BLUE = (220, 30, 30), (30, 200, 40), (30, 40, 220)


def picture(colour: tuple[int, int, int], width: int = 320, height: int = 180) -> base.ImageData:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return base.ImageData(out.getvalue(), "image/png", width, height)


def flow_engine(emulator, tier: str = "PAYGATE_TIER_TWO") -> base.Engine:
    credentials = base.Credentials(key=str(uuid.uuid4()), tier=tier, bearer_token=emulator.token)
    return get_engine(credentials, token_cache=MemoryTokenCache())


def flow_clip(mode: base.Mode, model_key: str, **changes) -> base.ClipRequest:
    values = dict(
        request_id=str(uuid.uuid4()),
        prompt="a lighthouse keeper waves from the gallery",
        model_key=model_key,
        aspect=base.Aspect.LANDSCAPE,
        seed=40,
        mode=mode,
    )
    values.update(changes)
    return base.ClipRequest(**values)


def settle(engine, refs: list[base.OperationRef], seconds: float = 120) -> list[base.ClipStatus]:
    ends = time.monotonic() + seconds
    while True:
        result = engine.check(refs)
        if len(result.clips) == len(refs) and not any(c.state.in_flight for c in result.clips):
            return result.clips
        assert time.monotonic() < ends, f"clips still in flight: {result}"
        time.sleep(0.1)


def frames_of(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(container.streams.video[0])]


def mean(image: Image.Image, box: tuple[float, float, float, float]) -> tuple[float, ...]:
    """The mean colour of a part of ``image`` (box in fractions of its size)."""
    width, height = image.size
    left, top, right, bottom = box
    crop = image.crop(
        (int(left * width), int(top * height), int(right * width), int(bottom * height))
    )
    return tuple(ImageStat.Stat(crop).mean)


def dominant(colour: tuple[float, ...]) -> int:
    """Which channel (0 red, 1 green, 2 blue) is strongest."""
    return max(range(3), key=lambda channel: colour[channel])


# The top half: the caption band sits at the bottom of every frame.
TOP = (0.1, 0.1, 0.9, 0.5)


def flow_video(engine, clip: base.ClipRequest, tmp_path: Path) -> Path:
    submitted = engine.submit(str(uuid.uuid4()), [clip])
    refs = [base.OperationRef(c.operation_name, c.request_id) for c in submitted.clips]
    (status,) = settle(engine, refs)
    assert status.state == base.ClipState.SUCCESSFUL, status
    return Path(
        download_to(status.video_url, tmp_path / f"{clip.request_id}.mp4", kind="video").path
    )


# --- Flow ----------------------------------------------------------------------------------


def test_a_text_clip_on_flow_is_rendered_from_the_prompt_alone(flow_emulator, tmp_path):
    engine = flow_engine(flow_emulator)
    one = flow_video(engine, flow_clip(base.Mode.TEXT, "veo_3_1_t2v_fast"), tmp_path)
    other = flow_video(
        engine,
        flow_clip(base.Mode.TEXT, "veo_3_1_t2v_fast", prompt="a red kite over the dunes"),
        tmp_path,
    )

    assert flow_emulator.stats["upload"] == 0
    first, second = frames_of(one), frames_of(other)
    assert first[0].size == (1280, 720)
    assert len(first) == pytest.approx(2 * 24, abs=1)
    # Another prompt, another picture: the clip comes from the words.
    assert mean(first[0], TOP) != pytest.approx(mean(second[0], TOP), abs=4)


def test_a_frames_clip_on_flow_moves_from_the_start_image_to_the_end_image(flow_emulator, tmp_path):
    engine = flow_engine(flow_emulator)
    start = engine.upload_image(picture(RED)).media_id
    end = engine.upload_image(picture(BLUE)).media_id

    video = flow_video(
        engine,
        flow_clip(
            base.Mode.FRAMES,
            "veo_3_1_i2v_s_fast_fl",
            start_image_media_id=start,
            end_image_media_id=end,
        ),
        tmp_path,
    )

    frames = frames_of(video)
    assert dominant(mean(frames[0], TOP)) == 0
    assert dominant(mean(frames[-1], TOP)) == 2
    # In between, the two are mixed.
    middle = mean(frames[len(frames) // 2], TOP)
    assert middle[0] > 60 and middle[2] > 60


def test_an_ingredients_clip_on_flow_shows_each_reference_image(flow_emulator, tmp_path):
    engine = flow_engine(flow_emulator)
    ids = tuple(engine.upload_image(picture(colour)).media_id for colour in (RED, GREEN, BLUE))

    video = flow_video(
        engine,
        flow_clip(base.Mode.INGREDIENTS, "veo_3_1_r2v_fast_landscape", reference_media_ids=ids),
        tmp_path,
    )

    first = frames_of(video)[0]
    thirds = [(0.05, 0.3, 0.28, 0.5), (0.4, 0.3, 0.6, 0.5), (0.72, 0.3, 0.95, 0.5)]
    assert [dominant(mean(first, third)) for third in thirds] == [0, 1, 2]


def test_flow_refuses_reference_images_with_a_quality_model(flow_emulator):
    engine = flow_engine(flow_emulator)
    media_id = engine.upload_image(picture(RED)).media_id
    credits = flow_emulator.credits

    with pytest.raises(base.BadRequest, match="veo_3_1_i2v_s does not support reference images"):
        engine.submit(
            str(uuid.uuid4()),
            [flow_clip(base.Mode.INGREDIENTS, "veo_3_1_i2v_s", reference_media_ids=(media_id,))],
        )
    assert flow_emulator.credits == credits


def test_flow_refuses_four_reference_images(flow_emulator):
    engine = flow_engine(flow_emulator)
    media_id = engine.upload_image(picture(GREEN)).media_id

    with pytest.raises(base.BadRequest, match="referenceImages.*1 to 3 images"):
        engine.submit(
            str(uuid.uuid4()),
            [
                flow_clip(
                    base.Mode.INGREDIENTS,
                    "veo_3_1_r2v_fast_landscape",
                    reference_media_ids=(media_id,) * 4,
                )
            ],
        )
    assert flow_emulator.stats["clips_submitted"] == 0


@pytest.mark.parametrize(
    ("mode", "model_key"),
    [
        (base.Mode.TEXT, "veo_3_1_i2v_s_fast"),
        (base.Mode.FRAMES, "veo_3_1_t2v_fast"),
        (base.Mode.IMAGE, "veo_3_1_i2v_s_fast_fl"),
        (base.Mode.INGREDIENTS, "veo_3_1_t2v_fast"),
    ],
)
def test_flow_refuses_a_model_that_does_not_make_clips_that_way(flow_emulator, mode, model_key):
    engine = flow_engine(flow_emulator)
    media_id = engine.upload_image(picture(RED)).media_id

    with pytest.raises(base.BadRequest, match="videoModelKey"):
        engine.submit(
            str(uuid.uuid4()),
            [
                flow_clip(
                    mode,
                    model_key,
                    start_image_media_id=media_id,
                    end_image_media_id=media_id,
                    reference_media_ids=(media_id,),
                )
            ],
        )
    assert flow_emulator.stats["clips_submitted"] == 0


def test_an_end_image_flow_forgot_is_image_unknown(flow_emulator):
    engine = flow_engine(flow_emulator)
    start = engine.upload_image(picture(RED)).media_id

    with pytest.raises(base.ImageUnknown):
        engine.submit(
            str(uuid.uuid4()),
            [
                flow_clip(
                    base.Mode.FRAMES,
                    "veo_3_1_i2v_s_fast_fl",
                    start_image_media_id=start,
                    end_image_media_id="CAUS-never-uploaded",
                )
            ],
        )


def sent_bodies(mode: base.Mode, model_key: str, **changes) -> tuple[str, dict]:
    """The path and body the Flow engine sends for one clip (Google mocked)."""
    seen: list[httpx.Request] = []

    def google(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = json.loads(request.content)
        scene_id = body["requests"][0]["metadata"]["sceneId"]
        return httpx.Response(
            200,
            json={
                "operations": [
                    {
                        "operation": {"name": "op-1"},
                        "sceneId": scene_id,
                        "status": "MEDIA_GENERATION_STATUS_PENDING",
                    }
                ],
                "remainingCredits": 100,
            },
        )

    credentials = base.Credentials(key="k", tier="PAYGATE_TIER_ONE", bearer_token="ya29.test")
    engine = FlowEngine(
        credentials, token_cache=MemoryTokenCache(), transport=httpx.MockTransport(google)
    )
    clip = flow_clip(mode, model_key, request_id="d5fa5147-8c65-4dd3-8650-03405f0ed7fe", **changes)
    engine.submit("9fa0c772-a01f-429f-94b5-4c3d65c5838a", [clip])
    (request,) = seen
    return request.url.path, json.loads(request.content)


def envelope(request: dict) -> dict:
    return {
        "clientContext": {
            "projectId": "9fa0c772-a01f-429f-94b5-4c3d65c5838a",
            "tool": "PINHOLE",
            "userPaygateTier": "PAYGATE_TIER_ONE",
        },
        "requests": [request],
    }


def test_the_flow_engine_sends_each_mode_in_the_captured_envelope(settings):
    settings.FLOW_API_BASE_URL = "https://aisandbox-pa.googleapis.com"
    common = {
        "aspectRatio": "VIDEO_ASPECT_RATIO_LANDSCAPE",
        "seed": 40,
        "textInput": {"prompt": "a lighthouse keeper waves from the gallery"},
    }
    scene = {"metadata": {"sceneId": "d5fa5147-8c65-4dd3-8650-03405f0ed7fe"}}

    path, body = sent_bodies(base.Mode.TEXT, "veo_3_1_t2v_fast")
    assert path == "/v1/video:batchAsyncGenerateVideoText"
    assert body == envelope({**common, "videoModelKey": "veo_3_1_t2v_fast", **scene})
    assert list(body["requests"][0]) == [
        "aspectRatio",
        "seed",
        "textInput",
        "videoModelKey",
        "metadata",
    ]

    path, body = sent_bodies(
        base.Mode.FRAMES,
        "veo_3_1_i2v_s_fast_fl",
        start_image_media_id="START",
        end_image_media_id="END",
    )
    assert path == "/v1/video:batchAsyncGenerateVideoStartAndEndImage"
    assert body == envelope(
        {
            **common,
            "videoModelKey": "veo_3_1_i2v_s_fast_fl",
            "startImage": {"mediaId": "START"},
            "endImage": {"mediaId": "END"},
            **scene,
        }
    )

    path, body = sent_bodies(
        base.Mode.INGREDIENTS, "veo_3_1_r2v_fast_landscape", reference_media_ids=("A", "B")
    )
    assert path == "/v1/video:batchAsyncGenerateVideoReferenceImages"
    assert body == envelope(
        {
            **common,
            "videoModelKey": "veo_3_1_r2v_fast_landscape",
            "referenceImages": [
                {"mediaId": "A", "imageUsageType": "IMAGE_USAGE_TYPE_ASSET"},
                {"mediaId": "B", "imageUsageType": "IMAGE_USAGE_TYPE_ASSET"},
            ],
            **scene,
        }
    )


# --- Vertex AI -----------------------------------------------------------------------------


@pytest.fixture
def vertex(flow_emulator, settings):
    settings.VERTEX_API_BASE_URL = flow_emulator.url
    settings.GOOGLE_STORAGE_BASE_URL = flow_emulator.url
    return flow_emulator


def vertex_engine(emu) -> VertexEngine:
    key = clean_service_account_key(json.dumps(emu.service_account_key()))
    credentials = base.Credentials(
        key=str(uuid.uuid4()),
        tier="",
        kind=base.EngineKind.VERTEX,
        service_account_key=key,
        cloud_project="flowsite-demo",
        location="us-central1",
    )
    return VertexEngine(credentials, token_cache=MemoryTokenCache())


def vertex_clip(mode: base.Mode, model_key: str = "veo-3.1-fast-generate-001", **changes):
    values = dict(
        request_id=str(uuid.uuid4()),
        prompt="a lighthouse keeper waves from the gallery",
        model_key=model_key,
        aspect=base.Aspect.LANDSCAPE,
        seed=40,
        mode=mode,
        scene_ref="scene-1",
    )
    values.update(changes)
    return base.ClipRequest(**values)


def vertex_video(engine: VertexEngine, clip: base.ClipRequest, tmp_path: Path) -> Path:
    submitted = engine.submit("project", [clip])
    refs = [base.OperationRef(c.operation_name, c.request_id) for c in submitted.clips]
    (status,) = settle(engine, refs, seconds=240)
    assert status.state == base.ClipState.SUCCESSFUL, status
    path = tmp_path / f"{clip.request_id}.mp4"
    path.write_bytes(status.video_data)
    return path


def test_a_text_clip_on_vertex_sends_the_prompt_only_and_plays(vertex, tmp_path):
    video = vertex_video(vertex_engine(vertex), vertex_clip(base.Mode.TEXT, duration=4), tmp_path)

    frames = frames_of(video)
    assert frames[0].size == (1280, 720)
    assert len(frames) == pytest.approx(4 * 24, abs=1)


def test_a_frames_clip_on_vertex_moves_from_image_to_last_frame(vertex, tmp_path):
    clip = vertex_clip(
        base.Mode.FRAMES, start_image=picture(RED), end_image=picture(BLUE), duration=4
    )

    frames = frames_of(vertex_video(vertex_engine(vertex), clip, tmp_path))

    assert dominant(mean(frames[0], TOP)) == 0
    assert dominant(mean(frames[-1], TOP)) == 2


@pytest.mark.parametrize("model_key", ["veo-3.1-fast-generate-001", "veo-3.1-generate-001"])
def test_an_ingredients_clip_on_vertex_shows_its_asset_references(vertex, tmp_path, model_key):
    clip = vertex_clip(
        base.Mode.INGREDIENTS,
        model_key,
        reference_images=(picture(RED), picture(BLUE)),
    )

    first = frames_of(vertex_video(vertex_engine(vertex), clip, tmp_path))[0]

    assert dominant(mean(first, (0.1, 0.3, 0.4, 0.5))) == 0
    assert dominant(mean(first, (0.6, 0.3, 0.9, 0.5))) == 2


def test_vertex_refuses_four_reference_images(vertex):
    clip = vertex_clip(base.Mode.INGREDIENTS, reference_images=(picture(RED),) * 4)

    with pytest.raises(base.BadRequest, match="referenceImages"):
        vertex_engine(vertex).submit("project", [clip])
    assert vertex.stats["clips_submitted"] == 0


@pytest.mark.parametrize(
    ("mode", "images"),
    [
        (base.Mode.INGREDIENTS, {"reference_images": (picture(RED),)}),
        (base.Mode.FRAMES, {"start_image": picture(RED), "end_image": picture(BLUE)}),
    ],
)
def test_vertex_refuses_a_mode_the_lite_model_does_not_do(vertex, mode, images):
    clip = vertex_clip(mode, "veo-3.1-lite-generate-001", **images)

    with pytest.raises(base.BadRequest, match="not supported by the model veo-3.1-lite"):
        vertex_engine(vertex).submit("project", [clip])
    assert vertex.stats["clips_submitted"] == 0


def test_vertex_refuses_reference_images_for_a_clip_shorter_than_8_seconds(vertex):
    clip = vertex_clip(base.Mode.INGREDIENTS, reference_images=(picture(RED),), duration=4)

    with pytest.raises(base.BadRequest, match="durationSeconds"):
        vertex_engine(vertex).submit("project", [clip])


def test_a_gzipped_vertex_answer_is_read_once_not_decoded_twice(settings):
    # httpx asks for gzip; Google may use it. The answer's body must be decoded exactly once.
    settings.VERTEX_API_BASE_URL = "https://us-central1-aiplatform.googleapis.com"
    name = "projects/flowsite-demo/locations/us-central1/publishers/google/models/m/operations/7"

    def google(request: httpx.Request) -> httpx.Response:
        body = gzip.compress(json.dumps({"name": name}).encode())
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=body)

    credentials = base.Credentials(
        key=str(uuid.uuid4()),
        tier="",
        kind=base.EngineKind.VERTEX,
        bearer_token="ya29.test",
        cloud_project="flowsite-demo",
        location="us-central1",
    )
    engine = VertexEngine(
        credentials, token_cache=MemoryTokenCache(), transport=httpx.MockTransport(google)
    )

    submitted = engine.submit("project", [vertex_clip(base.Mode.TEXT)])

    (clip,) = submitted.clips
    assert clip.operation_name.startswith(name)
