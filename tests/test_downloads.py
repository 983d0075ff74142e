"""Downloading a clip or poster from its signed URL: whole or nothing, from allowed hosts only.

Refusals the emulator cannot make come from a tiny http.server on 127.0.0.1 in a thread;
every refusal must leave the destination folder empty.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from generations.engines import base
from generations.engines.download import check_url, download_to

MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 400  # ~100 KB
JPEG = b"\xff\xd8\xff\xe0" + b"poster" * 1000
EXPIRED_XML = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code>"
    b"<Message>The provided token has expired.</Message></Error>"
)
DENIED_XML = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SignatureDoesNotMatch</Code>"
    b"<Message>Access denied.</Message></Error>"
)


class MediaHost(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen_headers: list[dict[str, str]] = []

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def send(self, status: int, content_type: str, body: bytes, length: int | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        MediaHost.seen_headers.append({k.lower(): v for k, v in self.headers.items()})
        path = self.path.split("?")[0]
        if path == "/clip.mp4":
            self.send(200, "video/mp4", MP4)
        elif path == "/poster.jpg":
            self.send(200, "image/jpeg", JPEG)
        elif path == "/page.mp4":
            self.send(200, "text/html; charset=utf-8", b"<html>Sign in</html>")
        elif path == "/huge.mp4":
            self.send(200, "video/mp4", b"", length=10**9)
        elif path == "/endless.mp4":
            # No Content-Length: the body runs until the connection closes.
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for _ in range(40):
                self.wfile.write(b"x" * 8192)
        elif path == "/expired.mp4":
            self.send(403, "application/xml; charset=UTF-8", EXPIRED_XML)
        elif path == "/expired-400.mp4":
            self.send(400, "application/xml; charset=UTF-8", EXPIRED_XML)
        elif path == "/denied.mp4":
            self.send(403, "application/xml; charset=UTF-8", DENIED_XML)
        elif path == "/gone.mp4":
            self.send(404, "text/plain", b"no such object")
        elif path == "/broken.mp4":
            self.send(500, "text/plain", b"oops")
        elif path == "/truncated.mp4":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(MP4)))
            self.end_headers()
            self.wfile.write(MP4[: len(MP4) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif path == "/slow.mp4":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(100 * 1024))
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"s" * 1024)
                self.wfile.flush()
                time.sleep(0.02)
        elif path == "/redirect.mp4":
            self.send_response(302)
            self.send_header("Location", "https://elsewhere.example/clip.mp4?Signature=secret")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send(404, "text/plain", b"")


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # Refusing an endless or slow body means hanging up on it mid-write: expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def media_host() -> Iterator[str]:
    server = QuietServer(("127.0.0.1", 0), MediaHost)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def allowed(settings, media_host):
    settings.FLOW_MEDIA_HOSTS = ["storage.googleapis.com", media_host.removeprefix("http://")]


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "clips" / "take"


def signed(url: str) -> str:
    return url + "?GoogleAccessId=x&Expires=9999999999&Signature=top-secret-signature"


def test_a_clip_is_streamed_into_place_with_its_size_and_sha256(media_host, allowed, folder):
    MediaHost.seen_headers.clear()
    dest = folder / "clip.mp4"

    result = download_to(signed(media_host + "/clip.mp4"), dest, kind="video")

    assert dest.read_bytes() == MP4
    assert result == base.DownloadResult(
        path=str(dest),
        size=len(MP4),
        sha256=hashlib.sha256(MP4).hexdigest(),
        content_type="video/mp4",
    )
    assert sorted(p.name for p in folder.iterdir()) == ["clip.mp4"]
    (headers,) = MediaHost.seen_headers
    assert "authorization" not in headers
    assert "cookie" not in headers


def test_a_poster_is_any_image_type(media_host, allowed, folder):
    result = download_to(media_host + "/poster.jpg", folder / "poster.jpg", kind="image")

    assert (folder / "poster.jpg").read_bytes() == JPEG
    assert result.content_type == "image/jpeg"


def test_a_complete_download_replaces_an_older_file(media_host, allowed, folder):
    folder.mkdir(parents=True)
    (folder / "clip.mp4").write_bytes(b"old")

    download_to(media_host + "/clip.mp4", folder / "clip.mp4", kind="video")

    assert (folder / "clip.mp4").read_bytes() == MP4


def test_the_signed_query_never_reaches_the_log(media_host, allowed, folder, caplog):
    caplog.set_level(logging.DEBUG)
    download_to(signed(media_host + "/clip.mp4"), folder / "a.mp4", kind="video")
    with pytest.raises(base.LinkExpired):
        download_to(signed(media_host + "/expired.mp4"), folder / "b.mp4", kind="video")

    assert "/clip.mp4" in caplog.text
    assert "top-secret-signature" not in caplog.text
    assert "GoogleAccessId" not in caplog.text


REFUSALS = [
    ("/page.mp4", "video", {}, base.WrongType, "text/html"),
    ("/clip.mp4", "image", {}, base.WrongType, "video/mp4"),
    ("/huge.mp4", "video", {"max_bytes": 50_000}, base.TooLarge, "more than"),
    ("/clip.mp4", "video", {"max_bytes": 50_000}, base.TooLarge, "more than"),
    ("/endless.mp4", "video", {"max_bytes": 100_000}, base.TooLarge, "larger than"),
    ("/expired.mp4", "video", {}, base.LinkExpired, "has expired"),
    ("/expired-400.mp4", "video", {}, base.LinkExpired, "has expired"),
    ("/denied.mp4", "video", {}, base.LinkExpired, "refused the download link"),
    ("/truncated.mp4", "video", {}, base.CutShort, "stopped after"),
    ("/slow.mp4", "video", {"deadline": 0.3}, base.DownloadFailed, "longer than 0.3 seconds"),
    ("/redirect.mp4", "video", {}, base.HostNotAllowed, "elsewhere.example"),
    ("/gone.mp4", "video", {}, base.DownloadFailed, "HTTP 404"),
    ("/broken.mp4", "video", {}, base.DownloadFailed, "HTTP 500"),
]


@pytest.mark.parametrize(("path", "kind", "options", "error_class", "words"), REFUSALS)
def test_every_refusal_leaves_nothing_in_the_folder(
    media_host, allowed, folder, path, kind, options, error_class, words
):
    dest = folder / "file"

    with pytest.raises(base.DownloadError) as caught:
        download_to(signed(media_host + path), dest, kind=kind, **options)

    assert type(caught.value) is error_class
    assert words in caught.value.message
    assert "top-secret-signature" not in caught.value.message + caught.value.detail
    assert list(folder.iterdir()) == []


def test_the_declared_size_alone_is_enough_to_refuse(media_host, allowed, folder):
    started = time.monotonic()

    with pytest.raises(base.TooLarge, match="954 MB|953.7 MB"):
        download_to(media_host + "/huge.mp4", folder / "f", kind="video", max_bytes=10_000)

    assert time.monotonic() - started < 1


def test_a_failed_download_removes_an_older_file_at_the_destination(media_host, allowed, folder):
    folder.mkdir(parents=True)
    (folder / "clip.mp4").write_bytes(b"old")

    with pytest.raises(base.CutShort):
        download_to(media_host + "/truncated.mp4", folder / "clip.mp4", kind="video")

    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://evil.example/clip.mp4", "evil.example"),
        ("http://storage.googleapis.com/clip.mp4", "only downloads over https"),
        ("ftp://127.0.0.1/clip.mp4", "ftp"),
        ("https://user:pw@storage.googleapis.com/clip.mp4", "user name"),
        ("https://storage.googleapis.com.evil.example/clip.mp4", "not one of the media hosts"),
        ("/relative/clip.mp4", "no host"),
    ],
)
def test_links_to_hosts_or_schemes_not_allowed_are_refused_without_a_request(
    allowed, folder, url, words
):
    def no_network(request):
        raise AssertionError("nothing may be requested")

    with pytest.raises(base.HostNotAllowed) as caught:
        download_to(url, folder / "f", kind="video", transport=httpx.MockTransport(no_network))

    assert words in caught.value.message
    assert not folder.exists() or list(folder.iterdir()) == []


def test_loopback_is_only_allowed_when_listed(media_host, settings, folder):
    settings.FLOW_MEDIA_HOSTS = ["storage.googleapis.com"]

    with pytest.raises(base.HostNotAllowed, match="127.0.0.1"):
        download_to(media_host + "/clip.mp4", folder / "f", kind="video")


@pytest.mark.parametrize(
    "url",
    [
        "https://storage.googleapis.com:8443/clip.mp4",
        "https://storage.googleapis.com:22/clip.mp4",
        "http://127.0.0.1:5432/clip.mp4",
    ],
)
def test_an_allowed_host_on_another_port_is_refused_without_a_request(allowed, folder, url):
    def no_network(request):
        raise AssertionError("nothing may be requested")

    with pytest.raises(base.HostNotAllowed, match=r"port \d+; Flowsite downloads from") as caught:
        download_to(url, folder / "f", kind="video", transport=httpx.MockTransport(no_network))

    assert caught.value.message.split(" only on port ")[0].count("port") == 1


def test_a_host_without_a_port_is_allowed_on_443_only():
    check_url("https://storage.googleapis.com:443/x", ["storage.googleapis.com"])
    check_url("https://media.example:8443/x", ["media.example:8443"])
    check_url("http://[::1]:8765/x", ["[::1]:8765"])
    for url, hosts in [
        ("https://media.example/x", ["media.example:8443"]),
        ("http://127.0.0.1/x", ["127.0.0.1"]),
        ("http://127.0.0.1:8765/x", ["127.0.0.1"]),
    ]:
        with pytest.raises(base.HostNotAllowed):
            check_url(url, hosts)


def test_an_explicit_empty_host_list_allows_nothing(media_host, allowed, folder):
    with pytest.raises(base.HostNotAllowed):
        download_to(media_host + "/clip.mp4", folder / "f", kind="video", allowed_hosts=[])


def test_https_to_an_allowed_host_is_fetched(allowed, folder):
    seen = []

    def google_storage(request):
        seen.append(request)
        return httpx.Response(200, headers={"content-type": "video/mp4"}, content=MP4)

    result = download_to(
        signed("https://storage.googleapis.com/ai-sandbox-videofx/video/abc"),
        folder / "clip.mp4",
        kind="video",
        transport=httpx.MockTransport(google_storage),
    )

    assert result.size == len(MP4)
    assert "authorization" not in seen[0].headers


def test_an_unreachable_host_is_a_download_failure(allowed, folder):
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(base.DownloadFailed, match="could not reach"):
        download_to(
            "https://storage.googleapis.com/x",
            folder / "f",
            kind="video",
            transport=httpx.MockTransport(refuse),
        )
    assert list(folder.iterdir()) == []


def test_every_download_shares_one_tls_context_however_many_files_it_fetches(
    media_host, allowed, folder, monkeypatch
):
    # Building a context loads the whole CA bundle (about 20 ms of CPU); a hundred takes
    # finishing together made two hundred of them beside the web server.
    import ssl

    from generations.engines.tls import tls_context

    built = []
    real = ssl.create_default_context
    monkeypatch.setattr(
        ssl, "create_default_context", lambda *a, **k: built.append(1) or real(*a, **k)
    )
    tls_context.cache_clear()

    for n in range(3):
        download_to(media_host + "/clip.mp4", folder / f"clip-{n}.mp4", kind="video")
        download_to(media_host + "/poster.jpg", folder / f"poster-{n}.jpg", kind="image")

    assert len(built) == 1
