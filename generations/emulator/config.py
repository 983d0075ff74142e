"""How one emulator run behaves: who it accepts, how slow it is, which faults it plays."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_TOKEN = "ya29.emulator-token"
DEFAULT_SESSION_COOKIE = "emulator-session"


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    # 0 picks a free port; the running emulator's ``url`` tells which.
    port: int = 8765
    token: str = DEFAULT_TOKEN
    session_cookie: str = DEFAULT_SESSION_COOKIE
    # The emulated account's paygate tier.
    tier: str = "PAYGATE_TIER_TWO"
    credits: int = 10000
    credits_per_clip: int = 20
    # An operation is PENDING this long, then ACTIVE at least this long (and until its render
    # is done), then SUCCESSFUL.
    pending_seconds: float = 4.0
    active_seconds: float = 10.0
    clip_seconds: float = 8.0
    fps: int = 24
    url_ttl_seconds: int = 3600
    token_ttl_seconds: int = 3600
    # Faults applied to every request, named like the prompt markers ("throttle=3", "stuck").
    faults: list[str] = field(default_factory=list)
    render_workers: int = 2
    # The Google Cloud project of the service-account key the emulator hands out.
    vertex_project: str = "flowsite-demo"
