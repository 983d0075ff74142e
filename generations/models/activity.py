"""The audit trail's events as the sentences an owner reads on the Activity page (and staff in
the admin's list), in the words the rest of the app uses.

Rendered from each event's details every time, never stored as text: an event recorded years
ago reads in today's words, and the details keep the plain values (model keys, roles, amounts
with their unit) a later wording can use. Every key is read with ``.get``: events of an older
shape (before take numbers were kept, a budget before its unit was) still read as a sentence,
only a less precise one.
"""

from __future__ import annotations

from collections.abc import Callable

from ..budgets import amount
from ..engines.catalogue import model_label
from .accounts import COST_CREDITS
from .projects import Membership

# Where Project.start was called from ("how"), as the person who pressed it knew the place.
CREATED_HOW = {
    "page": "Created the project on the New project page",
    "admin": "Created the project in the admin",
    "import": "Created the project by importing a storyboard on the server (manage.py storyboard)",
    "demo": "Created the demo project on the server (manage.py flowsite_demo)",
}


def sentence(action: str, details: dict) -> str:
    """The event in a sentence; an action this module does not know (none today) as its keys."""
    words = SENTENCES.get(action)
    return words(details) if words else keys_and_values(details)


def keys_and_values(details: dict) -> str:
    # Sorted: PostgreSQL's jsonb keeps keys in its own order, SQLite in the written one.
    return "; ".join(
        f"{key.replace('_', ' ')}: {listed(value)}" for key, value in sorted(details.items())
    )


def listed(value) -> str:
    """A value in a sentence: a list as "A, B and C", nothing as "none"."""
    if value is None:
        return "none"
    if isinstance(value, list):
        items = [str(item) for item in value]
        return (
            " and ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else "".join(items)
        )
    return str(value)


def counted(count, noun: str) -> str:
    """ "1 take", "4 takes", "no takes"."""
    if count == 0:
        return f"no {noun}s"
    return f"{count} {noun}{'' if count == 1 else 's'}"


def role(value) -> str:
    """A role as the Members page names it, lower case as in "joined as viewer"."""
    if value in Membership.Role.values:
        return Membership.Role(value).label.lower()
    return str(value)


def models(details: dict) -> str:
    """ " (Veo 3.1 Fast)": each model once as the cards name it (a portrait key and its
    landscape twin read the same)."""
    labels = sorted({model_label(key) for key in details.get("models") or []})
    return f" ({', '.join(labels)})" if labels else ""


def take_numbers(numbers: list[int]) -> str:
    """ "take 2", "takes 1–4" (one scene's takes are numbered in a row), or "takes 1, 3"."""
    if len(numbers) == 1:
        return f"take {numbers[0]}"
    numbers = sorted(numbers)
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"takes {numbers[0]}–{numbers[-1]}"
    return f"takes {listed(numbers)}"


def takes_generated(details: dict) -> str:
    scene = f" of {details['scene']}" if details.get("scene") else ""
    numbers = details.get("take_numbers")
    made = take_numbers(numbers) if numbers else None
    as_new = f" as {made or 'a new take'}{models(details)}"
    if "retry_of" in details:
        return f"Retried take {details['retry_of']}{scene}{as_new}"
    if "resubmitted" in details:
        return f"Submitted take {details['resubmitted']}{scene} again{as_new}"
    if "scenes" in details or details.get("by") == "Generate all":
        scenes = f" {counted(details['scenes'], 'scene')}," if "scenes" in details else ""
        takes = f" {counted(details['takes'], 'take')}" if "takes" in details else " takes"
        return f"Generate all:{scenes}{takes}{models(details)}"
    if made is None:
        made = counted(details["takes"], "take") if "takes" in details else "takes"
    return f"Generated {made}{scene}{models(details)}"


def take_cancelled(details: dict) -> str:
    take = f"take {details['take']}" if details.get("take") is not None else "a take"
    scene = f" of {details['scene']}" if details.get("scene") else ""
    return f"Cancelled {take}{scene}"


def project_created(details: dict) -> str:
    how = details.get("how")
    said = CREATED_HOW.get(how, f"Created the project ({how})" if how else "Created the project")
    if "account" not in details:
        return said
    if details["account"] is None:
        return f"{said}, with no account yet"
    return f"{said}, spending the account {details['account']}"


def project_renamed(details: dict) -> str:
    if "old" in details and "new" in details:
        return f"Renamed the project from {details['old']} to {details['new']}"
    return "Renamed the project"


def project_deleted(details: dict) -> str:
    if "scenes" not in details or "takes" not in details:
        return "Deleted the project"
    scenes, takes = counted(details["scenes"], "scene"), counted(details["takes"], "take")
    if details["scenes"] or details["takes"]:
        return f"Deleted the project with its {scenes} and {takes}"
    return f"Deleted the project, which had {scenes} and {takes}"


def project_duplicated(details: dict) -> str:
    # Recorded on both projects: the original names its copy, the copy its original.
    if details.get("copy"):
        return f"Duplicated the project as {details['copy']}"
    if details.get("copy_of"):
        return f"Made the project by duplicating {details['copy_of']}"
    return "Duplicated the project"


