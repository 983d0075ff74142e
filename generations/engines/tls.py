"""One TLS context for every HTTP client the worker makes, and the one way to make a client.

httpx builds a fresh context for each client unless it is given one, and building one loads
the whole CA bundle: about 20 ms of CPU. The worker makes a client for every clip and every
poster it downloads and one per account and pass, so when a hundred takes finish together
that alone kept a core busy for seconds, beside the web server on the same machine. A context
is safe to share between threads once it is set up, and this one is never changed after.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The context httpx builds by default (its CA bundle, certificates checked), without
    reading SSL_CERT_FILE and the like, as every client here is made with trust_env=False."""
    return httpx.create_ssl_context(trust_env=False)


def http_client(transport: httpx.BaseTransport | None = None, **options: Any) -> httpx.Client:
    """A client that follows no redirect and reads nothing from the environment (no proxy
    variables or .netrc credentials slip into a call), with the shared TLS context.
    ``transport`` is for tests."""
    return httpx.Client(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        verify=tls_context(),
        **options,
    )
