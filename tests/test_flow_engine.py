"""The Flow engine against Google's captured bodies: what it sends, and what it makes of every
answer (tests/data/flow-api/, replayed through httpx.MockTransport)."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from generations.engines import base, flow
from tests.flow_fakes import API, REDACTED, TOKEN, FakeGoogle, body, fixture, google_error

SCENE_ID = "d5fa5147-8c65-4dd3-8650-03405f0ed7fe"
OPERATION = "52a55a4296c947d408fe559ba76c353c"
PROJECT_ID = "9fa0c772-a01f-429f-94b5-4c3d65c5838a"
PROMPT = "the poseidon doing his normal job, walking round using his seahorse "


def captured_clip(**changes) -> base.ClipRequest:
    values = dict(
        request_id=SCENE_ID,
        prompt=PROMPT,
        model_key="veo_3_1_i2v_s_fast_ultra",
        aspect=base.Aspect.LANDSCAPE,
        seed=17071,
        start_image_media_id=REDACTED,
    )
    values.update(changes)
    return base.ClipRequest(**values)


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@pytest.fixture
def google() -> FakeGoogle:
    return FakeGoogle()


# --- What the engine sends -----------------------------------------------------------------


def test_upload_sends_the_captured_body_byte_for_byte_apart_from_session_time_and_bytes(google):
    google.on(flow.PATH_UPLOAD, httpx.Response(200, json=fixture("upload_image.response")))
    captured = fixture("upload_image.request")
    raw = base64.b64decode(captured["imageInput"]["rawImageBytes"])
    before = int(time.time() * 1000)

    google.engine().upload_image(base.ImageData(raw, "image/jpeg", 439, 780))

    (request,) = google.requests
    sent = body(request)
    session_ms = int(sent["clientContext"]["sessionId"].removeprefix(";"))
    assert sent["clientContext"]["sessionId"] == f";{session_ms}"
    assert before <= session_ms <= int(time.time() * 1000)
    # The capture's sample bytes are a redacted stub in non-canonical base64: compare decoded.
    assert base64.b64decode(sent["imageInput"]["rawImageBytes"]) == raw
    captured["clientContext"]["sessionId"] = sent["clientContext"]["sessionId"]
    captured["imageInput"]["rawImageBytes"] = base64.b64encode(raw).decode()
    assert request.content == compact(captured)
    assert request.method == "POST"
    assert str(request.url) == API + "/v1:uploadUserImage"


def test_submit_sends_the_captured_body_byte_for_byte(google):
    google.on(flow.PATH_SUBMIT, httpx.Response(200, json=fixture("start_image.response")))

    google.engine().submit(PROJECT_ID, [captured_clip()])

    (request,) = google.requests
    assert request.content == compact(fixture("start_image.request"))
    assert str(request.url) == API + "/v1/video:batchAsyncGenerateVideoStartImage"


def test_check_sends_each_operation_back_as_the_submit_call_returned_it(google):
    google.on(flow.PATH_CHECK, httpx.Response(200, json=fixture("check_status.response.active")))

    google.engine().check([base.OperationRef(OPERATION, SCENE_ID)])

    (request,) = google.requests
    assert request.content == compact(fixture("check_status.request"))
    submitted = fixture("start_image.response")["operations"][0]
    assert body(request)["operations"][0] == submitted
    assert str(request.url) == API + "/v1/video:batchCheckAsyncVideoGenerationStatus"


def test_every_call_carries_the_web_clients_headers_and_no_cookie(google):
    google.on(flow.PATH_UPLOAD, httpx.Response(200, json=fixture("upload_image.response")))
    google.on(flow.PATH_SUBMIT, httpx.Response(200, json=fixture("start_image.response")))
    google.on(flow.PATH_CHECK, httpx.Response(200, json=fixture("check_status.response.active")))
    google.on(flow.PATH_CREDITS, httpx.Response(200, json={"credits": 5, "userPaygateTier": "X"}))
    engine = google.engine()

    engine.upload_image(base.ImageData(b"\xff\xd8", "image/jpeg", 100, 100))
    engine.submit(PROJECT_ID, [captured_clip()])
    engine.check([base.OperationRef(OPERATION, SCENE_ID)])
    engine.account_info()

    assert len(google.requests) == 4
    for request in google.requests:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["origin"] == "https://labs.google"
        assert request.headers["referer"] == "https://labs.google/"
        assert "cookie" not in request.headers
    for request in google.requests[:3]:
        assert request.headers["content-type"] == "text/plain;charset=UTF-8"
    assert google.requests[3].method == "GET"
    assert google.requests[3].url.path == "/v1/credits"


def test_a_batch_of_clips_is_one_submit_call_and_answers_are_matched_by_scene_id(google):
    first = captured_clip(request_id="11111111-1111-4111-8111-111111111111", seed=1)
    second = captured_clip(
        request_id="22222222-2222-4222-8222-222222222222",
        seed=2,
        aspect=base.Aspect.PORTRAIT,
        model_key="veo_3_1_i2v_s_fast_portrait",
        start_image_media_id="media-two",
    )
    # Flow does not promise to answer in the order asked.
    answer = {
        "operations": [
            {
                "operation": {"name": "op-2"},
                "sceneId": second.request_id,
                "status": "MEDIA_GENERATION_STATUS_PENDING",
            },
            {
                "operation": {"name": "op-1"},
                "sceneId": first.request_id,
                "status": "MEDIA_GENERATION_STATUS_PENDING",
            },
        ],
        "remainingCredits": 900,
    }
    google.on(flow.PATH_SUBMIT, httpx.Response(200, json=answer))

    result = google.engine().submit(PROJECT_ID, [first, second])

    (request,) = google.requests
    sent = body(request)["requests"]
    assert [r["metadata"]["sceneId"] for r in sent] == [first.request_id, second.request_id]
    assert sent[1]["aspectRatio"] == "VIDEO_ASPECT_RATIO_PORTRAIT"
    assert sent[1]["videoModelKey"] == "veo_3_1_i2v_s_fast_portrait"
    assert sent[1]["startImage"] == {"mediaId": "media-two"}
    assert result == base.SubmitResult(
        clips=[
            base.SubmittedClip(first.request_id, "op-1", base.ClipState.PENDING),
            base.SubmittedClip(second.request_id, "op-2", base.ClipState.PENDING),
        ],
        remaining_credits=900,
    )


def test_check_splits_into_calls_of_the_batch_size_and_merges_the_answers(google, settings):
    settings.FLOW_STATUS_BATCH_SIZE = 2
    refs = [base.OperationRef(f"op-{n}", f"scene-{n}") for n in range(5)]

    def answer(request: httpx.Request) -> httpx.Response:
        ops = body(request)["operations"]
        entries = [
            {
                "operation": {"name": op["operation"]["name"]},
                "sceneId": op["sceneId"],
                "status": "MEDIA_GENERATION_STATUS_ACTIVE",
            }
            for op in ops
        ]
        return httpx.Response(
            200, json={"operations": entries, "remainingCredits": 100 - len(google.requests)}
        )

    google.on(flow.PATH_CHECK, answer)

    result = google.engine().check(refs)

    assert [len(body(r)["operations"]) for r in google.requests] == [2, 2, 1]
    assert [clip.operation_name for clip in result.clips] == [ref.operation_name for ref in refs]
    assert {clip.state for clip in result.clips} == {base.ClipState.ACTIVE}
    assert result.remaining_credits == 97


def test_checking_nothing_calls_nobody(google):
    assert google.engine().check([]) == base.StatusResult()
    assert google.requests == []


def test_a_clip_without_a_start_image_is_refused_before_anything_is_sent(google):
    with pytest.raises(base.BadRequest, match="start image"):
        google.engine().submit(PROJECT_ID, [captured_clip(start_image_media_id=None)])
    assert google.requests == []


@pytest.mark.parametrize(
    ("width", "height", "aspect"),
    [
        (439, 780, "IMAGE_ASPECT_RATIO_PORTRAIT"),
        (1920, 1080, "IMAGE_ASPECT_RATIO_LANDSCAPE"),
        (1000, 1000, "IMAGE_ASPECT_RATIO_SQUARE"),
        (1024, 768, "IMAGE_ASPECT_RATIO_LANDSCAPE_FOUR_THREE"),
        (768, 1024, "IMAGE_ASPECT_RATIO_PORTRAIT_THREE_FOUR"),
        (3000, 1000, "IMAGE_ASPECT_RATIO_LANDSCAPE"),
    ],
)
def test_an_upload_declares_the_nearest_image_aspect(width, height, aspect):
    assert flow.image_aspect(width, height) == aspect


# --- What the engine makes of the answers ----------------------------------------------------


def test_the_captured_upload_answer_becomes_an_uploaded_image(google):
    google.on(flow.PATH_UPLOAD, httpx.Response(200, json=fixture("upload_image.response")))

    uploaded = google.engine().upload_image(base.ImageData(b"x", "image/jpeg", 1, 2))

    assert uploaded == base.UploadedImage(media_id=REDACTED, width=439, height=780)


def test_the_captured_submit_answer_becomes_a_pending_clip_with_credits(google):
    google.on(flow.PATH_SUBMIT, httpx.Response(200, json=fixture("start_image.response")))

    result = google.engine().submit(PROJECT_ID, [captured_clip()])

    assert result == base.SubmitResult(
        clips=[base.SubmittedClip(SCENE_ID, OPERATION, base.ClipState.PENDING)],
        remaining_credits=44440,
    )


def test_the_captured_active_answer_is_an_active_clip_without_credits(google):
    google.on(flow.PATH_CHECK, httpx.Response(200, json=fixture("check_status.response.active")))

    result = google.engine().check([base.OperationRef(OPERATION, SCENE_ID)])

    assert result == base.StatusResult(
        clips=[base.ClipStatus(OPERATION, SCENE_ID, base.ClipState.ACTIVE)],
        remaining_credits=None,
    )


def test_the_captured_success_carries_both_signed_urls_the_seed_and_the_media_id(google):
    google.on(
        flow.PATH_CHECK, httpx.Response(200, json=fixture("check_status.response.successful"))
    )

    (clip,) = google.engine().check([base.OperationRef(OPERATION, SCENE_ID)]).clips

    video = fixture("check_status.response.successful")["operations"][0]["operation"]
    video = video["metadata"]["video"]
    assert clip.state == base.ClipState.SUCCESSFUL
    assert clip.video_url == video["fifeUrl"]
    assert clip.poster_url == video["servingBaseUri"]
    assert clip.video_url.startswith("https://storage.googleapis.com/ai-sandbox-videofx/video/")
    assert clip.seed == 17071
    assert clip.media_generation_id == REDACTED
    assert clip.failure_reason == ""


def test_the_captured_failure_carries_the_reason_code(google):
    google.on(flow.PATH_CHECK, httpx.Response(200, json=fixture("check_status.response.failed")))

    result = google.engine().check([base.OperationRef(OPERATION, SCENE_ID)])

    (clip,) = result.clips
    assert clip.state == base.ClipState.FAILED
    assert clip.failure_reason == "PUBLIC_ERROR_AUDIO_FILTERED"
    assert result.remaining_credits == 44440


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("MEDIA_GENERATION_STATUS_PENDING", base.ClipState.PENDING),
        ("MEDIA_GENERATION_STATUS_CANCELLED", base.ClipState.CANCELLED),
        ("MEDIA_GENERATION_STATUS_ERROR_UNKNOWN", base.ClipState.FAILED),
    ],
)
def test_every_known_status_maps_to_a_clip_state(google, status, state):
    answer = fixture("check_status.response.active")
    answer["operations"][0]["status"] = status
    google.on(flow.PATH_CHECK, httpx.Response(200, json=answer))

    (clip,) = google.engine().check([base.OperationRef(OPERATION, SCENE_ID)]).clips

    assert clip.state == state


def test_an_error_status_without_a_message_keeps_the_status_as_the_reason(google):
    answer = fixture("check_status.response.active")
    answer["operations"][0]["status"] = "MEDIA_GENERATION_STATUS_ERROR_TIMEOUT"
    google.on(flow.PATH_CHECK, httpx.Response(200, json=answer))

    (clip,) = google.engine().check([base.OperationRef(OPERATION, SCENE_ID)]).clips

    assert clip.failure_reason == "ERROR_TIMEOUT"


def test_operations_left_out_of_a_status_answer_are_left_out_of_the_result(google):
    google.on(flow.PATH_CHECK, httpx.Response(200, json=fixture("check_status.response.active")))
    refs = [base.OperationRef(OPERATION, SCENE_ID), base.OperationRef("other-op", "other-scene")]

    result = google.engine().check(refs)

    assert [clip.operation_name for clip in result.clips] == [OPERATION]


def test_account_info_reads_credits_and_tier(google):
    google.on(
        flow.PATH_CREDITS,
        httpx.Response(200, json={"credits": "1200", "userPaygateTier": "PAYGATE_TIER_ONE"}),
    )

    assert google.engine().account_info() == base.AccountInfo(1200, "PAYGATE_TIER_ONE")


# --- Unexpected shapes ------------------------------------------------------------------------


def _remove(path):
    def mutate(answer):
        *parents, last = path
        target = answer
        for key in parents:
            target = target[key]
        del target[last]

    return mutate


def _set(path, value):
    def mutate(answer):
        *parents, last = path
        target = answer
        for key in parents:
            target = target[key]
        target[last] = value

    return mutate


OP = ("operations", 0)
VIDEO = (*OP, "operation", "metadata", "video")

SHAPE_MUTATIONS = [
    ("check_status.response.successful", _remove((*VIDEO, "fifeUrl")), "fifeUrl"),
    ("check_status.response.successful", _set((*VIDEO, "fifeUrl"), 42), "fifeUrl"),
    ("check_status.response.successful", _remove((*OP, "operation", "metadata")), "metadata"),
    ("check_status.response.successful", _set((*VIDEO, "seed"), "lucky"), "seed"),
    (
        "check_status.response.successful",
        _set((*OP, "status"), "MEDIA_GENERATION_STATUS_DONE"),
        "MEDIA_GENERATION_STATUS_DONE",
    ),
    ("check_status.response.active", _remove((*OP, "status")), "status"),
    ("check_status.response.active", _remove((*OP, "operation")), "operation"),
    ("check_status.response.active", _set((*OP, "operation"), ["name"]), "operation"),
    ("check_status.response.active", _set((*OP, "operation", "name"), ""), "name"),
    ("check_status.response.active", _set((*OP, "sceneId"), "someone-elses-scene"), "not asked"),
    ("check_status.response.active", _set(("operations",), {"a": 1}), "operations"),
    ("check_status.response.active", _set(("operations", 0), "op"), "not an object"),
    ("check_status.response.failed", _set((*OP, "operation", "error"), "bad"), "error"),
    ("check_status.response.failed", _set(("remainingCredits",), "lots"), "remainingCredits"),
]


@pytest.mark.parametrize(("name", "mutate", "named"), SHAPE_MUTATIONS)
def test_a_status_answer_of_an_unexpected_shape_is_a_contract_error_quoting_it(
    google, name, mutate, named
):
    answer = fixture(name)
    mutate(answer)
    google.on(flow.PATH_CHECK, httpx.Response(200, json=answer))

    with pytest.raises(base.ContractError) as caught:
        google.engine().check([base.OperationRef(OPERATION, SCENE_ID)])

    message = caught.value.message
    assert named in message
    assert "shape Flowsite does not know" in message
    assert "checking clips" in message
    assert "Signature=" not in message + caught.value.detail


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (_remove(("operations",)), "operations"),
        (_set((*OP, "sceneId"), "another-scene"), "not asked"),
        (_set(("operations",), []), "no operation came back"),
        (_set((*OP, "status"), None), "status"),
    ],
)
def test_a_submit_answer_of_an_unexpected_shape_is_a_contract_error(google, mutate, named):
    answer = fixture("start_image.response")
    mutate(answer)
    google.on(flow.PATH_SUBMIT, httpx.Response(200, json=answer))

    with pytest.raises(base.ContractError, match=named):
        google.engine().submit(PROJECT_ID, [captured_clip()])


@pytest.mark.parametrize(
    ("answer", "named"),
    [
        ({"mediaGenerationId": "flat-id", "width": 1, "height": 1}, "mediaGenerationId"),
        ({"width": 1, "height": 1}, "mediaGenerationId"),
        ({"mediaGenerationId": {"mediaGenerationId": "m"}, "width": "wide"}, "width"),
    ],
)
def test_an_upload_answer_of_an_unexpected_shape_is_a_contract_error(google, answer, named):
    google.on(flow.PATH_UPLOAD, httpx.Response(200, json=answer))

    with pytest.raises(base.ContractError, match=named):
        google.engine().upload_image(base.ImageData(b"x", "image/jpeg", 1, 1))


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, text="<html>Sign in</html>"),
        httpx.Response(200, json=["operations"]),
        httpx.Response(200, json={"credits": None}),
    ],
)
def test_an_answer_that_is_not_a_json_object_is_a_contract_error(google, reply):
    google.on(flow.PATH_CREDITS, reply)

    with pytest.raises(base.ContractError):
        google.engine().account_info()


def test_a_contract_error_never_quotes_a_token_or_a_signed_url(google, caplog):
    answer = fixture("check_status.response.successful")
    video = answer["operations"][0]["operation"]["metadata"]["video"]
    video["fifeUrl"] = 7
    video["leakedToken"] = TOKEN
    video["other"] = "ya29.some-other-token and https://x.example/a?Signature=abc"
    google.on(flow.PATH_CHECK, httpx.Response(200, json=answer))

    with pytest.raises(base.ContractError) as caught:
        google.engine().check([base.OperationRef(OPERATION, SCENE_ID)])

    everything = caught.value.message + caught.value.detail + caplog.text
    assert "fifeUrl" in caught.value.message
    for secret in (TOKEN, "ya29.some-other-token", "Signature=", "GoogleAccessId"):
        assert secret not in everything
    assert "https://storage.googleapis.com/ai-sandbox-videofx/image/" in caught.value.detail


# --- Errors ----------------------------------------------------------------------------------


def test_the_captured_throttle_is_throttled_with_retry_after_from_the_header(google):
    google.on(
        flow.PATH_SUBMIT,
        httpx.Response(429, json=fixture("error.throttled"), headers={"Retry-After": "7"}),
    )

    with pytest.raises(base.Throttled) as caught:
        google.engine().submit(PROJECT_ID, [captured_clip()])

    assert caught.value.retry_after == 7
    assert caught.value.retryable
    assert "rate-limiting" in caught.value.message


def test_a_retry_after_given_as_an_http_date_is_turned_into_seconds():
    now = flow.datetime(2026, 1, 1, 12, 0, 0, tzinfo=flow.UTC)
    assert flow.parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30
    assert flow.parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0
    assert flow.parse_retry_after("soon", now) is None
    assert flow.parse_retry_after(None, now) is None


def test_a_throttle_without_retry_after_has_no_wait(google):
    google.on(flow.PATH_SUBMIT, httpx.Response(429, json=fixture("error.throttled")))

    with pytest.raises(base.Throttled) as caught:
        google.engine().submit(PROJECT_ID, [captured_clip()])

    assert caught.value.retry_after is None


def test_the_captured_unauthenticated_answer_with_a_bearer_token_is_token_expired_without_retry(
    google, caplog
):
    google.on(flow.PATH_SUBMIT, httpx.Response(401, json=fixture("error.unauthenticated")))

    with pytest.raises(base.TokenExpired) as caught:
        google.engine().submit(PROJECT_ID, [captured_clip()])

    assert len(google.requests) == 1
    assert google.sent(flow.PATH_SESSION) == []
    assert TOKEN not in caught.value.message + caught.value.detail + caplog.text


def test_the_captured_unsafe_answer_is_unsafe_naming_the_reason_in_words(google):
    google.on(flow.PATH_SUBMIT, httpx.Response(400, json=fixture("error.unsafe")))

    with pytest.raises(base.Unsafe) as caught:
        google.engine().submit(PROJECT_ID, [captured_clip()])

    assert caught.value.reason == "PUBLIC_ERROR_UNSAFE_GENERATION"
    assert "safety filter" in caught.value.message
    assert not caught.value.retryable


ERROR_CASES = [
    (
        google_error(400, "Bad image", "INVALID_ARGUMENT", "PUBLIC_ERROR_MINOR_INPUT_IMAGE"),
        base.Unsafe,
        "child",
    ),
    (
        google_error(400, "Bad", "INVALID_ARGUMENT", "PUBLIC_ERROR_PROMINENT_PEOPLE_FILTER_FAILED"),
        base.Unsafe,
        "well-known person",
    ),
    (
        google_error(403, "Denied", "PERMISSION_DENIED", "PUBLIC_ERROR_UNUSUAL_ACTIVITY"),
        base.BotCheck,
        "automated-traffic",
    ),
    (
        google_error(403, "Denied", "PERMISSION_DENIED", "PUBLIC_ERROR_SOMETHING_WENT_WRONG"),
        base.BotCheck,
        "automated-traffic",
    ),
    (
        google_error(403, "reCAPTCHA evaluation failed", "PERMISSION_DENIED"),
        base.BotCheck,
        "reCAPTCHA",
    ),
    (
        google_error(429, "Exhausted", "RESOURCE_EXHAUSTED", "PUBLIC_ERROR_USER_QUOTA_REACHED"),
        base.OutOfCredits,
        "run out of credits",
    ),
    (
        google_error(
            400, "Quota", "FAILED_PRECONDITION", "PUBLIC_ERROR_PER_MODEL_DAILY_QUOTA_REACHED"
        ),
        base.ModelQuotaReached,
        # Flow does not say when a daily quota resets, so neither do the words.
        "has used up today's quota for this model; try again later or pick another model",
    ),
    (
        google_error(404, "Requested entity was not found.", "NOT_FOUND"),
        base.ImageUnknown,
        "no longer knows the uploaded start image",
    ),
    (
        google_error(400, "Requested entity was not found.", "INVALID_ARGUMENT"),
        base.ImageUnknown,
        "no longer knows the uploaded start image",
    ),
    (
        google_error(500, "Internal error encountered.", "INTERNAL"),
        base.UpstreamError,
        "internal error",
    ),
    (
        httpx.Response(502, text="<html><body>Bad Gateway</body></html>"),
        base.UpstreamError,
        "HTTP 502",
    ),
    (
        google_error(400, "Invalid value at 'requests[0].seed'", "INVALID_ARGUMENT"),
        base.BadRequest,
        "Invalid value at 'requests[0].seed'",
    ),
    (
        google_error(403, "The caller does not have permission", "PERMISSION_DENIED"),
        base.BadRequest,
        "does not have permission",
    ),
    (
        httpx.Response(
            302, headers={"location": "https://accounts.google.com/signin?continue=secret"}
        ),
        base.ContractError,
        "accounts.google.com/signin",
    ),
    (
        httpx.Response(404, text="<html>Not Found</html>"),
        base.ContractError,
        "without Google's error body",
    ),
]


@pytest.mark.parametrize(("reply", "error_class", "words"), ERROR_CASES)
def test_each_refusal_becomes_the_error_a_team_member_understands(
    google, reply, error_class, words
):
    google.on(flow.PATH_SUBMIT, reply)

    with pytest.raises(base.EngineError) as caught:
        google.engine().submit(PROJECT_ID, [captured_clip()])

    assert type(caught.value) is error_class
    assert words in caught.value.message
    assert "secret" not in caught.value.message
    assert len(google.requests) == 1, "a refused submit is never repeated by the engine"


def test_a_tier_refusal_names_the_model_and_both_tiers(google):
    google.on(
        flow.PATH_SUBMIT,
        google_error(403, "Denied", "PERMISSION_DENIED", "PUBLIC_ERROR_MODEL_ACCESS_DENIED"),
    )

    with pytest.raises(base.TierTooLow) as caught:
        google.engine(tier="PAYGATE_TIER_ONE").submit(PROJECT_ID, [captured_clip()])

    message = caught.value.message
    assert "Veo 3.1 Fast (Ultra)" in message
    assert "veo_3_1_i2v_s_fast_ultra" in message
    assert "Ultra (tier two)" in message
    assert "Pro (tier one)" in message


def test_not_found_on_a_status_call_is_not_mistaken_for_an_unknown_image(google):
    google.on(flow.PATH_CHECK, google_error(404, "Requested entity was not found.", "NOT_FOUND"))

    with pytest.raises(base.BadRequest, match="not found"):
        google.engine().check([base.OperationRef(OPERATION, SCENE_ID)])


def test_a_refused_connection_is_a_network_error(google):
    def refuse(request):
        raise httpx.ConnectError("Connection refused", request=request)

    google.on(flow.PATH_CREDITS, refuse)

    with pytest.raises(base.NetworkError, match="could not reach Flow"):
        google.engine().account_info()


def test_a_read_timeout_is_a_network_error(google):
    def stall(request):
        raise httpx.ReadTimeout("timed out", request=request)

    google.on(flow.PATH_SUBMIT, stall)

    with pytest.raises(base.NetworkError, match="did not answer in time"):
        google.engine().submit(PROJECT_ID, [captured_clip()])


class _Dribble(httpx.SyncByteStream):
    """An answer that arrives a few bytes at a time, each read well within the read timeout."""

    def __iter__(self):
        for _ in range(50):
            time.sleep(0.02)
            yield b" "
        yield b"{}"


def test_an_answer_trickling_past_the_overall_deadline_is_a_network_error(google, settings):
    settings.FLOW_CALL_DEADLINE = 0.2
    google.on(flow.PATH_CREDITS, lambda request: httpx.Response(200, stream=_Dribble()))
    started = time.monotonic()

    with pytest.raises(base.NetworkError, match="within 0.2 seconds"):
        google.engine().account_info()

    assert time.monotonic() - started < 0.6


def test_each_request_gets_explicit_timeouts_no_longer_than_the_deadline(google, settings):
    settings.FLOW_CONNECT_TIMEOUT = 3
    settings.FLOW_READ_TIMEOUT = 40
    settings.FLOW_CALL_DEADLINE = 20
    seen = []

    def record(request):
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={"credits": 1})

    google.on(flow.PATH_CREDITS, record)
    google.engine().account_info()

    (timeout,) = seen
    assert timeout["connect"] == pytest.approx(3, abs=0.1)
    assert 19 < timeout["read"] <= 20
    assert 19 < timeout["write"] <= 20
    assert timeout["pool"] == pytest.approx(3, abs=0.1)


def test_an_enormous_answer_is_refused_as_a_contract_error(google, monkeypatch):
    monkeypatch.setattr(flow, "MAX_ANSWER_BYTES", 1000)
    google.on(flow.PATH_CREDITS, httpx.Response(200, content=b"[" + b"1," * 1000 + b"1]"))

    with pytest.raises(base.ContractError, match="larger than"):
        google.engine().account_info()
