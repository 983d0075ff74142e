"""The local Flow emulator as a pytest fixture, for every test that talks to "Google".

One emulator runs for the whole test session (renders are cached across tests); each test
that asks for ``flow_emulator`` gets it freshly reset and Django pointed at it.
"""

from collections.abc import Iterator

import pytest

from generations.emulator import Emulator, EmulatorConfig, start_emulator


@pytest.fixture(scope="session")
def _flow_emulator_server() -> Iterator[Emulator]:
    emulator = start_emulator(
        EmulatorConfig(port=0, pending_seconds=0.2, active_seconds=0.3, clip_seconds=2.0)
    )
    yield emulator
    emulator.stop()


@pytest.fixture
def flow_emulator(_flow_emulator_server: Emulator, settings) -> Emulator:
    """A running emulator with short timings (pending 0.2 s, active 0.3 s, 2 s clips), reset
    for this test, with FLOW_API_BASE_URL / FLOW_LABS_BASE_URL pointing at it."""
    emulator = _flow_emulator_server
    emulator.reset()
    settings.FLOW_API_BASE_URL = emulator.url
    settings.FLOW_LABS_BASE_URL = emulator.url
    # Media hosts are pinned to their port: the emulator's links are on its own.
    origin = emulator.url.removeprefix("http://")
    if origin not in settings.FLOW_MEDIA_HOSTS:
        settings.FLOW_MEDIA_HOSTS = [*settings.FLOW_MEDIA_HOSTS, origin]
    return emulator
