"""What a Vertex AI ``predictLongRunning`` instance makes a clip from: the prompt alone, an
inline ``image``, ``image`` with ``lastFrame``, or 1 to 3 ``referenceImages`` of the ``asset``
type, or a ``video`` to extend; each refused in Vertex AI's words when it does not fit the
model or the clip."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any

from PIL import Image

from .contract import ApiError, invalid, missing, only_known
from .reframe import count_frames
from .state import EmulatorState, StoredImage

# The GA models take a last frame and reference images; the Lite preview neither.
LAST_FRAME_MODELS = REFERENCE_MODELS = ("veo-3.1-generate-001", "veo-3.1-fast-generate-001")
INSTANCE_KEYS = ("prompt", "image", "lastFrame", "referenceImages", "video")


def read_inputs(
    instance: dict[str, Any], model: str, duration: int
) -> tuple[str, list[StoredImage]]:
    """What the instance makes a clip from, as (mode, images), refused as Vertex AI refuses:
    ``lastFrame`` needs ``image``; ``referenceImages`` (1 to 3, of the ``asset`` type) go
    without ``image``, only on the models that take them, and only for 8 s clips."""
    has_image, has_last = "image" in instance, "lastFrame" in instance
    references = instance.get("referenceImages")
    if has_last and not has_image:
        raise missing("instances[0].image")
    if references is not None:
        if has_image:
            raise invalid(
                "instances[0].referenceImages", "…", "not together with instances[0].image"
            )
        if model not in REFERENCE_MODELS:
            raise ApiError(
                400,
                "INVALID_ARGUMENT",
                f"Reference images are not supported by the model {model}.",
                field_path="instances[0].referenceImages",
            )
        if not isinstance(references, list) or not 1 <= len(references) <= 3:
            shown = f"{len(references)} images" if isinstance(references, list) else references
            raise invalid("instances[0].referenceImages", shown, "1 to 3 images")
        if duration != 8:
            raise invalid("parameters.durationSeconds", duration, "8 with reference images")
        images = []
        for index, reference in enumerate(references):
            at = f"instances[0].referenceImages[{index}]"
            if not isinstance(reference, dict):
                raise invalid(at, reference, "object")
            only_known(reference, ("image", "referenceType"), at)
            if reference.get("referenceType") != "asset":
                raise invalid(f"{at}.referenceType", reference.get("referenceType"), "asset")
            images.append(_media(reference.get("image"), f"{at}.image"))
        return "ingredients", images
    if has_last and model not in LAST_FRAME_MODELS:
        raise ApiError(
            400,
            "INVALID_ARGUMENT",
            f"lastFrame is not supported by the model {model}.",
            field_path="instances[0].lastFrame",
        )
    if has_last:
        return "frames", [
            _media(instance["image"], "instances[0].image"),
            _media(instance["lastFrame"], "instances[0].lastFrame"),
        ]
    if has_image:
        return "image", [_media(instance["image"], "instances[0].image")]
    return "text", []


def _media(given: Any, path: str) -> StoredImage:
    """An image sent inline (``bytesBase64Encoded`` with ``mimeType``)."""
    if not isinstance(given, dict) or not isinstance(given.get("bytesBase64Encoded"), str):
        raise invalid(path, "…", "bytesBase64Encoded with mimeType")
    only_known(given, ("bytesBase64Encoded", "mimeType", "gcsUri"), path)
    try:
        data = base64.b64decode(given["bytesBase64Encoded"], validate=True)
        with Image.open(io.BytesIO(data)) as opened:
            opened.verify()
    except Exception:
        raise invalid(f"{path}.bytesBase64Encoded", "…", "an image") from None
    return StoredImage.from_bytes(data)


def vertex_source(state: EmulatorState, given: Any) -> Path | None:
    """The clip to extend, as a file: sent inline (kept in the renderer's folder under its
    digest) or named by a gs:// address of this emulator's bucket."""
    if given is None:
        return None
    if not isinstance(given, dict):
        raise invalid("instances[0].video", "…", "gcsUri or bytesBase64Encoded with mimeType")
    if isinstance(given.get("gcsUri"), str):
        bucket, _, name = given["gcsUri"].removeprefix("gs://").partition("/")
        return state.vertex_object(bucket, name)
    if not isinstance(given.get("bytesBase64Encoded"), str):
        raise invalid("instances[0].video", "…", "gcsUri or bytesBase64Encoded with mimeType")
    try:
        data = base64.b64decode(given["bytesBase64Encoded"], validate=True)
    except ValueError:
        raise invalid("instances[0].video.bytesBase64Encoded", "…", "base64") from None
    path = state.renderer.dir / f"source-{hashlib.sha256(data).hexdigest()[:32]}.mp4"
    if not path.exists():
        path.write_bytes(data)
    try:
        count_frames(path)
    except Exception:
        path.unlink(missing_ok=True)
        raise invalid("instances[0].video.bytesBase64Encoded", "…", "an MP4 video") from None
    return path
