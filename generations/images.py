"""Start images: refuse what is not a plain still image, store a clean re-encoded copy.

Everything a person uploads passes through :func:`store_start_image` (the scene form, the
storyboard import, the demo data). The file is judged by its bytes, never by its name or the
browser's content type, and what is stored is a fresh encoding of the pixels alone:

- the byte size is capped before anything is decoded (``FLOWSITE_MAX_IMAGE_BYTES``);
- only Pillow's JPEG, PNG and WebP parsers are ever tried, so no other decoder sees the bytes;
- the pixel count is capped from the header, before the pixels are decoded
  (``FLOWSITE_MAX_IMAGE_PIXELS``), which refuses decompression bombs; from the same header,
  the bytes the decoder would produce (pixels × bytes per pixel) are capped at what an 8-bit
  RGB picture at the pixel cap takes, so deep colour with alpha cannot cost several times what
  a photo does, and the shape is bounded (no side more than ``MAX_SIDE_RATIO`` times the other);
- EXIF orientation is applied to the pixels, then every piece of metadata (EXIF with GPS,
  XMP, comments, text chunks, ICC profile) is left behind; an embedded colour profile is first
  applied to the pixels, so the colours survive as plain sRGB;
- transparency is flattened onto white: a video frame has no alpha channel, and this way every
  engine sees the same picture.

Output format: a JPEG stays a JPEG (quality 92); a PNG stays a PNG (lossless, so screenshots
and drawings keep their edges); a WebP becomes a JPEG (quality 92) — its source was already
lossy or photographic, and JPEG is the one format every video engine on the roadmap accepts.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import re
import warnings
from typing import IO, TYPE_CHECKING

import av
from django.conf import settings
from django.core.files.base import ContentFile
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .models import ImageAsset

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from .models import Project

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
JPEG_QUALITY = 92
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
# Flow frames a start image between 9:16 and 16:9 (the image aspects in engines/flow.py); the
# rule holds on every project, Vertex AI's too, so its words name no engine.
# Panoramas up to 4:1 still show close to half of themselves in a 16:9 frame; past that, the
# clip would start from a sliver of the picture, and a 40,000,000 × 1 "image" is no picture.
MAX_SIDE_RATIO = 4
# What an 8-bit RGB picture takes per pixel: the decode budget is the pixel cap at that depth.
BUDGET_BYTES_PER_PIXEL = 3

NOT_AN_IMAGE = "That file is not a JPEG, PNG or WebP image."
DAMAGED = "That image file is damaged or incomplete; export it again and retry."

_WHITE = (255, 255, 255)


class ImageRejected(Exception):
    """The file cannot be a start image; the message says why, in the user's words."""


def max_image_bytes() -> int:
    return int(getattr(settings, "FLOWSITE_MAX_IMAGE_BYTES", DEFAULT_MAX_BYTES))


def too_big_message() -> str:
    return f"The image is larger than {_megabytes(max_image_bytes())} MB."


