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
from .engines.catalogue import (
    MODELS,
    TIER_ONE,
    TIER_TWO,
    flow_credits,
    options_for,
    vertex_price_per_second,
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


def credits(amount: int) -> str:
    return f"{amount} credit{'s' if amount != 1 else ''}"


def amount(value, unit: str) -> str:
    """A sum in a budget's unit, in words: "$1.20" or "20 credits"."""
    if unit == "USD":
        return f"${Decimal(value):.2f}"
    return credits(int(value))


def generate_all_cost(project_ref):
    """A subquery: what Generate all on the project would spend at most (every scene with the
    images its mode needs and a prompt, each take at its price on the project's account):
    credits on a Flow account, US cents on a Vertex AI one (``generate_all_words`` says which).

    Each price is a CASE over what the catalogue and VERTEX_PRICES say, so the sum costs one
    subquery whatever the number of scenes; a Vertex AI take is priced exactly as
    ``Scene.take_cost`` prices it (per second × seconds, to the cent).

    The storyboard page and every poll that sends cards build it, so it is kept small for the
    ORM to build: Flow models are grouped by price (one ``model_key IN (...)`` per price and
    tier), not one condition per model and tier.
    """
    from django.db.models import Case, F, Sum, Value, When

    from .models import FlowAccount, Scene

    def flow_price(tier: int) -> Case:
        keys_by_price: dict[int, list[str]] = {}
        for key, prices in CREDITS_PER_CLIP.items():
            keys_by_price.setdefault(prices[tier], []).append(key)
        return Case(
            *(When(model_key__in=keys, then=Value(cost)) for cost, keys in keys_by_price.items()),
            default=Value(UNKNOWN_MODEL_CREDITS),
        )

    flow = Case(When(project__account__tier=TIER_TWO, then=flow_price(1)), default=flow_price(0))
    # A Vertex AI model nobody priced, or a Flow model left on a scene (Generate refuses
    # it), counts nothing, as such a take records no cost.
    vertex = Case(*_vertex_take_cents(), default=Value(0))
    per_take = Case(When(project__account__kind=FlowAccount.Kind.VERTEX, then=vertex), default=flow)
    return (
        Scene.objects.filter(Scene.inputs_present(), project=project_ref)
        .exclude(prompt="")
        .order_by()
        .values("project")
        .annotate(total=Sum(per_take * F("takes")))
        .values("total")[:1]
    )


def _vertex_take_cents() -> list:
    """One WHEN per Vertex AI model, resolution, sound and length with a known price: what a
    take costs, in whole cents (exact in SQL, where decimals may be floats)."""
    from django.conf import settings
    from django.db.models import Q, Value, When

    options = options_for(EngineKind.VERTEX)
    whens = []
    for model in MODELS[EngineKind.VERTEX]:
        for resolution in options.resolutions:
            blank = resolution == options.default_resolution
            for audio in (False, True):
                price = vertex_price_per_second(
                    model.key, resolution, audio, settings.VERTEX_PRICES
                )
                if price is None:
                    continue
                for seconds in options.durations:
                    cents = int((price * seconds).quantize(Decimal("0.01")) * 100)
                    length = Q(duration=seconds)
                    if seconds == options.default_duration:
                        length |= Q(duration__isnull=True)
                    size = (
                        Q(resolution=resolution) | Q(resolution="")
                        if blank
                        else Q(resolution=resolution)
                    )
                    whens.append(
                        When(Q(model_key=model.key, audio=audio) & size & length, then=Value(cents))
                    )
    return whens


def generate_all_words(total: int | None, account) -> str:
    """What the Generate all button says it would spend at most: "up to $4.80" on a Vertex
    AI account, "up to 40 credits" on Flow; "" when nothing is priced."""
    if not total or account is None:
        return ""
    if account.is_vertex:
        return f"up to {amount(Decimal(total) / 100, 'USD')}"
    return f"up to {credits(int(total))}"
