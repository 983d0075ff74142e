"""``POST /v1:uploadUserImage``: a start image, kept in memory under a fresh media id."""

from __future__ import annotations

import base64
import binascii
import io
import secrets

from PIL import Image, UnidentifiedImageError

from .auth import authenticate
from .contract import IMAGE_ASPECTS, IMAGE_MIME_TYPES, TOOLS, ApiError, invalid
from .state import EmulatorState, StoredImage
from .wire import Request, Response, need_enum, need_object, need_string


def upload(state: EmulatorState, request: Request) -> Response:
    state.count("upload")
    authenticate(state, request)
    body = request.json()
    image_input = need_object(body, "imageInput", "imageInput")
    raw = need_string(image_input, "rawImageBytes", "imageInput.rawImageBytes")
    need_enum(image_input, "mimeType", "imageInput.mimeType", IMAGE_MIME_TYPES)
    need_enum(image_input, "aspectRatio", "imageInput.aspectRatio", IMAGE_ASPECTS)
    if "isUserUploaded" in image_input and not isinstance(image_input["isUserUploaded"], bool):
        raise invalid("imageInput.isUserUploaded", image_input["isUserUploaded"], "TYPE_BOOL")
    context = body.get("clientContext")
    if context is not None:
        if not isinstance(context, dict):
            raise invalid("clientContext", context, "object")
        if "tool" in context:
            need_enum(context, "tool", "clientContext.tool", TOOLS)
    data, width, height = decode_image(raw)
    media_id = "CAMa" + secrets.token_urlsafe(45)
    stored = StoredImage.from_bytes(data)
    with state.lock:
        state.images[media_id] = stored
    return Response.json(
        {"mediaGenerationId": {"mediaGenerationId": media_id}, "width": width, "height": height}
    )


def decode_image(raw: str) -> tuple[bytes, int, int]:
    """The image's bytes and real size, or Google's 400 naming what is wrong with them."""
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