def max_image_pixels() -> int:
    return int(getattr(settings, "FLOWSITE_MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS))


def store_start_image(
    project: Project,
    file_obj: IO[bytes],
    user: AbstractBaseUser | None,
    *,
    name: str = "",
) -> ImageAsset:
    """Check ``file_obj``, re-encode it without metadata and save it as a project image.

    Raises :class:`ImageRejected` (nothing stored) when the file is too big, not a JPEG, PNG
    or WebP image, has too many pixels, or is damaged.
    """
    data = _read_capped(file_obj)
    encoded, mime_type, width, height = clean_image_bytes(data)

    original = name or os.path.basename(getattr(file_obj, "name", "") or "")
    asset = ImageAsset(
        project=project,
        mime_type=mime_type,
        width=width,
        height=height,
        size=len(encoded),
        sha256=hashlib.sha256(encoded).hexdigest(),
        original_name=original[:255],
        uploaded_by=user if user is not None and user.is_authenticated else None,
    )
    # The name passed here is ignored by upload_to, which names the file after the asset.
    asset.file.save("start-image", ContentFile(encoded), save=False)
    try:
        asset.save()
    except BaseException:
        asset.file.storage.delete(asset.file.name)
        raise
    return asset


def clean_image_bytes(data: bytes) -> tuple[bytes, str, int, int]:
    """Judge ``data`` and return (re-encoded bytes, mime type, width, height).

    Separate from storage so the checks can run on a whole batch before anything is saved.
    """
    limit = max_image_bytes()
    if len(data) > limit:
        raise ImageRejected(too_big_message())
    if not data:
        raise ImageRejected(NOT_AN_IMAGE)

    max_pixels = max_image_pixels()
    # Pillow warns (and above twice its limit, raises) on huge images; both mean "refuse".
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        except UnidentifiedImageError:
            raise ImageRejected(NOT_AN_IMAGE) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(_too_many_pixels(_pixels_from(exc), max_pixels)) from None
        except (OSError, SyntaxError, ValueError):
            raise ImageRejected(DAMAGED) from None

        source_format = image.format
        width, height = image.size
        # Checked from the header, before a single pixel is decoded.
        if width * height > max_pixels:
            raise ImageRejected(_too_many_pixels(width * height, max_pixels))
        problem = _shape_problem(width, height) or _decode_budget_problem(
            image, data, max_pixels * BUDGET_BYTES_PER_PIXEL
        )
        if problem:
            raise ImageRejected(problem)
        try:
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(_too_many_pixels(_pixels_from(exc), max_pixels)) from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise ImageRejected(DAMAGED) from None

    image = _upright(image)
    image = _to_srgb(image)
    out_format = "PNG" if source_format == "PNG" else "JPEG"
    buffer = io.BytesIO()
    # No exif=, icc_profile= or pnginfo= arguments, and an empty info dict (the PNG writer
    # otherwise copies a profile from it): only pixels are written.
    image.info = {}
    if out_format == "JPEG":
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
        mime_type = "image/jpeg"
    else:
        image.save(buffer, "PNG")
        mime_type = "image/png"
    return buffer.getvalue(), mime_type, image.width, image.height


def _read_capped(file_obj: IO[bytes]) -> bytes:
    """Read the upload, but never more than one byte past the cap."""
    limit = max_image_bytes()
    declared = getattr(file_obj, "size", None)
    if isinstance(declared, int) and declared > limit:
        raise ImageRejected(too_big_message())
    if hasattr(file_obj, "seek"):
        # A stream that cannot seek is read from where it is.
        with contextlib.suppress(OSError, ValueError):
            file_obj.seek(0)
    data = file_obj.read(limit + 1)
    if len(data) > limit:
        raise ImageRejected(too_big_message())
    return data


def _shape_problem(width: int, height: int) -> str:
    long_side, short_side = max(width, height), min(width, height)
    if long_side <= MAX_SIDE_RATIO * short_side:
        return ""
    shape = "wide as it is tall" if width > height else "tall as it is wide"
    return (
        f"The image is {_ratio(long_side / short_side)} times as {shape}; a clip frames a "
        f"start image between 9:16 and 16:9, so crop it to at most {MAX_SIDE_RATIO} to 1."
    )


def _decode_budget_problem(image: Image.Image, data: bytes, budget: int) -> str:
    """Refuse, from the header, a picture whose decoded bytes would pass ``budget``."""
    bits = len(image.getbands()) * _bits_per_channel(image, data)
    needed = image.width * image.height * bits // 8
    if needed <= budget:
        return ""
    return (
        f"The image is too heavy to decode: {_megapixels(image.width * image.height)} "
        f"megapixels at {bits} bits per pixel need {_millions(needed)} MB, and Flowsite "
        f"decodes at most {_millions(budget)} MB. Save it with 8 bits per channel or with "
        "fewer pixels."
    )


def _bits_per_channel(image: Image.Image, data: bytes) -> int:
    if image.format == "PNG":
        # IHDR's bit depth, right after the signature, the chunk head, width and height; the
        # decoder unpacks 1, 2 and 4-bit samples to a byte each.
        return max(8, data[24])
    return 8  # JPEG and WebP as Pillow reads them


def _upright(image: Image.Image) -> Image.Image:
    """Turn the pixels the way the camera's EXIF orientation says the picture is seen."""
    # Unreadable EXIF: the pixels are fine, only the hint is lost. In place, so a picture with
    # no orientation is not copied for nothing.
    with contextlib.suppress(OSError, SyntaxError, ValueError, KeyError, TypeError):
        ImageOps.exif_transpose(image, in_place=True)
    return image


def _to_srgb(image: Image.Image) -> Image.Image:
    """Return an RGB image in sRGB, with any colour profile applied and alpha on white."""
    icc = image.info.get("icc_profile")
    if icc and image.mode in ("RGB", "CMYK", "L"):
        # A broken profile: fall back to reading the numbers as sRGB.
        with contextlib.suppress(ImageCms.PyCMSError, OSError, ValueError):
            image = ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGB",
            )

    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: scale to 8 bits rather than clip everything above 255 to white.
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    elif image.mode == "F":
        image = image.convert("L")

    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        # Pasted through its alpha onto white: the same picture as compositing, with fewer
        # full-size copies alive at once.
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


_PIXELS_IN_MESSAGE = re.compile(r"\((\d+) pixels\)")


def _pixels_from(exc: Exception) -> int | None:
    # Pillow refuses before handing back the image, so its message is the only place the
    # declared size survives.
    match = _PIXELS_IN_MESSAGE.search(str(exc))
    return int(match.group(1)) if match else None


def _too_many_pixels(pixels: int | None, limit: int) -> str:
    if pixels is None:
        return f"The image is too large (more than {_megapixels(limit)} megapixels)."
    return (
        f"The image is too large ({_megapixels(pixels)} megapixels; at most {_megapixels(limit)})."
    )


def _megapixels(pixels: int) -> str:
    return _millions(pixels)


def _millions(count: int) -> str:
    return f"{count / 1_000_000:.1f}".removesuffix(".0")


def _ratio(value: float) -> str:
    # Rounded up, so a shape just past the limit never reads as the limit itself.
    value = math.ceil(value * 10) / 10
    return f"{value:.1f}".removesuffix(".0") if value < 100 else f"{value:,.0f}"


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0")


def clip_frame(file, *, last: bool = False) -> Image.Image | None:
    """The clip's first (or last) picture, decoded locally; None when it has none."""
    picture = None
    with av.open(file) as container:
        for frame in container.decode(video=0):
            picture = frame
            if not last:
                break
        return picture.to_image() if picture is not None else None
