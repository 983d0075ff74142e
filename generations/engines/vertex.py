"""Vertex AI's Veo models spoken as Google documents them (``predictLongRunning``).

This is the only module in Flowsite that knows a Vertex AI URL, a JSON key of its requests and
answers, or the shape of a service-account key file. Everything it returns or raises is a type
from ``base``.

Long because it is the whole of one upstream contract (token minting, submit, per-operation
polling with bounded concurrency, inline and Cloud Storage results, every error in words), and
keeping that in one module is what makes it the only place that knows Vertex AI's JSON.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import math
import re
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from ..redaction import redact
from . import base
from .download import Kind, download_to, save_bytes
from .flow import (
    DEFAULT_TOKEN_CACHE,
    Answer,
    Deadline,
    cached_token,
    contract_error,
    parse_retry_after,
    quote,
    send,
)
from .tls import http_client

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_FIELDS = ("client_email", "private_key", "token_uri")


KEY_NOT_JSON = (
    "The service-account key is not JSON; upload or paste the whole key file "
    "(Cloud console › IAM › Service accounts › Keys › Add key › JSON)."
)


def clean_service_account_key(text: str) -> str:
    """The key file's JSON, checked to be a service-account key; ValueError in words if not."""
    text = text.strip()
    if not text:
        raise ValueError("The service-account key is empty.")
    try:
        info: Any = json.loads(text)
    except ValueError:
        raise ValueError(KEY_NOT_JSON) from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ValueError(
            'The key file is not a service-account key (its "type" is not "service_account").'
        )
    missing = [name for name in SERVICE_ACCOUNT_FIELDS if not isinstance(info.get(name), str)]
    if missing:
        raise ValueError(f"The service-account key file lacks {', '.join(missing)}.")
    if "PRIVATE KEY" not in info["private_key"]:
        raise ValueError("The service-account key file's private_key is not a PEM key.")
    return json.dumps(info, separators=(",", ":"))


def key_email(text: str) -> str:
    """The service account a stored key signs in as (for admins, never the key itself)."""
    try:
        return str(json.loads(text).get("client_email", ""))
    except (ValueError, AttributeError):
        return ""


# --- The documented contract ---------------------------------------------------------------

# How messages name this engine (Flow's plumbing and the shared errors take it).
UPSTREAM = base.EngineKind.VERTEX.label
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REGIONAL_BASE = "https://{location}-aiplatform.googleapis.com"
MODEL_PATH = "/v1/projects/{project}/locations/{location}/publishers/google/models/{model}"
SUBMIT = ":predictLongRunning"
POLL = ":fetchPredictOperation"
STORAGE_DOWNLOAD = "/download/storage/v1/b/{bucket}/o/{object}?alt=media"
MAX_SAMPLES = 4
ASPECTS = {base.Aspect.LANDSCAPE: "16:9", base.Aspect.PORTRAIT: "9:16"}
# A sample of an operation is stored on its take as "<operation name>#<index>": one call
# makes up to four takes, and the answer lists their videos in order.
SAMPLE_SEPARATOR = "#"
# A take whose operation Vertex AI no longer knows: words that read alone, and that the
# pipeline follows with "Retry as a new take" when its clip had been made
# (``pipeline.policy.clip_gone_reason``). Flow's engine says the same of its own.
OPERATION_UNKNOWN = f"{UPSTREAM} {base.OPERATION_GONE}."
# An operation's name says where it lives: Vertex AI knows it only at the address of that
# project, region and model, whatever the account's region is now.
OPERATION_NAME = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/google/"
    r"models/(?P<model>[^/:]+)/operations/[^/]+$"
)
# The region becomes part of a host name the account's token is sent to: only a region's
# shape (as rules.VERTEX_LOCATION allows for an account) may, never a dot or a slash.
REGION = re.compile(r"^[a-z]+(?:-[a-z]+)+[0-9]+$")
OPERATION_OF_ANOTHER_PROJECT = (
    "Vertex AI made this take in Google Cloud project {made}, and the account is now on project "
    "{now}; Flowsite does not ask about another project's takes with this account's "
    "credentials, so it cannot fetch its clip."
)
# gRPC codes a finished operation may carry, in words.
OPERATION_ERRORS = {
    3: "Vertex AI refused to render this take: {message}.",
    7: "Vertex AI refused this take for lack of permission: {message}.",
    8: "Vertex AI ran out of quota while rendering this take; generate it again later. ({message})",
    13: "Vertex AI had an internal error rendering this take; generate it again. ({message})",
    14: "Vertex AI was unavailable while rendering this take; generate it again. ({message})",
}
# The request fields a refusal may name, in a team member's words: "Vertex AI refused the
# clip length for this model" comes first, Google's own text after it for support.
REFUSED_FIELDS = {
    "sampleCount": "number of takes",
    "durationSeconds": "clip length",
    "aspectRatio": "aspect ratio",
    "seed": "seed",
    "resolution": "resolution",
    "negativePrompt": "negative prompt",
    "personGeneration": "choice of who may appear",
    "generateAudio": "sound setting",
    "image": "start image",
    "lastFrame": "end frame",
    "referenceImages": "reference images",
}
# A field path inside Google's message ("parameters.sampleCount: Invalid value"), for the
# refusals that come without a list of fields.
FIELD_PATH = re.compile(r"\b(?:instances(?:\[\d+\])?|parameters)(?:\.\w+(?:\[\d+\])?)+")
# An answer with clips inline is up to four MP4s in base64; anything far larger is not one.
MAX_ANSWER_BYTES = 4 * 700 * 1024 * 1024 // 3 + 1024 * 1024
# Disabled-API answers name the service in ErrorInfo; these words appear in the message too.
API_DISABLED_REASONS = {"SERVICE_DISABLED", "API_DISABLED", "ACCESS_NOT_CONFIGURED"}