def as_role(details: dict) -> str:
    return f" as {role(details['role'])}" if details.get("role") else ""


def invited(details: dict) -> str | None:
    """Whom an invite named, or None for a link the owner passes on (the trail kept "a link")."""
    to = details.get("to")
    return to if to and to != "a link" else None


def invite_sent(details: dict) -> str:
    to = invited(details)
    if to:
        return f"Invited {to} to join{as_role(details)}"
    return f"Made an invite link to join{as_role(details)}"


def invite_used(details: dict) -> str:
    by = details.get("invited_by")
    whose = f"{by}'s" if by else "an"
    return f"Joined{as_role(details)} with {whose} invite"


def invite_revoked(details: dict) -> str:
    to = invited(details)
    if to:
        return f"Withdrew the invite for {to} to join{as_role(details)}"
    return f"Withdrew an invite link to join{as_role(details)}"


def member(details: dict) -> str:
    return details.get("member") or "a member"


def member_added(details: dict) -> str:
    return f"Added {member(details)}{as_role(details)}"


def member_role(details: dict) -> str:
    said = f"Changed {member(details)}'s role"
    if details.get("old") and details.get("new"):
        said += f" from {role(details['old'])} to {role(details['new'])}"
    return said


def member_removed(details: dict) -> str:
    said = f"Removed {member(details)}"
    return f"{said}, who was {role(details['role'])}" if details.get("role") else said


def the_account(details: dict) -> str:
    return f"the account {details['account']}" if details.get("account") else "an account"


def by_whom(details: dict) -> str:
    """Who acted where the Who column says only "staff": the command run on the server."""
    by = details.get("by")
    if not by:
        return ""
    return f" (on the server, with {by})" if by.startswith("manage.py") else f" ({by})"


def account_granted(details: dict) -> str:
    to = f" to {details['to']}" if details.get("to") else ""
    return f"Granted {the_account(details)}{to}{by_whom(details)}"


def account_revoked(details: dict) -> str:
    to = f" from {details['to']}" if details.get("to") else ""
    return f"Took {the_account(details)} back{to}{by_whom(details)}"


def account_checked(details: dict) -> str:
    # "was": the refusal (or the rest after throttling) the check cleared, in words already.
    was = f", clearing “{details['was']}”" if details.get("was") else ""
    return f"Checked {the_account(details)} again{was}"


def limit_change(details: dict) -> str:
    """ " from unlimited to 1,000 credits", in the unit the limit was set in (a change
    recorded before the unit was kept was in credits, all there was then)."""
    if "old" not in details or "new" not in details:
        return ""
    unit = details.get("unit", COST_CREDITS)

    def limit(value) -> str:
        return "unlimited" if value is None else amount(value, unit)

    return f" from {limit(details['old'])} to {limit(details['new'])}"


def budget_changed(details: dict) -> str:
    return f"Changed the monthly budget{limit_change(details)}"


def allowance_changed(details: dict) -> str:
    return f"Changed {member(details)}'s monthly allowance{limit_change(details)}"


def accounts_ordered(details: dict) -> str:
    accounts = details.get("accounts") or []
    if not accounts:
        said = "Changed the accounts the project spends"
    else:
        said = f"Set the project to spend the account {', then '.join(accounts)}"
    # The limits were set in the unit of the accounts before (credits or US dollars), and
    # went when the project moved to an account paid in the other.
    cleared = []
    if details.get("budget_cleared"):
        cleared.append(f"the monthly budget of {details['budget_cleared']}")
    allowances = details.get("allowances_cleared") or []
    if allowances:
        noun = "allowance" if len(allowances) == 1 else "allowances"
        cleared.append(f"the {noun} of {', '.join(allowances)}")
    if cleared:
        said += f"; cleared the limits set in the other unit: {' and '.join(cleared)}"
    return said


def user_deleted(details: dict) -> str:
    who = f"the user {details['user']}" if details.get("user") else "a user"
    projects = details.get("projects")
    # Recorded with the projects they were in only when there were some.
    where = listed(projects) if projects else "no project"
    return f"Deleted {who}, who was in {where}"


SENTENCES: dict[str, Callable[[dict], str]] = {
    "invite.sent": invite_sent,
    "invite.used": invite_used,
    "invite.revoked": invite_revoked,
    "member.added": member_added,
    "member.role": member_role,
    "member.removed": member_removed,
    "project.created": project_created,
    "project.renamed": project_renamed,
    "project.archived": lambda details: "Archived the project",
    "project.restored": lambda details: "Restored the project",
    "project.deleted": project_deleted,
    "project.duplicated": project_duplicated,
    "takes.generated": takes_generated,
    "take.cancelled": take_cancelled,
    "account.granted": account_granted,
    "account.revoked": account_revoked,
    "account.checked": account_checked,
    "budget.changed": budget_changed,
    "allowance.changed": allowance_changed,
    "accounts.ordered": accounts_ordered,
    "user.deleted": user_deleted,
}
