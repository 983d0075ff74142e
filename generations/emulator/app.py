"""The emulated Flow service: its in-memory state and the WSGI app that speaks the captured
contract (see /work/shared/flow-api/ and generations/emulator/README.md).

No Django here on purpose: the emulator stands in for Google, so it shares nothing with the
client it is testing except the wire format, and it runs the same in a test thread or as a
process of its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from PIL import Image, UnidentifiedImageError

from .config import EmulatorConfig
from .faults import (
    CALL_FAULTS,
    OPERATION_FAULTS,
    SUBMIT_FAULTS,
    Fault,
    FaultBook,
    FaultSyntaxError,
    faults_in,
    parse_fault,
)
from .render import CAMERA_MOVES, RenderedClip, caption_text, render_clip

log = logging.getLogger("flow_emulator")

# --- The upstream's vocabulary (as observed; the emulator keeps its own copy so that a
# mistake in Flowsite's catalogue is caught here rather than shared). -----------------------

TIER_RANK = {"PAYGATE_TIER_NOT_PAID": 0, "PAYGATE_TIER_ONE": 1, "PAYGATE_TIER_TWO": 2}
VIDEO_ASPECTS = {"VIDEO_ASPECT_RATIO_LANDSCAPE": False, "VIDEO_ASPECT_RATIO_PORTRAIT": True}
IMAGE_ASPECTS = (
    "IMAGE_ASPECT_RATIO_LANDSCAPE",
    "IMAGE_ASPECT_RATIO_PORTRAIT",
    "IMAGE_ASPECT_RATIO_SQUARE",
    "IMAGE_ASPECT_RATIO_LANDSCAPE_FOUR_THREE",
    "IMAGE_ASPECT_RATIO_PORTRAIT_THREE_FOUR",
)
IMAGE_MIME_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
TOOLS = ("PINHOLE", "ASSET_MANAGER")
START_IMAGE_MODELS = (
    "veo_3_1_i2v_s_fast",
    "veo_3_1_i2v_s_fast_portrait",
    "veo_3_1_i2v_s_fast_ultra",
    "veo_3_1_i2v_s_fast_portrait_ultra",
    "veo_3_1_i2v_s",
    "veo_3_1_i2v_s_portrait",
    "veo_3_1_i2v_lite",
    "veo_3_1_i2v_lite_low_priority",
)
SEED_MAX = 2**32 - 1

PENDING = "MEDIA_GENERATION_STATUS_PENDING"
ACTIVE = "MEDIA_GENERATION_STATUS_ACTIVE"
SUCCESSFUL = "MEDIA_GENERATION_STATUS_SUCCESSFUL"
FAILED = "MEDIA_GENERATION_STATUS_FAILED"

MEDIA_TYPE = "type.googleapis.com/google.internal.labs.aisandbox.v1.Media"
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
GOOGLE_ACCESS_ID = "flow-emulator@localhost.invalid"
SESSION_COOKIE_NAME = "__Secure-next-auth.session-token"
DEFAULT_FAIL_REASON = "PUBLIC_ERROR_AUDIO_FILTERED"
MAX_BODY_BYTES = 64 * 1024 * 1024
CHUNK = 64 * 1024

JSON_TYPE = "application/json; charset=UTF-8"
XML_TYPE = "application/xml; charset=UTF-8"

STAT_NAMES = ("upload", "submit", "check", "session", "credits", "media", "clips_submitted")


# --- Errors in Google's shape --------------------------------------------------------------


class ApiError(Exception):
    """An answer in Google's error shape:
    ``{"error": {"code", "message", "status", "details": [...]}}``."""

    def __init__(
        self,
        code: int,
        status: str,
        message: str,
        *,
        reason: str = "",
        field_path: str = "",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message
        self.reason, self.field_path = reason, field_path
        self.headers = headers or []

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        details = []
        if self.reason:
            details.append({"@type": ERROR_INFO_TYPE, "reason": self.reason})
        if self.field_path:
            details.append(
                {
                    "@type": BAD_REQUEST_TYPE,
                    "fieldViolations": [{"field": self.field_path, "description": self.message}],
                }
            )
        if details:
            error["details"] = details
        return {"error": error}


def unauthenticated() -> ApiError:
    return ApiError(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential.",
    )


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "Requested entity was not found.")


def missing(path: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", f"Missing required field '{path}'.", field_path=path)


def invalid(path: str, value: Any, expected: str) -> ApiError:
    shown = json.dumps(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ApiError(
        400,
        "INVALID_ARGUMENT",
        f"Invalid value at '{path}' ({expected}): {shown}",
        field_path=path,
    )


FAULT_ERRORS: dict[str, Callable[[Fault], ApiError]] = {
    "throttle": lambda fault: ApiError(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
        reason="PUBLIC_ERROR_USER_REQUESTS_THROTTLED",
        headers=[("Retry-After", f"{fault.seconds:g}")],
    ),
    "error500": lambda fault: ApiError(500, "INTERNAL", "Internal error encountered."),
    "unsafe": lambda fault: ApiError(
        400,
        "INVALID_ARGUMENT",
        "Request contains an invalid argument.",
        reason="PUBLIC_ERROR_UNSAFE_GENERATION",
    ),
    "quota": lambda fault: quota_reached(),
    "botcheck": lambda fault: ApiError(
        403,
        "PERMISSION_DENIED",
        "The caller does not have permission",
        reason="PUBLIC_ERROR_UNUSUAL_ACTIVITY",
    ),
    "token-expiry": lambda fault: unauthenticated(),
}


def quota_reached() -> ApiError:
    return ApiError(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
        reason="PUBLIC_ERROR_USER_QUOTA_REACHED",
    )


# --- Requests and responses ----------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    base_url: str

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(
                400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}"
            ) from None
        if not isinstance(data, dict):
            raise ApiError(
                400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object."
            )
        return data


@dataclass
class Response:
    status: int
    body: Iterable[bytes]
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None):
        payload = json.dumps(data, indent=2).encode()
        return cls(
            status,
            [payload],
            [("Content-Type", JSON_TYPE), ("Content-Length", str(len(payload)))] + (headers or []),
        )

    @classmethod
    def xml_error(cls, status: int, code: str, message: str, details: str = ""):
        text = (
            "<?xml version='1.0' encoding='UTF-8'?>"
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<Details>{details}</Details></Error>"
        )
        payload = text.encode()
        return cls(
            status, [payload], [("Content-Type", XML_TYPE), ("Content-Length", str(len(payload)))]
        )


# --- State -----------------------------------------------------------------------------------


@dataclass
class StoredImage:
    media_id: str
    data: bytes
    sha256: str
    width: int
    height: int


@dataclass
class Operation:
    name: str
    scene_id: str
    prompt: str
    seed: int
    model: str
    aspect: str
    media_generation_id: str
    # The id of the video/poster objects in the emulated bucket.
    object_id: str
    created: float
    pending_seconds: float
    active_seconds: float
    faults: dict[str, Fault]
    render: Future[RenderedClip] | None
    # "expired-url:once": set once an answer has handed out the expired URLs.
    expired_urls_served: bool = False

    def status(self, now: float) -> str:
        elapsed = now - self.created
        if elapsed < self.pending_seconds:
            return PENDING
        if "stuck" in self.faults or elapsed < self.pending_seconds + self.active_seconds:
            return ACTIVE
        if "fail" in self.faults:
            return FAILED
        if self.render is None or not self.render.done():
            return ACTIVE
        return FAILED if self.render.exception() is not None else SUCCESSFUL

    def failure(self) -> dict[str, Any]:
        if "fail" in self.faults:
            return {"code": 3, "message": self.faults["fail"].arg or DEFAULT_FAIL_REASON}
        return {"code": 13, "message": "Internal error encountered."}


class Renderer:
    """Renders clips on a small thread pool, once per distinct input (the cache outlives
    ``reset()`` so that a test suite renders each picture-and-caption once)."""

    def __init__(self, workers: int, clip_seconds: float, fps: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="flow-emulator-"))
        self.clip_seconds, self.fps = clip_seconds, fps
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="emulator-render")
        self._cache: dict[tuple[str, str, bool, int], Future[RenderedClip]] = {}
        self._lock = threading.Lock()
        # The folder goes even if nobody calls close() (a test run that is interrupted).
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.dir, True)

    def render(
        self, image: StoredImage, prompt: str, portrait: bool, seed: int = 0
    ) -> Future[RenderedClip]:
        # The seed picks the camera move, so two takes of one scene look like two takes.
        move = seed % CAMERA_MOVES
        key = (image.sha256, caption_text(prompt), portrait, move)
        with self._lock:
            future = self._cache.get(key)
            if future is None or (future.done() and future.exception() is not None):
                name = hashlib.sha256(
                    repr((*key, self.clip_seconds, self.fps)).encode()
                ).hexdigest()[:32]
                future = self._pool.submit(self._render, image.data, prompt, portrait, move, name)
                self._cache[key] = future
            return future

    def _render(
        self, data: bytes, prompt: str, portrait: bool, move: int, name: str
    ) -> RenderedClip:
        started = time.perf_counter()
        try:
            clip = render_clip(
                data,
                prompt,
                portrait=portrait,
                move=move,
                clip_seconds=self.clip_seconds,
                fps=self.fps,
                out_dir=self.dir,
                name=name,
            )
        except Exception:
            log.exception("Rendering a clip failed")
            raise
        log.info("Rendered %s (%.2f s)", clip.video_path.name, time.perf_counter() - started)
        return clip

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._finalizer()


class EmulatorState:
    """Everything the emulated service knows. It lives in memory only."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        # Signs media URLs; a new run invalidates the previous run's URLs, as they would be.
        self.secret = secrets.token_bytes(32)
        self.renderer = Renderer(config.render_workers, config.clip_seconds, config.fps)
        self.fault_book = FaultBook()
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        global_faults = [parse_fault(text) for text in self.config.faults]
        with self.lock:
            self.images: dict[str, StoredImage] = {}
            self.operations: dict[str, Operation] = {}
            self.objects: dict[str, Operation] = {}
            self.credits = self.config.credits
            self.stats = dict.fromkeys(STAT_NAMES, 0)
            self.minted: dict[str, float] = {}
            self.configured_token_valid = True
            self.session_alive = True
            self.global_faults = global_faults
        self.fault_book.clear()

    def count(self, stat: str, n: int = 1) -> None:
        with self.lock:
            self.stats[stat] += n

    def stats_snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.stats)

    def set_faults(self, faults: list[str]) -> None:
        parsed = [parse_fault(text) for text in faults]
        with self.lock:
            self.global_faults = parsed

    def expire_tokens(self) -> None:
        with self.lock:
            self.configured_token_valid = False
            self.minted.clear()

    def kill_session(self) -> None:
        with self.lock:
            self.session_alive = False

    def token_valid(self, token: str) -> bool:
        with self.lock:
            if token and token == self.config.token and self.configured_token_valid:
                return True
            expires = self.minted.get(token)
            return expires is not None and expires > time.time()

    def mint_token(self) -> tuple[str, float]:
        token = "ya29." + secrets.token_urlsafe(48)
        expires = time.time() + self.config.token_ttl_seconds
        with self.lock:
            self.minted[token] = expires
        return token, expires

    def sign(self, path: str, expires: int) -> str:
        mac = hmac.new(self.secret, f"{path}\n{expires}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).decode()

    def close(self) -> None:
        self.renderer.close()


# --- The WSGI app ----------------------------------------------------------------------------

_MEDIA_PATH = re.compile(
    r"^/storage/(?P<kind>video|image)/(?P<object_id>[0-9a-f-]{36})\.(?P<ext>mp4|jpg)$"
)


class EmulatorApp:
    def __init__(self, state: EmulatorState, server_url: Callable[[], str]) -> None:
        self.state = state
        self.config = state.config
        self._server_url = server_url
        self.routes: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("POST", "/v1:uploadUserImage"): self.upload,
            ("POST", "/v1/video:batchAsyncGenerateVideoStartImage"): self.submit,
            ("POST", "/v1/video:batchCheckAsyncVideoGenerationStatus"): self.check,
            ("GET", "/v1/credits"): self.credits,
            ("GET", "/fx/api/auth/session"): self.session,
            ("GET", "/_emulator/stats"): self.stats,
            ("GET", "/"): self.index,
        }

    # WSGI entry point
    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        try:
            request = self._request(environ)
            response = self.dispatch(request)
        except ApiError as exc:
            response = Response.json(exc.body(), exc.code, exc.headers)
        except Exception:
            log.exception("Emulator error")
            response = Response.json(
                ApiError(500, "INTERNAL", "Internal error encountered.").body(), 500
            )
        reason = _REASONS.get(response.status, "")
        start_response(f"{response.status} {reason}".strip(), response.headers)
        if environ.get("REQUEST_METHOD") == "HEAD":
            return []
        return response.body

    def _request(self, environ: dict[str, Any]) -> Request:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY_BYTES:
            raise ApiError(413, "INVALID_ARGUMENT", "Request payload is too large.")
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        host = headers.get("host")
        return Request(
            method=environ["REQUEST_METHOD"],
            path=environ.get("PATH_INFO", "/"),
            query=parse_qs(environ.get("QUERY_STRING", "")),
            headers=headers,
            body=body,
            base_url=f"http://{host}" if host else self._server_url(),
        )

    def dispatch(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        handler = self.routes.get((method, request.path))
        if handler is not None:
            return handler(request)
        if method == "GET" and _MEDIA_PATH.match(request.path):
            return self.media(request)
        if any(path == request.path for _, path in self.routes):
            raise ApiError(405, "INVALID_ARGUMENT", f"Method {request.method} is not allowed.")
        raise ApiError(404, "NOT_FOUND", f"The requested URL {request.path} was not found.")

    # --- auth -------------------------------------------------------------------------------

    def authenticate(self, request: Request) -> None:
        if any(fault.name == "token-expiry" for fault in self.state.global_faults):
            raise unauthenticated()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self.state.token_valid(token.strip()):
            raise unauthenticated()

    def session(self, request: Request) -> Response:
        self.state.count("session")
        cookie = _cookie(request.headers.get("cookie", ""), SESSION_COOKIE_NAME)
        if not cookie or cookie != self.config.session_cookie:
            return Response.json(
                {"error": "No session: the session cookie is missing or not recognised."}, 401
            )
        user = {
            "name": "Flow Emulator",
            "email": "emulator@localhost.invalid",
            "image": "",
        }
        if not self.state.session_alive:
            # What labs.google answers for a session whose refresh token is gone.
            return Response.json(
                {"user": user, "expires": _iso(time.time()), "error": "ACCESS_TOKEN_REFRESH_NEEDED"}
            )
        token, expires = self.state.mint_token()
        return Response.json({"user": user, "expires": _iso(expires), "access_token": token})

    # --- API --------------------------------------------------------------------------------

    def credits(self, request: Request) -> Response:
        self.state.count("credits")
        self.authenticate(request)
        with self.state.lock:
            credits = self.state.credits
        return Response.json({"credits": credits, "userPaygateTier": self.config.tier})

    def upload(self, request: Request) -> Response:
        self.state.count("upload")
        self.authenticate(request)
        body = request.json()
        image_input = _object(body, "imageInput", "imageInput")
        raw = _string(image_input, "rawImageBytes", "imageInput.rawImageBytes")
        _enum(image_input, "mimeType", "imageInput.mimeType", IMAGE_MIME_TYPES)
        _enum(image_input, "aspectRatio", "imageInput.aspectRatio", IMAGE_ASPECTS)
        if "isUserUploaded" in image_input and not isinstance(image_input["isUserUploaded"], bool):
            raise invalid("imageInput.isUserUploaded", image_input["isUserUploaded"], "TYPE_BOOL")
        context = body.get("clientContext")
        if context is not None:
            if not isinstance(context, dict):
                raise invalid("clientContext", context, "object")
            if "tool" in context:
                _enum(context, "tool", "clientContext.tool", TOOLS)
        data, width, height = _decode_image(raw)
        media_id = "CAMa" + secrets.token_urlsafe(45)
        stored = StoredImage(media_id, data, hashlib.sha256(data).hexdigest(), width, height)
        with self.state.lock:
            self.state.images[media_id] = stored
        return Response.json(
            {"mediaGenerationId": {"mediaGenerationId": media_id}, "width": width, "height": height}
        )

    def submit(self, request: Request) -> Response:
        self.state.count("submit")
        self.authenticate(request)
        body = request.json()
        context = _object(body, "clientContext", "clientContext")
        _string(context, "projectId", "clientContext.projectId")
        _enum(context, "tool", "clientContext.tool", TOOLS)
        claimed_tier = self.config.tier
        if "userPaygateTier" in context:
            claimed_tier = _enum(
                context, "userPaygateTier", "clientContext.userPaygateTier", TIER_RANK
            )
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise missing("requests") if not requests else invalid("requests", requests, "list")

        clips = [_clip_request(item, f"requests[{index}]") for index, item in enumerate(requests)]
        scene_ids = [clip["scene_id"] for clip in clips]
        if len(set(scene_ids)) != len(scene_ids):
            raise ApiError(
                400,
                "INVALID_ARGUMENT",
                "Each request in a batch needs its own 'metadata.sceneId'.",
                field_path="requests.metadata.sceneId",
            )

        with self.state.lock:
            images = [self.state.images.get(clip["media_id"]) for clip in clips]
            global_faults = list(self.state.global_faults)
        if any(image is None for image in images):
            raise not_found()

        account_rank = TIER_RANK.get(self.config.tier, 0)
        rank = min(account_rank, TIER_RANK[claimed_tier])
        for clip in clips:
            if "_ultra" in clip["model"] and rank < TIER_RANK["PAYGATE_TIER_TWO"]:
                raise ApiError(
                    403,
                    "PERMISSION_DENIED",
                    "The caller does not have permission",
                    reason="PUBLIC_ERROR_MODEL_ACCESS_DENIED",
                )

        all_faults = global_faults + [fault for clip in clips for fault in clip["faults"]]
        self._delay(all_faults)
        for fault in all_faults:
            if fault.name in SUBMIT_FAULTS and self.state.fault_book.take(fault):
                raise FAULT_ERRORS[fault.name](fault)

        now = time.monotonic()
        cost = self.config.credits_per_clip * len(clips)
        with self.state.lock:
            if self.state.credits < cost:
                raise quota_reached()
            self.state.credits -= cost
            remaining = self.state.credits
            self.state.stats["clips_submitted"] += len(clips)

        operations = []
        for clip, image in zip(clips, images, strict=True):
            faults: dict[str, Fault] = {}
            for fault in global_faults + clip["faults"]:
                if fault.name in OPERATION_FAULTS + CALL_FAULTS and fault.name not in faults:
                    # A ":once" slow fault was spent on this submit already.
                    if fault.name in CALL_FAULTS and fault.once:
                        continue
                    if self.state.fault_book.take(fault):
                        faults[fault.name] = fault
            assert image is not None
            render = None
            if "fail" not in faults and "stuck" not in faults:
                render = self.state.renderer.render(
                    image, clip["prompt"], clip["portrait"], clip["seed"]
                )
            operation = Operation(
                name=uuid.uuid4().hex,
                scene_id=clip["scene_id"],
                prompt=clip["prompt"],
                seed=clip["seed"],
                model=clip["model"],
                aspect=clip["aspect"],
                media_generation_id="CAUS" + secrets.token_urlsafe(45),
                object_id=str(uuid.uuid4()),
                created=now,
                pending_seconds=self.config.pending_seconds,
                active_seconds=self.config.active_seconds,
                faults=faults,
                render=render,
            )
            with self.state.lock:
                self.state.operations[operation.name] = operation
                self.state.objects[operation.object_id] = operation
            operations.append(
                {
                    "operation": {"name": operation.name},
                    "sceneId": operation.scene_id,
                    "status": PENDING,
                }
            )
        return Response.json({"operations": operations, "remainingCredits": remaining})

    def check(self, request: Request) -> Response:
        self.state.count("check")
        self.authenticate(request)
        body = request.json()
        entries = body.get("operations")
        if not isinstance(entries, list) or not entries:
            raise missing("operations") if not entries else invalid("operations", entries, "list")
        asked: list[tuple[str, str]] = []
        for index, entry in enumerate(entries):
            path = f"operations[{index}]"
            if not isinstance(entry, dict):
                raise invalid(path, entry, "object")
            inner = _object(entry, "operation", f"{path}.operation")
            name = _string(inner, "name", f"{path}.operation.name")
            scene_id = entry.get("sceneId", "")
            if not isinstance(scene_id, str):
                raise invalid(f"{path}.sceneId", scene_id, "TYPE_STRING")
            asked.append((name, scene_id))

        with self.state.lock:
            found = [self.state.operations.get(name) for name, _ in asked]
            global_faults = list(self.state.global_faults)
            remaining = self.state.credits
        slow = [fault for fault in global_faults if fault.name == "slow"] + [
            op.faults["slow"] for op in found if op is not None and "slow" in op.faults
        ]
        self._delay(slow)

        now = time.monotonic()
        answers = []
        for (name, scene_id), operation in zip(asked, found, strict=True):
            if operation is None:
                # An operation this run never issued (or forgot on reset): a FAILED entry
                # rather than failing the whole batch, so the other operations still get
                # their answer.
                answers.append(
                    {
                        "operation": {
                            "name": name,
                            "error": {"code": 5, "message": "Requested entity was not found."},
                        },
                        "sceneId": scene_id,
                        "status": FAILED,
                    }
                )
                continue
            answers.append(self._operation_answer(operation, now, request.base_url))
        return Response.json({"operations": answers, "remainingCredits": remaining})

    def _operation_answer(self, op: Operation, now: float, base_url: str) -> dict[str, Any]:
        status = op.status(now)
        if "badshape" in op.faults:
            return {
                "sceneId": op.scene_id,
                "mediaGenerationStatus": status,
                "media": {"name": op.name},
            }
        if status in (PENDING, ACTIVE):
            return {"operation": {"name": op.name}, "sceneId": op.scene_id, "status": status}
        if status == FAILED:
            return {
                "operation": {"name": op.name, "error": op.failure()},
                "sceneId": op.scene_id,
                "status": status,
            }
        expired = self._expired_urls(op)
        return {
            "operation": {
                "name": op.name,
                "metadata": {
                    "@type": MEDIA_TYPE,
                    "name": op.media_generation_id,
                    "video": {
                        "seed": op.seed,
                        "mediaGenerationId": op.media_generation_id,
                        "prompt": op.prompt,
                        "fifeUrl": self._signed_url(base_url, "video", op, expired),
                        "mediaVisibility": "PRIVATE",
                        "servingBaseUri": self._signed_url(base_url, "image", op, expired),
                        "model": op.model,
                        "isLooped": False,
                        "aspectRatio": op.aspect,
                    },
                },
            },
            "sceneId": op.scene_id,
            "mediaGenerationId": op.media_generation_id,
            "status": status,
        }

    def _expired_urls(self, op: Operation) -> bool:
        """Whether this answer signs already-expired URLs; with ``:once``, only the first
        answer that signs any (a client asking again gets fresh ones)."""
        fault = op.faults.get("expired-url")
        if fault is None:
            return False
        with self.state.lock:
            expired = not (fault.once and op.expired_urls_served)
            op.expired_urls_served = True
        return expired

    def _signed_url(self, base_url: str, kind: str, op: Operation, expired: bool) -> str:
        path = f"/storage/{kind}/{op.object_id}.{'mp4' if kind == 'video' else 'jpg'}"
        if expired:
            expires = int(time.time()) - 60
        else:
            expires = int(time.time()) + self.config.url_ttl_seconds
        query = urlencode(
            {
                "GoogleAccessId": GOOGLE_ACCESS_ID,
                "Expires": str(expires),
                "Signature": self.state.sign(path, expires),
            }
        )
        return f"{base_url}{path}?{query}"

    def _delay(self, faults: list[Fault]) -> None:
        seconds = sum(
            fault.seconds
            for fault in faults
            if fault.name == "slow" and self.state.fault_book.take(fault)
        )
        if seconds:
            time.sleep(seconds)

    # --- media ------------------------------------------------------------------------------

    def media(self, request: Request) -> Response:
        self.state.count("media")
        match = _MEDIA_PATH.match(request.path)
        assert match is not None
        if (match["kind"] == "video") != (match["ext"] == "mp4"):
            return Response.xml_error(404, "NoSuchKey", "The specified key does not exist.")
        expires_text = request.query.get("Expires", [""])[0]
        signature = request.query.get("Signature", [""])[0]
        if not expires_text or not signature:
            return Response.xml_error(
                403,
                "AccessDenied",
                "Access denied.",
                "Anonymous caller does not have storage.objects.get access to the object.",
            )
        try:
            expires = int(expires_text)
        except ValueError:
            expires = -1
        expected = self.state.sign(request.path, expires)
        if expires < 0 or not hmac.compare_digest(expected, signature):
            return Response.xml_error(
                403,
                "AccessDenied",
                "Access denied.",
                "SignatureDoesNotMatch: the request signature we calculated does not match "
                "the signature you provided.",
            )
        if expires < time.time():
            return Response.xml_error(
                403,
                "AccessDenied",
                "Access denied.",
                f"ExpiredToken: Request signature expired at: {_iso(expires)}",
            )
        with self.state.lock:
            operation = self.state.objects.get(match["object_id"])
        render = operation.render if operation else None
        if operation is None or render is None or not render.done() or render.exception():
            return Response.xml_error(404, "NoSuchKey", "The specified key does not exist.")
        clip = render.result()
        if match["kind"] == "video":
            path, content_type = clip.video_path, "video/mp4"
        else:
            path, content_type = clip.poster_path, "image/jpeg"
        return _file_response(path, content_type, request.headers.get("range", ""), operation)

    # --- for humans -------------------------------------------------------------------------

    def stats(self, request: Request) -> Response:
        return Response.json(self.state.stats_snapshot())

    def index(self, request: Request) -> Response:
        return Response.json(
            {
                "service": "Flowsite's local Flow emulator",
                "note": "All state lives in memory and is lost when the emulator stops.",
                "stats": "/_emulator/stats",
            }
        )


# --- helpers ---------------------------------------------------------------------------------

_REASONS = {
    200: "OK",
    206: "Partial Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def _iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def _object(container: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = container.get(key)
    if value is None:
        raise missing(path)
    if not isinstance(value, dict):
        raise invalid(path, value, "object")
    return value


def _string(container: dict[str, Any], key: str, path: str) -> str:
    value = container.get(key)
    if value is None or value == "":
        raise missing(path)
    if not isinstance(value, str):
        raise invalid(path, value, "TYPE_STRING")
    return value


def _enum(container: dict[str, Any], key: str, path: str, allowed: Iterable[str]) -> str:
    value = _string(container, key, path)
    if value not in allowed:
        raise invalid(path, value, "one of " + ", ".join(allowed))
    return value


def _clip_request(item: Any, path: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise invalid(path, item, "object")
    aspect = _enum(item, "aspectRatio", f"{path}.aspectRatio", VIDEO_ASPECTS)
    if "seed" not in item or item["seed"] is None:
        raise missing(f"{path}.seed")
    seed = item["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise invalid(f"{path}.seed", seed, f"TYPE_UINT32, 0 to {SEED_MAX}")
    prompt = _string(
        _object(item, "textInput", f"{path}.textInput"), "prompt", f"{path}.textInput.prompt"
    )
    model = _enum(item, "videoModelKey", f"{path}.videoModelKey", START_IMAGE_MODELS)
    media_id = _string(
        _object(item, "startImage", f"{path}.startImage"), "mediaId", f"{path}.startImage.mediaId"
    )
    scene_id = _string(
        _object(item, "metadata", f"{path}.metadata"), "sceneId", f"{path}.metadata.sceneId"
    )
    try:
        faults = faults_in(prompt)
    except FaultSyntaxError as exc:
        raise ApiError(
            400,
            "INVALID_ARGUMENT",
            f"{exc} (in '{path}.textInput.prompt')",
            field_path=f"{path}.textInput.prompt",
        ) from None
    return {
        "aspect": aspect,
        "portrait": VIDEO_ASPECTS[aspect],
        "seed": seed,
        "prompt": prompt,
        "model": model,
        "media_id": media_id,
        "scene_id": scene_id,
        "faults": faults,
    }


def _decode_image(raw: str) -> tuple[bytes, int, int]:
    path = "imageInput.rawImageBytes"
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            400,
            "INVALID_ARGUMENT",
            f"Invalid value at '{path}' (TYPE_BYTES): the value is not valid base64.",
            field_path=path,
        ) from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            width, height = image.size
            image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ApiError(
            400,
            "INVALID_ARGUMENT",
            f"Invalid value at '{path}': the bytes are not an image that can be decoded.",
            field_path=path,
        ) from None
    # The label may disagree with the bytes (browsers guess); what matters is that the bytes
    # are a format Flow takes.
    if image_format not in IMAGE_MIME_TYPES.values():
        raise ApiError(
            400,
            "INVALID_ARGUMENT",
            f"Invalid value at '{path}': {image_format} images are not supported; "
            "send JPEG, PNG or WebP.",
            field_path=path,
        )
    return data, width, height


def _file_response(path: Path, content_type: str, range_header: str, op: Operation) -> Response:
    size = path.stat().st_size
    start, end, status = 0, size - 1, 200
    headers = [("Content-Type", content_type), ("Accept-Ranges", "bytes")]
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
    if match and (match[1] or match[2]):
        if match[1]:
            start = int(match[1])
            end = min(int(match[2]), size - 1) if match[2] else size - 1
        else:
            start = max(0, size - int(match[2]))
        if start >= size or start > end:
            return Response(
                416, [b""], [("Content-Range", f"bytes */{size}"), ("Content-Length", "0")]
            )
        status = 206
        headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
    length = end - start + 1
    headers.append(("Content-Length", str(length)))
    send = length // 2 if "truncated-download" in op.faults else length
    seconds = op.faults["slow-download"].seconds if "slow-download" in op.faults else 0.0
    return Response(status, _stream(path, start, send, seconds), headers)


def _stream(path: Path, start: int, length: int, seconds: float) -> Iterator[bytes]:
    # A slow media host answers at once and trickles the body (at least ten pieces, however
    # small the file), so a client sits mid-body for most of ``seconds``. The empty first
    # piece makes the server send the headers before the first pause.
    size = max(1, min(CHUNK, -(-length // 10))) if seconds else CHUNK
    chunks = max(1, -(-length // size))
    pause = seconds / chunks
    if seconds:
        yield b""
    with path.open("rb") as handle:
        handle.seek(start)
        left = length
        while left > 0:
            data = handle.read(min(size, left))
            if not data:
                break
            left -= len(data)
            if pause:
                time.sleep(pause)
            yield data
