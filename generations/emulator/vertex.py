"""Vertex AI's Veo routes: ``predictLongRunning``, ``fetchPredictOperation``, the OAuth token
endpoint a service-account key signs in at, and Cloud Storage downloads of results.

The emulator hands out a service-account key of its own (``GET /_emulator/vertex/key``) whose
``token_uri`` points back here; the token endpoint checks the RS256 signature of the JWT a
client signs with it, exactly as Google's does, and answers with an access token every other
route accepts. Faults are the same prompt markers as Flow's (faults.py), plus a few only
Vertex AI has (``VERTEX_FAULTS``).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .auth import authenticate
from .contract import ApiError, invalid, missing, only_known
from .faults import SUBMIT_ERRORS, Fault, FaultSyntaxError, delay, faults_in
from .pictures import render_mode
from .reframe import count_frames, render_extension
from .render import RenderedClip
from .state import EmulatorState
from .vertex_inputs import INSTANCE_KEYS, read_inputs, vertex_source
from .wire import Request, Response

MODEL_ROUTE = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/google/"
    r"models/(?P<model>[^/:]+):(?P<verb>predictLongRunning|fetchPredictOperation)$"
)
STORAGE_ROUTE = re.compile(r"^/download/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<object>.+)$")
TOKEN_PATH = "/token"
KEY_PATH = "/_emulator/vertex/key"

MODELS = ("veo-3.1-generate-001", "veo-3.1-fast-generate-001", "veo-3.1-lite-generate-001")
ASPECTS = {"16:9": False, "9:16": True}
DURATIONS = (4, 6, 8)
RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
PERSON_GENERATION = ("dont_allow", "allow_adult", "allow_all")
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
RESPONSE_TYPE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
FILTER_REASON = (
    "Your current safety filter threshold filtered out the generated video. Support codes: 29310472"
)
# Operation faults under which nothing is rendered: no answer ever shows a clip.
NOT_RENDERED = {"stuck", "fail", "op-error", "forgotten"}
OPERATION_MESSAGES = {
    3: "The prompt or the image could not be used.",
    7: "Permission denied.",
    8: "Resource exhausted.",
    13: "Internal error.",
    14: "The service is currently unavailable.",
}


# --- The service account ------------------------------------------------------------------


@dataclass
class KeyPair:
    key_id: str
    private_pem: str
    public_key: rsa.RSAPublicKey


_keys_lock = threading.Lock()


def key_pair(state: EmulatorState) -> KeyPair:
    """The emulator run's service-account key pair, made on first use."""
    with _keys_lock:
        pair = getattr(state, "vertex_key_pair", None)
        if pair is None:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
            pair = KeyPair(secrets.token_hex(20), pem, private.public_key())
            state.vertex_key_pair = pair
        return pair


def client_email(state: EmulatorState) -> str:
    return f"flowsite@{state.config.vertex_project}.iam.gserviceaccount.com"


def service_account_key(state: EmulatorState, base_url: str) -> dict[str, Any]:
    """A key file as the Cloud console hands it out, signing in at this emulator."""
    pair = key_pair(state)
    return {
        "type": "service_account",
        "project_id": state.config.vertex_project,
        "private_key_id": pair.key_id,
        "private_key": pair.private_pem,
        "client_email": client_email(state),
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": base_url.rstrip("/") + TOKEN_PATH,
    }


def key(state: EmulatorState, request: Request) -> Response:
    return Response.json(service_account_key(state, request.base_url))


def token(state: EmulatorState, request: Request) -> Response:
    """Trade a JWT signed with the emulator's key for an access token (RFC 7523)."""
    state.count("vertex_token")
    form = {name: values[0] for name, values in parse_qs(request.body.decode()).items()}
    if form.get("grant_type") != JWT_GRANT:
        return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
    try:
        claims = verify_jwt(state, form.get("assertion", ""), request.base_url + TOKEN_PATH)
    except ValueError as error:
        return _oauth_error("invalid_grant", str(error))
    with state.lock:
        revoked = state.vertex_key_revoked
    if revoked:
        return _oauth_error("invalid_grant", "Invalid JWT Signature.")
    if SCOPE not in str(claims.get("scope", "")).split():
        return _oauth_error("invalid_scope", "The cloud-platform scope is required.")
    access_token, expires = state.mint_token()
    return Response.json(
        {
            "access_token": access_token,
            "expires_in": max(1, int(expires - time.time())),
            "token_type": "Bearer",
        }
    )


