"""Who may call: the bearer token every API call needs, the session endpoint that mints one
from a cookie, and the account's credits (the cheapest authenticated call)."""

from __future__ import annotations

import time

from .contract import SESSION_COOKIE_NAME, unauthenticated
from .state import EmulatorState
from .wire import Request, Response, cookie, iso

USER = {"name": "Flow Emulator", "email": "emulator@localhost.invalid", "image": ""}


def authenticate(state: EmulatorState, request: Request) -> None:
    """Refuse the call (401) unless it carries a token this run accepts."""
    if any(fault.name == "token-expiry" for fault in state.global_faults):
        raise unauthenticated()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not state.token_valid(token.strip()):
        raise unauthenticated()


def session(state: EmulatorState, request: Request) -> Response:
    state.count("session")
    sent = cookie(request.headers.get("cookie", ""), SESSION_COOKIE_NAME)
    if not sent or sent != state.config.session_cookie:
        return Response.json(
            {"error": "No session: the session cookie is missing or not recognised."}, 401
        )
    if not state.session_alive:
        # What labs.google answers for a session whose refresh token is gone.
        return Response.json(
            {"user": USER, "expires": iso(time.time()), "error": "ACCESS_TOKEN_REFRESH_NEEDED"}
        )
    token, expires = state.mint_token()
    return Response.json({"user": USER, "expires": iso(expires), "access_token": token})


def credits(state: EmulatorState, request: Request) -> Response:
    state.count("credits")
    authenticate(state, request)
    with state.lock:
        remaining = state.credits
    return Response.json({"credits": remaining, "userPaygateTier": state.config.tier})
