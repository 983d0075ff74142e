"""The Vertex AI engine over real HTTP against the emulator's Vertex routes: signing in with a
service-account key, one call per scene, polling, inline and Cloud Storage clips, and every
error in words."""

from __future__ import annotations

import io
import json
import time
import uuid
from dataclasses import replace
from pathlib import Path

import av
import httpx
import pytest
from PIL import Image, ImageDraw

from generations.engines import base
from generations.engines.base import Aspect, ClipRequest, ClipState, OperationRef
from generations.engines.flow import Answer, MemoryTokenCache
from generations.engines.vertex import VertexEngine, clean_service_account_key
from generations.models import FlowAccount

FAST = "veo-3.1-fast-generate-001"


@pytest.fixture
def vertex(flow_emulator, settings):
    settings.VERTEX_API_BASE_URL = flow_emulator.url
    settings.GOOGLE_STORAGE_BASE_URL = flow_emulator.url
    return flow_emulator


def credentials(emu, *, storage_uri: str = "", token: str = "") -> base.Credentials:
    key = "" if token else clean_service_account_key(json.dumps(emu.service_account_key()))
    return base.Credentials(
        key=str(uuid.uuid4()),
        tier="",
        kind=base.EngineKind.VERTEX,
        bearer_token=token,
        service_account_key=key,
        cloud_project="flowsite-demo",
        location="us-central1",
        storage_uri=storage_uri,
    )


def engine_for(emu, **options) -> VertexEngine:
    return VertexEngine(credentials(emu, **options), token_cache=MemoryTokenCache())


def striped_png() -> bytes:
    """A start image with detail, so that each take's camera move shows."""
    picture = Image.new("RGB", (96, 54), (20, 60, 160))
    draw = ImageDraw.Draw(picture)
    for x in range(0, 96, 12):
        draw.rectangle((x, 0, x + 5, 54), fill=(230, 200, 40))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


IMAGE = base.ImageData(striped_png(), "image/png", 96, 54)


def clips(marker: str = "", takes: int = 1, **options) -> list[ClipRequest]:
    """A scene's takes; ``marker`` is an emulator fault. The caption stays the same, so the
    emulator renders each take once for the whole file."""
    prompt = f"{marker} a lighthouse at dusk".strip()
    image = IMAGE
    options.setdefault("duration", 4)
    return [
        ClipRequest(
            request_id=str(uuid.uuid4()),
            prompt=prompt,
            model_key=FAST,
            aspect=Aspect.LANDSCAPE,
            seed=7,
            start_image=image,
            scene_ref="scene-1",
            **options,
        )
        for _ in range(takes)
    ]


def wait_done(engine: VertexEngine, submitted, timeout: float = 240.0) -> list[base.ClipStatus]:
    refs = [OperationRef(clip.operation_name, clip.request_id) for clip in submitted]
    deadline = time.monotonic() + timeout
    while True:
        result = engine.check(refs)
        if result.clips and all(not clip.state.in_flight for clip in result.clips):
            return sorted(
                result.clips,
                key=lambda clip: refs.index(OperationRef(clip.operation_name, clip.request_id)),
            )
        assert time.monotonic() < deadline, result
        time.sleep(0.1)


def probe(path: Path) -> tuple[float, int, int, bool]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        seconds = float(container.duration) / 1_000_000
        return seconds, video.width, video.height, bool(container.streams.audio)


def test_a_scenes_four_takes_go_as_one_call_and_come_back_inline_as_asked(vertex, tmp_path):
    engine = engine_for(vertex)
    asked = clips(takes=4, audio=True)

    result = engine.submit("project", asked)

    assert vertex.stats["vertex_predict"] == 1, "one predictLongRunning for the scene"
    assert vertex.stats["clips_submitted"] == 4
    operations = {clip.operation_name.rsplit("#", 1)[0] for clip in result.clips}
    assert len(operations) == 1 and len(result.clips) == 4
    done = wait_done(engine, result.clips)
    assert [clip.state for clip in done] == [ClipState.SUCCESSFUL] * 4
    files = []
    for index, clip in enumerate(done):
        kept = engine.fetch_video(clip, tmp_path / f"clip{index}.mp4")
        files.append(Path(kept.path).read_bytes())
        seconds, width, height, audio = probe(Path(kept.path))
        assert round(seconds) == 4 and (width, height) == (1280, 720)
        assert audio, "a clip asked with sound has a sound track"
    assert len(set(files)) == 4, "four different takes"


