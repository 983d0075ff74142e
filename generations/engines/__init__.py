"""Video engines: the one place that picks which upstream serves an account.

Tasks call ``get_engine(account.credentials())`` and speak only the ``base`` types re-exported
here; a second engine (Vertex AI) would be chosen in ``get_engine`` and nowhere else.
"""

from __future__ import annotations

from .base import (
    AccountInfo,
    Aspect,
    BadRequest,
    BotCheck,
    ClipRequest,
    ClipState,
    ClipStatus,
    ContractError,
    Credentials,
    CutShort,
    DownloadError,
    DownloadFailed,
    DownloadResult,
    Engine,
    EngineError,
    HostNotAllowed,
    ImageData,
    ImageUnknown,
    LinkExpired,
    NetworkError,
    OperationRef,
    QuotaReached,
    SessionExpired,
    StatusResult,
    SubmitResult,
    SubmittedClip,
    Throttled,
    TierTooLow,
    TokenCache,
    TokenExpired,
    TooLarge,
    Unsafe,
    UploadedImage,
    UpstreamError,
    WrongType,
)
from .download import download_to

__all__ = [
    "AccountInfo",
    "Aspect",
    "BadRequest",
    "BotCheck",
    "ClipRequest",
    "ClipState",
    "ClipStatus",
    "ContractError",
    "Credentials",
    "CutShort",
    "DownloadError",
    "DownloadFailed",
    "DownloadResult",
    "Engine",
    "EngineError",
    "HostNotAllowed",
    "ImageData",
    "ImageUnknown",
    "LinkExpired",
    "NetworkError",
    "OperationRef",
    "QuotaReached",
    "SessionExpired",
    "StatusResult",
    "SubmitResult",
    "SubmittedClip",
    "Throttled",
    "TierTooLow",
    "TokenCache",
    "TokenExpired",
    "TooLarge",
    "Unsafe",
    "UploadedImage",
    "UpstreamError",
    "WrongType",
    "download_to",
    "get_engine",
]


def get_engine(credentials: Credentials, *, token_cache: TokenCache | None = None) -> Engine:
    """The engine serving an account with these credentials (Flow, for now)."""
    from .flow import FlowEngine

    return FlowEngine(credentials, token_cache=token_cache)
