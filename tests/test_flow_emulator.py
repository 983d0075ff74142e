"""The Flow engine and the downloader against the local emulator, over real HTTP on loopback:
a whole cycle, each fault mapped to its error, and token minting, caching and re-minting."""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path

import av
import pytest
from PIL import Image

from generations.engines import base, get_engine
from generations.engines.download import download_to
from generations.engines.flow import MemoryTokenCache

LANDSCAPE_MODEL = "veo_3_1_i2v_s_fast"
PORTRAIT_MODEL = "veo_3_1_i2v_s_fast_portrait"


def start_image(width: int = 640, height: int = 360) -> base.ImageData:
    picture = Image.new("RGB", (width, height), (30, 90, 160))
    for x in range(0, width, 40):
        picture.paste((240, 200, 40), (x, 0, x + 20, height))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=80)
    return base.ImageData(out.getvalue(), "image/jpeg", width, height)


def bearer_engine(emulator, tier: str = "PAYGATE_TIER_TWO") -> base.Engine:
    credentials = base.Credentials(key=str(uuid.uuid4()), tier=tier, bearer_token=emulator.token)
    return get_engine(credentials, token_cache=MemoryTokenCache())


def cookie_engine(emulator, cache: MemoryTokenCache | None = None) -> base.Engine:
    credentials = base.Credentials(
        key="cookie-account", tier="PAYGATE_TIER_TWO", session_cookie=emulator.session_cookie
    )
    return get_engine(credentials, token_cache=cache or MemoryTokenCache())


def clip(media_id: str, prompt: str = "a lighthouse at dusk", **changes) -> base.ClipRequest:
    values = dict(
        request_id=str(uuid.uuid4()),
        prompt=prompt,
        model_key=LANDSCAPE_MODEL,
        aspect=base.Aspect.LANDSCAPE,
        seed=42,
        start_image_media_id=media_id,
    )
    values.update(changes)
    return base.ClipRequest(**values)


def until_settled(engine, refs: list[base.OperationRef], seconds: float = 60) -> base.StatusResult:
    ends = time.monotonic() + seconds
    while True:
        result = engine.check(refs)
        if len(result.clips) == len(refs) and not any(c.state.in_flight for c in result.clips):
            return result
        assert time.monotonic() < ends, f"clips still in flight: {result}"
        time.sleep(0.1)


def submitted(engine, clips: list[base.ClipRequest]) -> list[base.OperationRef]:
    result = engine.submit(str(uuid.uuid4()), clips)
    return [base.OperationRef(c.operation_name, c.request_id) for c in result.clips]


def test_a_batch_of_two_goes_from_upload_to_two_playable_clips_and_posters(flow_emulator, tmp_path):
    engine = bearer_engine(flow_emulator)
    credits_before = engine.account_info().credits

    uploaded = engine.upload_image(start_image())
    clips = [
        clip(uploaded.media_id, "a lighthouse at dusk"),
        clip(
            uploaded.media_id,
            "the same lighthouse, tall",
            aspect=base.Aspect.PORTRAIT,
            model_key=PORTRAIT_MODEL,
            seed=7,
        ),
    ]
    submit = engine.submit(str(uuid.uuid4()), clips)
    assert [c.request_id for c in submit.clips] == [c.request_id for c in clips]
    assert {c.state for c in submit.clips} == {base.ClipState.PENDING}
    refs = [base.OperationRef(c.operation_name, c.request_id) for c in submit.clips]

    result = until_settled(engine, refs)

    assert flow_emulator.stats["submit"] == 1
    assert flow_emulator.stats["upload"] == 1
    assert result.remaining_credits == credits_before - 2 * 20
    by_request = {c.request_id: c for c in result.clips}
    for asked, (width, height) in zip(clips, [(1280, 720), (720, 1280)], strict=True):
        status = by_request[asked.request_id]
        assert status.state == base.ClipState.SUCCESSFUL
        assert status.seed == asked.seed
        folder = tmp_path / asked.request_id
        video = download_to(status.video_url, folder / "clip.mp4", kind="video")
        poster = download_to(status.poster_url, folder / "poster.jpg", kind="image")

        assert video.content_type == "video/mp4"
        with av.open(video.path) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
            assert (stream.codec_context.width, stream.codec_context.height) == (width, height)
        assert abs(frames - 2.0 * 24) <= 1
        with Image.open(poster.path) as picture:
            assert picture.size == (width, height)
        assert sorted(p.name for p in folder.iterdir()) == ["clip.mp4", "poster.jpg"]


