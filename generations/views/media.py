"""Private media: clips, posters and start images, served only to members of their project.

Browsers seek in a video with Range requests, so a clip answers 206 for a byte range; the
bytes are streamed from the open file in chunks, never read whole. Behind nginx
(``FLOWSITE_X_ACCEL_REDIRECT``) the view only checks access and nginx sends the bytes.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Iterator
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import quote
from uuid import UUID

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models.fields.files import FieldFile
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseNotModified,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_safe

from .. import storage
from .access import get_image_for_user, get_take_media_for_user, get_upscale_media_for_user

CHUNK_SIZE = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Unsatisfiable(Exception):
    pass


@require_safe
@login_required
def take_video(request: HttpRequest, uuid: UUID) -> HttpResponseBase:
    generation = get_take_media_for_user(request, uuid)
    if not generation.is_ready or not generation.video:
        raise Http404("This clip is not ready.")
    name = f"{_download_stem(generation, generation.take)}.mp4"
    return serve_private_file(
        request, generation.video, "video/mp4", name, etag_seed=generation.video_sha256
    )


@require_safe
@login_required
def take_poster(request: HttpRequest, uuid: UUID) -> HttpResponseBase:
    generation = get_take_media_for_user(request, uuid)
    if not generation.poster:
        raise Http404("This clip has no poster.")
    content_type = mimetypes.guess_type(generation.poster.name)[0] or "image/jpeg"
    extension = os.path.splitext(generation.poster.name)[1] or ".jpg"
    name = f"{_download_stem(generation, generation.take)}-poster{extension}"
    return serve_private_file(
        request, generation.poster, content_type, name, etag_seed=generation.poster_sha256
    )


@require_safe
@login_required
def upscale_video(request: HttpRequest, uuid: UUID) -> HttpResponseBase:
    """A take's upscaled copy (1080p, 4K), private like the take itself, with Range."""
    upscale = get_upscale_media_for_user(request, uuid)
    if not upscale.is_ready:
        raise Http404("This copy is not ready.")
    name = f"{_download_stem(upscale, upscale.take_number)}-{upscale.resolution}.mp4"
    return serve_private_file(
        request, upscale.video, "video/mp4", name, etag_seed=upscale.video_sha256
    )


@require_safe
@login_required
def image_file(request: HttpRequest, uuid: UUID) -> HttpResponseBase:
    image, _ = get_image_for_user(request, uuid, superuser_reads=True)
    if not image.file:
        raise Http404("This image has no file.")
    extension = os.path.splitext(image.file.name)[1]
    stem = os.path.splitext(image.original_name)[0] or str(image.uuid)
    name = f"{slugify(stem) or 'start-image'}{extension}"
    return serve_private_file(request, image.file, image.mime_type, name, etag_seed=image.sha256)


def _download_stem(media, take_number: int) -> str:
    """``media`` is a take or an upscale, with the names its lookup brought along."""
    scene = slugify(media.scene_name) or "scene"
    project = slugify(media.project_name) or "project"
    return f"{project}-{scene}-take-{take_number}"


