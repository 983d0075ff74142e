"""What a project spent this month, by member and by day, on takes and upscales; owners set
its budget and each member's allowance here. All count in the unit of the project's account:
credits on Flow, US dollars on Vertex AI."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Count, F, OuterRef, Q, Sum, Value, When
from django.db.models.functions import Coalesce, TruncDate
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods

from .. import work
from ..budgets import (
    amount,
    month_spending,
    month_spent,
    month_start,
    typed_limit,
    unit_name,
)
from ..engines.base import EngineKind
from ..models import COST_CREDITS, COST_USD, AuditEvent, FlowAccount, KeptSpend, Project
from .access import Role, get_project_for_user

CHART_WIDTH, CHART_HEIGHT, CHART_TOP = 640, 200, 10
# Colours come from CSS classes (the CSP forbids inline styles); members beyond these reuse them.
CHART_COLOURS = 6


@dataclass
class Spend:
    month: date
    rows: list[dict]  # one per (day, member): day, member, takes, upscales, credits
    members: list[dict]  # member, takes, upscales, credits, allowance (None: none)
    days: list[dict]  # day, takes, upscales, credits; every day of the month so far
    total: int | Decimal
    # Spent this month in the other unit (before the project moved engine): said, not added.
    other: int | Decimal
    other_unit: str
    # The takes and upscales counted above that were deleted since, in words ("" for none).
    deleted: str = ""


def plain_amount(value):
    """A sum of costs as people write it: 40, not 40.00 (PostgreSQL keeps the column's scale,
    SQLite does not); cents stay when there are any (Vertex AI's dollars)."""
    value = Decimal(value or 0)
    return int(value) if value == value.to_integral_value() else value.normalize()


def _tally(**keys) -> dict:
    """A row of the Spend page's counts (takes, upscales, their cost), at nothing yet."""
    return {"takes": 0, "upscales": 0, "credits": 0, **keys}


def month_spend(project: Project, unit: str) -> Spend:
    """This month's spend in ``unit``, as the budget check counts it (``month_spending``), in
    five queries however many members, days and upscales: the takes, the upscales and what
    deleted ones spent, each grouped by day and member, the members, and the sum in the other
    unit."""
    start = month_start()
    merged: dict[tuple, dict] = {}
    deleted = _tally()
    takes, upscales, kept = month_spending(project.pk, unit)
    # The kept spend of deleted clips counts as the takes and upscales they were.
    kinds = Case(When(kind=KeptSpend.Kind.UPSCALE, then=Value("upscales")), default=Value("takes"))
    for spending, kind, member in (
        (takes, Value("takes"), F("requested_by__username")),
        (upscales, Value("upscales"), F("requested_by__username")),
        # The name copied in, for when the person's login is deleted.
        (kept, kinds, Coalesce("requested_by__username", "requested_by_name")),
    ):
        grouped = (
            spending.annotate(
                day=TruncDate("created", tzinfo=timezone.get_current_timezone()),
                who=member,
                what=kind,
            )
            .values("day", "who", "what")
            .annotate(count=Count("id"), cost=Sum("cost", default=0))
            .order_by()
        )
        for part in grouped:
            name = part["who"] or "(deleted user)"
            row = merged.setdefault((part["day"], name), _tally(day=part["day"], member=name))
            row[part["what"]] += part["count"]
            row["credits"] = plain_amount(row["credits"] + Decimal(part["cost"]))
            if spending is kept:
                deleted[part["what"]] += part["count"]
    rows = sorted(merged.values(), key=lambda row: (row["day"], row["member"]))
    by_member: dict[str, dict] = {}
    for membership in project.memberships.select_related("user").order_by("user__username"):
        name = membership.user.get_username()
        by_member[name] = _tally(
            member=name, allowance=membership.monthly_allowance, role=membership.role
        )
    by_day: dict[date, dict] = defaultdict(lambda: _tally(parts=[]))
    for row in rows:
        # Spent by someone no longer a member: a row without allowance or role.
        member = by_member.setdefault(
            row["member"], _tally(member=row["member"], allowance=None, role="")
        )
        day = by_day[row["day"]]
        for total in (member, day):
            total["takes"] += row["takes"]
            total["upscales"] += row["upscales"]
            total["credits"] += row["credits"]
        day["parts"].append(row)
    today = timezone.localdate()
    days = []
    moment = start.date()
    while moment <= today:
        days.append({"day": moment, **by_day.get(moment, _tally(parts=[]))})
        moment += timedelta(days=1)
    other_unit = COST_CREDITS if unit == COST_USD else COST_USD
    other = (
        Project.objects.filter(pk=project.pk)
        .values_list(month_spent(OuterRef("pk"), other_unit), flat=True)
        .get()
    )
    return Spend(
        month=start.date(),
        rows=rows,
        members=list(by_member.values()),
        days=days,
        total=sum(row["credits"] for row in rows),
        other=plain_amount(other),
        other_unit=other_unit,
        deleted=_deleted_words(deleted),
    )


def _deleted_words(deleted: dict) -> str:
    """What of this month's takes and upscales was deleted since, in words ("2 takes and 1
    upscale"); "" when nothing was."""
    parts = [
        f"{count} {what[:-1] if count == 1 else what}"
        for what in ("takes", "upscales")
        if (count := deleted[what])
    ]
    return " and ".join(parts)


def chart(spend: Spend, unit: str) -> dict:
    """Stacked bars, one per day of the month so far, one colour per member."""
    colour = {member["member"]: n % CHART_COLOURS for n, member in enumerate(spend.members)}
    tallest = max((day["credits"] for day in spend.days), default=0)
    slot = CHART_WIDTH / max(31, len(spend.days))
    scale = (CHART_HEIGHT - CHART_TOP) / float(tallest or 1)
    bars = []
    for index, day in enumerate(spend.days):
        y = CHART_HEIGHT
        for part in day["parts"]:
            height = float(part["credits"]) * scale
            y -= height
            bars.append(
                {
                    "x": round(index * slot + 1, 1),
                    "y": round(y, 1),
                    "width": round(slot - 2, 1),
                    "height": round(height, 1),
                    "colour": colour[part["member"]],
                    "title": f"{day['day']:%d %b}: {part['member']}, {amount(part['credits'], unit)}",
                }
            )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "bars": bars,
        "tallest": amount(tallest, unit),
        "legend": [(member["member"], colour[member["member"]]) for member in spend.members],
    }


