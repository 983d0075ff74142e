"""The emulated Flow (and Vertex AI) service as a WSGI app: the route table and the dispatcher.

No Django here on purpose: the emulator stands in for Google, so it shares nothing with the
client it is testing except the wire format, and it runs the same in a test thread or as a
process of its own.

Each route family lives in its own module (auth, uploads, submit, status, media); a handler
is ``handler(state, request) -> Response`` and refuses by raising ``ApiError``. A new
endpoint is one more ``Route`` in ``ROUTES``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from . import actions, auth, media, status, submit, uploads, vertex
from .contract import ApiError, internal_error
from .state import EmulatorState
from .wire import Request, Response

log = logging.getLogger("flow_emulator")

MAX_BODY_BYTES = 64 * 1024 * 1024

Handler = Callable[[EmulatorState, Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    # An exact path, or a pattern for paths that carry ids.
    path: str | re.Pattern[str]
    handler: Handler

    def matches(self, path: str) -> bool:
        if isinstance(self.path, str):
            return self.path == path
        return self.path.match(path) is not None


def stats(state: EmulatorState, request: Request) -> Response:
    return Response.json(state.stats_snapshot())


def index(state: EmulatorState, request: Request) -> Response:
    return Response.json(
        {
            "service": "Flowsite's local Flow emulator",
            "note": "All state lives in memory and is lost when the emulator stops.",
            "stats": "/_emulator/stats",
        }
    )


ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1:uploadUserImage", uploads.upload),
    Route("POST", "/v1/video:batchAsyncGenerateVideoStartImage", submit.generate),
    Route("POST", "/v1/video:batchAsyncGenerateVideoExtendVideo", actions.extend),
    Route("POST", "/v1/video:batchAsyncGenerateVideoUpsampleVideo", actions.upscale),
    Route(
        "POST", "/v1/video:batchAsyncGenerateVideoText", partial(submit.generate, route=submit.TEXT)
    ),
    Route(
        "POST",
        "/v1/video:batchAsyncGenerateVideoStartAndEndImage",
        partial(submit.generate, route=submit.FRAMES),
    ),
    Route(
        "POST",
        "/v1/video:batchAsyncGenerateVideoReferenceImages",
        partial(submit.generate, route=submit.REFERENCES),
    ),
    Route("POST", "/v1/video:batchCheckAsyncVideoGenerationStatus", status.check),
    Route("GET", "/v1/credits", auth.credits),
    Route("GET", "/fx/api/auth/session", auth.session),
    Route("GET", media.MEDIA_PATH, media.media),
    Route("POST", vertex.MODEL_ROUTE, vertex.model_call),
    Route("POST", vertex.TOKEN_PATH, vertex.token),
    Route("GET", vertex.STORAGE_ROUTE, vertex.storage),
    Route("GET", vertex.KEY_PATH, vertex.key),
    Route("GET", "/_emulator/stats", stats),
    Route("GET", "/", index),
)

REASONS = {
    200: "OK",
    206: "Partial Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class EmulatorApp:
    def __init__(
        self,
        state: EmulatorState,
        server_url: Callable[[], str],
        routes: Iterable[Route] = ROUTES,
    ) -> None:
        self.state = state
        self.routes = tuple(routes)
        # Where the server listens, for a request without a Host header.
        self._server_url = server_url

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        try:
            request = self.read_request(environ)
            response = self.dispatch(request)
        except ApiError as exc:
            response = Response.json(exc.body(), exc.code, exc.headers)
        except Exception:
            log.exception("Emulator error")
            response = Response.json(internal_error().body(), 500)
        reason = REASONS.get(response.status, "")
        start_response(f"{response.status} {reason}".strip(), response.headers)
        if environ.get("REQUEST_METHOD") == "HEAD":
            return []
        return response.body

    def read_request(self, environ: dict[str, Any]) -> Request:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY_BYTES:
            raise ApiError(413, "INVALID_ARGUMENT", "Request payload is too large.")
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        host = headers.get("host")
        return Request(
            method=environ["REQUEST_METHOD"],
            path=environ.get("PATH_INFO", "/"),
            query=parse_qs(environ.get("QUERY_STRING", "")),
            headers=headers,
            body=body,
            base_url=f"http://{host}" if host else self._server_url(),
        )

    def dispatch(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        for route in self.routes:
            if route.method == method and route.matches(request.path):
                return route.handler(self.state, request)
        # Only the API's own paths answer 405; a bucket object asked with another method is
        # a key it does not have, as Cloud Storage's answer would be.
        if any(route.path == request.path for route in self.routes):
            raise ApiError(405, "INVALID_ARGUMENT", f"Method {request.method} is not allowed.")
        raise ApiError(404, "NOT_FOUND", f"The requested URL {request.path} was not found.")
