"""Extend and upscale, engine by engine, against the emulator over real HTTP: Flow's extend and
upsample calls, Vertex AI's ``video`` input, and the refusals of each in the user's words."""

from __future__ import annotations

import time
import uuid

import av
import pytest
from django.core.files.storage import default_storage
from PIL import ImageChops, ImageStat

from generations import take_actions
from generations.engines import get_engine
from generations.engines.base import (
    Aspect,
    BadRequest,
    ClipRequest,
    ClipState,
    OperationRef,
    TierTooLow,
    UpscaleRequest,
)
from generations.engines.catalogue import TIER_TWO
from generations.models import CannotGenerate, FlowAccount, Generation
from tests.conftest import make_ready_scene, vertex_scene
from tests.tasks_support import settle
from tests.test_vertex_pipeline import settle as vertex_settle


def ready_take(project, alice, prompt="a seahorse trots along the harbour wall") -> Generation:
    [take] = settle(make_ready_scene(project, prompt).generate(alice))
    assert take.status == Generation.Status.READY, take.reason
    return take


def wait_done(engine, name: str, request_id: str):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        [clip] = engine.check([OperationRef(name, request_id)]).clips
        if not clip.state.in_flight:
            return clip
        time.sleep(0.1)
    raise AssertionError("the operation did not finish")


def frames(path) -> list:
    with av.open(str(path)) as container:
        return [
            frame.to_image().convert("L").resize((64, 36)) for frame in container.decode(video=0)
        ]


def difference(one, two) -> float:
    return ImageStat.Stat(ImageChops.difference(one, two)).mean[0]


def test_flow_extends_a_ready_clip_from_the_window_of_its_last_second(emu, project, alice):
    source = ready_take(project, alice)
    engine = get_engine(project.account.credentials())
    clip = take_actions.source_clip(source, inline=False)
    assert clip.frames == (25, 48), "the emulator's 2 s clips: the last 24 of 48 frames"
    request = ClipRequest(
        request_id=str(uuid.uuid4()),
        prompt="the seahorse dives",
        model_key="veo_3_1_extend_fast_landscape",
        aspect=Aspect.LANDSCAPE,
        seed=4,
        **clip.fields(),
    )

    result = engine.submit(str(project.flow_project_id), [request])

    [submitted] = result.clips
    done = wait_done(engine, submitted.operation_name, request.request_id)
    assert done.state == ClipState.SUCCESSFUL
    assert done.media_generation_id and done.media_generation_id != source.media_generation_id


def test_an_extension_begins_where_its_source_ends_and_repeats_its_last_second(emu, project, alice):
    source = ready_take(project, alice)
    extension_scene = take_actions.extend(source, alice, "the seahorse dives under the pier")
    [extension] = settle(list(extension_scene.generations.all()))
    assert extension.status == Generation.Status.READY, extension.reason

    before = frames(default_storage.path(source.video.name))
    after = frames(default_storage.path(extension.video.name))

    # The first second is the source's last second again (what a join trims), frame for frame.
    for index in range(24):
        assert difference(after[index], before[24 + index]) < 4, index
    # The new motion starts from the source's last frame, not from somewhere else.
    assert difference(after[24], before[-1]) < 12
    assert difference(after[-1], before[-1]) > difference(after[24], before[-1])


def test_flow_refuses_to_extend_a_clip_it_does_not_know_in_words(emu, project, alice):
    engine = get_engine(project.account.credentials())
    request = ClipRequest(
        request_id=str(uuid.uuid4()),
        prompt="on and on",
        model_key="veo_3_1_extend_fast_landscape",
        aspect=Aspect.LANDSCAPE,
        seed=1,
        source_media_id="CAUSnever-made-here",
        source_frames=(1, 24),
    )

    with pytest.raises(BadRequest) as refused:
        engine.submit(str(project.flow_project_id), [request])

    assert "Flow no longer knows the clip this asks for" in refused.value.message
    assert emu.stats["clips_submitted"] == 0


def test_extending_a_failed_take_is_refused_before_anything_is_sent(emu, project, alice):
    [failed] = settle(make_ready_scene(project, "[fault:fail] a storm").generate(alice))
    assert failed.status == Generation.Status.FAILED
    submitted = emu.stats["submit"]

    with pytest.raises(CannotGenerate, match="Take 1 failed, so it has no clip to extend."):
        take_actions.extend(failed, alice, "and then the sun")

    assert emu.stats["submit"] == submitted
    assert not failed.scene.project.scenes.filter(source_take=failed).exists()


