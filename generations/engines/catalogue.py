"""The video models a scene can use, and the account tiers that unlock them.

Kept beside the engines because model keys and tier names are the upstream's vocabulary; forms
and views read this list and never spell a key themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Aspect

TIER_NOT_PAID = "PAYGATE_TIER_NOT_PAID"
TIER_ONE = "PAYGATE_TIER_ONE"
TIER_TWO = "PAYGATE_TIER_TWO"

TIERS = [
    (TIER_NOT_PAID, "Free"),
    (TIER_ONE, "Pro (tier one)"),
    (TIER_TWO, "Ultra (tier two)"),
]
_TIER_RANK = {TIER_NOT_PAID: 0, TIER_ONE: 1, TIER_TWO: 2}


@dataclass(frozen=True)
class VideoModel:
    key: str
    label: str
    aspect: Aspect
    min_tier: str = TIER_NOT_PAID

    def allowed_for(self, tier: str) -> bool:
        return tier_rank(tier) >= tier_rank(self.min_tier)


def tier_rank(tier: str) -> int:
    return _TIER_RANK.get(tier, -1)


L, P = Aspect.LANDSCAPE, Aspect.PORTRAIT

# Start image → video. `_ultra` keys need tier two; portrait clips use the `_portrait` keys.
IMAGE_TO_VIDEO: list[VideoModel] = [
    VideoModel("veo_3_1_i2v_s_fast", "Veo 3.1 Fast", L),
    VideoModel("veo_3_1_i2v_s_fast_portrait", "Veo 3.1 Fast", P),
    VideoModel("veo_3_1_i2v_s_fast_ultra", "Veo 3.1 Fast (Ultra)", L, TIER_TWO),
    VideoModel("veo_3_1_i2v_s_fast_portrait_ultra", "Veo 3.1 Fast (Ultra)", P, TIER_TWO),
    VideoModel("veo_3_1_i2v_s", "Veo 3.1 Quality", L),
    VideoModel("veo_3_1_i2v_s_portrait", "Veo 3.1 Quality", P),
    VideoModel("veo_3_1_i2v_lite", "Veo 3.1 Lite", L),
    VideoModel("veo_3_1_i2v_lite_low_priority", "Veo 3.1 Lite (low priority)", L),
]

_BY_KEY = {model.key: model for model in IMAGE_TO_VIDEO}


def get_model(key: str) -> VideoModel | None:
    return _BY_KEY.get(key)


def models_for(tier: str, aspect: Aspect | str | None = None) -> list[VideoModel]:
    """The models an account of ``tier`` may use, optionally only those for ``aspect``."""
    return [
        model
        for model in IMAGE_TO_VIDEO
        if model.allowed_for(tier) and (aspect is None or model.aspect == aspect)
    ]


def default_model(tier: str, aspect: Aspect | str) -> VideoModel:
    return models_for(tier, aspect)[0]
