"""Run the emulator on loopback: a threaded WSGI server in a background thread.

Each request gets its own daemon thread, so a slow answer, a slow download or a render in
progress never holds up the next request.
"""

from __future__ import annotations

import logging
import socketserver
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .app import EmulatorApp, EmulatorState
from .config import EmulatorConfig

log = logging.getLogger("flow_emulator")


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # socketserver's default backlog of 5 is too short for a client polling many operations
    # at once: the kernel drops the connections beyond it, and each one dropped waits a whole
    # second for its SYN to be sent again (what the Vertex AI polling benchmark measured
    # instead of the pass). Google takes a burst of connections; so does the emulator.
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class Emulator:
    """A running emulator. Everything it knows lives in memory and goes with ``stop()``."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._state = EmulatorState(config)
        self._server = make_server(
            config.host,
            config.port,
            EmulatorApp(self._state, lambda: self.url),
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        host, port = self._server.server_address[:2]
        self.port: int = port
        self.url = f"http://{_url_host(config.host if config.host else host)}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"flow-emulator-{port}",
            daemon=True,
        )
        self._stopped = False

    def start(self) -> Emulator:
        self._thread.start()
        log.info("Flow emulator listening on %s", self.url)
        return self

    @property
    def token(self) -> str:
        return self.config.token

    @property
    def session_cookie(self) -> str:
        return self.config.session_cookie

    @property
    def stats(self) -> dict[str, int]:
        """A copy of the counters: calls per endpoint (refused ones too) and clips accepted."""
        return self._state.stats_snapshot()

    @property
    def accepted(self) -> dict[str, int]:
        """Clips accepted (and charged) so far, counted by the ``sceneId`` (Flowsite's
        request id) each was sent with: any count above 1 is a clip paid for twice."""
        return self._state.accepted_snapshot()

    @property
    def credits(self) -> int:
        with self._state.lock:
            return self._state.credits

    @property
    def render_dir(self) -> str:
        return str(self._state.renderer.dir)

    def expire_tokens(self) -> None:
        """Every access token accepted so far (configured or minted) now answers 401."""
        self._state.expire_tokens()

    def service_account_key(self) -> dict:
        """A Vertex AI service-account key file whose token_uri is this emulator."""
        from .vertex import service_account_key

        return service_account_key(self._state, self.url)

    def revoke_service_account_key(self) -> None:
        """The key now fails to sign in (invalid_grant), as a deleted key does."""
        with self._state.lock:
            self._state.vertex_key_revoked = True

    def accept_tokens(self) -> None:
        """Undo ``expire_tokens`` and ``kill_session``: the configured token works again and
        the session cookie mints tokens again (as when Google's refusal was a passing one)."""
        self._state.accept_tokens()

    def kill_session(self) -> None:
        """The session cookie now answers ACCESS_TOKEN_REFRESH_NEEDED instead of a token."""
        self._state.kill_session()

    def set_faults(self, faults: list[str]) -> None:
        """Replace the global faults until the next ``reset()`` (which restores the config's)."""
        self._state.set_faults(faults)

    def reset(self) -> None:
        """Forget media, operations, minted tokens, fired ``:once`` faults and counters.
        Finished renders stay cached: they depend only on their inputs."""
        self._state.reset()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._state.close()
        log.info("Flow emulator on %s stopped", self.url)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def start_emulator(config: EmulatorConfig | None = None) -> Emulator:
    """Start an emulator in a background thread and return it once it accepts connections."""
    return Emulator(config or EmulatorConfig()).start()
