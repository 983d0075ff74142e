"""The local Flow emulator, exercised over real HTTP on loopback exactly as Flowsite's engine
talks to Google: auth, validation, the operation lifecycle with real MP4s, signed URLs and
every fault it can inject."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import av
import httpx
import pytest
from PIL import Image, ImageDraw

from generations.emulator import Emulator, EmulatorConfig, start_emulator
from generations.management.commands.flow_emulator import Command

UPLOAD = "/v1:uploadUserImage"
SUBMIT = "/v1/video:batchAsyncGenerateVideoStartImage"
CHECK = "/v1/video:batchCheckAsyncVideoGenerationStatus"
SESSION = "/fx/api/auth/session"
CREDITS = "/v1/credits"
PENDING = "MEDIA_GENERATION_STATUS_PENDING"
ACTIVE = "MEDIA_GENERATION_STATUS_ACTIVE"
SUCCESSFUL = "MEDIA_GENERATION_STATUS_SUCCESSFUL"
FAILED = "MEDIA_GENERATION_STATUS_FAILED"
# The same picture and caption in most tests, so the session emulator renders it once.
PROMPT = "a lighthouse keeper climbs the stairs at dusk"


@cache
def start_image() -> bytes:
    image = Image.new("RGB", (800, 600), (30, 60, 120))
    draw = ImageDraw.Draw(image)
    for x in range(0, 800, 50):
        draw.rectangle([x, 0, x + 24, 600], fill=(200, 150 - x // 8, 40 + x // 5))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def client_for(emulator: Emulator, token: str | None = None) -> httpx.Client:
    headers = {"content-type": "text/plain;charset=UTF-8"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=emulator.url, headers=headers, timeout=20)


@pytest.fixture
def api(flow_emulator: Emulator) -> Iterator[httpx.Client]:
    with client_for(flow_emulator, flow_emulator.token) as client:
        yield client


def post(client: httpx.Client, path: str, body: dict) -> httpx.Response:
    # Flow's web client sends JSON as text/plain; the emulator must accept exactly that.
    return client.post(path, content=json.dumps(body))


def upload_body(
    data: bytes | None = None,
    mime: str = "image/jpeg",
    aspect: str = "IMAGE_ASPECT_RATIO_LANDSCAPE",
) -> dict:
    return {
        "imageInput": {
            "rawImageBytes": base64.b64encode(data or start_image()).decode(),
            "mimeType": mime,
            "isUserUploaded": True,
            "aspectRatio": aspect,
        },
        "clientContext": {"sessionId": ";1761745563370", "tool": "ASSET_MANAGER"},
    }


def upload(client: httpx.Client) -> str:
    response = post(client, UPLOAD, upload_body())
    assert response.status_code == 200, response.text
    return response.json()["mediaGenerationId"]["mediaGenerationId"]


def clip(
    media_id: str,
    prompt: str = PROMPT,
    *,
    portrait: bool = False,
    model: str | None = None,
    seed: int = 17071,
) -> dict:
    return {
        "aspectRatio": f"VIDEO_ASPECT_RATIO_{'PORTRAIT' if portrait else 'LANDSCAPE'}",
        "seed": seed,
        "textInput": {"prompt": prompt},
        "videoModelKey": model
        or ("veo_3_1_i2v_s_fast_portrait" if portrait else "veo_3_1_i2v_s_fast"),
        "startImage": {"mediaId": media_id},
        "metadata": {"sceneId": str(uuid.uuid4())},
    }


def submit_body(*clips: dict, tier: str = "PAYGATE_TIER_TWO") -> dict:
    return {
        "clientContext": {
            "projectId": "9fa0c772-a01f-429f-94b5-4c3d65c5838a",
            "tool": "PINHOLE",
            "userPaygateTier": tier,
        },
        "requests": list(clips),
    }


def submit(client: httpx.Client, *clips: dict, tier: str = "PAYGATE_TIER_TWO") -> list[dict]:
    response = post(client, SUBMIT, submit_body(*clips, tier=tier))
    assert response.status_code == 200, response.text
    return response.json()["operations"]


def check(client: httpx.Client, operations: list[dict]) -> dict:
    response = post(client, CHECK, {"operations": operations})
    assert response.status_code == 200, response.text
    return response.json()


def wait_until_done(
    client: httpx.Client, operations: list[dict], timeout: float = 30
) -> tuple[dict, list[str]]:
    """Poll until no operation is in flight; returns the last answer and every status seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        answer = check(client, operations)
        statuses = [entry["status"] for entry in answer["operations"]]
        seen.extend(statuses)
        if not {PENDING, ACTIVE} & set(statuses):
            return answer, seen
        assert time.monotonic() < deadline, f"still in flight: {statuses}"
        time.sleep(0.05)


