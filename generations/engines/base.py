"""What Flowsite needs from a video engine, in words that belong to no upstream.

Tasks and views speak only these types. An engine module (``flow.py`` today, ``vertex.py``
tomorrow) turns them into its upstream's JSON and back, so an upstream change is a change of
one module. Nothing here knows a Flow URL or JSON key.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class ClipState(enum.StrEnum):
    """Where one requested clip is upstream."""

    PENDING = "pending"
    ACTIVE = "active"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def in_flight(self) -> bool:
        return self in (ClipState.PENDING, ClipState.ACTIVE)


class Aspect(enum.StrEnum):
    LANDSCAPE = "landscape"  # 16:9
    PORTRAIT = "portrait"  # 9:16


class Mode(enum.StrEnum):
    """What a clip is made from: the prompt alone, a start image, a start and an end frame,
    or 1 to 3 reference images ("ingredients"); extend continues a finished clip."""

    TEXT = "text"
    IMAGE = "image"
    FRAMES = "frames"
    INGREDIENTS = "ingredients"
    EXTEND = "extend"


# What a refusal says the upstream was given, by what the clip is made from.
GIVEN_WORDS = {
    Mode.TEXT: "the prompt",
    Mode.IMAGE: "the prompt or the start image",
    Mode.FRAMES: "the prompt or the start or end frame",
    Mode.INGREDIENTS: "the prompt or a reference image",
    Mode.EXTEND: "the prompt or the clip it extends",
}
UPSCALE_GIVEN = "the clip"
# Said after the upstream's name of a take whose operation it no longer knows (``unanswered``):
# "Flow no longer knows this take's operation, so Flowsite cannot fetch its clip."
OPERATION_GONE = "no longer knows this take's operation, so Flowsite cannot fetch its clip"


class EngineKind(enum.StrEnum):
    """Which upstream serves an account."""

    FLOW = "flow"
    VERTEX = "vertex"

    @property
    def label(self) -> str:
        """The upstream's name in sentences for people."""
        return "Vertex AI" if self is EngineKind.VERTEX else "Flow"


@dataclass(frozen=True)
class Credentials:
    """How to authenticate as one upstream account.

    Flow: exactly one of ``bearer_token`` (pasted by an admin) or ``session_cookie`` (from which
    the engine mints short-lived tokens) is set; ``tier`` is the account's paygate tier key.
    Vertex AI: ``cloud_project`` and ``location`` say where, and exactly one of
    ``service_account_key`` (a key file's JSON, from which tokens are minted) or
    ``bearer_token``; ``storage_uri`` is an optional Cloud Storage prefix for results.
    ``key`` identifies the account for the engine's token cache.
    """

    key: str
    tier: str
    bearer_token: str = ""
    session_cookie: str = ""
    kind: str = EngineKind.FLOW
    service_account_key: str = field(default="", repr=False)
    cloud_project: str = ""
    location: str = ""
    storage_uri: str = ""


@dataclass(frozen=True)
class ImageData:
    data: bytes
    mime_type: str  # image/jpeg, image/png, image/webp
    width: int
    height: int


@dataclass(frozen=True)
class UploadedImage:
    media_id: str
    width: int
    height: int


@dataclass(frozen=True)
class ClipRequest:
    """One clip to render. ``request_id`` is a fresh UUID per clip, chosen by Flowsite, that
    the upstream echoes back so each answer is matched to its take."""

    request_id: str
    prompt: str
    model_key: str
    aspect: Aspect
    seed: int
    start_image_media_id: str | None = None
    # Engines that take the start image inline (Vertex AI) get its bytes here instead.
    start_image: ImageData | None = field(default=None, repr=False)
    # What the clip is made from; the images the mode uses are given the same two ways.
    mode: Mode = Mode.IMAGE
    end_image_media_id: str | None = None
    end_image: ImageData | None = field(default=None, repr=False)
    reference_media_ids: tuple[str, ...] = ()
    reference_images: tuple[ImageData, ...] = field(default=(), repr=False)
    # Clips of one scene share this; an engine that renders a scene's takes in one call
    # (Vertex AI's sampleCount) groups by it.
    scene_ref: str = ""
    # Clip options (catalogue.ClipOptions says which an engine offers); None/"": its default.
    duration: int | None = None
    resolution: str = ""
    audio: bool = False
    negative_prompt: str = ""
    person_generation: str = ""
    # Extending a clip: Flow's media id of the source clip and the window of its frames to
    # continue from (first, last, 1-based at 24 fps); Vertex AI takes the source clip itself,
    # as a gs:// address or its bytes.
    source_media_id: str = ""
    source_frames: tuple[int, int] | None = None
    source_video_uri: str = ""
    source_video: bytes = field(default=b"", repr=False)

    @property
    def extends(self) -> bool:
        return bool(self.source_media_id or self.source_video_uri or self.source_video)


