"""``GET /storage/{video|image}/<object id>.{mp4|jpg}``: the emulated bucket that serves
finished clips and posters behind signed URLs, with ``Range`` and the download faults."""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Iterator
from pathlib import Path

from .state import EmulatorState, Operation
from .wire import Request, Response, iso

MEDIA_PATH = re.compile(
    r"^/storage/(?P<kind>video|image)/(?P<object_id>[0-9a-f-]{36})\.(?P<ext>mp4|jpg)$"
)
CHUNK = 64 * 1024


def no_such_key() -> Response:
    return Response.xml_error(404, "NoSuchKey", "The specified key does not exist.")


def access_denied(details: str) -> Response:
    return Response.xml_error(403, "AccessDenied", "Access denied.", details)


def media(state: EmulatorState, request: Request) -> Response:
    state.count("media")
    match = MEDIA_PATH.match(request.path)
    assert match is not None
    if (match["kind"] == "video") != (match["ext"] == "mp4"):
        return no_such_key()
    expires_text = request.query.get("Expires", [""])[0]
    signature = request.query.get("Signature", [""])[0]
    if not expires_text or not signature:
        return access_denied(
            "Anonymous caller does not have storage.objects.get access to the object."
        )
    try:
        expires = int(expires_text)
    except ValueError:
        expires = -1
    expected = state.sign(request.path, expires)
    if expires < 0 or not hmac.compare_digest(expected, signature):
        return access_denied(
            "SignatureDoesNotMatch: the request signature we calculated does not match "
            "the signature you provided."
        )
    if expires < time.time():
        return access_denied(f"ExpiredToken: Request signature expired at: {iso(expires)}")
    with state.lock:
        operation = state.objects.get(match["object_id"])
    clip = operation.clip() if operation else None
    if operation is None or clip is None:
        return no_such_key()
    if match["kind"] == "image" and "broken-poster" in operation.faults:
        return broken_poster(operation.faults["broken-poster"].arg or "missing")
    if match["kind"] == "video":
        path, content_type = clip.video_path, "video/mp4"
    else:
        path, content_type = clip.poster_path, "image/jpeg"
    return file_response(path, content_type, request.headers.get("range", ""), operation)


def broken_poster(how: str) -> Response:
    """The ways a poster's link fails while its clip's works (fault ``broken-poster``)."""
    if how == "denied":
        return access_denied("Anonymous caller does not have storage.objects.get access.")
    if how == "expired":
        return access_denied("ExpiredToken: Request signature expired.")
    if how == "garbled":
        # A JPEG's first bytes, then nothing a decoder can read.
        body = b"\xff\xd8\xff\xe0" + bytes(2048)
        headers = [("Content-Type", "image/jpeg"), ("Content-Length", str(len(body)))]
        return Response(200, [body], headers)
    return no_such_key()


def file_response(path: Path, content_type: str, range_header: str, op: Operation) -> Response:
    size = path.stat().st_size
    start, end, status = 0, size - 1, 200
    headers = [("Content-Type", content_type), ("Accept-Ranges", "bytes")]
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
    if match and (match[1] or match[2]):
        if match[1]:
            start = int(match[1])
            end = min(int(match[2]), size - 1) if match[2] else size - 1
        else:
            start = max(0, size - int(match[2]))
        if start >= size or start > end:
            return Response(
                416, [b""], [("Content-Range", f"bytes */{size}"), ("Content-Length", "0")]
            )
        status = 206
        headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
    length = end - start + 1
    headers.append(("Content-Length", str(length)))
    send = length // 2 if "truncated-download" in op.faults else length
    seconds = op.faults["slow-download"].seconds if "slow-download" in op.faults else 0.0
    return Response(status, stream(path, start, send, seconds), headers)


def stream(path: Path, start: int, length: int, seconds: float) -> Iterator[bytes]:
    # A slow media host answers at once and trickles the body (at least ten pieces, however
    # small the file), so a client sits mid-body for most of ``seconds``. The empty first
    # piece makes the server send the headers before the first pause.
    size = max(1, min(CHUNK, -(-length // 10))) if seconds else CHUNK
    chunks = max(1, -(-length // size))
    pause = seconds / chunks
    if seconds:
        yield b""
    with path.open("rb") as handle:
        handle.seek(start)
        left = length
        while left > 0:
            data = handle.read(min(size, left))
            if not data:
                break
            left -= len(data)
            if pause:
                time.sleep(pause)
            yield data
