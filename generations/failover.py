"""Several accounts per project: which of them a queued take goes out on.

A project spends its accounts in an order: its first account (``Project.account``, on which
its scenes are judged and priced), then the ``ProjectAccount`` rows its owners chose; each, the
first too, only while still granted to the project or to one of its owners (``still_granted``). Right after a submit pass claims its
takes, every one of them that is still queued (never sent, so moving it costs nothing) is
given the first account of its project that is usable for it (``first_usable``):

- open: not cooling down after a 429, no problem waiting for an admin (signed out, refused),
  credentials not being re-checked (``FlowAccount.open_q``);
- able to make the take (``catalogue.can_make``: its model on that account's engine and tier);
- not short of credits by Flow's last report. When every open, able account is short, the
  first of them is used anyway: the credits are only as fresh as Flow's last answer, and
  Flow's own refusal then says so on the card.

A move never passes the project's monthly budget or the member's allowance: Generate checked
the take at its own account's price, and another tier may charge more (tier one charges a
Fast clip 20 credits, tier two 10). An account where the take would cost more than the budget
or the allowance has left is passed over as if it could not take it; when that leaves none,
the take waits for an account that costs no more (its own, usually, after its cool-down) and
its card says why and what an owner can do. The check runs as ``check_budget``'s does, under
a lock on the project's row, in the transaction that writes the moves (``_Room``). Raising the
budget or the allowance on the Spend page makes such takes due at once
(``Project.wake_waiting_takes``): the worker's next pass sends them on the dearer account, or
says on the card how far the new limit still falls short.

When Flow refuses a submit because the account has run out of credits
(``PUBLIC_ERROR_USER_QUOTA_REACHED``: a refusal before any work, and a refused clip is not
charged), that account's credits are recorded as none, so it counts as short until Flow reports
some again, and its takes are queued again for the next account with credits
(``next_with_credits``); with none, they fail saying which accounts have run out
(``out_of_credits_words``). The take remembers the account that refused it
(``Generation.refused_accounts``) and is never sent there again, even once Flow reports credits
there (a status check of another take): otherwise two accounts each short of the take's price
would pass it between them for as long as other takes report credits. An extension has none:
it fails at once, saying that the clip it continues is known only to its account, rather than
be sent there again.

A model's daily quota (``PUBLIC_ERROR_PER_MODEL_DAILY_QUOTA_REACHED``) is not the account's
credits: the account keeps its credits (it may still make the other models), but the take is
queued again, as for credits, for the project's next account that may still make its model
today (``next_with_credits``). The take remembers each account that refused it so, as for
credits, and is never sent to one again: it asks each account at most once; with none left, it
fails saying on which accounts the model's quota is used up (``model_quota_words``). Flow does
not say when a daily quota resets, so neither do we. The next takes of that model are not kept
off the account: nothing says when to let them back, so each asks it once more (a refusal
spends nothing) and moves on the same way. A take refused for the model's quota on some
accounts and for credits on others fails naming both, each with what to do
(``refusals_words``).

A queued take never goes out on an account its project may no longer spend (a grant revoked,
or the owner it was granted to gone): it moves to another account, or, when none can take it
(an extension: none but its own), fails saying why (``_not_granted_words``).

A take that went out (pending, active, uncertain, ...) is never moved: it stays on the account
it was sent on, whatever happens to that account later, so nothing is ever sent twice. A take
no account of its project can make (a tier lowered since Generate) stays on its own account,
where Flow's refusal says why in words. An extension stays on its own account too: the clip
it continues is known only there.

Long because where a take may go and what its card says when it can go nowhere are one rule:
the order of accounts, grants, tiers, credits, rests, refusals and budgets are judged together
in ``assign`` under one lock, and the sentences beside them name exactly what that judgement
found; split apart, the words would drift from the rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Sum

from .budgets import COST_CREDITS, amount, month_spending
from .engines.catalogue import flow_credits, model_label
from .models import FlowAccount, Generation, Membership, Project, ProjectAccount, still_granted


def with_accounts(projects: QuerySet[Project]) -> QuerySet[Project]:
    """``projects`` as ``accounts_by_project`` reads them: each with its first account
    loaded, and whether that is still granted (``account_granted``), in the same query."""
    return projects.select_related("account").annotate(
        account_granted=still_granted(account="account_id", project="pk")
    )


def accounts_by_project(projects: Iterable[Project]) -> dict[int, list[FlowAccount]]:
    """Each project's accounts in order, each only while still granted: its first account
    like the others, so a take never goes out on an account the project may no longer spend.
    The projects come with their ``account`` loaded and ``account_granted`` set (as
    ``with_accounts`` reads them); one query for the rest, however many."""
    projects = list(projects)
    order: dict[int, list[FlowAccount]] = {
        project.pk: [project.account]
        if project.account_id is not None and project.account_granted
        else []
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


def next_with_credits(others: list[FlowAccount], model_key: str, now: datetime) -> datetime | None:
    """When a take of ``model_key`` that Flow refused on its account (for lack of credits, or
    for the model's daily quota) can go out on one of ``others`` (the project's accounts it
    may still go to): now, when one of them is open, able to make it and not short of credits
    by Flow's last report; at the end of the first cool-down, when such accounts only rest
    after a 429; None when none can (signed out, refused, short)."""
    able = [
        account
        for account in others
        if account.can_make(model_key) and not account.short_of_credits(model_key)
    ]
    if any(account.is_open(now) for account in able):
        return now
    return rest_ends(able, now)


def rest_ends(accounts: list[FlowAccount], now: datetime) -> datetime | None:
    """When the first of ``accounts`` that only rests (a cool-down after a 429, with no problem
    and no refused credentials) opens again by itself; None when none will."""
    ends = [
        account.cool_down_until
        for account in accounts
        if not account.problem
        and not account.credential_refusals
        and account.cool_down_until is not None
        and account.cool_down_until > now
    ]
    return min(ends, default=None)


def out_of_credits_words(
    accounts: list[FlowAccount],
    model_key: str,
    code: str = "",
    *,
    refused: Iterable[int] = (),
    extension: bool = False,
) -> str:
    """The card of a take Flow refused for lack of credits when no other account of its
    project (``accounts``, in order) can take it: which accounts have none (those short by
    Flow's last report, and ``refused``: the ids of those that refused the take for credits,
    whatever they reported since), which others cannot take it now; Flow's ``code`` kept for
    whoever reports it. An ``extension`` can go nowhere else: ``accounts`` is its own account
    alone."""
    refused = set(refused)
    short = [
        account
        for account in accounts
        if account.pk in refused
        or (account.can_make(model_key) and account.short_of_credits(model_key))
    ]
    others = [account for account in accounts if account not in short]
    then = (
        f"Add credits to {_names(short)}, then generate it again"
        if extension
        else "Add credits, or ask an admin for another account"
    )
    return _not_sent_words(short, others, "run out of credits", then, code, extension=extension)


def model_quota_words(
    accounts: list[FlowAccount],
    refused: Iterable[int],
    model_key: str,
    code: str = "",
    *,
    extension: bool = False,
) -> str:
    """The card of a take Flow refused for its model's daily quota on every account of its
    project it could go to: the accounts (``accounts``, in order; ``refused``: the ids of those
    that refused it) whose quota of the model is used up, and which others cannot take it now;
    Flow's ``code`` kept for whoever reports it. An ``extension`` can go nowhere else."""
    refused = set(refused)
    used = [account for account in accounts if account.pk in refused]
    others = [account for account in accounts if account.pk not in refused]
    upstream = used[0].upstream if used else "Flow"
    return _not_sent_words(
        used,
        others,
        f"used up today's quota of {model_label(model_key)}",
        f"{upstream} does not say when the quota resets: try again later, or pick another model",
        code,
        extension=extension,
    )


