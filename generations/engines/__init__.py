"""Video engines: the one place that picks which upstream serves an account.

Tasks call ``get_engine(account.credentials())`` and speak only the types of ``base``; the
engine (Google Flow or Vertex AI) is chosen in ``get_engine`` and nowhere else.
"""

from __future__ import annotations

from .base import Credentials, Engine, EngineKind, TokenCache


def get_engine(credentials: Credentials, *, token_cache: TokenCache | None = None) -> Engine:
    """The engine serving an account with these credentials."""
    if credentials.kind == EngineKind.VERTEX:
        from .vertex import VertexEngine

        return VertexEngine(credentials, token_cache=token_cache)
    from .flow import FlowEngine

    return FlowEngine(credentials, token_cache=token_cache)