class _Unauthorized(Exception):
    """A call answered 401: the token is to be refreshed once and the call made again."""


class _OperationUnknown(Exception):
    """A status call answered 404: Vertex AI does not know that one operation (lost on its
    side, or forgotten by a restart). Only its takes fail; the account is fine."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _OtherProject(Exception):
    """An operation of another Google Cloud project than the account's: not asked about."""

    def __init__(self, project: str) -> None:
        super().__init__(project)
        self.project = project


@dataclass(frozen=True)
class _Model:
    """A model of a project in a region: where a call about it is made."""

    project: str
    location: str
    name: str


@dataclass(frozen=True)
class _Sample:
    operation: str
    index: int


def split_sample(name: str) -> _Sample:
    operation, _, index = name.rpartition(SAMPLE_SEPARATOR)
    if not operation or not index.isdigit():
        return _Sample(name, 0)
    return _Sample(operation, int(index))


class VertexEngine:
    """``base.Engine`` over Vertex AI's ``predictLongRunning`` for Veo.

    Start images travel inside the submit call (``inline_images``), so ``upload_image`` is
    never needed. ``transport`` is for tests; every setting is read when a call is made.
    """

    inline_images = True
    # One call per scene, each call's refusal reported apart (``SubmitResult.refused``): the
    # pipeline never splits a refused batch of this engine.
    call_per_scene = True

    def __init__(
        self,
        credentials: base.Credentials,
        *,
        token_cache: base.TokenCache | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if bool(credentials.bearer_token) == bool(credentials.service_account_key):
            raise ValueError(
                "Vertex AI credentials need exactly one of a service-account key or an access "
                "token."
            )
        if not credentials.cloud_project:
            raise ValueError("A Vertex AI account needs its Google Cloud project id.")
        self.credentials = credentials
        self.location = credentials.location or "us-central1"
        self.token_cache = token_cache if token_cache is not None else DEFAULT_TOKEN_CACHE
        self._transport = transport
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()
        # The polling threads live as long as the engine (a pass), not one batch.
        self._pool: ThreadPoolExecutor | None = None
        self._pool_workers = 0

    def _http(self) -> httpx.Client:
        # One client for the engine's calls, shared by the polling threads (httpx's client is
        # thread-safe).
        with self._client_lock:
            if self._client is None:
                polls = max(1, int(settings.VERTEX_MAX_CONCURRENT_POLLS))
                limits = httpx.Limits(max_connections=polls + 2)
                self._client = http_client(self._transport, limits=limits)
            return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            if self._client is not None:
                self._client.close()
                self._client = None

    def _polling_pool(self, workers: int) -> ThreadPoolExecutor:
        with self._client_lock:
            if self._pool is None or self._pool_workers != workers:
                if self._pool is not None:
                    self._pool.shutdown(wait=True)
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="vertex-poll")
                self._pool_workers = workers
            return self._pool

    def poll_batch_size(self, size: int) -> int:
        """Operations per batch of status calls: whole rounds of the K polling threads. A
        batch waits for its slowest call, so 50 calls on 8 threads take 7 rounds, the last
        with 6 threads idle (a pass 12% slower when Google answers slowly); 48 take 6."""
        polls = max(1, int(settings.VERTEX_MAX_CONCURRENT_POLLS))
        return polls * max(1, round(size / polls))

    @staticmethod
    def operation_of(operation_name: str) -> str:
        """The operation a take's status call asks about (a scene's takes share one)."""
        return split_sample(operation_name).operation

    # --- base.Engine ---

    def upload_image(self, image: base.ImageData) -> base.UploadedImage:
        raise base.BadRequest("Vertex AI takes start images inside the submit call.")

    def account_info(self) -> base.AccountInfo:
        # Vertex AI bills the project; there are no credits to read.
        self._token(Deadline("signing in", UPSTREAM))
        return base.AccountInfo(credits=None, tier=self.credentials.tier)

    def submit(self, project_ref: str, clips: list[base.ClipRequest]) -> base.SubmitResult:
        """One ``predictLongRunning`` call per scene (its takes are its samples).

        After a call refused for the account (signed out, throttled, no permission), the
        remaining scenes are not sent and are reported refused with the same error: nothing
        was spent on them.
        """
        if not clips:
            raise ValueError("submit() needs at least one clip.")
        request_ids = [clip.request_id for clip in clips]
        if len(set(request_ids)) != len(request_ids):
            raise ValueError("Each clip of a submit needs its own request_id.")
        groups: dict[tuple, list[base.ClipRequest]] = defaultdict(list)
        for clip in clips:
            groups[_scene_key(clip)].append(clip)
        calls = [
            group[start : start + MAX_SAMPLES]
            for group in groups.values()
            for start in range(0, len(group), MAX_SAMPLES)
        ]
        accepted: list[base.SubmittedClip] = []
        refused: dict[str, base.EngineError] = {}
        lost: dict[str, str] = {}
        stop: base.EngineError | None = None
        for call in calls:
            ids = [clip.request_id for clip in call]
            if stop is not None:
                refused.update(dict.fromkeys(ids, stop))
                continue
            try:
                name = self._submit_one(call)
            except (base.NetworkError, base.ContractError) as error:
                if len(calls) == 1:
                    raise
                lost.update(dict.fromkeys(ids, error.message))
                continue
            except base.EngineError as error:
                if len(calls) == 1:
                    raise
                refused.update(dict.fromkeys(ids, error))
                if isinstance(
                    error,
                    base.AccountRefused | base.Throttled | base.TokenExpired | base.QuotaReached,
                ):
                    stop = error
                continue
            accepted += [
                base.SubmittedClip(
                    clip.request_id, f"{name}{SAMPLE_SEPARATOR}{index}", base.ClipState.PENDING
                )
                for index, clip in enumerate(call)
            ]
        if not accepted and not lost and refused:
            raise next(iter(refused.values()))
        return base.SubmitResult(clips=accepted, remaining_credits=None, refused=refused, lost=lost)

    def _submit_one(self, clips: list[base.ClipRequest]) -> str:
        first = clips[0]
        instance = _instance(first)
        if first.source_video_uri:
            # The clip to extend: where Vertex AI wrote it, or its bytes from Flowsite.
            instance["video"] = {"gcsUri": first.source_video_uri, "mimeType": "video/mp4"}
        elif first.source_video:
            instance["video"] = _inline(first.source_video, "video/mp4")
        parameters: dict = {
            "aspectRatio": ASPECTS[base.Aspect(first.aspect)],
            "sampleCount": len(clips),
            # Samples of one request get different seeds from Vertex AI itself.
            "seed": first.seed,
            "generateAudio": first.audio,
        }
        # The options left at their default are not sent, so Vertex AI applies its own.
        optional = {
            "durationSeconds": first.duration,
            "resolution": first.resolution,
            "negativePrompt": first.negative_prompt,
            "personGeneration": first.person_generation,
            "storageUri": self.credentials.storage_uri,
        }
        parameters.update((key, value) for key, value in optional.items() if value)
        what = "submitting a scene's takes"
        answer = self._call(
            self._own_model(first.model_key),
            SUBMIT,
            {"instances": [instance], "parameters": parameters},
            what,
        )
        name = answer.get("name")
        if not isinstance(name, str) or "/operations/" not in name:
            raise self._contract(what, "the answer names no operation", answer)
        return name

    def check(self, operations: list[base.OperationRef]) -> base.StatusResult:
        """One ``fetchPredictOperation`` per operation (Vertex AI has no batch call), at most
        VERTEX_MAX_CONCURRENT_POLLS at once.

        A call refused for the whole account (signed out, throttled, no permission) stops
        the calls not yet started and is raised, so the caller rests the account; an
        operation Vertex AI answers it does not know (404), or one of another project than the
        account's (not asked about), fails its takes alone, never to be submitted again by
        Flowsite; an operation whose call failed otherwise is left out, to be asked about
        again later. Each is asked about in the region its name carries.
        """
        by_operation: dict[str, list[tuple[base.OperationRef, int]]] = defaultdict(list)
        for ref in operations:
            sample = split_sample(ref.operation_name)
            by_operation[sample.operation].append((ref, sample.index))
        if not by_operation:
            return base.StatusResult()
        models: dict[str, _Model] = {}
        foreign: dict[str, str] = {}
        unasked: dict[str, Exception] = {}
        for name in by_operation:
            try:
                models[name] = self._model_of_operation(name)
            except _OtherProject as error:
                foreign[name] = error.project
            except base.ContractError as error:
                unasked[name] = error
        deadline = Deadline("checking takes", UPSTREAM)
        # Minted here, in the caller's thread (the token cache may be a database row); the
        # polling threads share it.
        token = self._token(deadline) if models else ""
        answers, errors = self._poll_all(models, token)
        errors.update(unasked)
        unauthorized = [name for name, error in errors.items() if isinstance(error, _Unauthorized)]
        if unauthorized:
            token = self._token_after_401(deadline, token)
            retried, errors_again = self._poll_all(
                {name: models[name] for name in unauthorized}, token
            )
            answers.update(retried)
            for name in unauthorized:
                errors.pop(name, None)
            errors.update(errors_again)
            if any(isinstance(error, _Unauthorized) for error in errors.values()):
                raise self._key_refused("a freshly minted token was refused too")
        unknown = {
            name: error for name, error in errors.items() if isinstance(error, _OperationUnknown)
        }
        for name in unknown:
            del errors[name]
        for kind in (base.AccountRefused, base.Throttled, base.QuotaReached, base.BadRequest):
            for error in errors.values():
                if isinstance(error, kind):
                    raise error
        if errors and not answers and not unknown and not foreign:
            first = next(iter(errors.values()))
            if isinstance(first, base.EngineError):
                raise first
        clips: list[base.ClipStatus] = []
        for name, answer in answers.items():
            for ref, index in by_operation[name]:
                clips.append(self._clip_status(ref, index, answer))
        # Operations that fail their takes alone: each take says why, in words.
        failed: dict[str, tuple[str, str]] = {}
        for name, error in unknown.items():
            logger.warning("Vertex AI no longer knows operation %s: %s", name, error.detail)
            failed[name] = ("operation not found", OPERATION_UNKNOWN)
        for name, project in foreign.items():
            logger.warning("Vertex AI operation %s is not of the account's project", name)
            words = OPERATION_OF_ANOTHER_PROJECT.format(
                made=project, now=self.credentials.cloud_project
            )
            failed[name] = ("operation of another project", words)
        clips += [
            base.ClipStatus(
                ref.operation_name,
                ref.request_id,
                base.ClipState.FAILED,
                failure_reason=reason,
                failure_message=words,
                # Vertex AI said nothing of the clip: it may have made and charged it.
                unanswered=True,
            )
            for name, (reason, words) in failed.items()
            for ref, _ in by_operation[name]
        ]
        for name, error in errors.items():
            if isinstance(error, base.ContractError) and len(by_operation) == 1:
                raise error
            logger.info("Vertex AI operation %s not checked this time: %s", name, error)
        return base.StatusResult(clips=clips, remaining_credits=None)

    def _model_of_operation(self, operation: str) -> _Model:
        """Where Vertex AI knows ``operation``: the project, region and model its name
        carries, not the account's region now (an admin may have moved the account while
        its takes were rendering, and another region's address answers 404).

        Any region is allowed, as long as it is shaped like one (it names the host the
        token goes to). The project must be the account's: the account's token is not sent
        to ask about another project's operations (``_OtherProject``). A project written as
        its number is let through, since Flowsite knows only the id to compare with: Google
        writes names only in answer to this account's own submits, and checks the token's
        right to that project itself."""
        match = OPERATION_NAME.match(operation)
        if match is None or not REGION.match(match["location"]):
            raise self._contract(
                "checking a take", "the operation's name is not of a Veo model in a region", ""
            )
        project = match["project"]
        if project != self.credentials.cloud_project and not project.isdigit():
            raise _OtherProject(project[:64])
        return _Model(project, match["location"], match["model"])

    def _poll_all(
        self, models: dict[str, _Model], token: str
    ) -> tuple[dict[str, dict], dict[str, Exception]]:
        answers: dict[str, dict] = {}
        errors: dict[str, Exception] = {}
        stop = threading.Event()

        def poll(name: str) -> None:
            if stop.is_set():
                return
            try:
                answers[name] = self._call(
                    models[name],
                    POLL,
                    {"operationName": name},
                    "checking a take",
                    token=token,
                )
            except (_Unauthorized, _OperationUnknown) as error:
                errors[name] = error
            except base.EngineError as error:
                errors[name] = error
                if isinstance(error, base.Throttled | base.AccountRefused | base.QuotaReached):
                    # The account's back-off starts now: no further call this pass.
                    stop.set()
            except Exception as error:  # a bug must not lose the other answers
                logger.exception("checking Vertex AI operation failed unexpectedly")
                errors[name] = base.UpstreamError(upstream=UPSTREAM, detail=redact(str(error)))

        workers = max(1, int(settings.VERTEX_MAX_CONCURRENT_POLLS))
        if workers == 1 or len(models) == 1:
            for name in models:
                poll(name)
        else:
            list(self._polling_pool(workers).map(poll, models))
        return answers, errors

    def _clip_status(self, ref: base.OperationRef, index: int, answer: dict) -> base.ClipStatus:
        what = "checking a take"

        def status(state: base.ClipState, **fields) -> base.ClipStatus:
            return base.ClipStatus(ref.operation_name, ref.request_id, state, **fields)

        if not answer.get("done"):
            return status(base.ClipState.ACTIVE)
        error = answer.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise self._contract(what, "'error' is not an object", answer)
            code = error.get("code")
            message = redact(str(error.get("message") or "no reason given"))[:300]
            template = OPERATION_ERRORS.get(
                code if isinstance(code, int) else -1,
                "Vertex AI could not render this take: {message}.",
            )
            words = refusal_words(message, []) if code == 3 else ""
            return status(
                base.ClipState.FAILED,
                failure_reason=f"code {code}",
                failure_message=words or template.format(message=message.rstrip(".")),
                said=message if error.get("message") else "",
            )
        response = answer.get("response")
        if not isinstance(response, dict):
            raise self._contract(what, "a finished operation has no 'response'", answer)
        videos = response.get("videos", [])
        if not isinstance(videos, list):
            raise self._contract(what, "'response.videos' is not a list", answer)
        if index >= len(videos):
            filtered = response.get("raiMediaFilteredCount", 0)
            reasons = response.get("raiMediaFilteredReasons") or []
            reason = (
                "; ".join(str(item) for item in reasons if item)
                if isinstance(reasons, list)
                else ""
            )
            if not filtered and not reasons:
                return status(
                    base.ClipState.FAILED,
                    failure_reason="missing sample",
                    failure_message="Vertex AI finished without this take's clip and gave no "
                    "reason.",
                )
            return status(
                base.ClipState.FAILED,
                failure_reason="raiMediaFilteredCount",
                failure_message=(
                    "Vertex AI's safety filter removed this take"
                    + (f": {redact(reason)[:250]}" if reason else ".")
                ),
            )
        video = videos[index]
        if not isinstance(video, dict):
            raise self._contract(what, "a video is not an object", answer)
        if isinstance(video.get("bytesBase64Encoded"), str):
            try:
                data = base64.b64decode(video["bytesBase64Encoded"], validate=True)
            except ValueError:
                raise self._contract(what, "a video's bytes are not base64", {}) from None
            return status(base.ClipState.SUCCESSFUL, video_data=data, video_url="inline:")
        uri = video.get("gcsUri")
        if isinstance(uri, str) and uri.startswith("gs://"):
            # Kept as the clip's media id: extending it later names it instead of sending it.
            return status(base.ClipState.SUCCESSFUL, video_url=uri, media_generation_id=uri)
        raise self._contract(what, "a video has neither bytes nor a gs:// address", video)

    # --- Fetching a finished clip ---

    def fetch_video(
        self,
        clip: base.ClipStatus,
        dest: Path,
        *,
        kind: Kind = "video",
        deadline: float | None = None,
    ):
        """The clip into ``dest`` through the safe download path: from the answer itself, or
        from Cloud Storage with the account's token."""
        if clip.video_data:
            return save_bytes(clip.video_data, dest, kind=kind)
        bucket, _, name = clip.video_url.removeprefix("gs://").partition("/")
        if not bucket or not name:
            raise base.DownloadFailed("Vertex AI named a Cloud Storage address without a file.")
        storage = settings.GOOGLE_STORAGE_BASE_URL.rstrip("/")
        url = storage + STORAGE_DOWNLOAD.format(
            bucket=url_quote(bucket, safe=""), object=url_quote(name, safe="")
        )
        token = self._token(Deadline("fetching a clip", UPSTREAM))
        parts = urlsplit(storage)
        origin = parts.netloc.rpartition("@")[2]
        return download_to(
            url,
            dest,
            kind=kind,
            allowed_hosts=[origin],
            headers={"authorization": f"Bearer {token}"},
            deadline=deadline,
        )

    # --- HTTP ---

    def _own_model(self, model: str) -> _Model:
        """``model`` in the account's project and region, as they are now."""
        return _Model(self.credentials.cloud_project, self.location, model)

    def _model_url(self, model: _Model) -> str:
        # VERTEX_API_BASE_URL (a private endpoint, the emulator) replaces the regional host
        # only; the region stays in the path.
        base_url = settings.VERTEX_API_BASE_URL or REGIONAL_BASE.format(location=model.location)
        return base_url.rstrip("/") + MODEL_PATH.format(
            project=url_quote(model.project, safe=""),
            location=url_quote(model.location, safe=""),
            model=url_quote(model.name, safe=""),
        )

    def _call(
        self, model: _Model, verb: str, body: dict, what: str, *, token: str | None = None
    ) -> dict:
        """One call. Without ``token``, it is fetched (minted if need be) and a 401 refreshes
        it once; with one (the polling threads), a 401 raises ``_Unauthorized``."""
        deadline = Deadline(what, UPSTREAM)
        given = token
        token = token or self._token(deadline)
        answer = self._send(self._model_url(model) + verb, token, body, deadline)
        if answer.status == 401:
            if given is not None:
                raise _Unauthorized()
            token = self._token_after_401(deadline, token)
            answer = self._send(self._model_url(model) + verb, token, body, deadline)
            if answer.status == 401:
                raise self._key_refused("a freshly minted token was refused too")
        if answer.status == 404 and verb == POLL:
            # The status of one operation: a 404 is about that operation, not the model or
            # the region (a submit's 404 is, and keeps its meaning in ``_error``).
            secrets = (self.credentials.bearer_token,)
            raise _OperationUnknown(
                f"HTTP 404 while {what}: {quote(answer.json() or answer.body, secrets, 1000)}"
            )
        if answer.status != 200:
            raise self._error(answer, model, what)
        payload = answer.json()
        if not isinstance(payload, dict):
            raise self._contract(what, "the answer is not a JSON object", answer.body)
        return payload

    def _send(self, url: str, token: str, body: dict, deadline: Deadline) -> Answer:
        return send(
            self._http(),
            "POST",
            url,
            deadline,
            max_bytes=MAX_ANSWER_BYTES,
            json=body,
            headers={"authorization": f"Bearer {token}", "accept": "application/json"},
        )

    # --- Tokens ---

    def _token(self, deadline: Deadline, *, refused: str = "") -> str:
        """The access token: the pasted one, or one minted from the key and shared through
        the token cache until shortly before it expires. ``refused`` was just answered 401."""
        mint = functools.partial(self._mint, deadline)
        return cached_token(
            self.credentials, self.token_cache, mint, refused=refused, upstream=UPSTREAM
        )

    def _token_after_401(self, deadline: Deadline, refused: str) -> str:
        """A fresh token in place of ``refused``, minted from the key: a 401 is a refusal
        before any work, so asking again is safe. A pasted token cannot be renewed."""
        if not self.credentials.service_account_key:
            raise base.TokenExpired(
                "Vertex AI refused the account's access token: it has expired (they last an "
                "hour) or was revoked. Paste a new one, or give the account a service-account key."
            )
        return self._token(deadline, refused=refused)

    def _mint(self, deadline: Deadline) -> tuple[str, datetime]:
        """Sign a JWT with the service account's key and trade it at the key's ``token_uri``
        (google-auth does both, as Google's own clients do)."""
        import google.auth.exceptions
        from google.oauth2 import service_account

        try:
            info = json.loads(self.credentials.service_account_key)
            signer = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
        except (ValueError, KeyError, TypeError) as error:
            raise self._key_refused(
                f"the stored key cannot be read ({type(error).__name__})"
            ) from None
        try:
            signer.refresh(_AuthRequest(self._http(), deadline))
        except google.auth.exceptions.RefreshError as error:
            retryable = getattr(error, "retryable", False)
            text = redact(str(error.args[0] if error.args else error))[:200]
            if retryable:
                raise base.UpstreamError(
                    "Google's sign-in service failed while Flowsite was minting a token.",
                    detail=text,
                ) from None
            raise self._key_refused(text) from None
        except google.auth.exceptions.TransportError as error:
            raise base.NetworkError(
                "Flowsite could not reach Google's sign-in service to mint a token.",
                detail=redact(str(error))[:300],
            ) from None
        expiry = signer.expiry
        if expiry is None:
            expires = datetime.now(UTC) + timedelta(hours=1)
        else:
            expires = expiry.replace(tzinfo=UTC) if expiry.tzinfo is None else expiry
        return signer.token, expires

    # --- Errors ---

    def _key_refused(self, why: str) -> base.AccountRefused:
        return base.AccountRefused(
            "Google refused to sign in with the account's service-account key (the key may "
            "have been deleted or disabled); upload a new key file.",
            detail=why,
        )

    def _contract(self, what: str, problem: str, part) -> base.ContractError:
        return contract_error(UPSTREAM, what, problem, part, (self.credentials.bearer_token,))

    def _error(self, answer: Answer, model: _Model, what: str) -> base.EngineError:
        status = answer.status
        payload = answer.json()
        error = payload.get("error") if isinstance(payload, dict) else None
        error = error if isinstance(error, dict) else {}
        # Google's words reach cards and logs: each piece is redacted here, once, as it is read.
        secrets = (self.credentials.bearer_token,)
        message = error.get("message") if isinstance(error.get("message"), str) else ""
        message = redact(message, secrets, 300)
        reasons, fields = set(), []
        for item in error.get("details") or []:
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("reason"), str):
                reasons.add(item["reason"])
            for violation in item.get("fieldViolations") or []:
                if isinstance(violation, dict) and isinstance(violation.get("field"), str):
                    description = violation.get("description")
                    fields.append(
                        (
                            redact(violation["field"], secrets, 200),
                            redact(str(description), secrets, 300) if description else message,
                        )
                    )
        detail = f"HTTP {status} while {what}: {quote(payload or answer.body, secrets, 1000)}"
        project, region = model.project, model.location
        if status == 429:
            retry_after = parse_retry_after(answer.headers.get("retry-after"))
            wait = (
                f" and Google asked to wait {math.ceil(retry_after)} s"
                if retry_after is not None
                else ""
            )
            return base.Throttled(
                f"Vertex AI's quota for project {project} in {region} is used up for now{wait}.",
                retry_after=retry_after,
                detail=detail,
            )
        if status >= 500:
            return base.UpstreamError(
                f"Vertex AI had an internal error (HTTP {status}) while {what}.",
                detail=detail,
            )
        if status == 403:
            lowered = message.lower()
            if (
                reasons & API_DISABLED_REASONS
                or "has not been used" in lowered
                or ("disabled" in lowered)
            ):
                return base.AccountRefused(
                    f"The Vertex AI API is not enabled in Google Cloud project {project}; "
                    "enable aiplatform.googleapis.com there (Cloud console › APIs & "
                    "Services), then an admin presses Check again now on the account.",
                    detail=detail,
                )
            return base.AccountRefused(
                f"The account may not use Vertex AI in project {project}: its service account "
                "needs the Vertex AI User role (roles/aiplatform.user) there."
                + (f" Google said: {message}" if message else ""),
                detail=detail,
            )
        if status == 404:
            # Only a submit gets here: a status call's 404 is its operation's (``_call``).
            return base.AccountRefused(
                f"The model {model.name} is not available in region {region} for project "
                f"{project}; pick another region for the account (us-central1 has every Veo "
                "model) or another model.",
                detail=detail,
            )
        if status == 400:
            named = "; ".join(f"{name}: {text}" for name, text in fields[:3])
            words = refusal_words(named or message, [name for name, _ in fields])
            if words:
                return base.BadRequest(words, detail=detail)
            if fields:
                return base.BadRequest(f"Vertex AI refused the request ({named}).", detail=detail)
            return base.BadRequest(
                f"Vertex AI refused the request: {message or 'invalid argument'}", detail=detail
            )
        if not error:
            return self._contract(what, f"HTTP {status} without Google's error body", answer.body)
        return base.BadRequest(
            f"Vertex AI refused the request (HTTP {status}): {message}", detail=detail
        )