def refusals_words(
    accounts: list[FlowAccount],
    quota: Iterable[int],
    credits: Iterable[int],
    model_key: str,
    code: str = "",
) -> str:
    """The card of a take Flow refused on every account of its project (``accounts``, in
    order) it could go to, on some for its model's daily quota (``quota``: their ids) and on
    others for credits (``credits``): which accounts refused it for which, what to do about
    each, and which others cannot take it now. Accounts short of credits by Flow's last report
    count as out of credits, as in ``out_of_credits_words``."""
    quota, credits = set(quota), set(credits)
    used = [account for account in accounts if account.pk in quota]
    short = [
        account
        for account in accounts
        if account.pk not in quota
        and (
            account.pk in credits
            or (account.can_make(model_key) and account.short_of_credits(model_key))
        )
    ]
    others = [account for account in accounts if account not in used and account not in short]
    upstream = used[0].upstream
    quota_used = _have(used, f"used up today's quota of {model_label(model_key)}")
    also = f", and {_names(others)} cannot take it now" if others else ""
    return (
        f"Not sent: the {upstream} account{'s' if len(used) > 1 else ''} {quota_used}, and "
        f"{_have(short, 'run out of credits')} ({upstream} refused the take, so nothing was "
        f"spent){also}. Add credits to {_names(short)}, then generate it again; or, as "
        f"{upstream} does not say when the quota resets, try again later, or pick another "
        f"model{f' ({code})' if code else ''}."
    )


