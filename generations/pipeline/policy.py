"""Policy: how long work may hold a take, how often to try again, and what a card says.

Everything a team member reads about a take the worker touched is worded here, so one sentence
is the same wherever it is written.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q

from ..engines.base import ClipStatus
from ..models import FlowAccount, Generation
from ..redaction import redact

S = Generation.Status

# Why an uncertain take or upscale was not sent again. No invitation to submit it again: this
# stays true once it was, so the card adds one only while it may be (``submit_again_words``).
UNCERTAIN_REASON = (
    "Flowsite could not confirm that {upstream} received this {what}; it was not resubmitted "
    "so it is not paid for twice."
)
# What happened, said after UNCERTAIN_REASON on the card.
LOST_WORKER = "The worker sending it stopped before it could save {upstream}'s answer."
LOST_INTERNAL = "Flowsite hit an internal error while sending it."


def uncertain_reason(cause: str, upstream: str = "Flow", what: str = "take") -> str:
    """``what``: "take", or "upscale" for an upscale's card."""
    said = UNCERTAIN_REASON.format(upstream=upstream, what=what)
    return shorten(f"{said} What happened: {cause}")


# Retryable answers (throttling, bot check, Flow's 500s) are tried this many times in all;
# each submit call a take was part of counts as one, but for a refusal for credits or a
# model's daily quota, which moves the take to an account not asked yet (see ``submit``).
SUBMIT_ATTEMPTS = 6
# A batch Flow answers 500 is sent whole this many times; from then on a 500 splits it, one
# clip per call, so a clip Flow keeps choking on fails alone (see ``submit``).
BATCH_500_TRIES = 3
# Downloads that a fresh signed link may fix (expired link, cut short) are tried this often.
DOWNLOAD_ATTEMPTS = 4
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0
# Takes claimed for one submit pass; the rest wait for the next pass.
SUBMIT_LIMIT = 200

# A token or session Flow refuses (401) is not declared dead at once: Google sometimes refuses
# a good token for a moment, and a cookie can mint a fresh one. The account's takes wait while
# Flowsite re-checks it (the cheapest authenticated call; a cookie account mints a fresh token
# first) this many times, after CREDENTIAL_RECHECK_SECONDS and four times longer each time
# (15 s, 1 min, 4 min). Only then is the account's problem set, for an admin to see; it is
# still re-checked every CREDENTIAL_RECHECK_DEAD_SECONDS, so the takes resume by themselves
# if Flow accepts the credentials again.
CREDENTIAL_RECHECKS = 3
CREDENTIAL_RECHECK_SECONDS = 15.0
CREDENTIAL_RECHECK_DEAD_SECONDS = 15 * 60.0


def recheck_delay(refusals: int) -> float:
    """Seconds until the next re-check of credentials refused ``refusals`` times in a row."""
    if refusals > CREDENTIAL_RECHECKS:
        return CREDENTIAL_RECHECK_DEAD_SECONDS
    return CREDENTIAL_RECHECK_SECONDS * 4 ** max(refusals - 1, 0)


def clip_gone_reason(upstream: str, clip: ClipStatus) -> str:
    """What a take says when the upstream, asked again for a clip it had finished (its
    download failed or never ended, or it was fetched again), answers that the clip failed
    or that it no longer knows its operation: only a new take, paid for anew, can make it
    again. Only the upstream's own words (``ClipStatus.said``) are quoted as said by it."""
    said = clip.said.strip().rstrip(".")
    quoted = f" ({upstream} said: {said})" if said else ""
    what = (
        clip.failure_message.rstrip(".")
        if clip.unanswered and clip.failure_message
        else f"{upstream} {Generation.CLIP_GONE}"
    )
    return shorten(
        f"{what}{quoted}. Retry as a new take to make it again; that pays for a new clip."
    )


def retry_reason(happened: str, delay_seconds: float) -> str:
    """What a take waiting to be tried again says: what happened, and when the next try is."""
    wait = waited_words(timedelta(seconds=max(1.0, delay_seconds)))
    return shorten(f"{happened.strip()} Flowsite will try again in about {wait}.")


def check_again_reason(happened: str, delay_seconds: float, what: str = "take") -> str:
    """What a take (or an upscale: ``what``) says while a failed status check waits to be
    made again: what happened, and when the next check is. Nothing is lost meanwhile: the
    upstream goes on rendering what it accepted."""
    wait = waited_words(timedelta(seconds=max(1.0, delay_seconds)))
    return shorten(f"{happened.strip()} Flowsite will check on this {what} again in about {wait}.")