def refusal_words(google: str, paths: list[str]) -> str:
    """A refusal of the request in words: the first field of ``paths`` (or, without them, of
    Google's message) that Flowsite knows, named plainly, then ``google``; "" when no field
    is known (the caller keeps its own wording)."""
    for path in paths or FIELD_PATH.findall(google):
        # The first known name: "instances[0].referenceImages[1].image" is about the
        # reference images, not the start image.
        known = next(
            (name for name in re.findall(r"[A-Za-z]+", path) if name in REFUSED_FIELDS), ""
        )
        if known:
            return (
                f"{UPSTREAM} refused the {REFUSED_FIELDS[known]} for this model; change it or "
                f"pick another model. Google said: {google}"
            )
    return ""


class _AuthRequest:
    """google-auth's transport interface over Flowsite's own HTTP client, so minting a token
    follows the same rules (no proxies from the environment, one overall deadline)."""

    def __init__(self, client: httpx.Client, deadline: Deadline) -> None:
        self.client = client
        self.deadline = deadline

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        import google.auth.exceptions

        try:
            self.deadline.check()
            response = self.client.request(
                method, url, content=body, headers=headers, timeout=self.deadline.timeout()
            )
        except (httpx.HTTPError, base.NetworkError) as error:
            raise google.auth.exceptions.TransportError(
                f"{type(error).__name__} reaching {urlsplit(url).netloc}"
            ) from None
        return _AuthResponse(response)