def verify_jwt(state: EmulatorState, assertion: str, audience: str) -> dict[str, Any]:
    try:
        header_b64, claims_b64, signature_b64 = assertion.split(".")
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(claims_b64))
        signature = _unb64(signature_b64)
    except (ValueError, TypeError):
        raise ValueError("Invalid JWT: not three base64url parts of JSON.") from None
    if not isinstance(header, dict) or header.get("alg") != "RS256":
        raise ValueError("Invalid JWT: the algorithm must be RS256.")
    try:
        key_pair(state).public_key.verify(
            signature,
            f"{header_b64}.{claims_b64}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        raise ValueError("Invalid JWT Signature.") from None
    now = time.time()
    if not isinstance(claims, dict) or claims.get("iss") != client_email(state):
        raise ValueError("Invalid JWT: the issuer is not this service account.")
    # Google's clients name Google's token endpoint as the audience whatever the key's
    # token_uri says; either is accepted.
    if claims.get("aud") not in (audience, GOOGLE_TOKEN_URI):
        raise ValueError(f"Invalid JWT: the audience must be {GOOGLE_TOKEN_URI}.")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or exp < now:
        raise ValueError(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
        )
    if not isinstance(iat, int | float) or iat > now + 300 or exp - iat > 3600:
        raise ValueError(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
        )
    return claims


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _oauth_error(error: str, description: str) -> Response:
    return Response.json({"error": error, "error_description": description}, 400)


# --- Operations ---------------------------------------------------------------------------


@dataclass
class VertexOperation:
    name: str
    created: float
    pending_seconds: float
    active_seconds: float
    sample_count: int
    filtered: int
    faults: dict[str, Fault]
    renders: list[Future[RenderedClip]]
    storage_uri: str
    objects: list[str] = field(default_factory=list)

    def answer(self, state: EmulatorState) -> dict[str, Any]:
        elapsed = time.monotonic() - self.created
        waiting = {"name": self.name, "done": False, "metadata": {}}
        if "stuck" in self.faults or elapsed < self.pending_seconds + self.active_seconds:
            return waiting
        if "op-error" in self.faults or "fail" in self.faults:
            fault = self.faults.get("op-error") or self.faults["fail"]
            code = int(fault.arg) if fault.arg.isdigit() else 3
            message = OPERATION_MESSAGES.get(code, "The operation failed.")
            return {"name": self.name, "done": True, "error": {"code": code, "message": message}}
        if not all(render.done() for render in self.renders):
            return waiting
        if any(render.exception() is not None for render in self.renders):
            return {
                "name": self.name,
                "done": True,
                "error": {"code": 13, "message": "Internal error."},
            }
        videos = []
        for index, render in enumerate(self.renders[: self.sample_count - self.filtered]):
            path = render.result().video_path
            if self.storage_uri:
                bucket, _, prefix = self.storage_uri.removeprefix("gs://").partition("/")
                name = f"{prefix.rstrip('/') + '/' if prefix else ''}{self.name.rsplit('/', 1)[1]}/sample_{index}.mp4"
                with state.lock:
                    state.vertex_objects[(bucket, name)] = path
                videos.append({"gcsUri": f"gs://{bucket}/{name}", "mimeType": "video/mp4"})
            else:
                encoded = base64.b64encode(path.read_bytes()).decode("ascii")
                videos.append({"bytesBase64Encoded": encoded, "mimeType": "video/mp4"})
        response: dict[str, Any] = {"@type": RESPONSE_TYPE, "raiMediaFilteredCount": self.filtered}
        if self.filtered:
            response["raiMediaFilteredReasons"] = [FILTER_REASON]
        response["videos"] = videos
        return {"name": self.name, "done": True, "response": response}


def model_call(state: EmulatorState, request: Request) -> Response:
    match = MODEL_ROUTE.match(request.path)
    assert match is not None
    if match["verb"] == "predictLongRunning":
        return predict(state, request, match)
    return fetch(state, request, match)


def _refusals(state: EmulatorState, faults: list[Fault], project: str, resource: str) -> None:
    delay(state.fault_book, faults)
    for fault in faults:
        error = _refusal(fault, project, resource)
        if error is not None and state.fault_book.take(fault):
            raise error


def _refusal(fault: Fault, project: str, resource: str) -> ApiError | None:
    """The error ``fault`` refuses a ``predictLongRunning`` call on the model ``resource``
    with, if it refuses one."""
    if fault.name in ("throttle", "error500", "token-expiry"):
        return SUBMIT_ERRORS[fault.name](fault)
    if fault.name == "quota":
        return ApiError(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model with base model: veo.",
        )
    if fault.name == "api-disabled":
        return ApiError(
            403,
            "PERMISSION_DENIED",
            f"Vertex AI API has not been used in project {project} before or it is "
            "disabled. Enable it by visiting https://console.developers.google.com/apis/"
            f"api/aiplatform.googleapis.com/overview?project={project} then retry.",
            reason="SERVICE_DISABLED",
        )
    if fault.name == "no-permission":
        return ApiError(
            403,
            "PERMISSION_DENIED",
            f"Permission 'aiplatform.endpoints.predict' denied on resource "
            f"'//aiplatform.googleapis.com/{resource}' (or it may not exist).",
            reason="IAM_PERMISSION_DENIED",
        )
    if fault.name == "not-in-region":
        return ApiError(404, "NOT_FOUND", f"Publisher Model `{resource}` is not found.")
    return None


def predict(state: EmulatorState, request: Request, match: re.Match) -> Response:
    state.count("vertex_predict")
    authenticate(state, request)
    project, model = match["project"], match["model"]
    resource = f"projects/{project}/locations/{match['location']}/publishers/google/models/{model}"
    body = request.json()
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        raise invalid("instances", instances, "a list of one instance")
    instance = instances[0]
    only_known(instance, INSTANCE_KEYS, "instances[0]")
    prompt = instance.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise missing("instances[0].prompt")
    try:
        faults = faults_in(prompt)
    except FaultSyntaxError as error:
        raise ApiError(400, "INVALID_ARGUMENT", str(error)) from None
    with state.lock:
        global_faults = list(state.global_faults)
    _refusals(state, global_faults + faults, project, resource)
    if model not in MODELS:
        raise ApiError(404, "NOT_FOUND", f"Publisher Model `{model}` is not found.")
    for fault in faults:
        if fault.name == "invalid-argument" and state.fault_book.take(fault):
            raise invalid("parameters.sampleCount", 0, "must be 1 to 4")
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise invalid("parameters", parameters, "object")
    aspect = parameters.get("aspectRatio", "16:9")
    if aspect not in ASPECTS:
        raise invalid("parameters.aspectRatio", aspect, "16:9 or 9:16")
    count = parameters.get("sampleCount", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 4:
        raise invalid("parameters.sampleCount", count, "1 to 4")
    duration = parameters.get("durationSeconds", 8)
    if duration not in DURATIONS:
        raise invalid("parameters.durationSeconds", duration, "4, 6 or 8")
    resolution = parameters.get("resolution", "720p")
    if resolution not in RESOLUTIONS:
        raise invalid("parameters.resolution", resolution, "720p or 1080p")
    if resolution != "720p" and duration != 8:
        raise invalid("parameters.durationSeconds", duration, f"8 for {resolution}")
    people = parameters.get("personGeneration", "allow_adult")
    if people not in PERSON_GENERATION:
        raise invalid("parameters.personGeneration", people, ", ".join(PERSON_GENERATION))
    seed = parameters.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise invalid("parameters.seed", seed, "uint32")
    storage_uri = parameters.get("storageUri", "")
    if storage_uri and (not isinstance(storage_uri, str) or not storage_uri.startswith("gs://")):
        raise invalid("parameters.storageUri", storage_uri, "a gs:// prefix")
    mode, images = read_inputs(instance, model, duration)
    width, height = RESOLUTIONS[resolution]
    portrait = ASPECTS[aspect]
    size = (height, width) if portrait else (width, height)
    operation_faults = {
        fault.name: fault
        for fault in global_faults + faults
        if fault.name in ("stuck", "fail", "op-error", "filtered", "unsafe", "forgotten")
        and state.fault_book.take(fault)
    }
    filtered = 0
    if "unsafe" in operation_faults:
        filtered = count
    elif "filtered" in operation_faults:
        arg = operation_faults["filtered"].arg
        filtered = min(count, int(arg) if arg.isdigit() else 1)
    source = vertex_source(state, instance.get("video"))
    renders = []
    if source is not None and not NOT_RENDERED & set(operation_faults):
        # An extension: the source's last second, then on from its last frame.
        frames = count_frames(source)
        fps = state.config.fps
        window = (max(1, frames - fps + 1), frames)
        renders = [
            state.renderer.derive(
                ("vertex-extend", str(source), window, prompt, (seed + index) % 4, duration),
                render_extension,
                source=source,
                prompt=prompt,
                window=window,
                clip_seconds=float(duration),
                fps=fps,
                move=(seed + index) % 4,
            )
            for index in range(count - filtered)
        ]
    elif not NOT_RENDERED & set(operation_faults):
        renders = [
            render_mode(
                state,
                mode,
                images,
                prompt,
                portrait,
                seed + index,
                seconds=float(duration),
                size=size,
                audio=bool(parameters.get("generateAudio", False)),
            )
            for index in range(count - filtered)
        ]
    name = f"{resource}/operations/{uuid.uuid4()}"
    operation = VertexOperation(
        name=name,
        created=time.monotonic(),
        pending_seconds=state.config.pending_seconds,
        active_seconds=state.config.active_seconds,
        sample_count=count,
        filtered=filtered,
        faults=operation_faults,
        renders=renders,
        storage_uri=storage_uri,
    )
    with state.lock:
        # Accepted (and so paid for), then lost: every status call about it answers 404.
        if "forgotten" not in operation_faults:
            state.vertex_operations[name] = operation
        state.stats["clips_submitted"] += count
    return Response.json({"name": name})


def fetch(state: EmulatorState, request: Request, match: re.Match) -> Response:
    state.count("vertex_fetch")
    # How many status calls overlap: a client's concurrency bound is visible from here.
    with state.lock:
        state.vertex_in_flight += 1
        state.stats["vertex_fetch_max_in_flight"] = max(
            state.stats["vertex_fetch_max_in_flight"], state.vertex_in_flight
        )
    try:
        return answer_fetch(state, request, match)
    finally:
        with state.lock:
            state.vertex_in_flight -= 1


def answer_fetch(state: EmulatorState, request: Request, match: re.Match) -> Response:
    authenticate(state, request)
    body = request.json()
    name = body.get("operationName")
    if not isinstance(name, str) or not name:
        raise missing("operationName")
    with state.lock:
        operation = state.vertex_operations.get(name)
        global_faults = list(state.global_faults)
    for fault in global_faults:
        if fault.name in ("throttle", "error500", "token-expiry") and state.fault_book.take(fault):
            raise SUBMIT_ERRORS[fault.name](fault)
    delay(state.fault_book, global_faults + list(operation.faults.values() if operation else []))
    # An operation lives under the model of its project and region, as Google's do: asked
    # about at another region's (or project's, or model's) address, it is not found there.
    resource = (
        f"projects/{match['project']}/locations/{match['location']}/publishers/google/"
        f"models/{match['model']}"
    )
    if operation is None or not name.startswith(f"{resource}/operations/"):
        raise ApiError(404, "NOT_FOUND", f"Operation {name} is not found.")
    return Response.json(operation.answer(state))


# --- Cloud Storage -----------------------------------------------------------------------


def storage(state: EmulatorState, request: Request) -> Response:
    state.count("vertex_storage")
    authenticate(state, request)
    match = STORAGE_ROUTE.match(request.path)
    assert match is not None
    if request.query.get("alt") != ["media"]:
        raise ApiError(400, "INVALID_ARGUMENT", "Only alt=media downloads are emulated.")
    data = state.vertex_object(unquote(match["bucket"]), unquote(match["object"])).read_bytes()
    return Response(
        200, [data], [("Content-Type", "video/mp4"), ("Content-Length", str(len(data)))]
    )
