"""Google Flow spoken exactly as its web client speaks it (the captured contract "v1").

This is the only module in Flowsite that knows a Flow URL path or JSON key. Everything it
returns or raises is a type from ``base``. The bodies Flow was observed to send are kept in
tests/data/flow-api/, and the local emulator (generations/emulator/) answers in the same shape.

Why the code looks the way it does:
- Flow is a private API that has changed shape several times, so every answer is checked
  field by field and anything unexpected becomes a ``ContractError`` that quotes the odd part
  (redacted), instead of a KeyError deep inside a worker.
- Submitting costs credits. The engine never repeats a submit on its own, except after a 401,
  which proves the first attempt was refused before anything was spent.
- Tokens, cookies and signed URLs never appear in a message, a detail or a log line.

Long because it is the whole of one upstream contract (tokens from a cookie, uploads, batched
submits and status checks, every error in words), and keeping that in one module is what makes
it the only place that knows Flow's JSON. Its plumbing that knows no Flow JSON (the token cache,
``Deadline``, ``send``, ``contract_error``) serves vertex.py too.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from ..redaction import redact
from . import base, catalogue
from .tls import http_client

logger = logging.getLogger(__name__)

# --- The captured contract -----------------------------------------------------------------

PATH_UPLOAD = "/v1:uploadUserImage"
PATH_SUBMIT = "/v1/video:batchAsyncGenerateVideoStartImage"
# Public clients' paths for the other operations, in the same envelope (README §6).
PATH_EXTEND = "/v1/video:batchAsyncGenerateVideoExtendVideo"
PATH_UPSCALE = "/v1/video:batchAsyncGenerateVideoUpsampleVideo"
UPSCALE_RESOLUTIONS = {"1080p": "VIDEO_RESOLUTION_1080P", "4k": "VIDEO_RESOLUTION_4K"}
# The other ways to make a clip, in the captured envelope (flow-api README §6).
PATH_SUBMIT_TEXT = "/v1/video:batchAsyncGenerateVideoText"
PATH_SUBMIT_FRAMES = "/v1/video:batchAsyncGenerateVideoStartAndEndImage"
PATH_SUBMIT_REFERENCES = "/v1/video:batchAsyncGenerateVideoReferenceImages"
SUBMIT_PATHS = {
    base.Mode.TEXT: PATH_SUBMIT_TEXT,
    base.Mode.IMAGE: PATH_SUBMIT,
    base.Mode.FRAMES: PATH_SUBMIT_FRAMES,
    base.Mode.INGREDIENTS: PATH_SUBMIT_REFERENCES,
}
REFERENCE_USAGE = "IMAGE_USAGE_TYPE_ASSET"
PATH_CHECK = "/v1/video:batchCheckAsyncVideoGenerationStatus"
PATH_CREDITS = "/v1/credits"
PATH_SESSION = "/fx/api/auth/session"
SESSION_COOKIE_NAME = "__Secure-next-auth.session-token"

# The web client runs on labs.google; the API checks where calls come from.
ORIGIN = "https://labs.google"
REFERER = "https://labs.google/"
# The body is JSON, but the web client labels it text/plain (it avoids a CORS preflight).
BODY_CONTENT_TYPE = "text/plain;charset=UTF-8"

TOOL_UPLOAD = "ASSET_MANAGER"
TOOL_GENERATE = "PINHOLE"

VIDEO_ASPECTS = {
    base.Aspect.LANDSCAPE: "VIDEO_ASPECT_RATIO_LANDSCAPE",
    base.Aspect.PORTRAIT: "VIDEO_ASPECT_RATIO_PORTRAIT",
}
# Width / height of each image aspect Flow knows; an upload gets the nearest one.
IMAGE_ASPECTS = {
    "IMAGE_ASPECT_RATIO_LANDSCAPE": 16 / 9,
    "IMAGE_ASPECT_RATIO_LANDSCAPE_FOUR_THREE": 4 / 3,
    "IMAGE_ASPECT_RATIO_SQUARE": 1.0,
    "IMAGE_ASPECT_RATIO_PORTRAIT_THREE_FOUR": 3 / 4,
    "IMAGE_ASPECT_RATIO_PORTRAIT": 9 / 16,
}

STATUS_PREFIX = "MEDIA_GENERATION_STATUS_"
STATES = {
    "MEDIA_GENERATION_STATUS_PENDING": base.ClipState.PENDING,
    "MEDIA_GENERATION_STATUS_ACTIVE": base.ClipState.ACTIVE,
    "MEDIA_GENERATION_STATUS_SUCCESSFUL": base.ClipState.SUCCESSFUL,
    "MEDIA_GENERATION_STATUS_FAILED": base.ClipState.FAILED,
    "MEDIA_GENERATION_STATUS_CANCELLED": base.ClipState.CANCELLED,
}
# Some clients saw MEDIA_GENERATION_STATUS_ERROR_*; all of them mean the clip will not come.
ERROR_STATUS_PREFIX = "MEDIA_GENERATION_STATUS_ERROR"
# A status call repeats each operation exactly as the submit call returned it.
SUBMITTED_STATUS = "MEDIA_GENERATION_STATUS_PENDING"

REASON_MODEL_ACCESS_DENIED = "PUBLIC_ERROR_MODEL_ACCESS_DENIED"
BOT_CHECK_REASONS = {"PUBLIC_ERROR_UNUSUAL_ACTIVITY", "PUBLIC_ERROR_SOMETHING_WENT_WRONG"}
# What Flow's reason codes mean, in a team member's words ("{given}": what Flow was given,
# base.GIVEN_WORDS), for a refused call and for a clip that failed alike. Each sentence keeps
# its code for whoever reports the problem; an unknown code shows after a generic sentence.
# The account's credits are spent; or one model's daily quota is, on that account.
REASON_OUT_OF_CREDITS = "PUBLIC_ERROR_USER_QUOTA_REACHED"
REASON_MODEL_QUOTA = "PUBLIC_ERROR_PER_MODEL_DAILY_QUOTA_REACHED"
QUOTA_REASONS = {
    REASON_OUT_OF_CREDITS: (
        "The Flow account has run out of credits; add credits or use another account."
    ),
    REASON_MODEL_QUOTA: (
        "The Flow account has used up today's quota for this model; try again later or "
        "pick another model (Flow does not say when the quota resets)."
    ),
}
UNSAFE_REASONS = {
    "PUBLIC_ERROR_UNSAFE_GENERATION": "Flow's safety filter refused {given}.",
    "PUBLIC_ERROR_MINOR_INPUT_IMAGE": (
        "Flow refused an image it was given because it appears to show a child."
    ),
    "PUBLIC_ERROR_PROMINENT_PEOPLE_FILTER_FAILED": (
        "Flow refused {given} because it appears to show a well-known person."
    ),
}
REASONS = {
    **QUOTA_REASONS,
    **UNSAFE_REASONS,
    "PUBLIC_ERROR_AUDIO_FILTERED": "Flow's safety filter blocked the clip's generated audio.",
    "PUBLIC_ERROR_SOMETHING_WENT_WRONG": "Flow failed while rendering {what}.",
}
# What each call was given, for its refusals.
PATH_GIVEN = {
    **{path: base.GIVEN_WORDS[mode] for mode, path in SUBMIT_PATHS.items()},
    PATH_EXTEND: base.GIVEN_WORDS[base.Mode.EXTEND],
    PATH_UPSCALE: base.UPSCALE_GIVEN,
}


def with_code(sentence: str, code: str) -> str:
    """A sentence for people with Flow's code kept for support: "… refused it (CODE)."."""
    return f"{sentence.rstrip('.')} ({code})."