def test_a_1080p_portrait_clip_without_sound_is_made_as_asked(vertex, tmp_path):
    engine = engine_for(vertex)
    asked = [
        ClipRequest(**{**clip.__dict__, "aspect": Aspect.PORTRAIT})
        for clip in clips(duration=8, resolution="1080p", audio=False)
    ]

    # Eight seconds at 1080p take a while to render on a busy machine.
    done = wait_done(engine, engine.submit("project", asked).clips, timeout=240)
    kept = engine.fetch_video(done[0], tmp_path / "clip.mp4")

    seconds, width, height, audio = probe(Path(kept.path))
    assert round(seconds) == 8 and (width, height) == (1080, 1920) and not audio


def test_clips_written_to_cloud_storage_are_fetched_with_the_accounts_token(vertex, tmp_path):
    engine = engine_for(vertex, storage_uri="gs://studio-bucket/flowsite/")

    done = wait_done(engine, engine.submit("project", clips(takes=2)).clips)

    assert all(clip.video_url.startswith("gs://studio-bucket/flowsite/") for clip in done)
    assert not any(clip.video_data for clip in done)
    kept = engine.fetch_video(done[1], tmp_path / "clip.mp4")
    assert kept.content_type == "video/mp4"
    assert vertex.stats["vertex_storage"] == 1
    assert round(probe(Path(kept.path))[0]) == 4


def test_cloud_storage_refuses_a_download_without_the_token(vertex, tmp_path, settings):
    from generations.engines.download import download_to

    engine = engine_for(vertex, storage_uri="gs://studio-bucket/out")
    done = wait_done(engine, engine.submit("project", clips()).clips)
    bucket, _, name = done[0].video_url.removeprefix("gs://").partition("/")
    url = f"{vertex.url}/download/storage/v1/b/{bucket}/o/{name.replace('/', '%2F')}?alt=media"

    with pytest.raises(base.DownloadError):
        download_to(url, tmp_path / "x.mp4", kind="video", allowed_hosts=[vertex.url[7:]])


def test_a_service_account_mints_one_token_shares_it_and_mints_again_when_refused(vertex):
    cache = MemoryTokenCache()
    account = credentials(vertex)
    first = VertexEngine(account, token_cache=cache)
    submitted = first.submit("project", clips()).clips
    second = VertexEngine(account, token_cache=cache)
    second.check([OperationRef(c.operation_name, c.request_id) for c in submitted])
    assert vertex.stats["vertex_token"] == 1, "one token for the account, shared"
    token_before = cache.get(account.key)[0]

    vertex.expire_tokens()
    done = wait_done(second, submitted)

    assert done[0].state == ClipState.SUCCESSFUL
    assert vertex.stats["vertex_token"] == 2, "refused once, minted once more"
    assert cache.get(account.key)[0] != token_before


def test_a_token_near_its_expiry_is_refreshed_before_it_is_used(vertex):
    from datetime import UTC, datetime, timedelta

    cache = MemoryTokenCache()
    account = credentials(vertex)
    engine = VertexEngine(account, token_cache=cache)
    engine.submit("project", clips())
    token, _ = cache.get(account.key)
    cache.set(account.key, token, datetime.now(UTC) - timedelta(seconds=1))

    engine.submit("project", clips())

    assert vertex.stats["vertex_token"] == 2
    assert cache.get(account.key)[1] > datetime.now(UTC) + timedelta(minutes=30)