def google_error(response: httpx.Response) -> dict:
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "status"}
    assert error["code"] == response.status_code
    return error


def reasons(error: dict) -> list[str]:
    return [item["reason"] for item in error.get("details", []) if "reason" in item]


def finished_video(client: httpx.Client, prompt: str = PROMPT, **options) -> dict:
    media_id = upload(client)
    operations = submit(client, clip(media_id, prompt, **options))
    answer, _ = wait_until_done(client, operations)
    assert answer["operations"][0]["status"] == SUCCESSFUL, answer
    return answer["operations"][0]["operation"]["metadata"]["video"]


def decode(data: bytes) -> tuple[int, int, float, int, str]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.width, stream.height, float(stream.average_rate), frames, stream.codec.name


# --- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "ya29.not-a-token-it-minted"])
def test_calls_without_a_valid_token_get_401_in_googles_error_shape(flow_emulator, token):
    with client_for(flow_emulator, token) as client:
        for response in (client.get(CREDITS), post(client, SUBMIT, submit_body())):
            assert response.status_code == 401
            assert google_error(response)["status"] == "UNAUTHENTICATED"
    assert flow_emulator.stats["clips_submitted"] == 0


def session_get(emulator: Emulator, cookie: str | None) -> httpx.Response:
    headers = {"cookie": f"__Secure-next-auth.session-token={cookie}"} if cookie else {}
    return httpx.get(emulator.url + SESSION, headers=headers)


def test_a_token_minted_from_the_session_cookie_is_accepted(flow_emulator):
    response = session_get(flow_emulator, flow_emulator.session_cookie)
    assert response.status_code == 200
    session = response.json()
    assert session["access_token"].startswith("ya29.")
    assert session["access_token"] != flow_emulator.token
    assert session["expires"].endswith("Z")
    with client_for(flow_emulator, session["access_token"]) as client:
        answer = client.get(CREDITS)
    assert answer.status_code == 200
    assert answer.json() == {"credits": 10000, "userPaygateTier": "PAYGATE_TIER_TWO"}
    assert flow_emulator.stats["session"] == 1


@pytest.mark.parametrize("cookie", [None, "somebody-elses-session"])
def test_a_missing_or_wrong_session_cookie_gets_401(flow_emulator, cookie):
    response = session_get(flow_emulator, cookie)
    assert response.status_code == 401
    assert "access_token" not in response.json()


def test_after_kill_session_the_cookie_answers_access_token_refresh_needed(flow_emulator):
    flow_emulator.kill_session()
    response = session_get(flow_emulator, flow_emulator.session_cookie)
    assert response.json()["error"] == "ACCESS_TOKEN_REFRESH_NEEDED"
    assert "access_token" not in response.json()


def test_after_expire_tokens_every_token_so_far_gets_401_but_a_new_one_works(flow_emulator):
    minted = session_get(flow_emulator, flow_emulator.session_cookie).json()["access_token"]
    flow_emulator.expire_tokens()
    for token in (flow_emulator.token, minted):
        with client_for(flow_emulator, token) as client:
            response = client.get(CREDITS)
        assert response.status_code == 401
        assert google_error(response)["status"] == "UNAUTHENTICATED"
    fresh = session_get(flow_emulator, flow_emulator.session_cookie).json()["access_token"]
    with client_for(flow_emulator, fresh) as client:
        assert client.get(CREDITS).status_code == 200


