"""A stand-in for Google's side of the wire, for tests that replay captured Flow bodies.

Only Google is faked here (through ``httpx.MockTransport``); the engine's own code runs
unchanged. The captured bodies live in tests/data/flow-api/, one file per request or answer
as Flow's web client sent or received it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from generations.engines.base import Credentials
from generations.engines.flow import FlowEngine, MemoryTokenCache

FIXTURES = Path(__file__).parent / "data" / "flow-api"
API = "https://aisandbox-pa.googleapis.com"
LABS = "https://labs.google"
TOKEN = "ya29.a0-test-bearer-token-secret"
COOKIE = "eyJ-session-cookie-secret"
REDACTED = "[REDACTED_LONG_TOKEN]"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


Reply = httpx.Response | Callable[[httpx.Request], httpx.Response]


class FakeGoogle:
    """Answers each path from a queue of replies (the last one repeats) and records requests."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.replies: dict[str, list[Reply]] = {}

    def on(self, path: str, *replies: Reply) -> FakeGoogle:
        self.replies[path] = list(replies)
        return self

    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        queue = self.replies.get(request.url.path)
        if not queue:
            return httpx.Response(404, text="<html>no such page</html>")
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        return reply(request) if callable(reply) else reply

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def sent(self, path: str) -> list[httpx.Request]:
        return [request for request in self.requests if request.url.path == path]

    def engine(
        self,
        *,
        tier: str = "PAYGATE_TIER_TWO",
        cookie: bool = False,
        key: str = "account-1",
        token_cache: Any = None,
    ) -> FlowEngine:
        credentials = Credentials(
            key=key,
            tier=tier,
            bearer_token="" if cookie else TOKEN,
            session_cookie=COOKIE if cookie else "",
        )
        return FlowEngine(
            credentials,
            api_base_url=API,
            labs_base_url=LABS,
            token_cache=token_cache if token_cache is not None else MemoryTokenCache(),
            transport=self.transport,
        )


def google_error(
    status: int, message: str, code: str, reason: str | None = None, **kw
) -> httpx.Response:
    error: dict[str, Any] = {"code": status, "message": message, "status": code}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    return httpx.Response(status, json={"error": error}, **kw)


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)