SUBMIT_FAULTS = [
    ("[fault:throttle=3]", base.Throttled),
    ("[fault:error500]", base.UpstreamError),
    ("[fault:unsafe]", base.Unsafe),
    ("[fault:quota]", base.OutOfCredits),
    ("[fault:model-quota]", base.ModelQuotaReached),
    ("[fault:botcheck]", base.BotCheck),
]


@pytest.mark.parametrize(("marker", "error_class"), SUBMIT_FAULTS)
def test_each_submit_fault_of_the_emulator_becomes_its_error(flow_emulator, marker, error_class):
    engine = bearer_engine(flow_emulator)
    media_id = engine.upload_image(start_image()).media_id

    with pytest.raises(base.EngineError) as caught:
        engine.submit(str(uuid.uuid4()), [clip(media_id, f"a storm {marker}")])

    assert type(caught.value) is error_class
    assert flow_emulator.stats["clips_submitted"] == 0


def test_a_throttle_carries_the_emulators_retry_after(flow_emulator):
    engine = bearer_engine(flow_emulator)
    media_id = engine.upload_image(start_image()).media_id

    with pytest.raises(base.Throttled) as caught:
        engine.submit(str(uuid.uuid4()), [clip(media_id, "[fault:throttle=3]")])

    assert caught.value.retry_after == 3


def test_an_unsafe_refusal_names_the_reason(flow_emulator):
    engine = bearer_engine(flow_emulator)
    media_id = engine.upload_image(start_image()).media_id

    with pytest.raises(base.Unsafe) as caught:
        engine.submit(str(uuid.uuid4()), [clip(media_id, "[fault:unsafe]")])

    assert caught.value.reason == "PUBLIC_ERROR_UNSAFE_GENERATION"
    assert "safety filter" in caught.value.message


def test_a_failed_render_comes_back_failed_with_its_reason(flow_emulator):
    engine = bearer_engine(flow_emulator)
    media_id = engine.upload_image(start_image()).media_id
    refs = submitted(engine, [clip(media_id, "[fault:fail=PUBLIC_ERROR_AUDIO_FILTERED]")])

    (status,) = until_settled(engine, refs).clips

    assert status.state == base.ClipState.FAILED
    assert status.failure_reason == "PUBLIC_ERROR_AUDIO_FILTERED"


def test_a_status_answer_of_an_unknown_shape_is_a_contract_error(flow_emulator):
    engine = bearer_engine(flow_emulator)
    media_id = engine.upload_image(start_image()).media_id
    refs = submitted(engine, [clip(media_id, "[fault:badshape]")])

    with pytest.raises(base.ContractError, match="checking clips"):
        engine.check(refs)


def test_an_image_the_emulator_does_not_know_is_image_unknown(flow_emulator):
    engine = bearer_engine(flow_emulator)

    with pytest.raises(base.ImageUnknown):
        engine.submit(str(uuid.uuid4()), [clip("CAMa-never-uploaded")])


def test_an_ultra_model_on_tier_one_is_tier_too_low(flow_emulator):
    engine = bearer_engine(flow_emulator, tier="PAYGATE_TIER_ONE")
    media_id = engine.upload_image(start_image()).media_id

    with pytest.raises(base.TierTooLow, match="veo_3_1_i2v_s_fast_ultra"):
        engine.submit(str(uuid.uuid4()), [clip(media_id, model_key="veo_3_1_i2v_s_fast_ultra")])


def test_an_answer_slower_than_the_deadline_is_a_network_error(flow_emulator, settings):
    settings.FLOW_CALL_DEADLINE = 0.5
    engine = bearer_engine(flow_emulator)
    media_id = engine.upload_image(start_image()).media_id
    started = time.monotonic()

    with pytest.raises(base.NetworkError):
        engine.submit(str(uuid.uuid4()), [clip(media_id, "[fault:slow=3]")])

    assert time.monotonic() - started < 1.5


def test_a_closed_port_is_a_network_error(flow_emulator, settings):
    settings.FLOW_API_BASE_URL = "http://127.0.0.1:9"

    with pytest.raises(base.NetworkError, match="could not reach Flow"):
        bearer_engine(flow_emulator).account_info()