def test_reset_forgets_expired_tokens_and_uploaded_images(flow_emulator, api):
    media_id = upload(api)
    flow_emulator.expire_tokens()
    flow_emulator.reset()
    assert api.get(CREDITS).status_code == 200
    response = post(api, SUBMIT, submit_body(clip(media_id)))
    assert response.status_code == 404
    assert flow_emulator.stats["upload"] == 0


# --- validation ------------------------------------------------------------------------------


def test_an_unknown_start_image_gets_404_requested_entity_was_not_found(flow_emulator, api):
    response = post(api, SUBMIT, submit_body(clip("CAMaNeverUploaded")))
    assert response.status_code == 404
    error = google_error(response)
    assert error["message"] == "Requested entity was not found."
    assert error["status"] == "NOT_FOUND"
    assert flow_emulator.stats["clips_submitted"] == 0


def _drop(path: str):
    def change(body: dict) -> None:
        *parents, last = path.split(".")
        target = body
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        del target[last]

    return change


def _set(path: str, value):
    def change(body: dict) -> None:
        *parents, last = path.split(".")
        target = body
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_set("requests.0.aspectRatio", "VIDEO_ASPECT_RATIO_SQUARE"), "requests[0].aspectRatio"),
        (_drop("requests.0.aspectRatio"), "requests[0].aspectRatio"),
        (_set("requests.0.videoModelKey", "veo_9_imaginary"), "requests[0].videoModelKey"),
        (_drop("requests.0.videoModelKey"), "requests[0].videoModelKey"),
        (_drop("requests.0.seed"), "requests[0].seed"),
        (_set("requests.0.seed", "17071"), "requests[0].seed"),
        (_set("requests.0.seed", -1), "requests[0].seed"),
        (_drop("requests.0.textInput.prompt"), "requests[0].textInput.prompt"),
        (_drop("requests.0.startImage.mediaId"), "requests[0].startImage.mediaId"),
        (_drop("requests.0.metadata.sceneId"), "requests[0].metadata.sceneId"),
        (_drop("clientContext.projectId"), "clientContext.projectId"),
        (_drop("clientContext.tool"), "clientContext.tool"),
        (_set("clientContext.tool", "SOMETHING_ELSE"), "clientContext.tool"),
        (
            _set("clientContext.userPaygateTier", "PAYGATE_TIER_NINE"),
            "clientContext.userPaygateTier",
        ),
        (
            _set("requests.0.textInput.prompt", "hi [fault:meltdown]"),
            "requests[0].textInput.prompt",
        ),
    ],
)
def test_a_submit_with_a_missing_key_or_bad_enum_gets_400_naming_the_field(
    flow_emulator, api, change, field
):
    body = submit_body(clip(upload(api)))
    change(body)
    response = post(api, SUBMIT, body)
    assert response.status_code == 400
    error = google_error(response)
    assert error["status"] == "INVALID_ARGUMENT"
    assert field in error["message"]
    assert flow_emulator.stats["clips_submitted"] == 0


def test_a_batch_whose_clips_share_a_scene_id_is_refused(api):
    media_id = upload(api)
    first, second = clip(media_id), clip(media_id)
    second["metadata"]["sceneId"] = first["metadata"]["sceneId"]
    response = post(api, SUBMIT, submit_body(first, second))
    assert response.status_code == 400
    assert "sceneId" in google_error(response)["message"]


def _gif() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (9, 9, 9)).save(buffer, "GIF")
    return base64.b64encode(buffer.getvalue()).decode()


def _not_an_image() -> str:
    return base64.b64encode(b"this is plainly not a picture").decode()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_drop("imageInput.rawImageBytes"), "imageInput.rawImageBytes"),
        (_set("imageInput.rawImageBytes", "***not base64***"), "imageInput.rawImageBytes"),
        (_set("imageInput.rawImageBytes", _not_an_image()), "imageInput.rawImageBytes"),
        (_drop("imageInput.mimeType"), "imageInput.mimeType"),
        (_set("imageInput.mimeType", "image/gif"), "imageInput.mimeType"),
        (_set("imageInput.rawImageBytes", _gif()), "imageInput.rawImageBytes"),
        (_drop("imageInput.aspectRatio"), "imageInput.aspectRatio"),
        (_set("imageInput.aspectRatio", "VIDEO_ASPECT_RATIO_LANDSCAPE"), "imageInput.aspectRatio"),
    ],
)
def test_an_upload_with_a_missing_key_bad_enum_or_undecodable_image_gets_400_naming_it(
    api, change, field
):
    body = upload_body()
    change(body)
    response = post(api, UPLOAD, body)
    assert response.status_code == 400
    error = google_error(response)
    assert error["status"] == "INVALID_ARGUMENT"
    assert field in error["message"]