@dataclass(frozen=True)
class UpscaleRequest:
    """One ready clip to upscale (Flow only): its media id, and "1080p" or "4k"."""

    request_id: str
    media_id: str
    aspect: Aspect
    resolution: str
    model_key: str
    seed: int = 0


@dataclass(frozen=True)
class SubmittedClip:
    request_id: str
    operation_name: str
    state: ClipState


@dataclass(frozen=True)
class SubmitResult:
    """``clips`` were accepted. An engine that makes several calls for one submit reports the
    clips of a call that was refused before anything was spent in ``refused`` (request id →
    the error) and those of a call whose answer was lost in ``lost`` (request id → why): the
    latter may be rendering and billed, so they are never sent again automatically."""

    clips: list[SubmittedClip]
    remaining_credits: int | None
    refused: dict[str, EngineError] = field(default_factory=dict)
    lost: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OperationRef:
    """What the engine needs to ask about one clip again later (stored on the take)."""

    operation_name: str
    request_id: str
    # What the clip is made from, as its failure's sentence names it (GIVEN_WORDS).
    given: str = ""


@dataclass(frozen=True)
class ClipStatus:
    operation_name: str
    request_id: str
    state: ClipState
    video_url: str = ""
    poster_url: str = ""
    media_generation_id: str = ""
    seed: int | None = None
    failure_reason: str = ""  # the upstream's reason code, e.g. PUBLIC_ERROR_AUDIO_FILTERED
    # The failure in a sentence for people (every engine words its own codes).
    failure_message: str = ""
    # The upstream's own words about the failure, as it gave them (its error message or
    # status), for a card to quote as said by it; "" when it gave none.
    said: str = ""
    # A FAILED entry the upstream did not report: it no longer knows the operation (lost on
    # its side, forgotten by a restart), or Flowsite would not ask about it. Whether it made,
    # and charged, the clip is unknown, so the take counts as spent (``SPENDING_Q``).
    unanswered: bool = False
    # The clip itself, when the upstream sends it inside the answer (Vertex AI without a
    # results prefix); fetched through the engine's ``fetch_video`` then.
    video_data: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class StatusResult:
    clips: list[ClipStatus] = field(default_factory=list)
    remaining_credits: int | None = None


@dataclass(frozen=True)
class AccountInfo:
    credits: int | None
    tier: str


class TokenCache(Protocol):
    """Where an engine keeps the access tokens it mints, keyed by ``Credentials.key``.

    ``expires_at`` (an aware datetime) is when the engine stops using the token and mints a
    new one; engines store a moment safely before the token's real expiry, so a reader only
    has to compare it with now. A worker can persist these on the account row so that every
    process shares one token.
    """

    def get(self, key: str) -> tuple[str, datetime] | None: ...

    def set(self, key: str, token: str, expires_at: datetime) -> None: ...


class Engine(Protocol):
    """The whole surface tasks use. Every method raises an ``EngineError`` subclass on failure."""

    def upload_image(self, image: ImageData) -> UploadedImage: ...

    def submit(self, project_ref: str, clips: list[ClipRequest]) -> SubmitResult: ...

    def check(self, operations: list[OperationRef]) -> StatusResult: ...

    def account_info(self) -> AccountInfo: ...

    def close(self) -> None:
        """Release connections; the engine may be used again afterwards."""
        ...


# --- Errors --------------------------------------------------------------------------------


class Failure(Exception):
    """What engine and download errors share. ``message`` is written for a team member, not a
    coder, and says what happened, never what Flowsite will do next (the worker adds that: it
    may try again, or give up); ``retryable`` says whether doing the same thing again later may
    succeed."""

    retryable = False
    default_message = "Something failed."

    def __init__(self, message: str = "", *, detail: str = "") -> None:
        self.message = message or self.default_message
        # Technical detail for logs and admins (never a token or a signed URL).
        self.detail = detail
        super().__init__(self.message)