def _have(accounts: list[FlowAccount], what: str) -> str:
    return f"{_names(accounts)} {'has' if len(accounts) == 1 else 'have'} {what}"


def _not_sent_words(
    refused: list[FlowAccount],
    others: list[FlowAccount],
    what: str,
    then: str,
    code: str,
    *,
    extension: bool,
) -> str:
    """The card of a take that failed, never sent, because Flow refused it on each of
    ``refused`` for ``what`` ("run out of credits", ...): the ``others`` that cannot take it
    now (an ``extension`` has none: the clip it continues lives on its own account), then
    what to do."""
    upstream = refused[0].upstream if refused else "Flow"
    if len(refused) == 1:
        said = f"the {upstream} account {refused[0]} has {what}"
    else:
        said = f"the {upstream} accounts {_names(refused)} have all {what}"
    also = (
        ", and the clip it extends is known only there"
        if extension
        else f", and {_names(others)} cannot take it now"
        if others
        else ", and the project has no other account"
        if len(refused) == 1
        else ""
    )
    return (
        f"Not sent: {said} ({upstream} refused the take, so nothing was spent){also}. "
        f"{then}{f' ({code})' if code else ''}."
    )


def _names(accounts: list[FlowAccount]) -> str:
    names = [str(account) for account in accounts]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


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
    accounts, the projects' later accounts, one UPDATE for every move, one release. When a
    move would make a take dearer, the budget is counted too, in one transaction with the
    writes (``_Room``: the lock and three reads, whatever the number of takes)."""
    from .pipeline.claims import held, visible, write_held

    takes = list(
        held(token, [Generation.Status.QUEUED])
        .select_related("project__account", "account", "requested_by")
        .annotate(
            # Whether the project may still spend its first account, and the take's own.
            first_granted=still_granted(account="project__account_id"),
            own_granted=still_granted(),
        )
    )
    if not takes:
        return 0
    for take in takes:
        take.project.account_granted = take.first_granted
    projects = {take.project_id: take.project for take in takes}
    order = accounts_by_project(projects.values())
    moves: dict[int, dict[str, Any]] = {}
    wait: dict[int, dict[str, Any]] = {}
    dearer: list[tuple[Generation, list[FlowAccount], FlowAccount]] = []
    for take in takes:
        accounts = order[take.project_id]
        extension = take.source_take_id is not None and take.account is not None
        if extension:
            # An extension continues a clip that lives with the account which made it.
            accounts = [take.account] if take.own_granted else []
        refused = take.refused_by()
        able = [
            account
            for account in accounts
            if account.can_make(take.model_key) and account.pk not in refused
        ]
        if not able and refused:
            # Flow refused it, for credits or its model's daily quota, on every account left to
            # it (one went since it was queued again): never back to one of those.
            wait[take.pk] = visible(
                status=Generation.Status.FAILED,
                reason=refused_words(
                    take, with_own(order[take.project_id], take.account), extension=extension
                ),
                finished_at=now,
                claim=None,
                lease_until=None,
            )
            continue
        if not able and take.account is not None and not take.own_granted:
            # Its own account is no longer the project's to spend, and no other can take it.
            why = (
                "the clip it extends is known only there"
                if extension
                else "no other account of the project can make this take"
            )
            wait[take.pk] = visible(
                status=Generation.Status.FAILED,
                reason=_not_granted_words(
                    take, "Not sent", f"and {why}. Ask an admin, then generate it again."
                ),
                finished_at=now,
                claim=None,
                lease_until=None,
            )
            continue
        if not able:
            # Nothing of the project can make it: it goes on its own account, if that is open,
            # and Flow's refusal says why.
            if take.account is None or not take.account.is_open(now):
                wait[take.pk] = _wait_for([take.account] if take.account else [], now)
            continue
        target = first_usable(able, take.model_key, now)
        if target is None:
            wait[take.pk] = _wait_for(able, now)
            if not take.own_granted:
                why = _not_granted_words(
                    take, "Not sent yet", "so it waits for another account of the project."
                )
                wait[take.pk] = visible(reason=why, **wait[take.pk])
        elif target.pk != take.account_id:
            if _extra(take, target) > 0:
                dearer.append((take, able, target))
            else:
                moves[take.pk] = visible(account_id=target.pk, reason="", **_cost_on(take, target))
    if not dearer:
        write_held(token, moves, [Generation.Status.QUEUED])
        write_held(token, wait, [Generation.Status.QUEUED])
        return len(moves)
    with transaction.atomic():
        room = _Room([take for take, _, _ in dearer])
        for take, able, refused in dearer:
            fitting = [
                account
                for account in able
                if _extra(take, account) <= 0 or room.refusal(take, account) is None
            ]
            target = first_usable(fitting, take.model_key, now)
            if target is None:
                why = _waiting_words(take, refused, room.refusal(take, refused), fitting)
                wait[take.pk] = visible(reason=why, **_wait_for(fitting, now))
            elif target.pk != take.account_id:
                room.spend(take, _extra(take, target))
                moves[take.pk] = visible(account_id=target.pk, reason="", **_cost_on(take, target))
        write_held(token, moves, [Generation.Status.QUEUED])
        write_held(token, wait, [Generation.Status.QUEUED])
    return len(moves)


def refused_words(
    take: Generation,
    accounts: list[FlowAccount],
    code: str = "",
    *,
    extension: bool,
    why: str | None = None,
) -> str:
    """The card of a take Flow refused on every account of its project (``accounts``) it
    could go to (``take.refused_accounts``): when some of those still among ``accounts``
    refused it for the model's quota and others for credits, both (``refusals_words``);
    else for ``why``, the last refusal's, when given; else the model's quota where any
    account refused it so (that lasts the day, while credits may be added at once), else the
    credits. An extension is refused once, on its own account, so only ever for one."""
    quota = take.refused_by(Generation.REFUSED_MODEL_QUOTA)
    credits = take.refused_by(Generation.REFUSED_CREDITS)
    among = {account.pk for account in accounts}
    if not extension and quota & among and credits & among:
        return refusals_words(accounts, quota, credits, take.model_key, code)
    if why == Generation.REFUSED_MODEL_QUOTA or (why is None and quota):
        return model_quota_words(accounts, quota, take.model_key, code, extension=extension)
    return out_of_credits_words(
        accounts, take.model_key, code, refused=credits, extension=extension
    )


def with_own(accounts: list[FlowAccount], own: FlowAccount | None) -> list[FlowAccount]:
    """``accounts``, with the take's own account first when it is no longer among them."""
    if own is None or any(account.pk == own.pk for account in accounts):
        return accounts
    return [own, *accounts]