def test_an_upload_answers_the_images_real_size(api):
    response = post(api, UPLOAD, upload_body())
    assert response.json()["width"] == 800
    assert response.json()["height"] == 600


def test_a_body_that_is_not_json_gets_400(api):
    response = api.post(SUBMIT, content=b"{not json")
    assert response.status_code == 400
    assert google_error(response)["status"] == "INVALID_ARGUMENT"


def test_an_ultra_model_on_tier_one_gets_403_model_access_denied(flow_emulator, api):
    body = clip(upload(api), model="veo_3_1_i2v_s_fast_ultra")
    response = post(api, SUBMIT, submit_body(body, tier="PAYGATE_TIER_ONE"))
    assert response.status_code == 403
    error = google_error(response)
    assert error["status"] == "PERMISSION_DENIED"
    assert reasons(error) == ["PUBLIC_ERROR_MODEL_ACCESS_DENIED"]
    assert flow_emulator.stats["clips_submitted"] == 0


def test_an_ultra_model_is_refused_when_the_account_is_tier_one_whatever_the_client_claims():
    with (
        start_emulator(EmulatorConfig(port=0, tier="PAYGATE_TIER_ONE")) as emulator,
        client_for(emulator, emulator.token) as client,
    ):
        body = clip(upload(client), model="veo_3_1_i2v_s_fast_ultra")
        response = post(client, SUBMIT, submit_body(body, tier="PAYGATE_TIER_TWO"))
        assert response.status_code == 403
        assert reasons(google_error(response)) == ["PUBLIC_ERROR_MODEL_ACCESS_DENIED"]


# --- lifecycle -------------------------------------------------------------------------------


def test_a_batch_of_two_goes_pending_then_active_then_successful_with_playable_clips(
    flow_emulator, api
):
    media_id = upload(api)
    requests = [clip(media_id, seed=1), clip(media_id, seed=2)]
    response = post(api, SUBMIT, submit_body(*requests))
    assert response.status_code == 200
    submitted = response.json()
    assert submitted["remainingCredits"] == 10000 - 2 * 20
    assert [entry["status"] for entry in submitted["operations"]] == [PENDING, PENDING]
    assert [entry["sceneId"] for entry in submitted["operations"]] == [
        r["metadata"]["sceneId"] for r in requests
    ]

    answer, seen = wait_until_done(api, submitted["operations"])
    assert seen.index(PENDING) < seen.index(ACTIVE) < seen.index(SUCCESSFUL)
    assert answer["remainingCredits"] == 10000 - 2 * 20
    assert api.get(CREDITS).json()["credits"] == 10000 - 2 * 20
    assert flow_emulator.stats["clips_submitted"] == 2

    for entry, request in zip(answer["operations"], requests, strict=True):
        assert set(entry) == {"operation", "sceneId", "mediaGenerationId", "status"}
        assert entry["status"] == SUCCESSFUL
        assert entry["sceneId"] == request["metadata"]["sceneId"]
        operation = entry["operation"]
        assert set(operation) == {"name", "metadata"}
        metadata = operation["metadata"]
        assert metadata["@type"] == "type.googleapis.com/google.internal.labs.aisandbox.v1.Media"
        assert metadata["name"] == entry["mediaGenerationId"]
        video = metadata["video"]
        assert set(video) == {
            "seed",
            "mediaGenerationId",
            "prompt",
            "fifeUrl",
            "mediaVisibility",
            "servingBaseUri",
            "model",
            "isLooped",
            "aspectRatio",
        }
        assert video["seed"] == request["seed"]
        assert video["mediaGenerationId"] == entry["mediaGenerationId"]
        assert video["prompt"] == PROMPT
        assert video["model"] == "veo_3_1_i2v_s_fast"
        assert video["aspectRatio"] == "VIDEO_ASPECT_RATIO_LANDSCAPE"
        assert video["isLooped"] is False

        movie = httpx.get(video["fifeUrl"])
        assert movie.status_code == 200
        assert movie.headers["content-type"] == "video/mp4"
        assert int(movie.headers["content-length"]) == len(movie.content)
        width, height, fps, frames, codec = decode(movie.content)
        assert (width, height, fps, codec) == (1280, 720, 24.0, "h264")
        assert abs(frames - 2.0 * 24) <= 1
        # "faststart": the index comes before the media data, so a browser plays at once.
        assert movie.content.find(b"moov") < movie.content.find(b"mdat")

        poster = httpx.get(video["servingBaseUri"])
        assert poster.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(poster.content)) as image:
            assert (image.format, image.size) == ("JPEG", (1280, 720))


