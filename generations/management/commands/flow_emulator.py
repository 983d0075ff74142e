"""`python manage.py flow_emulator`: the local stand-in for Google Flow (started by `make run`)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generations.emulator import EmulatorConfig, start_emulator
from generations.emulator.contract import TIER_RANK
from generations.emulator.faults import KNOWN_FAULTS, FaultSyntaxError, parse_fault


class Command(BaseCommand):
    help = (
        "Run the local Flow emulator: Google Flow's captured API (upload, submit, status, "
        "credits, session tokens, signed media URLs) on loopback, rendering real MP4 clips "
        "from the start image. Its state (images, operations, credits, tokens) lives in "
        "memory only and is lost when it stops; its rendered clips are kept in a temporary "
        "folder that is deleted on exit."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = EmulatorConfig()
        parser.add_argument("--host", default=settings.FLOW_EMULATOR_HOST)
        parser.add_argument("--port", type=int, default=settings.FLOW_EMULATOR_PORT)
        parser.add_argument(
            "--token",
            default=settings.FLOW_EMULATOR_TOKEN,
            help="A bearer token accepted as is, besides those minted from the session.",
        )
        parser.add_argument(
            "--session-cookie",
            default=settings.FLOW_EMULATOR_SESSION_COOKIE,
            help="The __Secure-next-auth.session-token value that mints tokens.",
        )
        parser.add_argument("--tier", choices=list(TIER_RANK), default=defaults.tier)
        parser.add_argument("--credits", type=int, default=defaults.credits)
        parser.add_argument("--credits-per-clip", type=int, default=defaults.credits_per_clip)
        parser.add_argument(
            "--pending-seconds", type=float, default=defaults.pending_seconds, metavar="S"
        )
        parser.add_argument(
            "--active-seconds", type=float, default=defaults.active_seconds, metavar="S"
        )
        parser.add_argument(
            "--clip-seconds", type=float, default=defaults.clip_seconds, metavar="S"
        )
        parser.add_argument(
            "--url-ttl-seconds", type=int, default=defaults.url_ttl_seconds, metavar="S"
        )
        parser.add_argument(
            "--token-ttl-seconds", type=int, default=defaults.token_ttl_seconds, metavar="S"
        )
        parser.add_argument("--render-workers", type=int, default=defaults.render_workers)
        parser.add_argument(
            "--fault",
            action="append",
            default=[],
            metavar="NAME[=ARG][:once]",
            help=f"Apply a fault to every request (repeatable). One of: {', '.join(KNOWN_FAULTS)}.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for text in options["fault"]:
            try:
                parse_fault(text)
            except FaultSyntaxError as exc:
                raise CommandError(str(exc)) from None
        for name in ("pending_seconds", "active_seconds", "clip_seconds"):
            if options[name] < 0 or (name == "clip_seconds" and options[name] <= 0):
                raise CommandError(f"--{name.replace('_', '-')} must be a positive number.")
        config = EmulatorConfig(
            host=options["host"],
            port=options["port"],
            token=options["token"],
            session_cookie=options["session_cookie"],
            tier=options["tier"],
            credits=options["credits"],
            credits_per_clip=options["credits_per_clip"],
            pending_seconds=options["pending_seconds"],
            active_seconds=options["active_seconds"],
            clip_seconds=options["clip_seconds"],
            url_ttl_seconds=options["url_ttl_seconds"],
            token_ttl_seconds=options["token_ttl_seconds"],
            faults=options["fault"],
            render_workers=options["render_workers"],
        )
        try:
            emulator = start_emulator(config)
        except OSError as exc:
            raise CommandError(
                f"The Flow emulator cannot listen on {config.host}:{config.port}: {exc.strerror}. "
                "Is another emulator already running? Pick another port with --port."
            ) from None

        stop = threading.Event()
        # `make run` stops its children with SIGTERM: stop cleanly so the render folder goes.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(
            f"Flow emulator at {emulator.url} (tier {config.tier}, {config.credits} credits, "
            f"token {config.token!r}). State lives in memory; Ctrl-C stops it."
        )
        if config.faults:
            self.stdout.write(f"Faults on every request: {', '.join(config.faults)}")
        try:
            while not stop.wait(0.5):
                pass
        finally:
            emulator.stop()
            self.stdout.write("Flow emulator stopped; its state is gone.")