def test_a_revoked_key_is_an_account_problem_in_words(vertex):
    engine = engine_for(vertex)
    vertex.revoke_service_account_key()

    with pytest.raises(base.AccountRefused, match="service-account key"):
        engine.submit("project", clips())
    assert vertex.stats["vertex_predict"] == 0


def test_a_pasted_token_that_expired_says_to_paste_a_new_one(vertex):
    engine = engine_for(vertex, token=vertex.token)
    vertex.expire_tokens()

    with pytest.raises(base.TokenExpired, match="Paste a new one"):
        engine.submit("project", clips())


def test_a_partly_filtered_answer_fails_only_the_filtered_takes_with_the_reason(vertex):
    engine = engine_for(vertex)

    done = wait_done(engine, engine.submit("project", clips("[fault:filtered=1]", 3)).clips)

    states = [clip.state for clip in done]
    assert states == [ClipState.SUCCESSFUL, ClipState.SUCCESSFUL, ClipState.FAILED]
    assert "safety filter" in done[2].failure_message
    assert "Support codes" in done[2].failure_message


@pytest.mark.parametrize(
    ("marker", "words"),
    [
        ("api-disabled", "Vertex AI API is not enabled in Google Cloud project flowsite-demo"),
        ("no-permission", "needs the Vertex AI User role"),
        ("not-in-region", "is not available in region us-central1"),
    ],
)
def test_an_account_google_refuses_is_an_account_problem_in_words(vertex, marker, words):
    engine = engine_for(vertex)

    with pytest.raises(base.AccountRefused, match=words):
        engine.submit("project", clips(f"[fault:{marker}]"))


def test_an_invalid_argument_names_the_field_in_words_then_quotes_google(vertex):
    engine = engine_for(vertex)

    with pytest.raises(base.BadRequest) as refused:
        engine.submit("project", clips("[fault:invalid-argument]"))

    assert refused.value.message == (
        "Vertex AI refused the number of takes for this model; change it or pick another "
        "model. Google said: parameters.sampleCount: Invalid value at 'parameters.sampleCount' "
        "(must be 1 to 4): 0"
    )


def test_a_1080p_clip_of_4_seconds_is_refused_as_the_clip_length(vertex):
    engine = engine_for(vertex)

    with pytest.raises(base.BadRequest) as refused:
        engine.submit("project", clips(resolution="1080p"))

    assert refused.value.message.startswith(
        "Vertex AI refused the clip length for this model; change it or pick another model. "
        "Google said: parameters.durationSeconds: "
    ), refused.value.message


def google_error(message: str, field: str = "") -> Answer:
    """Google's body for a 400 (vertex-api README): the message, and where Google lists it,
    the field it is about."""
    error: dict = {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}
    if field:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": message}],
            }
        ]
    return Answer(400, httpx.Headers(), json.dumps({"error": error}).encode())


@pytest.mark.parametrize(
    ("message", "field", "words"),
    [
        ("parameters.sampleCount: Invalid value", "", "the number of takes"),
        ("Invalid value at 'parameters.aspectRatio': \"4:3\"", "", "the aspect ratio"),
        ("Invalid value: 99999999999", "parameters.seed", "the seed"),
        ('Invalid value: "8k"', "parameters.resolution", "the resolution"),
        ("Too long.", "parameters.negativePrompt", "the negative prompt"),
        ('Invalid value: "everyone"', "parameters.personGeneration", "the choice of who"),
        ("Not supported by this model.", "parameters.generateAudio", "the sound setting"),
        ("Image could not be decoded.", "instances[0].image", "the start image"),
        ("lastFrame is not supported.", "instances[0].lastFrame", "the end frame"),
        ("Bad mimeType.", "instances[0].referenceImages[1].image", "the reference images"),
    ],
)
def test_each_field_flowsite_knows_is_named_in_words_before_googles_text(
    vertex, message, field, words
):
    engine = engine_for(vertex)
    refusal = engine._error(google_error(message, field), engine._own_model(FAST), "submitting")

    assert isinstance(refusal, base.BadRequest)
    assert refusal.message.startswith(f"Vertex AI refused {words}"), refusal.message
    assert refusal.message.endswith(f"Google said: {f'{field}: ' if field else ''}{message}")