def test_a_portrait_clip_is_720_by_1280(api):
    video = finished_video(api, portrait=True)
    assert video["aspectRatio"] == "VIDEO_ASPECT_RATIO_PORTRAIT"
    width, height, fps, frames, _ = decode(httpx.get(video["fifeUrl"]).content)
    assert (width, height, fps) == (720, 1280, 24.0)
    assert abs(frames - 48) <= 1


def test_a_transparent_panorama_png_still_renders_a_full_frame_clip(api):
    buffer = io.BytesIO()
    Image.new("RGBA", (4000, 300), (250, 120, 0, 90)).save(buffer, "PNG")
    body = upload_body(buffer.getvalue(), mime="image/png")
    media_id = post(api, UPLOAD, body).json()["mediaGenerationId"]["mediaGenerationId"]
    answer, _ = wait_until_done(api, submit(api, clip(media_id, "panorama")))
    video = answer["operations"][0]["operation"]["metadata"]["video"]
    width, height, _, frames, _ = decode(httpx.get(video["fifeUrl"]).content)
    assert (width, height) == (1280, 720)
    assert abs(frames - 48) <= 1


def test_a_clip_is_as_long_as_the_configured_clip_seconds():
    config = EmulatorConfig(port=0, pending_seconds=0, active_seconds=0, clip_seconds=1.0)
    with start_emulator(config) as emulator, client_for(emulator, emulator.token) as client:
        video = finished_video(client)
        _, _, _, frames, _ = decode(httpx.get(video["fifeUrl"]).content)
    assert abs(frames - 24) <= 1


def test_unknown_operation_names_come_back_failed_while_the_others_are_answered(api):
    operations = submit(api, clip(upload(api)))
    stranger = {"operation": {"name": "0" * 32}, "sceneId": "not-ours", "status": PENDING}
    answer = check(api, [stranger, *operations])
    unknown, known = answer["operations"]
    assert unknown["status"] == FAILED
    assert unknown["sceneId"] == "not-ours"
    assert unknown["operation"]["error"]["message"] == "Requested entity was not found."
    assert known["operation"]["name"] == operations[0]["operation"]["name"]
    assert known["status"] in (PENDING, ACTIVE)


def test_a_check_without_operations_gets_400_naming_them(api):
    response = post(api, CHECK, {"operations": [{"sceneId": "x"}]})
    assert response.status_code == 400
    assert "operations[0].operation" in google_error(response)["message"]


def test_a_submit_beyond_the_remaining_credits_is_refused_with_quota_reached():
    config = EmulatorConfig(port=0, credits=30, credits_per_clip=20, clip_seconds=0.5)
    with start_emulator(config) as emulator, client_for(emulator, emulator.token) as client:
        media_id = upload(client)
        submit(client, clip(media_id))
        response = post(client, SUBMIT, submit_body(clip(media_id)))
        assert response.status_code == 429
        assert reasons(google_error(response)) == ["PUBLIC_ERROR_USER_QUOTA_REACHED"]
        assert client.get(CREDITS).json()["credits"] == 10
        assert emulator.stats["clips_submitted"] == 1


