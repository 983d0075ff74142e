"""Several accounts per project: which of them a queued take goes out on.

A project spends its accounts in an order: its first account (``Project.account``, on which
its scenes are judged and priced), then the ``ProjectAccount`` rows its owners chose, each
still granted to the project or to one of its owners. Right after a submit pass claims its
takes, every one of them that is still queued (never sent, so moving it costs nothing) is
given the first account of its project that is usable for it (``first_usable``):

- open: not cooling down after a 429, no problem waiting for an admin (signed out, refused),
  credentials not being re-checked (``FlowAccount.open_q``);
- able to make the take (``catalogue.can_make``: its model on that account's engine and tier);
- not short of credits by Flow's last report. When every open, able account is short, the
  first of them is used anyway: the credits are only as fresh as Flow's last answer, and
  Flow's own refusal then says so on the card.

A take that went out (pending, active, uncertain, ...) is never moved: it stays on the account
it was sent on, whatever happens to that account later, so nothing is ever sent twice. A take
no account of its project can make (a tier lowered since Generate) stays on its own account,
where Flow's refusal says why in words. An extension stays on its own account too: the clip
it continues is known only there.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db.models import Exists, OuterRef, Q

from .engines.catalogue import flow_credits
from .models import AccountGrant, FlowAccount, Generation, Membership, Project, ProjectAccount


def still_granted() -> Exists:
    """For ``ProjectAccount`` rows: the account is still granted to the row's project or to
    one of its owners who may sign in (``AccountGrant.allowing``, for many projects at once)."""
    owners = Membership.objects.filter(
        project_id=OuterRef(OuterRef("project_id")),
        role=Membership.Role.OWNER,
        user__is_active=True,
    ).values("user_id")
    return Exists(
        AccountGrant.objects.filter(account_id=OuterRef("account_id")).filter(
            Q(project_id=OuterRef("project_id")) | Q(user_id__in=owners)
        )
    )


def accounts_by_project(projects: Iterable[Project]) -> dict[int, list[FlowAccount]]:
    """Each project's accounts in order, those after the first only while still granted.
    The projects come with their ``account`` loaded; one query for the rest, however many."""
    projects = list(projects)
    order: dict[int, list[FlowAccount]] = {
        project.pk: [project.account] if project.account_id is not None else []
        for project in projects
    }
    rows = (
        ProjectAccount.objects.filter(project_id__in=list(order))
        .filter(still_granted())
        .select_related("account")
        .order_by("project_id", "position", "id")
    )
    for row in rows:
        if all(account.pk != row.account_id for account in order[row.project_id]):
            order[row.project_id].append(row.account)
    return order


def first_usable(accounts: list[FlowAccount], model_key: str, now: datetime) -> FlowAccount | None:
    """The account a take of ``model_key`` goes out on now, or None while none can take it
    (see the module's docstring)."""
    able = [account for account in accounts if account.is_open(now) and account.can_make(model_key)]
    if not able:
        return None
    return next((account for account in able if not account.short_of_credits(model_key)), able[0])


def submittable(now: datetime) -> Q:
    """Queued takes that some account of their project may take now: the database's side of
    ``first_usable`` (open accounts; the model is judged once the takes are loaded)."""
    later_open = ProjectAccount.objects.filter(project_id=OuterRef("project_id")).filter(
        FlowAccount.open_q(now, via="account__")
    )
    return (
        FlowAccount.open_q(now, via="account__")
        | FlowAccount.open_q(now, via="project__account__")
        | Exists(later_open)
    )


def assign(token: UUID, now: datetime) -> int:
    """Give every queued take this pass holds (``token``) the account it goes out on now;
    release, unchanged, those no account can take now. Returns how many moved.

    Four queries at most, whatever the number of takes: the takes with their projects and
    accounts, the projects' later accounts, one UPDATE for every move, one release."""
    from .pipeline.claims import held, visible, write_held

    takes = list(
        held(token, [Generation.Status.QUEUED]).select_related("project__account", "account")
    )
    if not takes:
        return 0
    projects = {take.project_id: take.project for take in takes}
    order = accounts_by_project(projects.values())
    moves: dict[int, dict[str, Any]] = {}
    wait: dict[int, dict[str, Any]] = {}
    for take in takes:
        accounts = order[take.project_id]
        if take.source_take_id is not None and take.account is not None:
            # An extension continues a clip that lives with the account which made it.
            accounts = [take.account]
        able = [account for account in accounts if account.can_make(take.model_key)]
        if not able:
            # Nothing of the project can make it: it goes on its own account, if that is open,
            # and Flow's refusal says why.
            if take.account is None or not take.account.is_open(now):
                wait[take.pk] = _wait_for([take.account] if take.account else [], now)
            continue
        target = first_usable(able, take.model_key, now)
        if target is None:
            wait[take.pk] = _wait_for(able, now)
        elif target.pk != take.account_id:
            moves[take.pk] = visible(account_id=target.pk, reason="", **_cost_on(take, target))
    write_held(token, moves, [Generation.Status.QUEUED])
    write_held(token, wait, [Generation.Status.QUEUED])
    return len(moves)


# A take none of whose able accounts is open, and none of them merely cooling down, is looked
# at again after this long (an admin's fix or a passed re-check makes it due at once anyway).
IDLE_RECHECK = timedelta(seconds=60)


def _wait_for(able: list[FlowAccount], now: datetime) -> dict[str, Any]:
    """The take goes back, unclaimed, until the first of ``able`` ends its cool-down: it is not
    asked about again before anything can take it (a take left due while another account of
    its project is open would otherwise keep the worker busy for nothing)."""
    ends = [
        account.cool_down_until
        for account in able
        if not account.problem
        and not account.credential_refusals
        and account.cool_down_until is not None
        and account.cool_down_until > now
    ]
    return {
        "claim": None,
        "lease_until": None,
        "next_check_at": min(ends) if ends else now + IDLE_RECHECK,
    }


def _cost_on(take: Generation, account: FlowAccount) -> dict[str, Any]:
    """What the take costs on ``account``: Flow's credits follow the account's tier; a Vertex
    AI take costs the same on any Vertex AI account."""
    if account.is_vertex or take.cost_unit != "credits":
        return {}
    credits = flow_credits(take.model_key, account.tier)
    return {} if credits is None else {"cost": Decimal(credits)}
