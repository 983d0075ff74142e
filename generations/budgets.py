"""The month budgets are counted in, and what Generate all would spend.

What one clip costs lives in the catalogue (``engines.catalogue.flow_credits`` for Flow,
``VERTEX_PRICES`` for Vertex AI); a take records it when it is asked for (``Scene.take_cost``).
A refused or failed clip is not charged.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from .engines.base import EngineKind
from .engines.catalogue import MODELS, TIER_ONE, TIER_TWO, flow_credits

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


def credits(amount: int) -> str:
    return f"{amount} credit{'s' if amount != 1 else ''}"


def amount(value, unit: str) -> str:
    """A sum in a budget's unit, in words: "$1.20" or "20 credits"."""
    if unit == "USD":
        return f"${Decimal(value):.2f}"
    return credits(int(value))


def generate_all_cost(project_ref):
    """A subquery: what Generate all on the project would spend at most, in credits (every
    scene with the images its mode needs and a prompt, at its model's price on the project's account)."""
    from django.db.models import Case, F, Sum, Value, When

    from .models import Scene

    prices = []
    for key, (tier_one, tier_two) in CREDITS_PER_CLIP.items():
        prices.append(When(model_key=key, project__account__tier=TIER_TWO, then=Value(tier_two)))
        prices.append(When(model_key=key, then=Value(tier_one)))
    per_scene = Case(*prices, default=Value(UNKNOWN_MODEL_CREDITS)) * F("takes")
    return (
        Scene.objects.filter(Scene.inputs_present(), project=project_ref)
        .exclude(prompt="")
        .order_by()
        .values("project")
        .annotate(total=Sum(per_scene))
        .values("total")[:1]
    )