def test_the_stats_endpoint_counts_calls_per_endpoint(flow_emulator, api):
    submit(api, clip(upload(api)))
    api.get(CREDITS)
    stats = httpx.get(flow_emulator.url + "/_emulator/stats").json()
    assert stats == flow_emulator.stats
    assert stats["upload"] == stats["submit"] == stats["credits"] == stats["clips_submitted"] == 1


def test_credits_answer_quickly_while_a_render_is_in_progress():
    # No waiting before SUCCESSFUL but the render itself, and a longer clip to render.
    config = EmulatorConfig(port=0, pending_seconds=0, active_seconds=0, clip_seconds=3.0)
    with start_emulator(config) as emulator, client_for(emulator, emulator.token) as client:
        operations = submit(client, clip(upload(client), f"{PROMPT} {uuid.uuid4()}"))
        latencies = []
        for _ in range(5):
            started = time.perf_counter()
            assert client.get(CREDITS).status_code == 200
            latencies.append(time.perf_counter() - started)
        # Still ACTIVE: the render was running during every one of those calls.
        assert check(client, operations)["operations"][0]["status"] == ACTIVE
        assert max(latencies) < 0.25, latencies
        answer, _ = wait_until_done(client, operations)
        assert answer["operations"][0]["status"] == SUCCESSFUL


# --- signed URLs -----------------------------------------------------------------------------


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query=httpx.QueryParams(query).__str__()).geturl()


def test_media_urls_carry_expires_and_a_signature(api):
    video = finished_video(api)
    query = parse_qs(urlsplit(video["fifeUrl"]).query)
    assert int(query["Expires"][0]) > time.time() + 3000
    assert query["Signature"][0]
    assert urlsplit(video["fifeUrl"]).path.endswith(".mp4")
    assert urlsplit(video["servingBaseUri"]).path.endswith(".jpg")


@pytest.mark.parametrize("kind", ["fifeUrl", "servingBaseUri"])
def test_a_tampered_signature_gets_403_in_cloud_storages_xml_shape(api, kind):
    url = finished_video(api)[kind]
    signature = parse_qs(urlsplit(url).query)["Signature"][0]
    first = "B" if signature[0] == "A" else "A"
    response = httpx.get(_with_query(url, Signature=first + signature[1:]))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/xml")
    assert "<Code>AccessDenied</Code>" in response.text
    assert "SignatureDoesNotMatch" in response.text


def test_a_url_whose_expiry_was_pushed_back_gets_403(api):
    url = finished_video(api)["fifeUrl"]
    expires = int(parse_qs(urlsplit(url).query)["Expires"][0])
    response = httpx.get(_with_query(url, Expires=str(expires + 86400)))
    assert response.status_code == 403
    assert "SignatureDoesNotMatch" in response.text


def test_a_url_for_another_object_with_a_borrowed_signature_gets_403(api):
    media_id = upload(api)
    answer, _ = wait_until_done(api, submit(api, clip(media_id), clip(media_id)))
    first, second = (e["operation"]["metadata"]["video"]["fifeUrl"] for e in answer["operations"])
    forged = _with_query(second, Signature=parse_qs(urlsplit(first).query)["Signature"][0])
    assert httpx.get(forged).status_code == 403


def test_the_expired_url_fault_gives_urls_that_answer_403_expired(api):
    video = finished_video(api, f"{PROMPT} [fault:expired-url]")
    assert int(parse_qs(urlsplit(video["fifeUrl"]).query)["Expires"][0]) < time.time()
    for url in (video["fifeUrl"], video["servingBaseUri"]):
        response = httpx.get(url)
        assert response.status_code == 403
        assert "<Error><Code>AccessDenied</Code>" in response.text
        assert "ExpiredToken" in response.text