@pytest.mark.parametrize(
    ("message", "field", "today"),
    [
        (
            'Invalid value: "s3://bucket"',
            "parameters.storageUri",
            'Vertex AI refused the request (parameters.storageUri: Invalid value: "s3://bucket").',
        ),
        (
            "Request contains an invalid argument.",
            "",
            "Vertex AI refused the request: Request contains an invalid argument.",
        ),
    ],
)
def test_a_refusal_about_a_field_flowsite_does_not_know_keeps_googles_words(
    vertex, message, field, today
):
    engine = engine_for(vertex)
    refusal = engine._error(google_error(message, field), engine._own_model(FAST), "submitting")

    assert refusal.message == today


@pytest.mark.parametrize(
    ("field", "opening"),
    [
        ("instances[0].image", "Vertex AI refused the start image for this model;"),
        ("parameters.storageUri", "Vertex AI refused the request (parameters.storageUri:"),
    ],
)
def test_a_field_violation_carrying_a_signed_url_or_a_token_reaches_no_card_or_log(
    vertex, field, opening
):
    token = "alices-own-bearer-token-0123456789"
    leaky = (
        "Could not read https://storage.googleapis.com/b/start.png?X-Goog-Signature=abc123 "
        f"with ya29.a0AfB_secret and {token}"
    )
    answer = google_error("Request contains an invalid argument.", field)
    body = json.loads(answer.body)
    body["error"]["details"][0]["fieldViolations"][0]["description"] = leaky
    answer = Answer(400, httpx.Headers(), json.dumps(body).encode())

    engine = engine_for(vertex, token=token)
    refusal = engine._error(answer, engine._own_model(FAST), "submitting")

    assert refusal.message.startswith(opening), refusal.message
    assert "https://storage.googleapis.com/b/start.png?[signature removed]" in refusal.message
    assert "ya29.[redacted]" in refusal.message and "[redacted]" in refusal.message
    for text in (refusal.message, refusal.detail):
        assert "abc123" not in text and "a0AfB_secret" not in text and token not in text, text


def test_an_operation_refused_for_a_field_names_it_in_words(vertex):
    answer = {"done": True, "error": {"code": 3, "message": "parameters.durationSeconds: Invalid"}}

    clip = engine_for(vertex)._clip_status(OperationRef("op", "take"), 0, answer)

    assert clip.state == ClipState.FAILED
    assert clip.failure_message == (
        "Vertex AI refused the clip length for this model; change it or pick another model. "
        "Google said: parameters.durationSeconds: Invalid"
    )


def test_quota_is_a_back_off_with_googles_retry_after(vertex):
    engine = engine_for(vertex)

    with pytest.raises(base.Throttled, match="quota") as refused:
        engine.submit("project", clips("[fault:throttle=7]"))
    assert refused.value.retry_after == 7


@pytest.mark.parametrize(
    ("code", "words"), [(3, "refused to render"), (8, "ran out of quota"), (13, "internal error")]
)
def test_an_operation_that_ends_in_an_error_fails_its_takes_in_words(vertex, code, words):
    engine = engine_for(vertex)

    done = wait_done(engine, engine.submit("project", clips(f"[fault:op-error={code}]", 2)).clips)

    assert [clip.state for clip in done] == [ClipState.FAILED] * 2
    assert words in done[0].failure_message


