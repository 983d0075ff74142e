"""A local stand-in for Google Flow that speaks the captured contract over real HTTP.

    from generations.emulator import EmulatorConfig, start_emulator
    emu = start_emulator(EmulatorConfig(port=0, pending_seconds=0.2, active_seconds=0.5))
    ...
    emu.stop()

Its state lives in memory only. See README.md beside this file for the surface and the faults.
"""

from .config import EmulatorConfig
from .server import Emulator, start_emulator

__all__ = ["Emulator", "EmulatorConfig", "start_emulator"]