def test_each_status_answer_signs_fresh_urls(api):
    operations = submit(api, clip(upload(api)))
    answer, _ = wait_until_done(api, operations)
    first = answer["operations"][0]["operation"]["metadata"]["video"]["fifeUrl"]
    # Expires counts whole seconds: wait for the next one so a fresh signature must differ.
    second_now = int(time.time())
    while int(time.time()) == second_now:
        time.sleep(0.02)
    again = check(api, operations)["operations"][0]["operation"]["metadata"]["video"]["fifeUrl"]
    first_query, again_query = parse_qs(urlsplit(first).query), parse_qs(urlsplit(again).query)
    assert int(again_query["Expires"][0]) > int(first_query["Expires"][0])
    assert again_query["Signature"] != first_query["Signature"]
    assert httpx.get(first).status_code == httpx.get(again).status_code == 200


def test_media_answers_range_requests_with_206(api):
    url = finished_video(api)["fifeUrl"]
    whole = httpx.get(url).content
    part = httpx.get(url, headers={"range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"
    assert part.content == whole[100:200]
    assert httpx.get(url, headers={"range": f"bytes={len(whole)}-"}).status_code == 416


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "code", "status", "reason"),
    [
        ("throttle", 429, "RESOURCE_EXHAUSTED", "PUBLIC_ERROR_USER_REQUESTS_THROTTLED"),
        ("error500", 500, "INTERNAL", None),
        ("unsafe", 400, "INVALID_ARGUMENT", "PUBLIC_ERROR_UNSAFE_GENERATION"),
        ("quota", 429, "RESOURCE_EXHAUSTED", "PUBLIC_ERROR_USER_QUOTA_REACHED"),
        ("model-quota", 429, "RESOURCE_EXHAUSTED", "PUBLIC_ERROR_PER_MODEL_DAILY_QUOTA_REACHED"),
        ("botcheck", 403, "PERMISSION_DENIED", "PUBLIC_ERROR_UNUSUAL_ACTIVITY"),
        ("token-expiry", 401, "UNAUTHENTICATED", None),
    ],
)
def test_a_submit_fault_marker_refuses_the_batch_without_charging(
    flow_emulator, api, marker, code, status, reason
):
    media_id = upload(api)
    body = submit_body(clip(media_id), clip(media_id, f"{PROMPT} [fault:{marker}]"))
    response = post(api, SUBMIT, body)
    assert response.status_code == code
    error = google_error(response)
    assert error["status"] == status
    assert reasons(error) == ([reason] if reason else [])
    if marker == "error500":
        assert error["message"] == "Internal error encountered."
    assert api.get(CREDITS).json()["credits"] == 10000
    assert flow_emulator.stats["clips_submitted"] == 0


@pytest.mark.parametrize(("marker", "retry_after"), [("throttle", "2"), ("throttle=7", "7")])
def test_throttle_sends_retry_after(api, marker, retry_after):
    response = post(api, SUBMIT, submit_body(clip(upload(api), f"{PROMPT} [fault:{marker}]")))
    assert response.status_code == 429
    assert response.headers["retry-after"] == retry_after


@pytest.mark.parametrize("marker", ["throttle:once", "throttle:once=3", "throttle=3:once"])
def test_a_once_fault_applies_only_the_first_time_until_reset(flow_emulator, api, marker):
    body = submit_body(clip(upload(api), f"{PROMPT} [fault:{marker}]"))
    assert post(api, SUBMIT, body).status_code == 429
    assert post(api, SUBMIT, body).status_code == 200
    flow_emulator.reset()
    body = submit_body(clip(upload(api), f"{PROMPT} [fault:{marker}]"))
    assert post(api, SUBMIT, body).status_code == 429


def test_slow_delays_the_submit_and_check_answers(api):
    media_id = upload(api)
    started = time.perf_counter()
    operations = submit(api, clip(media_id, f"{PROMPT} [fault:slow=0.4]"))
    assert time.perf_counter() - started >= 0.4
    started = time.perf_counter()
    check(api, operations)
    assert time.perf_counter() - started >= 0.4