def test_polls_run_one_call_per_operation_with_a_bounded_number_in_flight(vertex, settings):
    settings.VERTEX_MAX_CONCURRENT_POLLS = 3
    engine = engine_for(vertex)
    submitted = []
    for index in range(5):
        asked = [
            ClipRequest(**{**clip.__dict__, "scene_ref": f"scene-{index}"})
            for clip in clips("[fault:stuck]", 2)
        ]
        submitted += engine.submit("project", asked).clips
    assert vertex.stats["vertex_predict"] == 5

    vertex.set_faults(["slow=0.3"])

    result = engine.check([OperationRef(c.operation_name, c.request_id) for c in submitted])

    assert vertex.stats["vertex_fetch"] == 5, "one call per operation, not per take"
    assert vertex.stats["vertex_fetch_max_in_flight"] == 3, "at most K at once, and K used"
    assert [clip.state for clip in result.clips] == [ClipState.ACTIVE] * 10


def test_a_throttled_poll_stops_the_calls_not_yet_made_and_backs_off(vertex, settings):
    settings.VERTEX_MAX_CONCURRENT_POLLS = 1
    engine = engine_for(vertex)
    submitted = []
    for index in range(4):
        asked = [
            ClipRequest(**{**clip.__dict__, "scene_ref": f"scene-{index}"})
            for clip in clips("[fault:stuck]")
        ]
        submitted += engine.submit("project", asked).clips
    vertex.set_faults(["throttle=9"])

    with pytest.raises(base.Throttled) as refused:
        engine.check([OperationRef(c.operation_name, c.request_id) for c in submitted])

    assert refused.value.retry_after == 9
    assert vertex.stats["vertex_fetch"] == 1, "no further call once throttled"