def gave_up_reason(happened: str, attempts: int, what: str = "attempts") -> str:
    """What a take Flowsite stopped trying says: what happened the last time, and that it
    stopped. ``happened`` says only what happened (engines promise no retry in their words)."""
    return shorten(f"{happened.strip()} Flowsite gave up after {attempts} {what}.")


def redact_log(text: str) -> str:
    """Text safe for a log line, of bounded length."""
    return redact(text, limit=2000)


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """How long to wait before try number ``attempt + 1``.

    Exponential from BACKOFF_BASE_SECONDS, capped, with "equal jitter" so that many takes
    throttled together do not come back in lockstep. A Retry-After from Flow is a floor.
    """
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempt - 1, 0))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    if retry_after is not None and retry_after > 0:
        # Honoured exactly (plus a little spread), not stretched by our own schedule.
        delay = retry_after + random.uniform(0, min(1.0, retry_after / 10))
    return delay


def poll_interval() -> float:
    return float(getattr(settings, "FLOWSITE_POLL_INTERVAL", 5.0))


def stuck_after() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "FLOWSITE_STUCK_AFTER", 20 * 60)))


def call_deadline() -> float:
    return float(getattr(settings, "FLOW_CALL_DEADLINE", 90.0))


def download_deadline() -> float:
    return float(getattr(settings, "FLOW_DOWNLOAD_DEADLINE", 300.0))


def _seconds_setting(name: str, default: float) -> timedelta:
    value = float(getattr(settings, name, 0) or 0)
    return timedelta(seconds=value if value > 0 else default)


# How long a worker holds the takes it works on. Past its lease a worker is presumed dead
# (killed, crashed): another pass takes the work over, and a take left "submitting" becomes
# uncertain. The leases are short because a live pump renews them every few seconds while it
# works (``claims.Keeper``), during a long upstream call or download too; what bounds the work
# itself is its own deadline, after which the keeper stops renewing.
SUBMIT_LEASE_SECONDS = 30.0
CHECK_LEASE_SECONDS = 20.0
DOWNLOAD_LEASE_SECONDS = 20.0


def submit_lease() -> timedelta:
    """Uploading the start images, then the submit call itself. Longer than the others: a
    live worker's take wrongly found dead here becomes uncertain, which a person must settle."""
    return _seconds_setting("FLOWSITE_SUBMIT_LEASE", SUBMIT_LEASE_SECONDS)


def check_lease() -> timedelta:
    return _seconds_setting("FLOWSITE_CHECK_LEASE", CHECK_LEASE_SECONDS)


def download_lease() -> timedelta:
    return _seconds_setting("FLOWSITE_DOWNLOAD_LEASE", DOWNLOAD_LEASE_SECONDS)


def submit_work_seconds() -> float:
    """The longest a submit group may take: its uploads and the submit call."""
    return 2 * call_deadline() + 30


def download_work_seconds() -> float:
    """The longest one download may take: a clip and its poster."""
    return 2 * download_deadline() + 30


def beat_seconds() -> float:
    """How often a live pump renews its leases: several times within the shortest one, so
    a slow database write or two does not cost a live worker its takes."""
    shortest = min(submit_lease(), check_lease(), download_lease()).total_seconds()
    return max(0.05, min(shortest / 5, 5.0))


def download_slots() -> int:
    """How many downloads a pump runs at once, beside its submitting and polling."""
    return max(1, int(getattr(settings, "FLOWSITE_DOWNLOAD_SLOTS", 3) or 3))


def shorten(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]


def batches_by(items: list, size: int, key: Callable[[Any], str]) -> list[list]:
    """``items`` in batches of at most ``size`` distinct ``key``s, in the order each key is
    first seen; items sharing a key go in one batch together."""
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return [
        [item for group in batch for item in group] for batch in chunks(list(groups.values()), size)
    ]


def lease_free(now: datetime) -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def is_due(now: datetime) -> Q:
    return Q(next_check_at__isnull=True) | Q(next_check_at__lte=now)


def account_open(now: datetime) -> Q:
    """Takes whose account Flowsite may call now: no problem waiting for an admin (dead
    session, revoked token), credentials not being re-checked, and no cool-down after Flow
    throttled it."""
    return FlowAccount.open_q(now, via="account__")


def waited_words(waited: timedelta) -> str:
    seconds = int(waited.total_seconds())
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} minutes"
    return f"{minutes // 60} hours {minutes % 60} minutes"


# --- Engines and their token cache ----------------------------------------------------------