class _AuthResponse:
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self.data = response.content


def _inline(data: bytes, mime_type: str) -> dict[str, str]:
    return {"bytesBase64Encoded": base64.b64encode(data).decode("ascii"), "mimeType": mime_type}


def _instance(clip: base.ClipRequest) -> dict[str, Any]:
    """The prompt, and the images the clip's mode is made from: none (text), ``image``
    (start image), ``image`` and ``lastFrame`` (frames), or 1 to 3 ``referenceImages`` of the
    ``asset`` type (ingredients)."""
    mode = base.Mode(clip.mode)
    instance: dict[str, Any] = {"prompt": clip.prompt}
    if mode in (base.Mode.IMAGE, base.Mode.FRAMES):
        if clip.start_image is None:
            raise base.BadRequest("This clip needs a start image and has none.")
        instance["image"] = _inline(clip.start_image.data, clip.start_image.mime_type)
    if mode == base.Mode.FRAMES:
        if clip.end_image is None:
            raise base.BadRequest("This clip needs an end image and has none.")
        instance["lastFrame"] = _inline(clip.end_image.data, clip.end_image.mime_type)
    if mode == base.Mode.INGREDIENTS:
        if not clip.reference_images:
            raise base.BadRequest("This clip needs reference images and has none.")
        instance["referenceImages"] = [
            {"image": _inline(image.data, image.mime_type), "referenceType": "asset"}
            for image in clip.reference_images
        ]
    return instance


def _scene_key(clip: base.ClipRequest) -> tuple:
    # Takes of one scene ask the same thing but for the seed: one call renders them all.
    return (
        clip.scene_ref or clip.request_id,
        clip.prompt,
        clip.model_key,
        clip.aspect,
        clip.mode,
        clip.start_image.data if clip.start_image is not None else b"",
        clip.end_image.data if clip.end_image is not None else b"",
        tuple(image.data for image in clip.reference_images),
        clip.duration,
        clip.resolution,
        clip.audio,
        clip.negative_prompt,
        clip.person_generation,
        clip.source_video_uri,
        clip.source_video,
    )
