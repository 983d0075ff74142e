"""Start images: refuse what is not a plain still image, store a clean re-encoded copy.

Everything a person uploads passes through :func:`store_start_image` (the scene form, the
storyboard import, the demo data). The file is judged by its bytes, never by its name or the
browser's content type, and what is stored is a fresh encoding of the pixels alone:

- the byte size is capped before anything is decoded (``FLOWSITE_MAX_IMAGE_BYTES``);
- only Pillow's JPEG, PNG and WebP parsers are ever tried, so no other decoder sees the bytes;
- the pixel count is capped from the header, before the pixels are decoded
  (``FLOWSITE_MAX_IMAGE_PIXELS``), which refuses decompression bombs;
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
import os
import re
import warnings
from typing import IO, TYPE_CHECKING

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


def _upright(image: Image.Image) -> Image.Image:
    """Turn the pixels the way the camera's EXIF orientation says the picture is seen."""
    try:
        upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError):
        # Unreadable EXIF: the pixels are fine, only the hint is lost.
        return image
    return upright if upright is not None else image


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
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
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
    return f"{pixels / 1_000_000:.1f}".removesuffix(".0")


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0")