def reason_words(code: str, given: str, what: str = "this take") -> str:
    """Flow's reason ``code`` for ``what`` (a take or an upscale), made from ``given``, in
    words, its code kept."""
    code = code.strip()
    if not code:
        return f"Flow could not render {what} and gave no reason."
    sentence = REASONS.get(code, "Flow could not render {what}.")
    return with_code(sentence.format(given=given, what=what), code)


NOT_FOUND_MESSAGE = "requested entity was not found"

# Flow's answers are a few kilobytes, but an upscale's may carry the MP4 itself in base64
# (``rawBytes``); anything larger than such a clip is not an answer we know.
MAX_ANSWER_BYTES = 96 * 1024 * 1024
# Minted tokens are used until an hour before they expire (as the web client does), or, for
# tokens that live less than that, until shortly before they expire.
REFRESH_MARGIN = timedelta(hours=1)
SHORT_TOKEN_MARGIN = timedelta(minutes=2)


# --- Token cache ---------------------------------------------------------------------------


class MemoryTokenCache:
    """The default token cache: one per process, shared by every engine, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[str, datetime]] = {}

    def get(self, key: str) -> tuple[str, datetime] | None:
        with self._lock:
            return self._items.get(key)

    def set(self, key: str, token: str, expires_at: datetime) -> None:
        with self._lock:
            self._items[key] = (token, expires_at)


DEFAULT_TOKEN_CACHE = MemoryTokenCache()

# One lock per account, so that threads of one process needing a token mint it once.
_mint_locks: dict[str, threading.Lock] = {}
_mint_locks_guard = threading.Lock()


def mint_lock(key: str) -> threading.Lock:
    with _mint_locks_guard:
        return _mint_locks.setdefault(key, threading.Lock())


def use_until(expires: datetime, now: datetime) -> datetime:
    """When to stop using a token that really expires at ``expires``."""
    if expires - REFRESH_MARGIN > now + SHORT_TOKEN_MARGIN:
        return expires - REFRESH_MARGIN
    lifetime = expires - now
    if lifetime <= timedelta(0):
        # Already expired by our clock: good for the call in hand only.
        return now
    return expires - min(SHORT_TOKEN_MARGIN, lifetime / 10)


def cached_token(
    credentials: base.Credentials,
    cache: base.TokenCache,
    mint: Callable[[], tuple[str, datetime]],
    *,
    refused: str,
    upstream: str,
) -> str:
    """The access token to use: the pasted one, or the cached one, or a fresh one from
    ``mint``, cached until shortly before it expires (one mint per account at a time).

    ``refused`` is a token the upstream just answered 401 to: never hand it out again.
    """
    if credentials.bearer_token:
        return credentials.bearer_token
    with mint_lock(credentials.key):
        cached = cache.get(credentials.key)
        if cached and cached[0] != refused and cached[1] > datetime.now(UTC):
            return cached[0]
        token, expires = mint()
        cache.set(credentials.key, token, use_until(expires, datetime.now(UTC)))
        logger.info("Minted a %s access token for account %s", upstream, credentials.key)
        return token


# --- Redaction -----------------------------------------------------------------------------

_SECRET_KEYS = {"access_token", "rawImageBytes", "authorization", "cookie"}


def _redact_value(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {
            key: "[redacted]" if key in _SECRET_KEYS else _redact_value(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact_value(item, secrets) for item in value]
    if isinstance(value, str):
        return redact(value, secrets)
    return value


def quote(value: Any, secrets: tuple[str, ...] = (), limit: int = 300) -> str:
    """A short, redacted rendering of part of an answer, for messages and logs."""
    if isinstance(value, str | bytes):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        text = redact(text, secrets)
    else:
        text = json.dumps(_redact_value(value, secrets), ensure_ascii=False, sort_keys=True)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Small helpers -------------------------------------------------------------------------


class Deadline:
    """One overall time budget (FLOW_CALL_DEADLINE) across connects, retries and body reads
    of a call to ``upstream``, which its errors name."""

    def __init__(self, what: str, upstream: str = "Flow") -> None:
        self.seconds = float(settings.FLOW_CALL_DEADLINE)
        self.what = what
        self.upstream = upstream
        self.end = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def check(self) -> None:
        if self.remaining() <= 0:
            raise base.NetworkError(
                f"{self.upstream} did not answer within {self.seconds:g} seconds ({self.what}).",
                detail="overall call deadline passed",
            )

    def timeout(self) -> httpx.Timeout:
        left = max(self.remaining(), 0.001)
        connect = min(float(settings.FLOW_CONNECT_TIMEOUT), left)
        read = min(float(settings.FLOW_READ_TIMEOUT), left)
        return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


@dataclass(frozen=True)
class Answer:
    """An upstream's answer, its body read whole (already decoded where it came gzipped)."""

    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        """The body's JSON, or None where it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def send(
    client: httpx.Client,
    method: str,
    url: str,
    deadline: Deadline,
    *,
    max_bytes: int,
    **request: Any,
) -> Answer:
    """One call within ``deadline`` (``request``: httpx's headers and content or json), its
    answer read whole but never past ``max_bytes``. A timeout or an unreachable host is a
    ``NetworkError`` naming the deadline's upstream; neither quotes the URL's query."""
    deadline.check()
    upstream = deadline.upstream
    started = time.monotonic()
    path = urlsplit(url).path
    try:
        with client.stream(method, url, timeout=deadline.timeout(), **request) as response:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise base.ContractError(
                        f"{upstream} sent an answer larger than {max_bytes // (1024 * 1024)} MB "
                        f"({deadline.what}); Flowsite does not expect that.",
                    )
                deadline.check()
                chunks.append(chunk)
    except httpx.TimeoutException as exc:
        raise base.NetworkError(
            f"{upstream} did not answer in time ({deadline.what}).",
            detail=f"{type(exc).__name__} on {method} {path}",
        ) from None
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        raise base.NetworkError(
            f"Flowsite could not reach {upstream} ({deadline.what}).",
            detail=f"{type(exc).__name__} on {method} {path}: {redact(str(exc))}",
        ) from None
    logger.debug(
        "%s %s %s answered %s in %.2fs",
        upstream,
        method,
        path,
        response.status_code,
        time.monotonic() - started,
    )
    return Answer(response.status_code, response.headers, b"".join(chunks))


def contract_error(
    upstream: str, what: str, problem: str, part: Any, secrets: tuple[str, ...]
) -> base.ContractError:
    """An answer of a shape Flowsite does not know: what was odd, in words, for the card; the
    odd part itself (redacted) only in the log, where whoever fixes it reads it."""
    error = base.ContractError(
        f"{upstream} answered in a shape Flowsite does not know ({what}): {problem}. "
        "The answer is in the worker's log for an admin.",
        detail=quote(part, secrets, 2000),
    )
    logger.warning("%s contract mismatch while %s: %s: %s", upstream, what, problem, error.detail)
    return error


def image_aspect(width: int, height: int) -> str:
    """The Flow image aspect nearest to ``width`` × ``height`` (compared on a log scale)."""
    if width <= 0 or height <= 0:
        return "IMAGE_ASPECT_RATIO_LANDSCAPE"
    ratio = math.log(width / height)
    return min(IMAGE_ASPECTS, key=lambda name: abs(math.log(IMAGE_ASPECTS[name]) - ratio))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (a number of seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(seconds, 0.0)


def _as_int(value: Any) -> int | None:
    """An integer from JSON, where Google may write int64 values as strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value.strip()):
        return int(value)
    return None