def test_a_take_is_asked_about_at_the_host_of_the_region_its_operation_names(settings):
    # The account was moved to europe-west4 while the take rendered in us-central1.
    settings.VERTEX_API_BASE_URL = ""
    seen: list[httpx.Request] = []

    def google(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        name = json.loads(request.content).get("operationName") or OPERATION.format(
            project="flowsite-demo", region="europe-west4"
        )
        return httpx.Response(200, json={"name": name, "done": False})

    moved = replace(credentials(None, token="ya29.test"), location="europe-west4")
    engine = VertexEngine(
        moved, token_cache=MemoryTokenCache(), transport=httpx.MockTransport(google)
    )
    earlier = OPERATION.format(project="flowsite-demo", region="us-central1")

    result = engine.check([OperationRef(f"{earlier}#0", "take-1")])
    engine.submit("project", clips())

    assert [clip.state for clip in result.clips] == [ClipState.ACTIVE]
    asked, submitted = (str(request.url) for request in seen)
    assert asked == (
        "https://us-central1-aiplatform.googleapis.com/v1/projects/flowsite-demo/locations/"
        f"us-central1/publishers/google/models/{FAST}:fetchPredictOperation"
    )
    assert submitted.startswith("https://europe-west4-aiplatform.googleapis.com/v1/projects/")
    assert "/locations/europe-west4/" in submitted


OPERATION = (
    "projects/{project}/locations/{region}/publishers/google/models/" + FAST + "/operations/42"
)


def test_an_operation_of_another_cloud_project_is_not_asked_about_and_fails_in_words(vertex):
    engine = engine_for(vertex)
    [mine] = engine.submit("project", clips("[fault:stuck]")).clips
    theirs = OPERATION.format(project="someone-else", region="us-central1")

    result = engine.check(
        [OperationRef(mine.operation_name, "mine"), OperationRef(f"{theirs}#0", "theirs")]
    )

    states = {clip.request_id: (clip.state, clip.failure_message) for clip in result.clips}
    assert states["mine"][0] in (ClipState.PENDING, ClipState.ACTIVE)
    assert states["theirs"] == (
        ClipState.FAILED,
        "Vertex AI made this take in Google Cloud project someone-else, and the account is now "
        "on project flowsite-demo; Flowsite does not ask about another project's takes with "
        "this account's credentials, so it cannot fetch its clip.",
    )
    assert vertex.stats["vertex_fetch"] == 1, "only the account's own operation was asked about"


def test_an_operation_whose_region_is_not_a_region_is_never_sent_the_token(settings):
    settings.VERTEX_API_BASE_URL = ""

    def google(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"nothing may be sent, yet {request.url} was called")

    engine = VertexEngine(
        credentials(None, token="ya29.test"),
        token_cache=MemoryTokenCache(),
        transport=httpx.MockTransport(google),
    )
    odd = OPERATION.format(project="flowsite-demo", region="attacker.example")

    with pytest.raises(base.ContractError):
        engine.check([OperationRef(f"{odd}#0", "take-1")])


def test_takes_of_two_scenes_go_as_two_calls(vertex):
    engine = engine_for(vertex)
    first = clips(takes=2)
    second = [ClipRequest(**{**c.__dict__, "scene_ref": "scene-2"}) for c in clips(takes=1)]

    result = engine.submit("project", first + second)

    assert vertex.stats["vertex_predict"] == 2
    assert len({clip.operation_name.rsplit("#", 1)[0] for clip in result.clips}) == 2


def test_a_lost_answer_of_one_scene_is_reported_lost_and_the_other_kept(vertex, settings):
    settings.FLOW_CALL_DEADLINE = 1.0
    engine = engine_for(vertex)
    engine.submit("project", clips())  # the token is minted before the deadline matters
    slow = [ClipRequest(**{**c.__dict__, "scene_ref": "slow"}) for c in clips("[fault:slow=3]")]
    fine = clips(takes=1)

    result = engine.submit("project", slow + fine)

    assert [clip.request_id for clip in result.clips] == [fine[0].request_id]
    assert list(result.lost) == [slow[0].request_id]
    assert "did not answer in time" in result.lost[slow[0].request_id]


def test_a_call_past_its_deadline_names_vertex_ai_not_flow(vertex, settings):
    settings.FLOW_CALL_DEADLINE = 0
    engine = engine_for(vertex, token=vertex.token)

    with pytest.raises(base.NetworkError) as late:
        engine.submit("project", clips())

    assert late.value.message.startswith("Vertex AI did not answer within 0 seconds")
    assert "Flow " not in late.value.message


def test_a_poll_that_fails_unexpectedly_says_vertex_ai_had_an_internal_error(vertex, monkeypatch):
    engine = engine_for(vertex)
    [clip] = engine.submit("project", clips("[fault:stuck]")).clips

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(engine, "_call", broken)
    with pytest.raises(base.UpstreamError) as failed:
        engine.check([OperationRef(clip.operation_name, clip.request_id)])

    assert failed.value.message == "Vertex AI had an internal error."


def test_an_account_needs_a_key_or_a_token(vertex):
    with pytest.raises(ValueError, match="exactly one"):
        VertexEngine(
            credentials(vertex, token="").__class__(
                key="k", tier="", kind="vertex", cloud_project="p"
            )
        )


def test_a_key_file_that_is_not_a_service_account_key_is_refused_in_words():
    with pytest.raises(ValueError, match="not JSON"):
        clean_service_account_key("ya29.not-a-key")
    with pytest.raises(ValueError, match="not a service-account key"):
        clean_service_account_key('{"type": "authorized_user"}')
    with pytest.raises(ValueError, match="lacks client_email, private_key"):
        clean_service_account_key('{"type": "service_account", "token_uri": "https://x"}')


def test_the_stored_key_is_encrypted_at_rest(db, vertex):
    from django.db import connection

    key = clean_service_account_key(json.dumps(vertex.service_account_key()))
    account = FlowAccount.objects.create(
        label="Cloud", kind="vertex", vertex_project="flowsite-demo", service_account_key=key
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT service_account_key FROM generations_flowaccount WHERE id = %s", [account.pk]
        )
        raw = cursor.fetchone()[0]
    assert raw.startswith("fernet:") and "PRIVATE KEY" not in raw
    assert FlowAccount.objects.get(pk=account.pk).service_account_key == key