class EngineError(Failure):
    """Base of every upstream failure. Terminal ones (safety, tier, quota) are not retried.

    ``default_message`` names the upstream as ``{upstream}``: the errors shared by the engines
    are raised by either, and a Vertex AI account must not read that Flow failed."""

    default_message = "The video service failed."

    def __init__(self, message: str = "", *, upstream: str = "Flow", detail: str = "") -> None:
        super().__init__(message or self.default_message.format(upstream=upstream), detail=detail)


class TokenExpired(EngineError):
    retryable = True
    default_message = "The {upstream} access token has expired or was revoked."


class SessionExpired(EngineError):
    default_message = (
        "The {upstream} session has expired — paste a new session cookie for the account."
    )


class TierTooLow(EngineError):
    default_message = "This model needs a higher {upstream} subscription tier than the account has."


class Throttled(EngineError):
    retryable = True
    default_message = "{upstream} is rate-limiting this account."

    def __init__(self, message: str = "", *, retry_after: float | None = None, **words: str):
        super().__init__(message, **words)
        self.retry_after = retry_after


class QuotaReached(EngineError):
    default_message = (
        "The {upstream} account has run out of credits or of today's quota for this model."
    )


class OutOfCredits(QuotaReached):
    """The account's credits, not a model's daily quota, are spent: Flow refused the call
    before any work, so nothing was charged, and another account may take the clip."""

    default_message = "The {upstream} account has run out of credits."

    def __init__(self, message: str = "", *, reason: str = "", **words: str):
        super().__init__(message, **words)
        self.reason = reason


class ModelQuotaReached(QuotaReached):
    """One model's daily quota is spent on the account, not its credits: Flow refused the
    call before any work, so nothing was charged, the account still has credits for other
    models, and another account's quota of the model may not be spent yet."""

    default_message = "The {upstream} account has used up today's quota for this model."

    def __init__(self, message: str = "", *, reason: str = "", **words: str):
        super().__init__(message, **words)
        self.reason = reason


class Unsafe(EngineError):
    default_message = "{upstream} refused the prompt or image as unsafe."

    def __init__(self, message: str = "", *, reason: str = "", **words: str):
        super().__init__(message, **words)
        self.reason = reason


class ImageUnknown(EngineError):
    retryable = True
    default_message = "{upstream} no longer knows the uploaded start image."


class BotCheck(EngineError):
    retryable = True
    default_message = "Google's automated-traffic check refused the request."


class UpstreamError(EngineError):
    retryable = True
    default_message = "{upstream} had an internal error."


class ContractError(EngineError):
    default_message = "{upstream} answered in a shape Flowsite does not know."


class NetworkError(EngineError):
    retryable = True
    default_message = "Flowsite could not reach {upstream} (network error or timeout)."


class BadRequest(EngineError):
    default_message = "{upstream} refused the request as invalid."


class AccountRefused(EngineError):
    """The upstream refuses the account itself (an API not enabled, a missing role, a model
    not offered in its region, a key that no longer signs in): its takes wait, saying this,
    until an admin fixes the account."""

    default_message = "The account cannot be used until an admin fixes it."


# --- Downloads ------------------------------------------------------------------------------


class DownloadError(Failure):
    """A clip or poster could not be fetched into storage. Nothing is left on disk."""

    default_message = "The file could not be downloaded."


class HostNotAllowed(DownloadError):
    default_message = "The file is on a host Flowsite does not download from."


class TooLarge(DownloadError):
    default_message = "The file is larger than Flowsite accepts."


class WrongType(DownloadError):
    default_message = "The file is not of the expected type."


class LinkExpired(DownloadError):
    retryable = True
    default_message = "The download link has expired."


class CutShort(DownloadError):
    retryable = True
    default_message = "The download was cut short."


class DownloadFailed(DownloadError):
    retryable = True
    default_message = "The download failed (network error or timeout)."


@dataclass(frozen=True)
class DownloadResult:
    path: str  # absolute path of the complete file
    size: int
    sha256: str
    content_type: str