def _parse_expiry(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Epoch seconds (or milliseconds, which some endpoints use).
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# --- The engine ----------------------------------------------------------------------------


class FlowEngine:
    """``base.Engine`` over Flow's captured REST contract.

    ``transport`` is for tests (``httpx.MockTransport``). Every setting is read when a call is
    made, so a test can change it after building the engine.
    """

    def __init__(
        self,
        credentials: base.Credentials,
        *,
        api_base_url: str | None = None,
        labs_base_url: str | None = None,
        token_cache: base.TokenCache | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if bool(credentials.bearer_token) == bool(credentials.session_cookie):
            raise ValueError("Flow credentials need exactly one of a bearer token or a cookie.")
        self.credentials = credentials
        self._api_base_url = api_base_url
        self._labs_base_url = labs_base_url
        self.token_cache = token_cache if token_cache is not None else DEFAULT_TOKEN_CACHE
        self._transport = transport
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        # One client per engine: building one builds a TLS context, and reusing it keeps
        # connections to Flow alive across the calls of a polling pass.
        if self._client is None:
            self._client = http_client(self._transport)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- base.Engine ---

    def upload_image(self, image: base.ImageData) -> base.UploadedImage:
        body = {
            "imageInput": {
                "rawImageBytes": base64.b64encode(image.data).decode("ascii"),
                "mimeType": image.mime_type,
                "isUserUploaded": True,
                "aspectRatio": image_aspect(image.width, image.height),
            },
            "clientContext": {
                "sessionId": f";{int(time.time() * 1000)}",
                "tool": TOOL_UPLOAD,
            },
        }
        answer = self._call("POST", PATH_UPLOAD, body, what="uploading a start image")
        shape = _Shape(self, "uploading a start image")
        media = shape.need(answer, "mediaGenerationId", dict)
        media_id = shape.need(media, "mediaGenerationId", str, where="mediaGenerationId")
        size = {}
        for key, fallback in (("width", image.width), ("height", image.height)):
            number = _as_int(answer.get(key, fallback))
            shape.require(number is not None and number > 0, f"'{key}' is not a size", answer)
            size[key] = number
        return base.UploadedImage(media_id=media_id, width=size["width"], height=size["height"])

    def submit(self, project_ref: str, clips: list[base.ClipRequest]) -> base.SubmitResult:
        """One submit call: clips of one mode (text, start image, frames, ingredients), or
        extensions of ready clips; one kind per call, as Flow has one path for each."""
        if not clips:
            raise ValueError("submit() needs at least one clip.")
        extending = {clip.extends for clip in clips}
        if len(extending) > 1:
            raise ValueError("One submit call either extends clips or starts them, not both.")
        if extending == {True}:
            requests = [self._extend_request(clip) for clip in clips]
            return self._send_requests(PATH_EXTEND, project_ref, requests, what="extending clips")
        modes = {base.Mode(clip.mode) for clip in clips}
        if len(modes) != 1 or next(iter(modes)) not in SUBMIT_PATHS:
            raise ValueError("A submit's clips share one mode Flow has a call for.")
        requests = [self._request(clip) for clip in clips]
        path = SUBMIT_PATHS[modes.pop()]
        return self._send_requests(path, project_ref, requests, what="submitting clips")

    @staticmethod
    def _extend_request(clip: base.ClipRequest) -> dict:
        if not clip.source_media_id or clip.source_frames is None:
            raise base.BadRequest(
                "Only a clip Flow made can be extended on Flow, and this one has no Flow media id."
            )
        first, last = clip.source_frames
        return {
            "aspectRatio": VIDEO_ASPECTS[base.Aspect(clip.aspect)],
            "seed": clip.seed,
            "textInput": {"prompt": clip.prompt},
            "videoModelKey": clip.model_key,
            "videoInput": {
                "mediaId": clip.source_media_id,
                "startFrameIndex": first,
                "endFrameIndex": last,
            },
            "metadata": {"sceneId": clip.request_id},
        }

    def upscale(self, project_ref: str, requests: list[base.UpscaleRequest]) -> base.SubmitResult:
        """Ask Flow to upscale ready clips; polled with ``check`` like any clip. The request
        carries no prompt (Flow's own client sends none)."""
        if not requests:
            raise ValueError("upscale() needs at least one clip.")
        bodies = [
            {
                "aspectRatio": VIDEO_ASPECTS[base.Aspect(item.aspect)],
                "seed": item.seed,
                "videoModelKey": item.model_key,
                "metadata": {"sceneId": item.request_id},
                "videoInput": {"mediaId": item.media_id},
                "resolution": UPSCALE_RESOLUTIONS[item.resolution],
            }
            for item in requests
        ]
        return self._send_requests(PATH_UPSCALE, project_ref, bodies, what="upscaling clips")

    def _send_requests(
        self, path: str, project_ref: str, requests: list[dict], *, what: str
    ) -> base.SubmitResult:
        """One batch call in the captured envelope; each operation matched by its sceneId.
        Every request names its clip (``metadata.sceneId``) and model (``videoModelKey``)."""
        request_ids = [request["metadata"]["sceneId"] for request in requests]
        models = [request["videoModelKey"] for request in requests]
        if len(set(request_ids)) != len(request_ids):
            raise ValueError("Each clip of a submit needs its own request_id.")
        body = {
            "clientContext": {
                "projectId": project_ref,
                "tool": TOOL_GENERATE,
                "userPaygateTier": self.credentials.tier,
            },
            "requests": requests,
        }
        answer = self._call("POST", path, body, what=what, models=models)
        shape = _Shape(self, what)
        by_request: dict[str, base.SubmittedClip] = {}
        for entry in shape.need(answer, "operations", list):
            clip = shape.submitted(entry)
            shape.require(
                clip.request_id in request_ids and clip.request_id not in by_request,
                "an operation answers a clip that was not asked for (or twice)",
                entry,
            )
            by_request[clip.request_id] = clip
        missing = [rid for rid in request_ids if rid not in by_request]
        shape.require(not missing, f"no operation came back for {len(missing)} clip(s)", answer)
        return base.SubmitResult(
            clips=[by_request[rid] for rid in request_ids],
            remaining_credits=shape.credits(answer),
        )

    @staticmethod
    def _request(clip: base.ClipRequest) -> dict[str, Any]:
        """One clip of a submit, its keys in the captured call's order.

        Only the start-image request was captured. The others follow README §6 (what public
        clients send): the same fields, with no image (text), ``startImage`` and ``endImage``
        (frames), or ``referenceImages`` of ``{mediaId, imageUsageType}`` (ingredients) in
        place of ``startImage``; the optional ``cropCoordinates`` are never sent.
        """
        mode = base.Mode(clip.mode)
        needs = {
            base.Mode.TEXT: True,
            base.Mode.IMAGE: bool(clip.start_image_media_id),
            base.Mode.FRAMES: bool(clip.start_image_media_id and clip.end_image_media_id),
            base.Mode.INGREDIENTS: bool(clip.reference_media_ids),
        }
        if not needs[mode]:
            raise base.BadRequest(
                "This clip lacks an image its way of making it needs (a start image, an end "
                "image or a reference image)."
            )
        request: dict[str, Any] = {
            "aspectRatio": VIDEO_ASPECTS[base.Aspect(clip.aspect)],
            "seed": clip.seed,
            "textInput": {"prompt": clip.prompt},
            "videoModelKey": clip.model_key,
        }
        if mode in (base.Mode.IMAGE, base.Mode.FRAMES):
            request["startImage"] = {"mediaId": clip.start_image_media_id}
        if mode == base.Mode.FRAMES:
            request["endImage"] = {"mediaId": clip.end_image_media_id}
        if mode == base.Mode.INGREDIENTS:
            request["referenceImages"] = [
                {"mediaId": media_id, "imageUsageType": REFERENCE_USAGE}
                for media_id in clip.reference_media_ids
            ]
        request["metadata"] = {"sceneId": clip.request_id}
        return request

    def check(self, operations: list[base.OperationRef]) -> base.StatusResult:
        """The state of each operation. Operations Flow leaves out of its answer are left out
        of the result too; the caller keeps them as they were and asks again later."""
        size = max(int(settings.FLOW_STATUS_BATCH_SIZE), 1)
        clips: list[base.ClipStatus] = []
        credits = None
        for start in range(0, len(operations), size):
            batch = self._check_batch(operations[start : start + size])
            clips.extend(batch.clips)
            if batch.remaining_credits is not None:
                credits = batch.remaining_credits
        given = {ref.operation_name: ref.given for ref in operations}
        clips = [
            self.failed(clip, given.get(clip.operation_name) or "what it was given")
            if clip.state == base.ClipState.FAILED
            else clip
            for clip in clips
        ]
        return base.StatusResult(clips=clips, remaining_credits=credits)

    @staticmethod
    def failed(clip: base.ClipStatus, given: str) -> base.ClipStatus:
        """A failed operation in words. One Flow answers "not found" it no longer knows (a
        restart of its side, or lost): Flow did not say the clip failed, and may have made
        and charged it (``unanswered``)."""
        said = clip.failure_reason.strip()
        if NOT_FOUND_MESSAGE in said.lower():
            return dataclasses.replace(
                clip,
                failure_message=f"Flow {base.OPERATION_GONE}.",
                said=said,
                unanswered=True,
            )
        return dataclasses.replace(
            clip, failure_message=reason_words(clip.failure_reason, given), said=said
        )

    def account_info(self) -> base.AccountInfo:
        answer = self._call("GET", PATH_CREDITS, None, what="reading the account's credits")
        shape = _Shape(self, "reading the account's credits")
        credits = _as_int(answer.get("credits"))
        shape.require(credits is not None, "'credits' is not a number", answer)
        tier = answer.get("userPaygateTier", self.credentials.tier)
        shape.require(isinstance(tier, str) and tier, "'userPaygateTier' is not a text", answer)
        return base.AccountInfo(credits=credits, tier=tier)

    # --- Status ---

    def _check_batch(self, operations: list[base.OperationRef]) -> base.StatusResult:
        body = {
            "operations": [
                {
                    "operation": {"name": ref.operation_name},
                    "sceneId": ref.request_id,
                    "status": SUBMITTED_STATUS,
                }
                for ref in operations
            ]
        }
        what = "checking clips"
        answer = self._call("POST", PATH_CHECK, body, what=what)
        shape = _Shape(self, what)
        asked = {(ref.operation_name, ref.request_id) for ref in operations}
        clips = []
        seen = set()
        # An answer with nothing in flight may omit the list altogether.
        for entry in shape.need(answer, "operations", list) if "operations" in answer else []:
            clip = shape.clip_status(entry)
            pair = (clip.operation_name, clip.request_id)
            shape.require(
                pair in asked and pair not in seen,
                "an operation answers a clip that was not asked about (or twice)",
                entry,
            )
            seen.add(pair)
            clips.append(clip)
        return base.StatusResult(clips=clips, remaining_credits=shape.credits(answer))

    # --- HTTP ---

    def _api_url(self, path: str) -> str:
        return (self._api_base_url or settings.FLOW_API_BASE_URL).rstrip("/") + path

    def _labs_url(self, path: str) -> str:
        return (self._labs_base_url or settings.FLOW_LABS_BASE_URL).rstrip("/") + path

    def _secrets(self, *extra: str) -> tuple[str, ...]:
        cached = None
        if self.credentials.session_cookie:
            cached = self.token_cache.get(self.credentials.key)
        return (
            self.credentials.bearer_token,
            self.credentials.session_cookie,
            cached[0] if cached else "",
            *extra,
        )

    def _call(
        self,
        method: str,
        path: str,
        body: dict | None,
        *,
        what: str,
        models: list[str] | None = None,
    ) -> dict:
        """One API call within one deadline, re-minting and retrying once after a 401."""
        deadline = Deadline(what)
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        token = self._signed_in(deadline)
        answer = self._send(method, path, token, content, deadline)
        if answer.status == 401:
            if not self.credentials.session_cookie:
                raise base.TokenExpired(
                    "Flow refused the account's access token: it has expired or was revoked. "
                    "Paste a new token for the account.",
                    detail=f"HTTP 401 while {what}",
                )
            # The cached token may have been revoked early: mint a fresh one and try once more.
            token = self._signed_in(deadline, refused=token)
            answer = self._send(method, path, token, content, deadline)
            if answer.status == 401:
                raise base.SessionExpired(
                    "Flow refused even a freshly minted access token: the account's session "
                    "has ended. Paste a new session cookie for the account.",
                    detail=f"HTTP 401 twice while {what}",
                )
        if answer.status != 200:
            raise self._error(answer, path, what, models or [], token)
        payload = answer.json()
        if not isinstance(payload, dict):
            raise self._contract(what, "the answer is not a JSON object", answer.body, token)
        return payload

    def _send(
        self, method: str, path: str, token: str, content: bytes | None, deadline: Deadline
    ) -> Answer:
        headers = {
            "accept": "*/*",
            "authorization": f"Bearer {token}",
            "origin": ORIGIN,
            "referer": REFERER,
        }
        if content is not None:
            headers["content-type"] = BODY_CONTENT_TYPE
        return self._fetch(method, self._api_url(path), deadline, headers=headers, content=content)

    def _fetch(self, method: str, url: str, deadline: Deadline, **request: Any) -> Answer:
        return send(
            self._http(),
            method,
            url,
            deadline,
            max_bytes=MAX_ANSWER_BYTES,
            **request,
        )

    # --- Tokens ---

    def _signed_in(self, deadline: Deadline, *, refused: str = "") -> str:
        """The access token for a call about to be sent (``cached_token``; a cookie account's
        is minted). Signing in failing on the network is not a lost answer: the call itself
        was not sent, so nothing can have been spent."""
        try:
            mint = functools.partial(self._mint, deadline)
            return cached_token(
                self.credentials, self.token_cache, mint, refused=refused, upstream="Flow"
            )
        except base.NetworkError as error:
            raise base.UpstreamError(
                f"Flowsite could not reach labs.google to sign in ({deadline.what}); the call "
                "to Flow was not sent.",
                detail=error.detail,
            ) from None

    def _mint(self, deadline: Deadline) -> tuple[str, datetime]:
        what = "signing in with the session cookie"
        cookie = self.credentials.session_cookie
        headers = {"accept": "application/json", "cookie": f"{SESSION_COOKIE_NAME}={cookie}"}
        answer = self._fetch("GET", self._labs_url(PATH_SESSION), deadline, headers=headers)
        dead = base.SessionExpired(
            "The Flow session for this account has ended. Paste a new session cookie for the "
            "account."
        )
        if answer.status in (401, 403) or 300 <= answer.status < 400:
            dead.detail = f"session endpoint answered HTTP {answer.status}"
            raise dead
        if answer.status >= 500:
            raise base.UpstreamError(
                f"labs.google had an internal error (HTTP {answer.status}) while Flowsite was "
                "signing in.",
                detail=quote(answer.body, self._secrets()),
            )
        payload = answer.json()
        if answer.status != 200 or not isinstance(payload, dict):
            raise self._contract(what, f"HTTP {answer.status}", answer.body, "")
        if payload.get("error") or not payload.get("access_token"):
            # next-auth answers {} without a live session, and names the refresh it needs.
            dead.detail = f"session endpoint answered {quote(payload, self._secrets())}"
            raise dead
        token = payload["access_token"]
        expires = _parse_expiry(payload.get("expires"))
        if not isinstance(token, str) or expires is None:
            raise self._contract(what, "no usable 'access_token' and 'expires'", payload, "")
        return token, expires

    # --- Errors ---

    def _contract(self, what: str, problem: str, part: Any, token: str) -> base.ContractError:
        return contract_error("Flow", what, problem, part, self._secrets(token))

    def _error(
        self, answer: Answer, path: str, what: str, models: list[str], token: str
    ) -> base.EngineError:
        status = answer.status
        secrets = self._secrets(token)
        payload = answer.json()
        error = payload.get("error") if isinstance(payload, dict) else None
        error = error if isinstance(error, dict) else None
        message = error.get("message") if error else None
        message = redact(message, secrets)[:300] if isinstance(message, str) else ""
        reasons = []
        details = error.get("details") if error else None
        for item in details if isinstance(details, list) else []:
            if isinstance(item, dict) and isinstance(item.get("reason"), str):
                reasons.append(item["reason"])
        detail = f"HTTP {status} while {what}: " + quote(payload or answer.body, secrets, 1000)
        logger.info("Flow refused %s: %s", path, detail)

        if 300 <= status < 400:
            location = urlsplit(answer.headers.get("location", ""))
            target = f"{location.netloc}{location.path}" or "elsewhere"
            return base.ContractError(
                f"Flow redirected the call to {target} instead of answering ({what}); the API "
                "may have moved.",
                detail=detail,
            )
        for reason in reasons:
            if reason in QUOTA_REASONS or "QUOTA" in reason:
                text = QUOTA_REASONS.get(reason, base.QuotaReached().message)
                if reason == REASON_OUT_OF_CREDITS:
                    return base.OutOfCredits(with_code(text, reason), reason=reason, detail=detail)
                if reason == REASON_MODEL_QUOTA:
                    return base.ModelQuotaReached(
                        with_code(text, reason), reason=reason, detail=detail
                    )
                return base.QuotaReached(with_code(text, reason), detail=detail)
        if status == 429:
            retry_after = parse_retry_after(answer.headers.get("retry-after"))
            wait = (
                f" and asked to wait {math.ceil(retry_after)} s" if retry_after is not None else ""
            )
            return base.Throttled(
                f"Flow is rate-limiting this account{wait}.",
                retry_after=retry_after,
                detail=detail,
            )
        if status >= 500:
            return base.UpstreamError(
                f"Flow had an internal error (HTTP {status}) while {what}.",
                detail=detail,
            )
        if error is None:
            return self._contract(
                what, f"HTTP {status} without Google's error body", answer.body, token
            )
        if status == 403:
            if REASON_MODEL_ACCESS_DENIED in reasons:
                return base.TierTooLow(self._tier_message(models), detail=detail)
            if BOT_CHECK_REASONS.intersection(reasons) or "recaptcha" in message.lower():
                return base.BotCheck(
                    "Google's automated-traffic check refused the request "
                    f"({', '.join(reasons) or message}).",
                    detail=detail,
                )
        for reason in reasons:
            if reason in UNSAFE_REASONS or "UNSAFE" in reason:
                text = UNSAFE_REASONS.get(reason, "Flow refused {given} as unsafe.")
                given = PATH_GIVEN.get(path, "what it was given")
                return base.Unsafe(
                    with_code(text.format(given=given), reason), reason=reason, detail=detail
                )
        if status == 404 or NOT_FOUND_MESSAGE in message.lower():
            if path in SUBMIT_PATHS.values() and path != PATH_SUBMIT_TEXT:
                return base.ImageUnknown(detail=detail)
            if path in (PATH_EXTEND, PATH_UPSCALE):
                return base.BadRequest(
                    "Flow no longer knows the clip this asks for (it may have been deleted in "
                    "Flow, or made by another account).",
                    detail=detail,
                )
            return base.BadRequest(
                f"Flow does not know what was asked for ({what}): {message or 'not found'}",
                detail=detail,
            )
        return base.BadRequest(
            f"Flow refused the request ({what}, HTTP {status}): {message or 'no reason given'}",
            detail=detail,
        )

    def _tier_message(self, models: list[str]) -> str:
        tier = self.credentials.tier
        tier_label = dict(catalogue.TIERS).get(tier, tier)
        known = [catalogue.get_model(key) for key in dict.fromkeys(models)]
        blocked = [m for m in known if m is not None and not m.allowed_for(tier)]
        if blocked:
            names = ", ".join(f"{m.label} ({m.key})" for m in blocked)
            needs = dict(catalogue.TIERS).get(blocked[0].min_tier, blocked[0].min_tier)
            return f"The model {names} needs a {needs} account; this account is {tier_label}."
        names = ", ".join(dict.fromkeys(models)) or "this model"
        return f"Flow does not let this {tier_label} account use {names}."


class _Shape:
    """Field-by-field reading of one answer; anything unexpected becomes a ContractError."""

    def __init__(self, engine: FlowEngine, what: str) -> None:
        self.engine = engine
        self.what = what

    def fail(self, problem: str, part: Any) -> NoReturn:
        raise self.engine._contract(self.what, problem, part, "")

    def require(self, condition: bool, problem: str, part: Any) -> None:
        if not condition:
            self.fail(problem, part)

    def need(self, container: Any, key: str, kind: type, *, where: str = "") -> Any:
        label = f"{where}.{key}" if where else key
        if not isinstance(container, dict) or key not in container:
            self.fail(f"'{label}' is missing", container)
        value = container[key]
        if not isinstance(value, kind) or (kind is str and not value):
            expected = {str: "a text", dict: "an object", list: "a list"}.get(kind, kind.__name__)
            self.fail(f"'{label}' is not {expected}", container)
        return value

    def state(self, entry: dict) -> base.ClipState:
        status = self.need(entry, "status", str, where="operations[]")
        if status in STATES:
            return STATES[status]
        if status.startswith(ERROR_STATUS_PREFIX):
            return base.ClipState.FAILED
        self.fail(f"unknown clip status {status!r}", entry)

    def credits(self, answer: dict) -> int | None:
        if "remainingCredits" not in answer:
            return None
        credits = _as_int(answer["remainingCredits"])
        self.require(credits is not None, "'remainingCredits' is not a number", answer)
        return credits

    def submitted(self, entry: Any) -> base.SubmittedClip:
        """One of ``operations``: the clip it answers (its sceneId), its name and its state."""
        self.require(isinstance(entry, dict), "an operation is not an object", entry)
        operation = self.need(entry, "operation", dict, where="operations[]")
        name = self.need(operation, "name", str, where="operations[].operation")
        request_id = self.need(entry, "sceneId", str, where="operations[]")
        return base.SubmittedClip(request_id, name, self.state(entry))

    def clip_status(self, entry: Any) -> base.ClipStatus:
        clip = self.submitted(entry)
        name, request_id, state = clip.operation_name, clip.request_id, clip.state
        operation, status = entry["operation"], entry["status"]
        if state == base.ClipState.SUCCESSFUL:
            metadata = self.need(operation, "metadata", dict, where="operations[].operation")
            video = self.need(metadata, "video", dict, where="operation.metadata")
            data = b""
            if "fifeUrl" not in video and isinstance(video.get("rawBytes"), str):
                # Some upscale answers carry the MP4 itself instead of a link.
                try:
                    data = base64.b64decode(video["rawBytes"], validate=True)
                except ValueError:
                    self.fail("'rawBytes' is not base64", {})
                video_url = "inline:"
            else:
                video_url = self.need(video, "fifeUrl", str, where="operation.metadata.video")
            poster_url = video.get("servingBaseUri", "")
            self.require(isinstance(poster_url, str), "'servingBaseUri' is not a text", video)
            media_id = entry.get("mediaGenerationId", video.get("mediaGenerationId", ""))
            self.require(isinstance(media_id, str), "'mediaGenerationId' is not a text", entry)
            seed = _as_int(video["seed"]) if "seed" in video else None
            self.require(seed is not None or "seed" not in video, "'seed' is not a number", video)
            return base.ClipStatus(
                operation_name=name,
                request_id=request_id,
                state=state,
                video_url=video_url,
                poster_url=poster_url,
                media_generation_id=media_id,
                seed=seed,
                video_data=data,
            )
        reason = ""
        if state == base.ClipState.FAILED:
            error = operation.get("error")
            if error is not None:
                self.require(isinstance(error, dict), "'operation.error' is not an object", entry)
                message = error.get("message", "")
                self.require(isinstance(message, str), "'error.message' is not a text", entry)
                reason = message
            if not reason and status.startswith(ERROR_STATUS_PREFIX):
                reason = status.removeprefix(STATUS_PREFIX)
        return base.ClipStatus(
            operation_name=name, request_id=request_id, state=state, failure_reason=reason
        )