def _not_granted_words(take: Generation, outcome: str, then: str) -> str:
    """The card of a queued take whose project may no longer spend its account (a grant
    revoked, or the owner it was granted to gone): ``outcome``, why, and ``then``."""
    from .pipeline.policy import shorten  # the pipeline imports this module

    account = take.account
    return shorten(
        f"{outcome}: {take.project} may no longer spend the {account.upstream} account "
        f"{account} (staff have not granted it to the project or to one of its owners), {then}"
    )


# A take none of whose able accounts is open, and none of them merely cooling down, is looked
# at again after this long (an admin's fix or a passed re-check makes it due at once anyway).
IDLE_RECHECK = timedelta(seconds=60)


def _wait_for(able: list[FlowAccount], now: datetime) -> dict[str, Any]:
    """The take goes back, unclaimed, until the first of ``able`` ends its cool-down: it is not
    asked about again before anything can take it (a take left due while another account of
    its project is open would otherwise keep the worker busy for nothing)."""
    return {
        "claim": None,
        "lease_until": None,
        "next_check_at": rest_ends(able, now) or now + IDLE_RECHECK,
    }


def _cost_on(take: Generation, account: FlowAccount) -> dict[str, Any]:
    """What the take costs on ``account``: Flow's credits follow the account's tier; a Vertex
    AI take costs the same on any Vertex AI account."""
    if account.is_vertex or take.cost_unit != "credits":
        return {}
    credits = flow_credits(take.model_key, account.tier)
    return {} if credits is None else {"cost": Decimal(credits)}