@require_http_methods(["GET", "POST"])
@login_required
def project_spend(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Every member sees the spend; owners set the budget and allowances (POST)."""
    project, membership, engine = _project(
        request, uuid, Role.OWNER if request.method == "POST" else None
    )
    unit = FlowAccount.unit_for(engine)
    if request.method == "POST":
        error = _set_limit(request, project, unit)
        if error:
            messages.error(request, error)
        return redirect("project-spend", uuid=project.uuid)
    spend = month_spend(project, unit)
    return render(
        request,
        "generations/spend.html",
        {
            "project": project,
            "membership": membership,
            "spend": spend,
            "chart": chart(spend, unit),
            "unit": unit,
            "unit_name": unit_name(unit),
            # floatformat's "g": grouped in thousands, as every other amount is.
            "places": "2g" if unit == COST_USD else "0g",
            "engine": engine.label,
        },
    )


def _project(request: HttpRequest, uuid: UUID, role: str | None = None):
    """The project, the requester's membership and the engine its account is on (Flow when it
    has none), without loading the account, whose secrets are decrypted whenever it is."""
    project, membership = get_project_for_user(
        request, uuid, role, with_account=False, account_kind=F("project__account__kind")
    )
    return project, membership, EngineKind(membership.account_kind or EngineKind.FLOW)


def _set_limit(request: HttpRequest, project: Project, unit: str) -> str:
    """Set the project's budget or a member's allowance; the reason in words when refused.

    The form carries the value the owner saw: the UPDATE applies only if it is still that, so
    of two owners changing the same limit at once the second is told, not silently overwritten.
    """
    try:
        new = typed_limit(request.POST.get("limit", ""), unit)
        was = typed_limit(request.POST.get("was", ""), unit)
    except ValueError as error:
        return str(error)
    username = request.POST.get("username", "")
    still = Q(monthly_budget=was) if was is not None else Q(monthly_budget__isnull=True)
    if request.POST.get("action") == "budget":
        if not Project.objects.filter(still, pk=project.pk).update(monthly_budget=new):
            return "Another owner changed the budget meanwhile; here it is now. Try again."
        work.limits_changed(project)
        AuditEvent.budget_changed(project, was, new, unit, request.user)
        messages.success(
            request,
            f"The monthly budget is now {amount(new, unit) if new is not None else 'unlimited'}.",
        )
        return ""
    if request.POST.get("action") == "allowance":
        target = project.memberships.filter(user__username=username)
        if not target.exists():
            return f"{username or 'That person'} is not a member of {project}."
        still = Q(monthly_allowance=was) if was is not None else Q(monthly_allowance__isnull=True)
        if not target.filter(still).update(monthly_allowance=new):
            return f"Another owner changed {username}'s allowance meanwhile; here it is now."
        work.limits_changed(project, username)
        AuditEvent.allowance_changed(project, username, was, new, unit, request.user)
        messages.success(
            request,
            f"{username}'s monthly allowance is now "
            f"{amount(new, unit) if new is not None else 'unlimited (within the budget)'}.",
        )
        return ""
    raise PermissionDenied("That form asked for nothing Flowsite knows how to do.")


@require_GET
@login_required
def project_spend_csv(request: HttpRequest, uuid: UUID) -> HttpResponse:
    project, _, engine = _project(request, uuid)
    usd = engine is EngineKind.VERTEX
    spend = month_spend(project, FlowAccount.unit_for(engine))
    filename = f"{slugify(project.name) or 'project'}-spend-{spend.month:%Y-%m}.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    # "upscales" came last, after the cost (which counts them too), so the columns a
    # spreadsheet already reads by position stay where they were.
    writer.writerow(["date", "member", "takes", "usd" if usd else "credits", "upscales"])
    for row in spend.rows:
        # A leading =, +, - or @ would make a spreadsheet run the cell as a formula.
        member = row["member"]
        if member[:1] in ("=", "+", "-", "@"):
            member = "'" + member
        cost = f"{row['credits']:.2f}" if usd else row["credits"]
        writer.writerow([row["day"].isoformat(), member, row["takes"], cost, row["upscales"]])
    return response
