"""Fault injection: the failures Google produces, on demand.

A prompt carries ``[fault:NAME]``, ``[fault:NAME=ARG]`` or either with ``:once`` after the name
(``[fault:throttle:once]``, ``[fault:throttle:once=5]`` and ``[fault:throttle=5:once]`` all
work). The same names, without brackets, are the emulator's global faults. A ``:once`` fault is
consumed the first time it takes effect, keyed by its exact text, until ``reset()``.

The effects of a fault live where they happen (submit, status, media); what is shared among
them is here: the error each submit fault answers with, and the wait of ``slow``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .contract import ApiError, internal_error, quota_reached, unauthenticated

# Refuse the whole submit call.
SUBMIT_FAULTS = (
    "throttle",
    "error500",
    "unsafe",
    "quota",
    "model-quota",
    "botcheck",
    "token-expiry",
)
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
    "broken-poster",
)
# Vertex AI only: refusals of the project or the request, and what an operation ends with
# ("filtered=N": N samples removed by the safety filter; "op-error=CODE": a gRPC code;
# "forgotten": the operation is lost as soon as it is named, as when Google loses it or the
# emulator restarts, so asking about it answers 404).
VERTEX_FAULTS = (
    "api-disabled",
    "no-permission",
    "not-in-region",
    "invalid-argument",
    "filtered",
    "op-error",
    "forgotten",
)
KNOWN_FAULTS = SUBMIT_FAULTS + CALL_FAULTS + OPERATION_FAULTS + VERTEX_FAULTS
# Faults whose argument is a number of seconds, with the default when none is given.
_SECONDS_DEFAULTS = {"throttle": 2.0, "slow": 2.0, "slow-download": 2.0}
# How a poster link fails ("broken-poster=HOW"; the first is the default).
POSTER_BREAKS = ("missing", "denied", "expired", "garbled")

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
    if name == "expired-url" and arg and not (arg.isdigit() and int(arg) > 0):
        raise FaultSyntaxError(
            f"Emulator fault 'expired-url' takes a number of answers (1 or more), not {arg!r}."
        )
    if name == "broken-poster" and arg not in ("", *POSTER_BREAKS):
        raise FaultSyntaxError(
            f"Emulator fault 'broken-poster' takes one of {', '.join(POSTER_BREAKS)}, not {arg!r}."
        )
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


# --- What the faults do ---------------------------------------------------------------------

SUBMIT_ERRORS: dict[str, Callable[[Fault], ApiError]] = {
    "throttle": lambda fault: ApiError(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
        reason="PUBLIC_ERROR_USER_REQUESTS_THROTTLED",
        headers=[("Retry-After", f"{fault.seconds:g}")],
    ),
    "error500": lambda fault: internal_error(),
    "unsafe": lambda fault: ApiError(
        400,
        "INVALID_ARGUMENT",
        "Request contains an invalid argument.",
        reason="PUBLIC_ERROR_UNSAFE_GENERATION",
    ),
    "quota": lambda fault: quota_reached(),
    # One model's daily quota, not the account's credits (Flow's README §2).
    "model-quota": lambda fault: ApiError(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
        reason="PUBLIC_ERROR_PER_MODEL_DAILY_QUOTA_REACHED",
    ),
    "botcheck": lambda fault: ApiError(
        403,
        "PERMISSION_DENIED",
        "The caller does not have permission",
        reason="PUBLIC_ERROR_UNUSUAL_ACTIVITY",
    ),
    "token-expiry": lambda fault: unauthenticated(),
}


def delay(book: FaultBook, faults: list[Fault]) -> None:
    """Wait as long as the ``slow`` faults among ``faults`` that take effect now add up to."""
    seconds = sum(fault.seconds for fault in faults if fault.name == "slow" and book.take(fault))
    if seconds:
        time.sleep(seconds)


def refuse_submit(book: FaultBook, faults: list[Fault]) -> None:
    """Wait out the ``slow`` faults, then refuse the call with the first submit fault that
    takes effect now."""
    delay(book, faults)
    for fault in faults:
        if fault.name in SUBMIT_FAULTS and book.take(fault):
            raise SUBMIT_ERRORS[fault.name](fault)