def _extra(take: Generation, account: FlowAccount) -> Decimal:
    """How much more the take costs on ``account`` than it was counted at (below 0: less).
    A take that recorded no cost counts as free, so any price is more."""
    cost = _cost_on(take, account).get("cost")
    return Decimal(0) if cost is None else cost - (take.cost or 0)


class _Room:
    """What this month's budgets and allowances have left for ``takes`` to cost more,
    counted as ``check_budget`` counts: the projects' rows locked first (PostgreSQL; SQLite's
    transactions write one at a time), so a Generate at the line and a move are counted one
    after the other and cannot both slip under it. Build it inside the transaction that writes
    the moves. Only Flow takes cost more on another account, so it counts credits."""

    def __init__(self, takes: list[Generation]) -> None:
        projects = sorted({take.project_id for take in takes})
        members = {take.requested_by_id for take in takes if take.requested_by_id is not None}
        self.budgets = dict(
            Project.objects.select_for_update()
            .filter(pk__in=projects)
            .order_by("pk")
            .values_list("pk", "monthly_budget")
        )
        self.allowances = {
            (project_id, user_id): allowance
            for project_id, user_id, allowance in Membership.objects.filter(
                project_id__in=projects, user_id__in=members, monthly_allowance__isnull=False
            ).values_list("project_id", "user_id", "monthly_allowance")
        }
        self.total: dict[int, Decimal] = {}
        self.mine: dict[tuple[int, int | None], Decimal] = {}
        if not self.allowances and all(budget is None for budget in self.budgets.values()):
            return
        for spending in month_spending(projects, COST_CREDITS):
            rows = (
                spending.order_by()
                .values_list("project_id", "requested_by_id")
                .annotate(spent=Sum("cost", default=0))
            )
            for project_id, user_id, spent in rows:
                self.total[project_id] = self.total.get(project_id, 0) + spent
                key = (project_id, user_id)
                self.mine[key] = self.mine.get(key, 0) + spent

    def refusal(self, take: Generation, account: FlowAccount) -> tuple[str, str] | None:
        """Why ``take`` may not go out on ``account``, where it costs more: the limit it would
        pass, in words, and what an owner can raise; None when the budget and its member's
        allowance have room for the difference."""
        extra = _extra(take, account)
        project = take.project
        budget = self.budgets.get(project.pk)
        spent = self.total.get(project.pk, 0)
        if budget is not None and spent + extra > budget:
            return (
                f"{project} has {amount(max(0, budget - spent), COST_CREDITS)} left of its "
                f"monthly budget of {amount(budget, COST_CREDITS)}",
                "the budget",
            )
        key = (project.pk, take.requested_by_id)
        allowance = self.allowances.get(key)
        spent = self.mine.get(key, 0)
        if allowance is not None and spent + extra > allowance:
            return (
                f"{take.requested_by} has {amount(max(0, allowance - spent), COST_CREDITS)} "
                f"left of their monthly allowance of {amount(allowance, COST_CREDITS)} in "
                f"{project}",
                f"{take.requested_by}'s allowance",
            )
        return None

    def spend(self, take: Generation, extra: Decimal) -> None:
        """Count ``extra`` as spent: the next take of the pass sees less room."""
        self.total[take.project_id] = self.total.get(take.project_id, 0) + extra
        key = (take.project_id, take.requested_by_id)
        self.mine[key] = self.mine.get(key, 0) + extra


def _waiting_words(
    take: Generation,
    refused: FlowAccount,
    refusal: tuple[str, str] | None,
    fitting: list[FlowAccount],
) -> str:
    """The card of a take kept off ``refused`` by the budget or an allowance (``refusal``):
    why, where it goes instead, and what an owner can do to send it now."""
    from .pipeline.policy import shorten  # the pipeline imports this module

    limit, raise_it = refusal or ("", "the budget")
    cost = (take.cost or 0) + _extra(take, refused)
    then = (
        f"It goes out on {fitting[0]} once that account can take it"
        if fitting
        else "It waits until there is room"
    )
    return shorten(
        f"Not sent on {refused}: there it costs {amount(cost, COST_CREDITS)}, not "
        f"{amount(take.cost or 0, COST_CREDITS)}, and {limit}. {then}; to send it on "
        f"{refused} now, an owner can raise {raise_it} on the Spend page."
    )
