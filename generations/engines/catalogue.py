"""The video models a scene can use, and the account tiers that unlock them.

Kept beside the engines because model keys and tier names are the upstream's vocabulary; forms
and views read this list and never spell a key themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .base import Aspect, EngineKind, Mode

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
    # None: the model makes both aspects (Vertex AI takes the aspect as a parameter).
    aspect: Aspect | None
    min_tier: str = TIER_NOT_PAID
    engine: str = EngineKind.FLOW
    # The ways of making a clip the model does (a Flow key does one; a Vertex AI id several).
    modes: frozenset[Mode] = frozenset({Mode.IMAGE})

    def allowed_for(self, tier: str) -> bool:
        return self.engine != EngineKind.FLOW or tier_rank(tier) >= tier_rank(self.min_tier)

    def makes(self, aspect: Aspect | str | None) -> bool:
        return aspect is None or self.aspect is None or self.aspect == aspect

    def does(self, mode: Mode | str | None) -> bool:
        return mode is None or mode in self.modes


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

# The other ways Flow makes a clip (flow-api README §6): one key per mode, aspect and tier.
# A Lite key seen without an aspect is offered for landscape only, as the start-image Lite is.
_TEXT, _FRAMES, _REFS = (
    frozenset({Mode.TEXT}),
    frozenset({Mode.FRAMES}),
    frozenset({Mode.INGREDIENTS}),
)
TEXT_TO_VIDEO: list[VideoModel] = [
    VideoModel("veo_3_1_t2v_fast", "Veo 3.1 Fast", L, modes=_TEXT),
    VideoModel("veo_3_1_t2v_fast_portrait", "Veo 3.1 Fast", P, modes=_TEXT),
    VideoModel("veo_3_1_t2v_fast_ultra", "Veo 3.1 Fast (Ultra)", L, TIER_TWO, modes=_TEXT),
    VideoModel("veo_3_1_t2v_fast_portrait_ultra", "Veo 3.1 Fast (Ultra)", P, TIER_TWO, modes=_TEXT),
    VideoModel("veo_3_1_t2v", "Veo 3.1 Quality", L, modes=_TEXT),
    VideoModel("veo_3_1_t2v_portrait", "Veo 3.1 Quality", P, modes=_TEXT),
    # Seen for both aspects.
    VideoModel("veo_3_1_t2v_lite", "Veo 3.1 Lite", None, modes=_TEXT),
]
# Start and end frame: the start-image keys with `_fl`, and Lite's interpolation key.
FRAMES_TO_VIDEO: list[VideoModel] = [
    VideoModel("veo_3_1_i2v_s_fast_fl", "Veo 3.1 Fast", L, modes=_FRAMES),
    VideoModel("veo_3_1_i2v_s_fast_portrait_fl", "Veo 3.1 Fast", P, modes=_FRAMES),
    VideoModel("veo_3_1_i2v_s_fast_ultra_fl", "Veo 3.1 Fast (Ultra)", L, TIER_TWO, modes=_FRAMES),
    VideoModel(
        "veo_3_1_i2v_s_fast_portrait_ultra_fl",
        "Veo 3.1 Fast (Ultra)",
        P,
        TIER_TWO,
        modes=_FRAMES,
    ),
    VideoModel("veo_3_1_i2v_s_fl", "Veo 3.1 Quality", L, modes=_FRAMES),
    VideoModel("veo_3_1_i2v_s_portrait_fl", "Veo 3.1 Quality", P, modes=_FRAMES),
    VideoModel("veo_3_1_interpolation_lite", "Veo 3.1 Lite", L, modes=_FRAMES),
]
# Reference images ("ingredients"): Fast and Lite only; Quality refuses reference images.
INGREDIENTS_TO_VIDEO: list[VideoModel] = [
    VideoModel("veo_3_1_r2v_fast_landscape", "Veo 3.1 Fast", L, modes=_REFS),
    VideoModel("veo_3_1_r2v_fast_portrait", "Veo 3.1 Fast", P, modes=_REFS),
    VideoModel(
        "veo_3_1_r2v_fast_landscape_ultra", "Veo 3.1 Fast (Ultra)", L, TIER_TWO, modes=_REFS
    ),
    VideoModel("veo_3_1_r2v_fast_portrait_ultra", "Veo 3.1 Fast (Ultra)", P, TIER_TWO, modes=_REFS),
    VideoModel("veo_3_1_r2v_lite", "Veo 3.1 Lite", L, modes=_REFS),
]
FLOW_MODELS = [*IMAGE_TO_VIDEO, *TEXT_TO_VIDEO, *FRAMES_TO_VIDEO, *INGREDIENTS_TO_VIDEO]

# Most reference images one clip takes (both engines).
MAX_REFERENCES = 3

# Vertex AI's published model ids: one id for both aspects, any account may use each. The GA
# models do every mode (vertex-api README); the Lite preview is documented without a list of
# modes, so only what every Veo model does is offered on it.
_ALL = frozenset({Mode.TEXT, Mode.IMAGE, Mode.FRAMES, Mode.INGREDIENTS})
VERTEX_MODELS: list[VideoModel] = [
    VideoModel(
        "veo-3.1-fast-generate-001", "Veo 3.1 Fast", None, engine=EngineKind.VERTEX, modes=_ALL
    ),
    VideoModel(
        "veo-3.1-generate-001", "Veo 3.1 Quality", None, engine=EngineKind.VERTEX, modes=_ALL
    ),
    VideoModel(
        "veo-3.1-lite-generate-001",
        "Veo 3.1 Lite (preview)",
        None,
        engine=EngineKind.VERTEX,
        modes=frozenset({Mode.TEXT, Mode.IMAGE}),
    ),
]
MODELS = {EngineKind.FLOW: FLOW_MODELS, EngineKind.VERTEX: VERTEX_MODELS}

# Extending a ready clip (Flow's batchAsyncGenerateVideoExtendVideo). Not offered in the scene
# form's list: an extension scene gets the key matching its source take's family and aspect
# (``extend_model``). Vertex AI extends with the same model ids it generates with.
_EXTEND = frozenset({Mode.EXTEND})
EXTEND_MODELS: list[VideoModel] = [
    VideoModel("veo_3_1_extend_fast_landscape", "Veo 3.1 Fast extend", L, modes=_EXTEND),
    VideoModel("veo_3_1_extend_fast_portrait", "Veo 3.1 Fast extend", P, modes=_EXTEND),
    VideoModel(
        "veo_3_1_extend_fast_landscape_ultra",
        "Veo 3.1 Fast extend (Ultra)",
        L,
        TIER_TWO,
        modes=_EXTEND,
    ),
    VideoModel(
        "veo_3_1_extend_fast_portrait_ultra",
        "Veo 3.1 Fast extend (Ultra)",
        P,
        TIER_TWO,
        modes=_EXTEND,
    ),
    VideoModel("veo_3_1_extend_landscape", "Veo 3.1 Quality extend", L, modes=_EXTEND),
    VideoModel("veo_3_1_extend_portrait", "Veo 3.1 Quality extend", P, modes=_EXTEND),
    VideoModel("veo_3_1_extension_lite", "Veo 3.1 Lite extend", None, modes=_EXTEND),
]

_BY_KEY = {model.key: model for model in [*FLOW_MODELS, *VERTEX_MODELS, *EXTEND_MODELS]}


def get_model(key: str) -> VideoModel | None:
    return _BY_KEY.get(key)


def model_label(key: str) -> str:
    """The model as a person reads it ("Veo 3.1 Fast"); a key no longer offered as it is."""
    model = _BY_KEY.get(key)
    return model.label if model else key


def models_for(
    tier: str,
    aspect: Aspect | str | None = None,
    engine: str = EngineKind.FLOW,
    mode: Mode | str | None = Mode.IMAGE,
) -> list[VideoModel]:
    """The models an account of ``engine`` and ``tier`` may use for ``mode`` (None: any
    mode), optionally only those for ``aspect``."""
    return [
        model
        for model in MODELS[EngineKind(engine)]
        if model.allowed_for(tier) and model.makes(aspect) and model.does(mode)
    ]


def can_make(engine: str, tier: str, model_key: str) -> bool:
    """Whether an account of ``engine`` and ``tier`` can make a take of ``model_key``: the one
    question the worker asks before sending a take on one of a project's accounts (failover).
    A take's other choices that only some accounts can make (a mode, once modes exist) belong
    here as further arguments, so every caller asks them together."""
    model = get_model(model_key)
    return model is not None and model.engine == engine and model.allowed_for(tier)


def default_model(
    tier: str, aspect: Aspect | str, engine: str = EngineKind.FLOW, mode: str = Mode.IMAGE
) -> VideoModel:
    return models_for(tier, aspect, engine, mode)[0]


def model_family(key: str) -> str:
    """ "lite", "fast" or "quality": what a clip costs and which extend model continues it."""
    return "lite" if "lite" in key else "fast" if "fast" in key else "quality"


def extend_model(source_key: str, tier: str, aspect: Aspect | str, engine: str) -> VideoModel:
    """The model that extends a clip made with ``source_key``: on Vertex AI the same model
    (its ids make every mode); on Flow the extend key of the same family and aspect, the
    tier-two key where the account has tier two (as Flow's own client sends)."""
    if engine == EngineKind.VERTEX:
        found = get_model(source_key)
        return found if found is not None else VERTEX_MODELS[0]
    family = model_family(source_key)
    candidates = [
        model
        for model in EXTEND_MODELS
        if model_family(model.key) == family and model.makes(aspect) and model.allowed_for(tier)
    ]
    ultra = [model for model in candidates if model.min_tier == TIER_TWO]
    return (ultra or candidates)[0]


# How a person reads a resolution. The values themselves ("4k" in the scene form, the CSV's
# resolution column, file names and the export manifest) stay as README.md documents them.
RESOLUTION_LABELS = {"4k": "4K"}


def resolution_label(resolution: str) -> str:
    """``resolution`` as a person reads it: 720p, 1080p, 4K."""
    return RESOLUTION_LABELS.get(resolution, resolution)


# Upscaling a ready Flow clip (batchAsyncGenerateVideoUpsampleVideo): resolution -> what it
# needs and costs. Vertex AI has no upscale call; it makes 1080p (or 4K) when asked at
# generation instead.
@dataclass(frozen=True)
class Upscaler:
    resolution: str  # "1080p" or "4k", as Flowsite names it
    label: str
    key: str
    min_tier: str
    credits: int
    width: int  # of a landscape clip; portrait swaps them
    height: int


UPSCALERS = {
    "1080p": Upscaler("1080p", "1080p", "veo_3_1_upsampler_1080p", TIER_ONE, 0, 1920, 1080),
    "4k": Upscaler("4k", resolution_label("4k"), "veo_3_1_upsampler_4k", TIER_TWO, 50, 3840, 2160),
}
# What a Flow clip is when it comes back from generation.
FLOW_BASE_RESOLUTION = "720p"


# --- What a clip costs ------------------------------------------------------------------

# Flow credits per clip (Flow's help pages as public clients quote them): tier one / tier two.
FLOW_CREDITS = {"lite": (10, 5), "fast": (20, 10), "quality": (100, 100)}


def flow_credits(key: str, tier: str) -> int | None:
    """Credits one clip of model ``key`` costs an account of ``tier``."""
    model = get_model(key)
    if model is None or model.engine != EngineKind.FLOW:
        return None
    family = model_family(key)
    one, two = FLOW_CREDITS[family]
    return two if tier_rank(tier) >= tier_rank(TIER_TWO) else one


def vertex_price_per_second(
    key: str, resolution: str, audio: bool, prices: list[str]
) -> Decimal | None:
    """US dollars per second of a Vertex AI clip from the ``VERTEX_PRICES`` pairs: the most
    specific of MODEL@RES+audio, MODEL@RES, MODEL+audio, MODEL that is set."""
    table: dict[str, Decimal] = {}
    for pair in prices:
        name, _, price = pair.partition("=")
        try:
            table[name.strip()] = Decimal(price.strip())
        except InvalidOperation:
            continue
    resolution = resolution or VERTEX_OPTIONS.default_resolution
    sound = "+audio" if audio else ""
    for name in (f"{key}@{resolution}{sound}", f"{key}@{resolution}", f"{key}{sound}", key):
        if name in table:
            return table[name]
    return None


# --- What a clip can be, per engine -------------------------------------------------------


@dataclass(frozen=True)
class ClipOptions:
    """The choices an engine offers for a clip beyond prompt, image, aspect and model.

    An engine that offers none of them (Flow's captured lane: 8 s, 720p, its own audio) has
    empty tuples and False, and the scene form shows none of them.
    """

    durations: tuple[int, ...] = ()
    default_duration: int = 8
    resolutions: tuple[str, ...] = ()
    default_resolution: str = "720p"
    # Resolutions only made at one duration (seconds).
    resolution_needs_duration: tuple[tuple[str, int], ...] = ()
    audio: bool = False
    negative_prompt: bool = False
    person_generation: tuple[tuple[str, str], ...] = ()


FLOW_OPTIONS = ClipOptions()
VERTEX_OPTIONS = ClipOptions(
    durations=(4, 6, 8),
    # Vertex AI has no upscale call: 1080p and 4K are asked for when the clip is generated.
    resolutions=("720p", "1080p", "4k"),
    resolution_needs_duration=(("1080p", 8), ("4k", 8)),
    audio=True,
    negative_prompt=True,
    person_generation=(
        ("allow_adult", "Adults only"),
        ("dont_allow", "No people"),
        ("allow_all", "Anyone (where the region allows it)"),
    ),
)
OPTIONS = {EngineKind.FLOW: FLOW_OPTIONS, EngineKind.VERTEX: VERTEX_OPTIONS}


def options_for(engine: str) -> ClipOptions:
    return OPTIONS[EngineKind(engine)]
