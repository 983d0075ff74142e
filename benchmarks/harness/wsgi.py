"""The WSGI application the benchmark server runs: Flowsite's, timed.

Each answer carries ``Server-Timing: app;dur=<ms>``, the time from the request entering Django to
the moment Django hands over the status line and headers. For an ordinary response the whole body
is built by then, so this is the server's own time, without the network or the client.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.harness.settings")

from django.core.wsgi import get_wsgi_application


class ServerTimed:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()

        def timed(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            elapsed_ms = (time.perf_counter() - started) * 1000
            headers.append(("Server-Timing", f"app;dur={elapsed_ms:.4f}"))
            return start_response(status, headers, exc_info)

        return self.app(environ, timed)


application = ServerTimed(get_wsgi_application())