@pytest.mark.parametrize(
    ("marker", "reason"),
    [
        ("fail", "PUBLIC_ERROR_AUDIO_FILTERED"),
        ("fail=PUBLIC_ERROR_MINOR_INPUT_IMAGE", "PUBLIC_ERROR_MINOR_INPUT_IMAGE"),
    ],
)
def test_the_fail_fault_ends_the_operation_failed_with_the_reason(api, marker, reason):
    operations = submit(api, clip(upload(api), f"{PROMPT} [fault:{marker}]"))
    answer, seen = wait_until_done(api, operations)
    entry = answer["operations"][0]
    assert entry["status"] == FAILED
    assert entry["operation"]["error"] == {"code": 3, "message": reason}
    assert ACTIVE in seen


def test_fail_once_fails_the_first_clip_and_not_the_retake(api):
    media_id = upload(api)
    prompt = f"{PROMPT} [fault:fail:once]"
    operations = submit(api, clip(media_id, prompt), clip(media_id, prompt))
    answer, _ = wait_until_done(api, operations)
    assert [entry["status"] for entry in answer["operations"]] == [FAILED, SUCCESSFUL]


def test_the_stuck_fault_keeps_the_operation_active(api):
    operations = submit(api, clip(upload(api), f"{PROMPT} [fault:stuck]"))
    time.sleep(0.2 + 0.3 + 0.3)
    assert check(api, operations)["operations"][0]["status"] == ACTIVE


def test_the_badshape_fault_answers_without_status_or_operation(api):
    operations = submit(api, clip(upload(api), f"{PROMPT} [fault:badshape]"))
    entry = check(api, operations)["operations"][0]
    assert "status" not in entry
    assert "operation" not in entry


def test_the_slow_download_fault_streams_the_media_slowly(api):
    video = finished_video(api, f"{PROMPT} [fault:slow-download=0.6]")
    started = time.perf_counter()
    response = httpx.get(video["fifeUrl"])
    assert time.perf_counter() - started >= 0.5
    assert len(response.content) == int(response.headers["content-length"])


def test_the_truncated_download_fault_stops_halfway_through_the_declared_length(api):
    video = finished_video(api, f"{PROMPT} [fault:truncated-download]")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(video["fifeUrl"])


def test_a_global_token_expiry_fault_refuses_every_call_until_reset(flow_emulator, api):
    flow_emulator.set_faults(["token-expiry"])
    assert api.get(CREDITS).status_code == 401
    assert post(api, UPLOAD, upload_body()).status_code == 401
    flow_emulator.reset()
    assert api.get(CREDITS).status_code == 200


def test_a_fault_given_in_the_config_applies_to_every_submit():
    with (
        start_emulator(EmulatorConfig(port=0, faults=["unsafe"])) as emulator,
        client_for(emulator, emulator.token) as client,
    ):
        response = post(client, SUBMIT, submit_body(clip(upload(client))))
        assert response.status_code == 400
        assert reasons(google_error(response)) == ["PUBLIC_ERROR_UNSAFE_GENERATION"]


# --- the command -----------------------------------------------------------------------------


def test_the_command_help_says_its_state_lives_in_memory():
    help_text = Command().create_parser("manage.py", "flow_emulator").format_help()
    assert "memory" in help_text
    assert "--fault" in help_text


def test_stop_removes_the_render_folder():
    emulator = start_emulator(EmulatorConfig(port=0))
    render_dir = Path(emulator.render_dir)
    assert render_dir.is_dir()
    emulator.stop()
    assert not render_dir.exists()


def test_takes_with_seeds_of_different_camera_moves_render_different_clips(tmp_path):
    from generations.emulator.render import render_clip

    picture = Image.new("RGB", (1600, 900))
    ImageDraw.Draw(picture).rectangle((100, 100, 700, 600), fill=(200, 40, 40))
    data = io.BytesIO()
    picture.save(data, "JPEG")

    def poster(move: int) -> bytes:
        clip = render_clip(
            data.getvalue(),
            "a red box",
            portrait=False,
            clip_seconds=0.25,
            fps=24,
            move=move,
            out_dir=tmp_path,
            name=f"move-{move}",
        )
        return clip.poster_path.read_bytes()

    posters = [poster(move) for move in range(4)]
    assert len(set(posters)) == 4, "each camera move starts from a different view"
