"""Flow accounts as the worker sees them: one engine per account, a shared token cache, and
what happens when Flow refuses an account's credentials.

A refused token or session (401) does not stop the account until an admin acts: Google
sometimes refuses a good token for a moment, and a session cookie can mint a new one. So the
account's takes wait, saying that Flowsite is re-checking the account, while each pass due
re-checks it (``recheck_due``) with the cheapest authenticated call, backing off
(``policy.recheck_delay``). A re-check that passes lets every waiting take go on by itself.
Only after CREDENTIAL_RECHECKS refusals in a row is the account's ``problem`` set, for an admin
to paste new credentials; it is still re-checked, rarely, in case Flow accepts them again.

Refusals of the account itself (``AccountRefused``: a Vertex AI project with the API disabled,
no permission, no model in the region) and a pasted Vertex AI token that expired set the
problem at once and are not re-checked (``account_refused`` says why).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db.models import F, Q
from django.utils import timezone

from ..engines.base import (
    AccountRefused,
    Engine,
    EngineError,
    SessionExpired,
    Throttled,
    TokenExpired,
)
from ..models import FlowAccount, Generation
from .policy import (
    CREDENTIAL_RECHECK_DEAD_SECONDS,
    CREDENTIAL_RECHECKS,
    S,
    backoff_seconds,
    call_deadline,
    check_lease,
    recheck_delay,
    shorten,
    waited_words,
)

if TYPE_CHECKING:
    from .passes import Pass

log = logging.getLogger(__name__)

# The takes that wait while an account cannot be called (submitting ones are settled first).
WAITING = (S.QUEUED, S.PENDING, S.ACTIVE)


class AccountTokenCache:
    """Keeps minted access tokens on the FlowAccount row, so every worker shares one token.

    Keyed by ``Credentials.key`` (the account's uuid).
    """

    def get(self, key: str) -> tuple[str, datetime] | None:
        row = (
            FlowAccount.objects.filter(uuid=key)
            .values_list("access_token", "access_token_expires")
            .first()
        )
        # A token sealed under other keys (crypto.Sealed) is minted again, as a missing one is.
        if not row or not isinstance(row[0], str) or not row[0] or row[1] is None:
            return None
        return row[0], row[1]

    def set(self, key: str, token: str, expires_at: datetime) -> None:
        FlowAccount.objects.filter(uuid=key).update(
            access_token=token, access_token_expires=expires_at
        )


TOKEN_CACHE = AccountTokenCache()


def engine_for(account: FlowAccount) -> Engine:
    from ..engines import get_engine

    return get_engine(account.credentials(), token_cache=TOKEN_CACHE)


class Engines:
    """One engine per account for the length of a pass (engines keep an HTTP client)."""

    def __init__(self) -> None:
        self._by_account: dict[int, Engine] = {}

    def get(self, account: FlowAccount) -> Engine:
        if account.pk not in self._by_account:
            self._by_account[account.pk] = engine_for(account)
        return self._by_account[account.pk]

    def close(self) -> None:
        for engine in self._by_account.values():
            close = getattr(engine, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # closing is best effort; the pass result stands
                    log.exception("closing an engine failed")
        self._by_account.clear()


def what_was_refused(account: FlowAccount, error: EngineError | None = None) -> str:
    if isinstance(error, SessionExpired) or account.session_cookie:
        return "session"
    return "access token"


def rechecking_reason(account: FlowAccount, error: EngineError | None = None) -> str:
    """What the account's takes say while Flowsite re-checks refused credentials."""
    return (
        f"Flow refused the {what_was_refused(account, error)} of account {account}. Flowsite "
        "is re-checking the account and goes on by itself as soon as Flow accepts it again."
    )


def account_problem(account: FlowAccount, error: EngineError, refusals: int = 0) -> str:
    """What every take of an account says until an admin fixes the account: Google refused
    the account itself (AccountRefused), a pasted Vertex AI token expired, or Flow refused the
    credentials ``refusals`` re-checks in a row (a later re-check may still find them
    accepted again)."""
    if isinstance(error, AccountRefused):
        return shorten(f"Account {account}: {error.message}", 300)
    if account.is_vertex:
        return (
            f"The Vertex AI access token of account {account} has expired or was revoked — "
            "paste a new one, or upload a service-account key so Flowsite mints its own."
        )
    every = waited_words(timedelta(seconds=CREDENTIAL_RECHECK_DEAD_SECONDS))
    if what_was_refused(account, error) == "session":
        dead = (
            f"The Flow session for account {account} was refused {refusals} times in a row: it "
            "has expired — paste a new cookie."
        )
    else:
        dead = (
            f"The Flow access token of account {account} was refused {refusals} times in a row: "
            "it has expired or was revoked — paste a new one."
        )
    return shorten(f"{dead} Flowsite re-checks it every {every} meanwhile.", 300)


def account_refused(now: datetime, account: FlowAccount, error: EngineError) -> str:
    """Google refused a call for the account itself (nothing was spent); returns what the
    account's takes say.

    A Flow 401 is re-checked (``credentials_refused``). Everything else sets the account's
    problem at once, for an admin, and is not re-checked: an ``AccountRefused`` (API disabled,
    no permission, model not in the region, a key Google will not sign in with) is fixed in
    Google Cloud, and the only call Vertex AI allows for free, minting a token, cannot see it
    fixed; a Vertex 401 comes only from a pasted token (with a key the engine re-mints and asks
    again at once, so that mint is its re-check), and a pasted Vertex token that expired never
    comes back."""
    if isinstance(error, SessionExpired | TokenExpired) and not account.is_vertex:
        return credentials_refused(now, account, error)
    message = account_problem(account, error)
    set_account_problem(account, message)
    return message


def credentials_refused(now: datetime, account: FlowAccount, error: EngineError) -> str:
    """Flow refused the account's token or session (nothing was spent). Count the refusal,
    schedule the next re-check, and after enough of them set the account's problem. Every
    take of the account not held by a worker says so; returns the sentence, for the takes the
    caller holds."""
    FlowAccount.objects.filter(pk=account.pk).update(
        credential_refusals=F("credential_refusals") + 1
    )
    refusals = (
        FlowAccount.objects.filter(pk=account.pk)
        .values_list("credential_refusals", flat=True)
        .first()
    ) or 1
    # Once declared dead, an account stays so until a re-check passes.
    dead = refusals > CREDENTIAL_RECHECKS or bool(account.problem)
    delay = CREDENTIAL_RECHECK_DEAD_SECONDS if dead else recheck_delay(refusals)
    message = (
        account_problem(account, error, refusals) if dead else rechecking_reason(account, error)
    )
    until = now + timedelta(seconds=delay)
    fields = {"problem": message if dead else "", "cool_down_until": until}
    if account.session_cookie:
        # The token Flow refused is never handed out again: the re-check mints a fresh one.
        fields.update(access_token="", access_token_expires=None)
    FlowAccount.objects.filter(pk=account.pk).update(**fields)
    account.problem, account.cool_down_until = fields["problem"], until
    account.credential_refusals = refusals
    log.warning(
        "Flow refused the credentials of account %s (%d in a row): %s",
        account,
        refusals,
        error.detail or error.message,
    )
    Generation.objects.filter(account=account, status__in=WAITING, claim__isnull=True).exclude(
        reason=message
    ).update(reason=message, updated=timezone.now())
    return message


def recheck_due(run: Pass) -> None:
    """Re-check the credentials of every account whose re-check is due."""
    now = run.now
    # Only accounts whose credentials Flow refused: a problem set for anything else waits for
    # an admin (``account_refused``).
    due = FlowAccount.objects.filter(credential_refusals__gt=0).filter(
        Q(cool_down_until__isnull=True) | Q(cool_down_until__lte=now)
    )
    for account in due:
        if run.time_left() < 2 * call_deadline():
            return
        recheck(run, account)
        run.beat()


def recheck(run: Pass, account: FlowAccount) -> None:
    now = run.now
    # Claimed by moving the re-check past the call, so two workers do not both re-check.
    if not FlowAccount.objects.filter(
        pk=account.pk, cool_down_until=account.cool_down_until
    ).update(cool_down_until=now + check_lease()):
        return
    run.counts["credential_rechecks"] += 1
    try:
        info = run.engines.get(account).account_info()
    except (TokenExpired, SessionExpired) as error:
        credentials_refused(now, account, error)
        return
    except ValueError as error:
        # No usable secret at all: nothing to re-check until an admin pastes one.
        set_account_problem(account, account.unusable_secret(error))
        return
    except EngineError as error:
        # Not an answer about the credentials (network, Flow's 500s, throttling): ask again
        # later, without counting it as a refusal.
        retry_after = error.retry_after if isinstance(error, Throttled) else None
        delay = (
            backoff_seconds(1, retry_after)
            if retry_after
            else recheck_delay(max(account.credential_refusals, 1))
        )
        cool_down(account, now + timedelta(seconds=delay))
        log.warning("re-checking account %s failed: %s", account, error.message)
        return
    credentials_accepted(run, account)
    account.record_credits(info.credits)


def credentials_accepted(run: Pass, account: FlowAccount) -> None:
    """A re-check passed: the account is open again, and its waiting takes go on at once."""
    waited_with = {
        rechecking_reason(account, TokenExpired()),
        rechecking_reason(account, SessionExpired()),
    }
    if account.problem:
        waited_with.add(account.problem)
    FlowAccount.objects.filter(pk=account.pk).update(
        credential_refusals=0, problem="", cool_down_until=None
    )
    account.credential_refusals, account.problem, account.cool_down_until = 0, "", None
    now = timezone.now()
    run.counts["resumed"] += Generation.objects.filter(
        account=account, status__in=WAITING, claim__isnull=True, reason__in=waited_with
    ).update(reason="", next_check_at=run.now, updated=now)
    log.info("Flow accepts the credentials of account %s again", account)


def cool_down(account: FlowAccount, until: datetime) -> None:
    """Rest the account until ``until``: nothing calls it before (after Flow throttled it)."""
    FlowAccount.objects.filter(pk=account.pk).update(cool_down_until=until)
    account.cool_down_until = until


def out_of_credits(account: FlowAccount) -> None:
    """Flow refused a call on the account for its credits (``OutOfCredits``), a take's or an
    upscale's alike: it counts as having none until Flow reports some again, so its project's
    page says so and failover passes it over (``FlowAccount.short_of_credits``)."""
    account.record_credits(0)


def set_account_problem(account: FlowAccount, message: str) -> None:
    message = shorten(message, 300)
    FlowAccount.objects.filter(pk=account.pk).update(problem=message)
    account.problem = message
