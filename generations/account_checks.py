"""What an admin sees and does about an account Google refused.

Google refusing an account itself (a Vertex AI project with the API disabled, no permission,
no model in the region; see ``pipeline.accounts.account_refused``) stops the account until an
admin acts: nothing Flowsite can call for free would see the cause fixed in Google Cloud. The
admin fixes it there and presses "Check again now" (``check_again``), or saves new credentials
or another project or region for the account; either way the refusal is forgotten and the
account's waiting takes go to the worker at once, whose next call is the check. A refused call
spends nothing, so checking by trying again is safe; if Google still refuses, the account
stops again with Google's words.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.formats import date_format

from . import work
from .models import AuditEvent, FlowAccount


def check_again(account: FlowAccount, actor=None) -> bool:
    """Forget the account's refusal (its problem, refused-credential count and rest) and
    hand its waiting takes back to the worker at once. Audited. False when there was nothing
    to check again."""
    if not (account.problem or account.credential_refusals or account.cool_down_until):
        return False
    was = account.problem or (
        refusal_words(account) if account.credential_refusals else "resting after throttling"
    )
    FlowAccount.objects.filter(pk=account.pk).update(
        problem="", credential_refusals=0, cool_down_until=None
    )
    account.problem, account.credential_refusals, account.cool_down_until = "", 0, None
    AuditEvent.record(AuditEvent.Action.ACCOUNT_CHECKED, actor, account=account.label, was=was)
    work.resume_waiting(account)
    return True


def refusal_words(account: FlowAccount) -> str:
    refusals = account.credential_refusals
    return f"credentials refused {refusals} time{'s' if refusals != 1 else ''} in a row"


def what_happened(account: FlowAccount, now: datetime | None = None) -> str:
    """What happened to the account, in words, for its admin page."""
    now = now or timezone.now()
    later = (
        account.cool_down_until
        if account.cool_down_until and account.cool_down_until > now
        else None
    )
    when = date_format(timezone.localtime(later), "DATETIME_FORMAT") if later else ""
    engine = account.upstream
    if account.problem and not account.credential_refusals:
        return (
            f"{engine} refused this account: {account.problem} Flowsite sends nothing for it "
            "and its takes wait. Fix the cause in Google Cloud, then press “Check again now”, "
            "or save new credentials (or another project or region) here: its takes go on at "
            "once."
        )
    if account.credential_refusals:
        then = f" at {when}" if when else " on the worker's next pass"
        stopped = " and has stopped sending for it" if account.problem else ""
        return (
            f"{engine} refused this account's credentials {account.credential_refusals} "
            f"time{'s' if account.credential_refusals != 1 else ''} in a row; Flowsite "
            f"re-checks them by itself{then}{stopped}. “Check again now” re-tries at once; "
            "saving new credentials does too."
        )
    if later:
        return (
            f"Resting after {engine} asked Flowsite to slow down, until {when}. "
            "“Check again now” ends the rest."
        )
    return f"Working: {engine} has refused nothing since the account was last checked."
