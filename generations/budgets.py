"""What a take costs, and the month budgets are counted in.

Flow charges credits per clip by model and account tier (Flow's help pages as quoted by
clients: Lite 10 on tier one and 5 on tier two, Fast 20 and 10, Quality 100). A refused or
failed clip is not charged. Every model key the catalogue offers has a price here; a test
keeps the two lists in step.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from .engines.catalogue import TIER_TWO

# model key -> (credits on tier one or free, credits on tier two)
CREDITS_PER_CLIP: dict[str, tuple[int, int]] = {
    "veo_3_1_i2v_s_fast": (20, 10),
    "veo_3_1_i2v_s_fast_portrait": (20, 10),
    "veo_3_1_i2v_s_fast_ultra": (10, 10),
    "veo_3_1_i2v_s_fast_portrait_ultra": (10, 10),
    "veo_3_1_i2v_s": (100, 100),
    "veo_3_1_i2v_s_portrait": (100, 100),
    "veo_3_1_i2v_lite": (10, 5),
    "veo_3_1_i2v_lite_low_priority": (10, 5),
}
# A key not priced here (a model Flow added since) is counted at the dearest price, so a
# budget errs on the side of refusing.
UNKNOWN_MODEL_CREDITS = max(price for pair in CREDITS_PER_CLIP.values() for price in pair)


def clip_credits(model_key: str, tier: str) -> int:
    """The credits one clip of this model costs on an account of this tier."""
    tier_one, tier_two = CREDITS_PER_CLIP.get(
        model_key, (UNKNOWN_MODEL_CREDITS, UNKNOWN_MODEL_CREDITS)
    )
    return tier_two if tier == TIER_TWO else tier_one


def month_start(now: datetime | None = None) -> datetime:
    """The first moment of this month in the site's time zone (budgets are monthly)."""
    local = timezone.localtime(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def credits(amount: int) -> str:
    return f"{amount} credit{'s' if amount != 1 else ''}"


def generate_all_cost(project_ref):
    """A subquery: what Generate all on the project would spend at most, in credits (every
    scene with a start image and a prompt, at its model's price on the project's account)."""
    from django.db.models import Case, F, Sum, Value, When

    from .models import Scene

    prices = []
    for key, (tier_one, tier_two) in CREDITS_PER_CLIP.items():
        prices.append(When(model_key=key, project__account__tier=TIER_TWO, then=Value(tier_two)))
        prices.append(When(model_key=key, then=Value(tier_one)))
    per_scene = Case(*prices, default=Value(UNKNOWN_MODEL_CREDITS)) * F("takes")
    return (
        Scene.objects.filter(project=project_ref, start_image__isnull=False)
        .exclude(prompt="")
        .order_by()
        .values("project")
        .annotate(total=Sum(per_scene))
        .values("total")[:1]
    )
