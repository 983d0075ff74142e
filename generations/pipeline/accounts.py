"""Flow accounts as the worker sees them: one engine per account, a shared token cache, and
the problem an account waits with until an admin fixes it."""

from __future__ import annotations

import logging
from datetime import datetime

from ..engines.base import AccountRefused, Engine, EngineError, TokenExpired
from ..models import FlowAccount
from .policy import shorten

log = logging.getLogger(__name__)


class AccountTokenCache:
    """Keeps minted access tokens on the FlowAccount row, so every worker shares one token.

    Keyed by ``Credentials.key`` (the account's uuid).
    """

    def get(self, key: str) -> tuple[str, datetime] | None:
        row = (
            FlowAccount.objects.filter(uuid=key)
            .values_list("access_token", "access_token_expires")
            .first()
        )
        if not row or not row[0] or row[1] is None:
            return None
        return row[0], row[1]

    def set(self, key: str, token: str, expires_at: datetime) -> None:
        FlowAccount.objects.filter(uuid=key).update(
            access_token=token, access_token_expires=expires_at
        )


TOKEN_CACHE = AccountTokenCache()


def engine_for(account: FlowAccount) -> Engine:
    from ..engines import get_engine

    return get_engine(account.credentials(), token_cache=TOKEN_CACHE)


class Engines:
    """One engine per account for the length of a pass (engines keep an HTTP client)."""

    def __init__(self) -> None:
        self._by_account: dict[int, Engine] = {}

    def get(self, account: FlowAccount) -> Engine:
        if account.pk not in self._by_account:
            self._by_account[account.pk] = engine_for(account)
        return self._by_account[account.pk]

    def close(self) -> None:
        for engine in self._by_account.values():
            close = getattr(engine, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # closing is best effort; the pass result stands
                    log.exception("closing an engine failed")
        self._by_account.clear()


def account_problem(account: FlowAccount, error: EngineError) -> str:
    """What every take of a signed-out account says until an admin fixes the account."""
    if isinstance(error, AccountRefused):
        return f"Account {account}: {error.message}"
    if account.is_vertex:
        return (
            f"The Vertex AI access token of account {account} has expired or was revoked — "
            "paste a new one, or upload a service-account key so Flowsite mints its own."
        )
    if isinstance(error, TokenExpired):
        return (
            f"The Flow access token of account {account} has expired or was revoked — "
            "paste a new one."
        )
    return f"The Flow session for account {account} has expired — paste a new cookie."


def set_account_problem(account: FlowAccount, message: str) -> None:
    message = shorten(message, 300)
    FlowAccount.objects.filter(pk=account.pk).update(problem=message)
    account.problem = message
