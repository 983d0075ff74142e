"""Fetching a finished clip or poster from its signed URL into Flowsite's storage.

Separate from the engine on purpose: the signed URL is its own credential, so the request
carries no token or cookie, and the file lands on disk whole or not at all (a temporary file
in the destination folder, fsynced, then renamed into place).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from .base import (
    CutShort,
    DownloadError,
    DownloadFailed,
    DownloadResult,
    HostNotAllowed,
    LinkExpired,
    TooLarge,
    WrongType,
)
from .tls import http_client

logger = logging.getLogger(__name__)

Kind = Literal["video", "image"]
# Cloud Storage explains a refused signed URL in a small XML body; read only its start.
ERROR_BODY_BYTES = 4096
_EXPIRED = re.compile(rb"ExpiredToken|expired", re.IGNORECASE)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _where(url: str) -> str:
    """The URL without its query: signed URLs carry their signature there."""
    parts = urlsplit(url)
    if not parts.netloc:
        return parts.path
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


HTTPS_PORT = 443
DEFAULT_PORTS = {"https": HTTPS_PORT, "http": 80}


def allowed_origins(hosts: list[str]) -> set[tuple[str, int]]:
    """(host, port) pairs from entries written ``host`` or ``host:port`` (``[v6]:port``).

    A host without a port is reached on 443 only: a link to another port of an allowed host
    could reach a different service there.
    """
    origins = set()
    for entry in hosts:
        entry = entry.strip().lower()
        if not entry:
            continue
        try:
            parts = urlsplit(f"//{entry}")
            port = parts.port
        except ValueError:
            continue  # a malformed entry allows nothing
        if parts.hostname:
            origins.add((parts.hostname, port or HTTPS_PORT))
    return origins


def check_url(url: str, allowed_hosts: list[str] | None = None) -> None:
    """Refuse URLs Flowsite must not fetch: unknown hosts or ports, plain http off loopback,
    userinfo."""
    hosts = settings.FLOW_MEDIA_HOSTS if allowed_hosts is None else allowed_hosts
    allowed = allowed_origins(hosts)
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    except ValueError:
        raise HostNotAllowed("The download link is not a valid URL.") from None
    if not host or host not in {allowed_host for allowed_host, _ in allowed}:
        raise HostNotAllowed(
            f"The file is on {host or 'no host'}, which is not one of the media hosts Flowsite "
            "downloads from.",
            detail=_where(url),
        )
    if parts.username is not None or parts.password is not None:
        raise HostNotAllowed("The download link carries a user name; Flowsite refuses it.")
    if not (parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))):
        raise HostNotAllowed(
            f"The download link uses {parts.scheme or 'no scheme'}; Flowsite only downloads "
            "over https (plain http only from this machine).",
            detail=_where(url),
        )
    if (host, port) not in allowed:
        ports = ", ".join(str(p) for h, p in sorted(allowed) if h == host)
        raise HostNotAllowed(
            f"The file is on {host} port {port}; Flowsite downloads from {host} only on port "
            f"{ports}.",
            detail=_where(url),
        )


def _expect_type(kind: Kind, content_type: str) -> None:
    media_type = content_type.split(";")[0].strip().lower()
    ok = media_type == "video/mp4" if kind == "video" else media_type.startswith("image/")
    if not ok:
        expected = "an MP4 video" if kind == "video" else "an image"
        raise WrongType(
            f"Expected {expected} but the media host sent {media_type or 'no content type'}."
        )


def _refusal(response: httpx.Response, where: str) -> DownloadError:
    status = response.status_code
    if 300 <= status < 400:
        location = response.headers.get("location")
        target = _where(location) if location else "elsewhere"
        return HostNotAllowed(
            f"The media host redirected the download to {target}; Flowsite does not follow "
            "redirects for downloads.",
            detail=where,
        )
    head = b""
    with contextlib.suppress(httpx.HTTPError):
        for chunk in response.iter_raw():
            head += chunk
            if len(head) >= ERROR_BODY_BYTES:
                break
    if status in (403, 410) or (status == 400 and _EXPIRED.search(head)):
        expired = bool(_EXPIRED.search(head))
        return LinkExpired(
            "The download link has expired."
            if expired
            else "The media host refused the download link.",
            detail=f"HTTP {status} for {where}",
        )
    return DownloadFailed(f"The media host answered HTTP {status}.", detail=where)


def download_to(
    url: str,
    dest: Path,
    *,
    kind: Kind,
    allowed_hosts: list[str] | None = None,
    max_bytes: int | None = None,
    deadline: float | None = None,
    transport: httpx.BaseTransport | None = None,
    headers: dict[str, str] | None = None,
) -> DownloadResult:
    """Stream ``url`` into ``dest``. Afterwards ``dest`` is the complete file or absent.

    Raises a ``DownloadError`` subclass for every refusal or failure; ``deadline`` (seconds)
    bounds the whole download, not only each read. ``headers`` (an engine's authorization
    for a bucket that needs one) go only to ``url``: redirects are never followed.
    """
    if kind not in ("video", "image"):
        raise ValueError(f"kind must be 'video' or 'image', not {kind!r}")
    dest = Path(dest).absolute()
    limit = int(settings.FLOW_DOWNLOAD_MAX_BYTES if max_bytes is None else max_bytes)
    seconds = float(settings.FLOW_DOWNLOAD_DEADLINE if deadline is None else deadline)
    ends = time.monotonic() + seconds
    where = _where(url)
    started = time.monotonic()

    def check_time() -> None:
        if time.monotonic() >= ends:
            raise DownloadFailed(
                f"The download took longer than {seconds:g} seconds and was stopped.",
                detail=where,
            )

    read = min(float(settings.FLOW_READ_TIMEOUT), seconds)
    connect = min(float(settings.FLOW_CONNECT_TIMEOUT), seconds)
    timeout = httpx.Timeout(connect=connect, read=read, write=read, pool=connect)
    try:
        check_url(url, allowed_hosts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with (
            http_client(transport, timeout=timeout) as client,
            client.stream(
                "GET", url, headers={**(headers or {}), "accept-encoding": "identity"}
            ) as response,
        ):
            if response.status_code != 200:
                raise _refusal(response, where)
            content_type = response.headers.get("content-type", "")
            _expect_type(kind, content_type)
            declared = _declared_length(response)
            if declared is not None and declared > limit:
                raise TooLarge(
                    f"The file is {_size(declared)}, more than the {_size(limit)} Flowsite accepts."
                )
            digest = hashlib.sha256()
            size = 0
            with _landing(dest) as out:
                try:
                    # Chunks as they arrive (no buffering), so the deadline is checked often.
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise TooLarge(
                                f"The file is larger than the {_size(limit)} Flowsite accepts."
                            )
                        digest.update(chunk)
                        out.write(chunk)
                        check_time()
                except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                    expected = f" of {_size(declared)}" if declared is not None else ""
                    raise CutShort(
                        f"The download stopped after {_size(size)}{expected}.",
                        detail=f"{type(exc).__name__} for {where}",
                    ) from None
                # With identity encoding both counts agree; the raw one covers the rest.
                received = max(size, response.num_bytes_downloaded)
                if declared is not None and received < declared:
                    raise CutShort(
                        f"The download stopped after {_size(size)} of {_size(declared)}.",
                        detail=where,
                    )
    except BaseException as exc:
        # Whatever was at dest before is not this file: leave nothing that could pass for it.
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        if isinstance(exc, httpx.TimeoutException):
            raise DownloadFailed(
                "The media host did not answer in time.",
                detail=f"{type(exc).__name__} for {where}",
            ) from None
        if isinstance(exc, httpx.TransportError):
            raise DownloadFailed(
                "Flowsite could not reach the media host.",
                detail=f"{type(exc).__name__} for {where}",
            ) from None
        if isinstance(exc, DownloadError):
            logger.info("Download of %s refused: %s %s", where, exc.message, exc.detail)
        raise
    logger.info("Downloaded %s (%s) in %.1fs", where, _size(size), time.monotonic() - started)
    return DownloadResult(
        path=str(dest), size=size, sha256=digest.hexdigest(), content_type=content_type
    )


def save_bytes(
    data: bytes, dest: Path, *, kind: Kind, max_bytes: int | None = None
) -> DownloadResult:
    """Keep a file an upstream sent inside its answer, with the same rules as ``download_to``:
    the size limit, the type (checked on the bytes themselves), and whole or not at all."""
    dest = Path(dest).absolute()
    limit = int(settings.FLOW_DOWNLOAD_MAX_BYTES if max_bytes is None else max_bytes)
    if len(data) > limit:
        raise TooLarge(
            f"The file is {_size(len(data))}, more than the {_size(limit)} Flowsite accepts."
        )
    content_type = _sniff(data)
    _expect_type(kind, content_type)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _landing(dest) as out:
        out.write(data)
    return DownloadResult(
        path=str(dest),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type,
    )


def _sniff(data: bytes) -> str:
    """The media type the first bytes show (an MP4's "ftyp" box, JPEG, PNG, WebP)."""
    if data[4:8] == b"ftyp":
        return "video/mp4"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def _declared_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise DownloadFailed("The media host sent an invalid Content-Length.") from None
    return length if length >= 0 else None


@contextlib.contextmanager
def _landing(dest: Path) -> Iterator[BinaryIO]:
    """A temporary file beside ``dest`` that becomes ``dest`` (fsynced, renamed, the rename
    fsynced) when the block ends without error, and is removed when it does not."""
    fd, temp_path = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_path, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_path)
        raise
    _fsync_folder(dest.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _size(count: int) -> str:
    if count < 1024 * 1024:
        return f"{count / 1024:.0f} KB" if count >= 1024 else f"{count} bytes"
    return f"{count / (1024 * 1024):.1f} MB"
