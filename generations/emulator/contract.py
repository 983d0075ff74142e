"""Flow's vocabulary and Google's error shape, as the emulator speaks them.

The emulator keeps its own copy of the upstream's names rather than importing Flowsite's
catalogue, so that a mistake there is caught here instead of being shared. The bodies it
answers with follow the captured ones in tests/data/flow-api/.
"""

from __future__ import annotations

import json
from typing import Any

TIER_RANK = {"PAYGATE_TIER_NOT_PAID": 0, "PAYGATE_TIER_ONE": 1, "PAYGATE_TIER_TWO": 2}
# Each video aspect, and whether it is portrait.
VIDEO_ASPECTS = {"VIDEO_ASPECT_RATIO_LANDSCAPE": False, "VIDEO_ASPECT_RATIO_PORTRAIT": True}
IMAGE_ASPECTS = (
    "IMAGE_ASPECT_RATIO_LANDSCAPE",
    "IMAGE_ASPECT_RATIO_PORTRAIT",
    "IMAGE_ASPECT_RATIO_SQUARE",
    "IMAGE_ASPECT_RATIO_LANDSCAPE_FOUR_THREE",
    "IMAGE_ASPECT_RATIO_PORTRAIT_THREE_FOUR",
)
# The mime types an upload may declare, and the Pillow format each one names.
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
# The other ways to make a clip (flow-api README §6): each route takes only its own keys.
TEXT_MODELS = (
    "veo_3_1_t2v_fast",
    "veo_3_1_t2v_fast_portrait",
    "veo_3_1_t2v_fast_ultra",
    "veo_3_1_t2v_fast_portrait_ultra",
    "veo_3_1_t2v",
    "veo_3_1_t2v_portrait",
    "veo_3_1_t2v_lite",
)
FRAMES_MODELS = (
    "veo_3_1_i2v_s_fast_fl",
    "veo_3_1_i2v_s_fast_portrait_fl",
    "veo_3_1_i2v_s_fast_ultra_fl",
    "veo_3_1_i2v_s_fast_portrait_ultra_fl",
    "veo_3_1_i2v_s_fl",
    "veo_3_1_i2v_s_portrait_fl",
    "veo_3_1_interpolation_lite",
)
REFERENCE_MODELS = (
    "veo_3_1_r2v_fast_landscape",
    "veo_3_1_r2v_fast_portrait",
    "veo_3_1_r2v_fast_landscape_ultra",
    "veo_3_1_r2v_fast_portrait_ultra",
    "veo_3_1_r2v_lite",
)
# Quality's keys: Quality makes no clip from reference images.
QUALITY_MODELS = (
    "veo_3_1_i2v_s",
    "veo_3_1_i2v_s_portrait",
    "veo_3_1_t2v",
    "veo_3_1_t2v_portrait",
    "veo_3_1_i2v_s_fl",
    "veo_3_1_i2v_s_portrait_fl",
)
REFERENCE_USAGE_TYPES = ("IMAGE_USAGE_TYPE_ASSET",)
MAX_REFERENCES = 3
SEED_MAX = 2**32 - 1

PENDING = "MEDIA_GENERATION_STATUS_PENDING"
ACTIVE = "MEDIA_GENERATION_STATUS_ACTIVE"
SUCCESSFUL = "MEDIA_GENERATION_STATUS_SUCCESSFUL"
FAILED = "MEDIA_GENERATION_STATUS_FAILED"

MEDIA_TYPE = "type.googleapis.com/google.internal.labs.aisandbox.v1.Media"
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
SESSION_COOKIE_NAME = "__Secure-next-auth.session-token"
DEFAULT_FAIL_REASON = "PUBLIC_ERROR_AUDIO_FILTERED"


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


def quota_reached() -> ApiError:
    return ApiError(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
        reason="PUBLIC_ERROR_USER_QUOTA_REACHED",
    )


def internal_error() -> ApiError:
    return ApiError(500, "INTERNAL", "Internal error encountered.")


def unknown_field(name: str, at: str) -> ApiError:
    """What Google's JSON-to-proto reader answers for a key the message does not have."""
    where = f" at '{at}'" if at else ""
    message = f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.'
    return ApiError(400, "INVALID_ARGUMENT", message, field_path=at or name)


def only_known(container: dict[str, Any], allowed: tuple[str, ...] | frozenset[str], at: str):
    """Refuse the first key of ``container`` not in ``allowed``, as Google does."""
    for name in container:
        if name not in allowed:
            raise unknown_field(name, at)
