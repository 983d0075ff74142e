"""Access tokens for session-cookie accounts: minted from labs.google, cached, re-minted once
after a 401, and a dead session said in words (Google replayed through httpx.MockTransport)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from generations.engines import base, flow
from tests.flow_fakes import COOKIE, TOKEN, FakeGoogle, google_error

CREDITS = httpx.Response(200, json={"credits": 10, "userPaygateTier": "PAYGATE_TIER_TWO"})
UNAUTHENTICATED = google_error(
    401, "Request had invalid authentication credentials.", "UNAUTHENTICATED"
)


def session(token: str, lives: timedelta = timedelta(hours=5)) -> httpx.Response:
    expires = (datetime.now(UTC) + lives).isoformat().replace("+00:00", "Z")
    return httpx.Response(200, json={"access_token": token, "expires": expires, "user": {}})


class RecordingCache:
    """A cache like the one a worker keeps on the account row."""

    def __init__(self, entry=None) -> None:
        self.entry = entry
        self.writes: list[tuple[str, str, datetime]] = []

    def get(self, key):
        return self.entry

    def set(self, key, token, expires_at):
        self.writes.append((key, token, expires_at))
        self.entry = (token, expires_at)


@pytest.fixture
def google() -> FakeGoogle:
    return FakeGoogle().on(flow.PATH_CREDITS, CREDITS)


def bearers(google: FakeGoogle) -> list[str]:
    return [r.headers["authorization"] for r in google.sent(flow.PATH_CREDITS)]


def test_a_cookie_account_mints_a_token_with_the_cookie_alone_and_uses_it(google):
    google.on(flow.PATH_SESSION, session("ya29.minted-1"))

    google.engine(cookie=True).account_info()

    (mint,) = google.sent(flow.PATH_SESSION)
    assert str(mint.url) == "https://labs.google/fx/api/auth/session"
    assert mint.method == "GET"
    assert mint.headers["cookie"] == f"__Secure-next-auth.session-token={COOKIE}"
    assert "authorization" not in mint.headers
    assert bearers(google) == ["Bearer ya29.minted-1"]
    assert "cookie" not in google.sent(flow.PATH_CREDITS)[0].headers


def test_a_minted_token_is_reused_by_later_calls_and_other_engines_of_the_account(google):
    google.on(flow.PATH_SESSION, session("ya29.minted-1"), session("ya29.minted-2"))
    cache = flow.MemoryTokenCache()

    google.engine(cookie=True, token_cache=cache).account_info()
    google.engine(cookie=True, token_cache=cache).account_info()

    assert len(google.sent(flow.PATH_SESSION)) == 1
    assert bearers(google) == ["Bearer ya29.minted-1"] * 2


def test_the_cache_is_keyed_by_account(google):
    google.on(flow.PATH_SESSION, session("ya29.for-a"), session("ya29.for-b"))
    cache = flow.MemoryTokenCache()

    google.engine(cookie=True, key="a", token_cache=cache).account_info()
    google.engine(cookie=True, key="b", token_cache=cache).account_info()

    assert bearers(google) == ["Bearer ya29.for-a", "Bearer ya29.for-b"]
    assert cache.get("a")[0] == "ya29.for-a"


def test_a_long_lived_token_is_kept_until_an_hour_before_it_expires(google):
    expires = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    google.on(
        flow.PATH_SESSION,
        httpx.Response(200, json={"access_token": "ya29.t", "expires": "2030-01-01T12:00:00.000Z"}),
    )
    cache = RecordingCache()

    google.engine(cookie=True, token_cache=cache).account_info()

    assert cache.writes == [("account-1", "ya29.t", expires - timedelta(hours=1))]
    assert cache.writes[0][2].tzinfo is not None


def test_a_token_living_less_than_an_hour_is_used_until_shortly_before_it_expires():
    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert flow.use_until(now + timedelta(hours=3), now) == now + timedelta(hours=2)
    assert flow.use_until(now + timedelta(hours=1), now) == now + timedelta(minutes=58)
    assert flow.use_until(now + timedelta(minutes=10), now) == now + timedelta(minutes=9)
    assert flow.use_until(now + timedelta(seconds=30), now) == now + timedelta(seconds=27)
    assert flow.use_until(now - timedelta(minutes=1), now) == now


def test_a_cached_token_past_its_time_is_replaced(google):
    google.on(flow.PATH_SESSION, session("ya29.fresh"))
    cache = RecordingCache(("ya29.stale", datetime.now(UTC) - timedelta(seconds=1)))

    google.engine(cookie=True, token_cache=cache).account_info()

    assert bearers(google) == ["Bearer ya29.fresh"]
    assert cache.writes[0][1] == "ya29.fresh"


def test_a_cached_token_in_its_time_is_used_without_minting(google):
    cache = RecordingCache(("ya29.from-the-row", datetime.now(UTC) + timedelta(minutes=30)))

    google.engine(cookie=True, token_cache=cache).account_info()

    assert google.sent(flow.PATH_SESSION) == []
    assert bearers(google) == ["Bearer ya29.from-the-row"]


def test_a_401_mints_once_more_and_retries_the_call_once(google):
    google.on(flow.PATH_SESSION, session("ya29.first"), session("ya29.second"))
    google.on(flow.PATH_CREDITS, UNAUTHENTICATED, CREDITS)
    cache = flow.MemoryTokenCache()

    info = google.engine(cookie=True, token_cache=cache).account_info()

    assert info.credits == 10
    assert len(google.sent(flow.PATH_SESSION)) == 2
    assert bearers(google) == ["Bearer ya29.first", "Bearer ya29.second"]
    assert cache.get("account-1")[0] == "ya29.second"


def test_a_401_after_re_minting_is_a_dead_session(google, caplog):
    google.on(flow.PATH_SESSION, session("ya29.first"), session("ya29.second"))
    google.on(flow.PATH_CREDITS, UNAUTHENTICATED)

    with pytest.raises(base.SessionExpired) as caught:
        google.engine(cookie=True).account_info()

    assert len(google.sent(flow.PATH_CREDITS)) == 2
    assert len(google.sent(flow.PATH_SESSION)) == 2
    assert "session cookie" in caught.value.message
    for secret in (COOKIE, "ya29.first", "ya29.second"):
        assert secret not in caught.value.message + caught.value.detail + caplog.text


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"error": "ACCESS_TOKEN_REFRESH_NEEDED"}),
        httpx.Response(200, json={}),
        httpx.Response(401, json={"message": "Unauthorized"}),
        httpx.Response(302, headers={"location": "https://accounts.google.com/signin"}),
    ],
)
def test_a_dead_session_is_session_expired_and_nothing_is_sent_to_flow(google, answer):
    google.on(flow.PATH_SESSION, answer)

    with pytest.raises(base.SessionExpired) as caught:
        google.engine(cookie=True).account_info()

    assert google.sent(flow.PATH_CREDITS) == []
    assert "Paste a new session cookie" in caught.value.message
    assert not caught.value.retryable


def test_a_session_endpoint_failing_inside_is_an_upstream_error(google):
    google.on(flow.PATH_SESSION, httpx.Response(503, text="<html>unavailable</html>"))

    with pytest.raises(base.UpstreamError):
        google.engine(cookie=True).account_info()


@pytest.mark.parametrize(
    "payload",
    [
        {"access_token": "ya29.x", "expires": "next tuesday"},
        {"access_token": 5, "expires": "2030-01-01T00:00:00Z"},
    ],
)
def test_a_session_answer_of_an_unexpected_shape_is_a_contract_error_without_the_token(
    google, payload
):
    google.on(flow.PATH_SESSION, httpx.Response(200, json=payload))

    with pytest.raises(base.ContractError) as caught:
        google.engine(cookie=True).account_info()

    assert "ya29.x" not in caught.value.message + caught.value.detail


def test_a_bearer_account_never_mints(google):
    google.engine().account_info()

    assert google.sent(flow.PATH_SESSION) == []
    assert bearers(google) == [f"Bearer {TOKEN}"]


def test_threads_of_one_process_needing_a_token_mint_it_once(google):
    def slow_session(request):
        time.sleep(0.05)
        return session("ya29.shared")

    google.on(flow.PATH_SESSION, slow_session)
    cache = flow.MemoryTokenCache()
    errors = []

    def work():
        try:
            google.engine(cookie=True, token_cache=cache).account_info()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(google.sent(flow.PATH_SESSION)) == 1
    assert bearers(google) == ["Bearer ya29.shared"] * 6


def test_credentials_with_both_or_neither_secret_are_refused():
    for token, cookie in (("", ""), ("t", "c")):
        with pytest.raises(ValueError):
            flow.FlowEngine(
                base.Credentials(key="k", tier="t", bearer_token=token, session_cookie=cookie)
            )
