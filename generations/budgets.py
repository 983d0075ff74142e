"""The month budgets are counted in, and what Generate all would spend.

What one clip costs lives in the catalogue (``engines.catalogue.flow_credits`` for Flow,
``VERTEX_PRICES`` for Vertex AI); a take records it when it is asked for (``Scene.take_cost``).
A clip the upstream refused or failed is not charged; one it made is, even when Flowsite's
download of it then failed (``SPENDING_Q``).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db.models import Expression, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .engines.base import EngineKind
from .engines.catalogue import (
    MODELS,
    TIER_ONE,
    TIER_TWO,
    flow_credits,
)

if TYPE_CHECKING:
    from .models import ClearedLimits, FlowAccount

# The units a cost, a budget and an allowance count in: Vertex AI's dollars, Flow's credits.
COST_USD = "USD"
COST_CREDITS = "credits"

# The most credits a budget or an allowance may be: what the columns held on PostgreSQL
# when they were whole numbers, kept so what an owner may type does not depend on the
# database (SQLite holds more).
LIMIT_MAX = 2_147_483_647
# The most dollars they hold: DecimalField(max_digits=12, decimal_places=2).
LIMIT_MAX_USD = Decimal("9999999999.99")

# A budget or an allowance as people write it and as the Spend page shows it, in either
# unit: 7, 7.50, 1250, 1,000 or $1,250.00, a minus first for limit_problem to refuse in its
# words. A comma only between thousands ("7,5" is seven and a half to some and a typo to
# others); a dollar sign only before dollars; only digits and a point else, since Decimal()
# would take "NaN" and "1e3".
AMOUNT = re.compile(
    r"(?P<minus>-?)(?P<dollar>\$?)\s*(?P<number>(?:[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+)(?:\.[0-9]+)?)",
    re.ASCII,
)

# model key -> (credits on tier one or free, credits on tier two), from the catalogue.
CREDITS_PER_CLIP: dict[str, tuple[int, int]] = {
    model.key: (flow_credits(model.key, TIER_ONE) or 0, flow_credits(model.key, TIER_TWO) or 0)
    for model in MODELS[EngineKind.FLOW]
}
# A key not priced (a model Flow added since) is counted at the dearest price, so a budget
# errs on the side of refusing.
UNKNOWN_MODEL_CREDITS = max(price for pair in CREDITS_PER_CLIP.values() for price in pair)


def month_start(now: datetime | None = None) -> datetime:
    """The first moment of this month in the site's time zone (budgets are monthly)."""
    local = timezone.localtime(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_spending(project_id, unit) -> tuple[QuerySet, QuerySet, QuerySet]:
    """This month's spending in ``unit`` (credits on Flow, US dollars on Vertex AI), as the
    takes, the upscales and the kept spend of deleted ones (``KeptSpend``) whose cost counts:
    upscales spend the same credits beside the takes they copy; a clip the upstream failed, or
    one cancelled before it was sent, costs nothing, while one it made whose download failed
    counts (``SPENDING_Q``); a clip deleted since still cost what it cost.

    The one definition the budget check and the Spend page both count, so what the page shows
    is what Generate is refused on. Querysets, for the caller to sum or group in one query each
    (``project_id`` and ``unit`` may be ``OuterRef``s, for a list of projects; ``project_id``
    a list of ids, for several projects grouped in one query), or to add up in one expression
    (``month_spent``). Each has ``project``, ``requested_by``, ``cost``, ``cost_unit`` and
    ``created``.
    """
    # The models import this module.
    from .models import SPENDING_Q, Generation, KeptSpend, Upscale

    projects = (
        {"project_id__in": project_id}
        if isinstance(project_id, list)
        else {"project_id": project_id}
    )
    this_month = {**projects, "cost_unit": unit, "created__gte": month_start()}
    return (
        Generation.objects.filter(SPENDING_Q, **this_month),
        Upscale.objects.filter(SPENDING_Q, **this_month),
        # Kept only when they counted (KEPT_Q), so nothing more to leave out.
        KeptSpend.objects.filter(**this_month),
    )


def month_spent(project_id, unit, **only) -> Expression:
    """What ``month_spending`` adds up to (0 when nothing), as one expression of subqueries:
    annotate a query of projects with it (``project_id`` an ``OuterRef``) to sum all three in
    that query. ``only`` narrows the rows, e.g. ``requested_by_id=`` for one member's."""
    parts = []
    for spending in month_spending(project_id, unit):
        sums = spending.filter(**only).order_by().values("project").annotate(sum=Sum("cost"))
        parts.append(Coalesce(Subquery(sums.values("sum")[:1]), Value(Decimal(0))))
    takes, upscales, kept = parts
    return takes + upscales + kept


def credits(amount: int) -> str:
    return f"{amount:,} credit{'s' if amount != 1 else ''}"


def amount(value, unit: str) -> str:
    """A sum in a budget's unit, in words: "$1,250.00" or "1,000 credits"."""
    if unit == COST_USD:
        return f"${Decimal(value):,.2f}"
    return credits(int(value))


def unit_name(unit: str) -> str:
    """What a budget counts, in words: "US dollars" or "credits"."""
    return "US dollars" if unit == COST_USD else "credits"


def limit_problem(value: Decimal, unit: str) -> str:
    """Why ``value`` cannot be a monthly budget or allowance counted in ``unit``, in words;
    "" when it can. The one rule the Spend page checks what an owner typed against and the
    models check every form against (so the admin says the same)."""
    if value < 0:
        return (
            "A limit cannot be below 0 (0 stops all spending); type 0 or more, or leave it empty."
        )
    # The ceiling first: rounding a number longer than Python's 28 decimal digits fails.
    if unit == COST_USD:
        if value > LIMIT_MAX_USD:
            return f"That is more than Flowsite can count; type at most ${LIMIT_MAX_USD:,}."
        if value != value.quantize(Decimal("0.01")):
            return "Vertex AI counts cents: type at most two decimals, e.g. 7.50."
        return ""
    if value > LIMIT_MAX:
        return f"That is more than Flowsite can count; type at most {LIMIT_MAX}."
    if value != value.to_integral_value():
        return "Flow counts whole credits; type a whole number, or leave it empty for no limit."
    return ""


def typed_limit(value: str, unit: str) -> Decimal | None:
    """What a person typed as a budget or an allowance counted in ``unit`` (owners on the
    Spend page, staff in the admin): whole credits on Flow, dollars and cents on Vertex AI
    (``limit_problem``); None for no limit. ValueError, in words, for anything else."""
    value = value.strip()
    if not value:
        return None
    typed = AMOUNT.fullmatch(value)
    if typed is None or (typed["dollar"] and unit != COST_USD):
        raise ValueError(_what_to_type(value, unit))
    limit = Decimal(typed["minus"] + typed["number"].replace(",", ""))
    problem = limit_problem(limit, unit)
    if problem:
        raise ValueError(problem)
    return limit.quantize(Decimal("0.01") if unit == COST_USD else Decimal(1))


def _what_to_type(value: str, unit: str) -> str:
    if unit != COST_USD:
        return "Type a whole number of credits, e.g. 1,000, or leave it empty for no limit."
    if re.fullmatch(r"[0-9.,]+", value) and "," in value:
        return (
            "Type cents after a point, e.g. 7.50; a comma may only group thousands, e.g. 1,250.00."
        )
    return "Type an amount in US dollars, e.g. 7.50, or leave it empty for no limit."


def limits_words(budget: Decimal | None, allowances: dict[str, Decimal], unit: str) -> str:
    """A budget and allowances in words: "the monthly budget of 150 credits and the
    allowance of bob (40 credits)"; "" when there are none."""
    parts = []
    if budget is not None:
        parts.append(f"the monthly budget of {amount(budget, unit)}")
    if len(allowances) == 1:
        [(name, value)] = allowances.items()
        parts.append(f"the allowance of {name} ({amount(value, unit)})")
    elif allowances:
        parts.append(f"the allowances of {len(allowances)} members")
    return " and ".join(parts)


def cleared_words(cleared: ClearedLimits, first: FlowAccount) -> str:
    """What ``Project.set_accounts`` cleared, for whoever moved the project to ``first``: why
    the Spend page shows no budget or allowances any more."""
    what = limits_words(cleared.budget, cleared.allowances, cleared.unit)
    several = len(cleared.allowances) + (cleared.budget is not None) > 1
    return (
        f"{what[0].upper()}{what[1:]} {'were' if several else 'was'} cleared: {first.upstream} "
        f"accounts are paid in {unit_name(first.cost_unit)}. Set {'them' if several else 'it'} "
        "again on the Spend page."
    )


def generate_all_total(scenes, account) -> Decimal | None:
    """What Generate all would spend at most on ``scenes`` (all of a project's, read through
    ``project.scenes`` so they share its account): every scene with the images its mode needs
    and a prompt, each take at ``Scene.take_cost``, the price each take records when it is asked for — US
    dollars on a Vertex AI account, credits on Flow. None without an account.

    Priced here from scenes already loaded, not in SQL: the page has them all, and a price
    table as a CASE in the query cost more to build than the whole card it rides on.
    """
    if account is None:
        return None
    total = Decimal(0)
    for scene in scenes:
        if scene.prompt == "" or scene.mode_problems(missing=True):
            continue
        cost, _ = scene.take_cost()
        if cost is None and not account.is_vertex:
            # A Flow model not priced (one Flow added since) counts at the dearest price, so
            # the figure errs high. A Vertex AI model nobody priced counts nothing, as such a
            # take records no cost.
            cost = Decimal(UNKNOWN_MODEL_CREDITS)
        total += (cost or 0) * scene.takes
    return total


def generate_all_words(total: Decimal | None, account) -> str:
    """What the Generate all button says it would spend at most (``generate_all_total``):
    "up to $4.80" on a Vertex AI account, "up to 40 credits" on Flow; "" when nothing is
    priced."""
    if not total or account is None:
        return ""
    if account.is_vertex:
        return f"up to {amount(total, 'USD')}"
    return f"up to {credits(int(total))}"