def serve_private_file(
    request: HttpRequest,
    field_file: FieldFile,
    content_type: str,
    download_name: str,
    *,
    etag_seed: str = "",
) -> HttpResponseBase:
    """Answer with the file's bytes (or a range of them), after access has been checked."""
    as_attachment = request.GET.get("download") == "1"
    disposition = content_disposition_header(as_attachment, download_name)

    if storage.is_remote():
        # The bucket is private: access was checked above, so this viewer gets a link that
        # expires within FLOWSITE_S3_URL_SECONDS, and the store serves the bytes and Range.
        response = HttpResponseRedirect(
            storage.presigned_url(
                field_file.name,
                content_type=content_type,
                download_name=download_name,
                as_attachment=as_attachment,
            )
        )
        # Each visit must come back here for a fresh link and a fresh access check.
        response["Cache-Control"] = "private, no-store"
        return response

    prefix = settings.FLOWSITE_X_ACCEL_REDIRECT
    if prefix:
        # nginx serves the bytes (and the Range) from its internal location; the file name is
        # relative to MEDIA_ROOT, which that location maps.
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + quote(field_file.name)
        response["Content-Disposition"] = disposition
        _private_cache(response)
        return response

    try:
        handle = storage.open_for_serving(field_file.name)
    except FileNotFoundError:
        raise Http404("The file is missing from storage.") from None
    try:
        stat = os.fstat(handle.fileno())
        size = stat.st_size
        last_modified = formatdate(stat.st_mtime, usegmt=True)
        etag = f'"{etag_seed[:32]}"' if etag_seed else f'"{size:x}-{int(stat.st_mtime * 1e6):x}"'

        if _matches(request.headers.get("If-None-Match", ""), etag):
            handle.close()
            response = HttpResponseNotModified()
            response["ETag"] = etag
            _private_cache(response)
            return response

        start, end = 0, size - 1
        status = 200
        range_header = request.headers.get("Range", "")
        if range_header and _if_range_allows(request.headers.get("If-Range"), etag, stat):
            try:
                parsed = _parse_range(range_header, size)
            except _Unsatisfiable:
                handle.close()
                response = HttpResponse(status=416)
                response["Content-Range"] = f"bytes */{size}"
                response["Accept-Ranges"] = "bytes"
                return response
            if parsed is not None:
                start, end = parsed
                status = 206
        length = end - start + 1 if size else 0
        response = StreamingHttpResponse(
            _stream(handle, start, length), status=status, content_type=content_type
        )
    except BaseException:
        handle.close()
        raise
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["Last-Modified"] = last_modified
    response["Content-Disposition"] = disposition
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    _private_cache(response)
    return response


def _private_cache(response: HttpResponseBase) -> None:
    # Members only: a shared cache must never keep a copy, and the browser's own copy is
    # checked with us (ETag, 304) before each use, so a removed member or the next person at a
    # shared browser cannot replay a clip from the cache.
    response["Cache-Control"] = "private, no-cache"


def _stream(handle, start: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range asked for, clipped to the file; None to answer with the whole file.

    A malformed header or several ranges are ignored (RFC 9110 allows serving the whole
    representation); a well-formed range that starts past the end is unsatisfiable.
    """
    match = _RANGE.match(header.strip())
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = _position(last, size)
        if suffix == 0 or size == 0:
            raise _Unsatisfiable
        return max(size - suffix, 0), size - 1
    start = _position(first, size)
    if last and _digits_key(last) < _digits_key(first):
        return None  # last before first: not a valid range, so the header is ignored
    if start >= size:
        raise _Unsatisfiable  # `bytes=N-` included: nothing is left from N on
    end = min(_position(last, size), size - 1) if last else size - 1
    return start, end


def _position(digits: str, ceiling: int) -> int:
    """The number these digits spell, capped at ``ceiling``.

    Any number of digits is valid in a Range, but Python refuses to convert a string of more
    than 4,300 digits; every number past the file's size means the same thing here anyway.
    """
    significant = digits.lstrip("0")
    if len(significant) > len(str(ceiling)):
        return ceiling
    return min(int(significant or "0"), ceiling)


def _digits_key(digits: str) -> tuple[int, str]:
    """Orders digit strings as the numbers they spell, without converting them."""
    significant = digits.lstrip("0")
    return len(significant), significant


def _if_range_allows(if_range: str | None, etag: str, stat: os.stat_result) -> bool:
    """Whether a Range may be honoured: the client's copy (ETag or date) is still current."""
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        # If-Range needs a strong match; a weak validator never matches.
        return if_range == etag
    try:
        since = parsedate_to_datetime(if_range)
    except (TypeError, ValueError, IndexError):
        return False
    return int(since.timestamp()) == int(stat.st_mtime)


def _matches(if_none_match: str, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in candidates or etag in candidates
