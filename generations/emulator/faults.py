"""Fault injection: the failures Google produces, on demand.

A prompt carries ``[fault:NAME]``, ``[fault:NAME=ARG]`` or either with ``:once`` after the name
(``[fault:throttle:once]``, ``[fault:throttle:once=5]`` and ``[fault:throttle=5:once]`` all
work). The same names, without brackets, are the emulator's global faults. A ``:once`` fault is
consumed the first time it takes effect, keyed by its exact text, until ``reset()``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

# Refuse the whole submit call.
SUBMIT_FAULTS = ("throttle", "error500", "unsafe", "quota", "botcheck", "token-expiry")
# Delay submit and check answers.
CALL_FAULTS = ("slow",)
# Shape what happens to the operation (and its media) after a successful submit.
OPERATION_FAULTS = (
    "fail",
    "stuck",
    "badshape",
    "slow-download",
    "truncated-download",
    "expired-url",
)
KNOWN_FAULTS = SUBMIT_FAULTS + CALL_FAULTS + OPERATION_FAULTS
# Faults whose argument is a number of seconds, with the default when none is given.
_SECONDS_DEFAULTS = {"throttle": 2.0, "slow": 2.0, "slow-download": 2.0}

_MARKER = re.compile(r"\[fault:([^\]]*)\]")


class FaultSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    name: str
    arg: str
    once: bool
    # The marker as written; ``:once`` bookkeeping is per distinct text.
    text: str

    @property
    def seconds(self) -> float:
        return float(self.arg) if self.arg else _SECONDS_DEFAULTS.get(self.name, 0.0)


def parse_fault(text: str) -> Fault:
    """Parse ``NAME``, ``NAME=ARG``, with ``:once`` after the name or the argument."""
    name, _, arg = text.strip().partition("=")
    once = False
    if name.endswith(":once"):
        name, once = name[: -len(":once")], True
    if arg.endswith(":once"):
        arg, once = arg[: -len(":once")], True
    name = name.strip().lower()
    arg = arg.strip()
    if name not in KNOWN_FAULTS:
        raise FaultSyntaxError(
            f"Unknown emulator fault {name!r}; known faults: {', '.join(KNOWN_FAULTS)}."
        )
    if name in _SECONDS_DEFAULTS and arg:
        try:
            if float(arg) < 0:
                raise ValueError
        except ValueError:
            raise FaultSyntaxError(
                f"Emulator fault {name!r} takes a number of seconds, not {arg!r}."
            ) from None
    return Fault(name=name, arg=arg, once=once, text=text.strip())


def faults_in(prompt: str) -> list[Fault]:
    """Every fault marker in a prompt, in order of appearance."""
    return [parse_fault(match.group(1)) for match in _MARKER.finditer(prompt)]


class FaultBook:
    """Which ``:once`` faults have already fired in this run (thread-safe)."""

    def __init__(self) -> None:
        self._fired: set[str] = set()
        self._lock = threading.Lock()

    def take(self, fault: Fault) -> bool:
        """Whether ``fault`` takes effect now; a ``:once`` fault answers True only once."""
        if not fault.once:
            return True
        with self._lock:
            if fault.text in self._fired:
                return False
            self._fired.add(fault.text)
            return True

    def clear(self) -> None:
        with self._lock:
            self._fired.clear()