@pytest.mark.parametrize(("resolution", "size"), [("1080p", (1920, 1080)), ("4k", (3840, 2160))])
def test_flow_upscales_a_ready_clip_to_real_pixels(emu, project, alice, resolution, size):
    if resolution == "4k":
        FlowAccount.objects.filter(pk=project.account_id).update(tier=TIER_TWO)
        project.account.refresh_from_db()
    source = ready_take(project, alice)
    engine = get_engine(project.account.credentials())
    request = UpscaleRequest(
        request_id=str(uuid.uuid4()),
        media_id=source.media_generation_id,
        aspect=Aspect.LANDSCAPE,
        resolution=resolution,
        model_key=f"veo_3_1_upsampler_{resolution}",
    )

    [submitted] = engine.upscale(str(project.flow_project_id), [request]).clips
    done = wait_done(engine, submitted.operation_name, request.request_id)

    assert done.state == ClipState.SUCCESSFUL
    from generations.engines.download import download_to
    from generations.storage import local_path

    fetched = download_to(done.video_url, local_path("up.mp4"), kind="video")
    with av.open(fetched.path) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == size
        first = next(container.decode(stream)).to_image()
    # Real pixels: the upscaled first frame is the source's, larger.
    original = frames(default_storage.path(source.video.name))[0]
    assert difference(first.convert("L").resize((64, 36)), original) < 6


def test_flow_refuses_4k_on_tier_one_and_flowsite_says_so_first(emu, project, alice):
    source = ready_take(project, alice)
    engine = get_engine(project.account.credentials())
    request = UpscaleRequest(
        request_id=str(uuid.uuid4()),
        media_id=source.media_generation_id,
        aspect=Aspect.LANDSCAPE,
        resolution="4k",
        model_key="veo_3_1_upsampler_4k",
    )

    with pytest.raises(TierTooLow):
        engine.upscale(str(project.flow_project_id), [request])
    with pytest.raises(CannotGenerate) as refused:
        take_actions.request_upscale(source, alice, "4k")

    assert str(refused.value) == (
        "Upscaling to 4K needs a Flow Ultra (tier two) account; the account Studio is Pro "
        "(tier one). Upscale to 1080p instead."
    )
    assert emu.stats["clips_submitted"] == 1  # the source only


def test_flow_refuses_an_upscale_request_with_a_prompt_as_google_refuses_unknown_fields(
    emu, project, alice
):
    source = ready_take(project, alice)
    engine = get_engine(project.account.credentials())
    body = {
        "clientContext": {"projectId": str(project.flow_project_id), "tool": "PINHOLE"},
        "requests": [
            {
                "aspectRatio": "VIDEO_ASPECT_RATIO_LANDSCAPE",
                "seed": 1,
                "videoModelKey": "veo_3_1_upsampler_1080p",
                "metadata": {"sceneId": "one"},
                "videoInput": {"mediaId": source.media_generation_id},
                "resolution": "VIDEO_RESOLUTION_1080P",
                "textInput": {"prompt": "sharper"},
            }
        ],
    }

    with pytest.raises(BadRequest, match='Unknown name "textInput"'):
        engine._call("POST", "/v1/video:batchAsyncGenerateVideoUpsampleVideo", body, what="x")


def test_vertex_extends_a_take_sent_inline_as_its_video_input(vertex_project, flow_emulator, alice):
    [source] = vertex_settle(vertex_scene(vertex_project).generate(alice))
    assert source.status == Generation.Status.READY, source.reason
    assert source.media_generation_id == "", "inline results have no address to name"

    scene = take_actions.extend(source, alice, "the seahorse surfaces")
    [extension] = vertex_settle(list(scene.generations.all()))

    assert extension.status == Generation.Status.READY, extension.reason
    assert extension.model_key == source.model_key, "Vertex AI extends with the same model"
    before = frames(default_storage.path(source.video.name))
    after = frames(default_storage.path(extension.video.name))
    assert difference(after[0], before[-24]) < 4
    assert len(after) == len(before), "as long as asked (the source's duration, 4 s)"
    assert flow_emulator.stats["vertex_predict"] == 2


def test_vertex_extends_a_clip_in_cloud_storage_by_its_address(
    vertex_project, flow_emulator, alice
):
    FlowAccount.objects.filter(pk=vertex_project.account_id).update(storage_uri="gs://bucket/out/")
    vertex_project.account.refresh_from_db()
    [source] = vertex_settle(vertex_scene(vertex_project).generate(alice))
    assert source.media_generation_id.startswith("gs://bucket/out/")

    clip = take_actions.source_clip(source, inline=True)
    scene = take_actions.extend(source, alice, "the seahorse surfaces")
    [extension] = vertex_settle(list(scene.generations.all()))

    assert clip.video_uri == source.media_generation_id and not clip.video
    assert extension.status == Generation.Status.READY, extension.reason


def test_vertex_has_no_upscale_and_says_what_to_do_instead(vertex_project, flow_emulator, alice):
    [source] = vertex_settle(vertex_scene(vertex_project).generate(alice))

    with pytest.raises(CannotGenerate) as refused:
        take_actions.request_upscale(source, alice, "1080p")

    assert str(refused.value) == take_actions.VERTEX_NO_UPSCALE
    assert "1080p or 4K" in str(refused.value)
