"""The emulator's routes for text, start-and-end-frame and reference-image clips refuse what
Google refuses, in Google's words: fields the route does not know, an image the route does not
take, a usage type it does not know; the same for Vertex AI's instance."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.test_emulator import client_for, google_error, post, upload

TEXT = "/v1/video:batchAsyncGenerateVideoText"
FRAMES = "/v1/video:batchAsyncGenerateVideoStartAndEndImage"
REFERENCES = "/v1/video:batchAsyncGenerateVideoReferenceImages"


@pytest.fixture
def api(flow_emulator):
    with client_for(flow_emulator, flow_emulator.token) as client:
        yield client


def request(model: str, **images) -> dict:
    return {
        "aspectRatio": "VIDEO_ASPECT_RATIO_LANDSCAPE",
        "seed": 3,
        "textInput": {"prompt": "a harbour at dawn"},
        "videoModelKey": model,
        **images,
        "metadata": {"sceneId": str(uuid.uuid4())},
    }


def body(*requests: dict, **context) -> dict:
    return {
        "clientContext": {"projectId": str(uuid.uuid4()), "tool": "PINHOLE", **context},
        "requests": list(requests),
    }


def test_a_text_request_with_a_start_image_is_refused_as_an_unknown_field(api):
    media_id = upload(api)

    response = post(api, TEXT, body(request("veo_3_1_t2v_fast", startImage={"mediaId": media_id})))

    assert response.status_code == 400
    assert google_error(response)["message"] == (
        "Invalid JSON payload received. Unknown name \"startImage\" at 'requests[0]': "
        "Cannot find field."
    )


@pytest.mark.parametrize(
    ("path", "model", "extra"),
    [
        (TEXT, "veo_3_1_t2v_fast", {}),
        (FRAMES, "veo_3_1_i2v_s_fast_fl", {"startImage": {}, "endImage": {}}),
        (REFERENCES, "veo_3_1_r2v_fast_landscape", {"referenceImages": []}),
    ],
)
def test_every_new_route_refuses_a_field_it_does_not_know(api, path, model, extra):
    media_id = upload(api)
    images = {
        key: (
            {"mediaId": media_id}
            if key != "referenceImages"
            else [{"mediaId": media_id, "imageUsageType": "IMAGE_USAGE_TYPE_ASSET"}]
        )
        for key in extra
    }

    for sent, where in [
        (body({**request(model, **images), "durationSeconds": 8}), "requests[0]"),
        (body(request(model, **images), recaptchaContext={}), "clientContext"),
    ]:
        response = post(api, path, sent)
        assert response.status_code == 400, response.text
        assert f"at '{where}': Cannot find field." in google_error(response)["message"]


def test_a_reference_image_of_an_unknown_usage_type_is_refused(api):
    media_id = upload(api)
    sent = body(
        request(
            "veo_3_1_r2v_fast_landscape",
            referenceImages=[{"mediaId": media_id, "imageUsageType": "IMAGE_USAGE_TYPE_STYLE"}],
        )
    )

    response = post(api, REFERENCES, sent)

    assert response.status_code == 400
    assert "requests[0].referenceImages[0].imageUsageType" in google_error(response)["message"]


def test_a_frames_request_without_its_end_image_is_refused_naming_it(api):
    media_id = upload(api)

    response = post(
        api, FRAMES, body(request("veo_3_1_i2v_s_fast_fl", startImage={"mediaId": media_id}))
    )

    assert response.status_code == 400
    assert google_error(response)["message"] == "Missing required field 'requests[0].endImage'."


def test_a_vertex_instance_with_a_field_it_does_not_know_is_refused(flow_emulator):
    url = (
        f"{flow_emulator.url}/v1/projects/p/locations/us-central1/publishers/google/models/"
        "veo-3.1-fast-generate-001:predictLongRunning"
    )
    sent = {"instances": [{"prompt": "a harbour", "endFrame": {}}], "parameters": {}}

    response = httpx.post(
        url, content=json.dumps(sent), headers={"authorization": f"Bearer {flow_emulator.token}"}
    )

    assert response.status_code == 400
    assert "Unknown name \"endFrame\" at 'instances[0]'" in response.json()["error"]["message"]


EXTEND = "/v1/video:batchAsyncGenerateVideoExtendVideo"
UPSCALE = "/v1/video:batchAsyncGenerateVideoUpsampleVideo"


@pytest.mark.parametrize("path", [EXTEND, UPSCALE])
def test_extend_and_upscale_refuse_a_misspelt_key_exactly_as_generate_does(api, path):
    clip = {**request("veo_3_1_t2v_fast"), "videoInput": {"mediaId": "ours"}}
    if path == UPSCALE:
        del clip["textInput"]  # an upscale has no prompt
    misspelt = {"videoModelKey": "videoModelkey"}
    misspelt_request = {misspelt.get(key, key): value for key, value in clip.items()}
    sent = body(clip)
    for wrong in [
        {"request": sent["requests"], "clientContext": sent["clientContext"]},
        {**sent, "clientContext": {**sent["clientContext"], "sessionID": "1"}},
        body(misspelt_request),
    ]:
        generate = post(api, TEXT, wrong)
        answer = post(api, path, wrong)

        assert generate.status_code == answer.status_code == 400, answer.text
        assert "Cannot find field." in google_error(answer)["message"]
        assert answer.json() == generate.json()