# --- Tokens ----------------------------------------------------------------------------------


def test_a_bearer_token_refused_is_token_expired(flow_emulator):
    flow_emulator.set_faults(["token-expiry"])

    with pytest.raises(base.TokenExpired):
        bearer_engine(flow_emulator).account_info()

    assert flow_emulator.stats["session"] == 0


def test_a_session_whose_every_token_is_refused_is_session_expired(flow_emulator):
    flow_emulator.set_faults(["token-expiry"])

    with pytest.raises(base.SessionExpired):
        cookie_engine(flow_emulator).account_info()

    assert flow_emulator.stats["session"] == 2
    assert flow_emulator.stats["credits"] == 2


def test_a_minted_token_is_cached_so_the_second_call_does_not_sign_in_again(flow_emulator):
    cache = MemoryTokenCache()

    first = cookie_engine(flow_emulator, cache).account_info()
    second = cookie_engine(flow_emulator, cache).account_info()

    assert first == second == base.AccountInfo(credits=10000, tier="PAYGATE_TIER_TWO")
    assert flow_emulator.stats["session"] == 1
    token, use_until = cache.get("cookie-account")
    assert token.startswith("ya29.") and token != flow_emulator.token
    assert use_until.tzinfo is not None


def test_after_tokens_expire_a_call_succeeds_with_exactly_one_re_mint(flow_emulator):
    cache = MemoryTokenCache()
    engine = cookie_engine(flow_emulator, cache)
    engine.account_info()
    first_token = cache.get("cookie-account")[0]

    flow_emulator.expire_tokens()
    info = engine.account_info()

    assert info.credits == 10000
    assert flow_emulator.stats["session"] == 2
    assert cache.get("cookie-account")[0] != first_token


def test_a_killed_session_is_session_expired(flow_emulator):
    flow_emulator.kill_session()

    with pytest.raises(base.SessionExpired, match="session cookie"):
        cookie_engine(flow_emulator).account_info()

    assert flow_emulator.stats["credits"] == 0


def test_a_killed_session_is_found_out_when_the_cached_token_dies(flow_emulator):
    cache = MemoryTokenCache()
    engine = cookie_engine(flow_emulator, cache)
    engine.account_info()
    flow_emulator.kill_session()
    flow_emulator.expire_tokens()

    with pytest.raises(base.SessionExpired):
        engine.account_info()


def test_a_wrong_cookie_is_session_expired(flow_emulator):
    credentials = base.Credentials(key="k", tier="PAYGATE_TIER_TWO", session_cookie="not-it")

    with pytest.raises(base.SessionExpired):
        get_engine(credentials, token_cache=MemoryTokenCache()).account_info()


# --- Downloads from the emulator's media host -------------------------------------------------


def one_successful_clip(emulator, prompt: str) -> base.ClipStatus:
    engine = bearer_engine(emulator)
    media_id = engine.upload_image(start_image()).media_id
    (status,) = until_settled(engine, submitted(engine, [clip(media_id, prompt)])).clips
    assert status.state == base.ClipState.SUCCESSFUL
    return status


@pytest.mark.parametrize(
    ("marker", "options", "error_class"),
    [
        ("[fault:expired-url]", {}, base.LinkExpired),
        ("[fault:truncated-download]", {}, base.CutShort),
        ("[fault:slow-download=3]", {"deadline": 0.4}, base.DownloadFailed),
    ],
)
def test_each_download_fault_leaves_the_folder_empty(
    flow_emulator, tmp_path: Path, marker, options, error_class
):
    status = one_successful_clip(flow_emulator, f"a harbour {marker}")
    folder = tmp_path / "take"

    for url, kind in ((status.video_url, "video"), (status.poster_url, "image")):
        with pytest.raises(error_class):
            download_to(url, folder / f"file-{kind}", kind=kind, **options)

    assert list(folder.iterdir()) == []


def test_a_tampered_signature_is_refused_as_an_expired_link(flow_emulator, tmp_path):
    status = one_successful_clip(flow_emulator, "a quiet bay")

    with pytest.raises(base.LinkExpired):
        download_to(status.video_url[:-4] + "AAA=", tmp_path / "clip.mp4", kind="video")

    assert list(tmp_path.iterdir()) == []
