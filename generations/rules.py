"""What a person may type into Flowsite, each rule written once and worded once.

The models carry these rules (field validators and ``Scene.clean()``), and the scene form, the
admin and the storyboard CSV import all reach them through the models, so a rule reads the same
wherever it refuses something.

Control characters (a NUL, an escape sequence, a bell, a bidi override) are invisible on the
page, can rewrite an operator's terminal or a log line, reorder the text shown after them, and
say nothing to the model. No name may hold one; a prompt may hold line breaks and tabs, the only
ones a person means to type.
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.utils.deconstruct import deconstructible

from .engines.base import Aspect, EngineKind, Mode
from .engines.catalogue import (
    MAX_REFERENCES,
    TIER_NOT_PAID,
    get_model,
    models_for,
    options_for,
    resolution_label,
)

# --- control characters -------------------------------------------------------------------

# Bidi embeddings, overrides and isolates: not "Cc", yet invisible, and they make the text
# after them display in another order than it is stored.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def is_control(char: str) -> bool:
    return char in BIDI_CONTROLS or unicodedata.category(char) == "Cc"


def control_character_problem(
    text: str, subject: str, allowed: frozenset[str] = frozenset()
) -> str:
    """When ``text`` holds a control character not in ``allowed``, a sentence (without its
    full stop, so a caller may add to it) starting with ``subject``; "" when it holds none."""
    for index, char in enumerate(text, start=1):
        if char not in allowed and is_control(char):
            return (
                f"{subject} contains an invisible control character (U+{ord(char):04X}) at "
                f"character {index}; remove it"
            )
    return ""


def printable(text: str) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\u202e``),
    for a terminal or a log: names stored before the rule existed, or written by an upstream,
    are shown rather than obeyed."""
    return "".join(
        (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
        if is_control(char)
        else char
        for char in text
    )


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: only whitespace and format characters (Unicode's "Cf":
    a zero-width space U+200B, a joiner U+200C or U+200D, a word joiner U+2060, a byte-order
    mark U+FEFF). ``.strip()`` leaves the format characters, so a prompt of "\u00a0\u200b"
    was stored and a project named "\u200b" listed with a name nobody could see."""
    return all(char.isspace() or unicodedata.category(char) == "Cf" for char in text)


PROJECT_NAME_REQUIRED = "Give the project a name."


def clean_project_name(name: str) -> str:
    """A project's name as typed, trimmed; refused in words when it shows nothing."""
    name = name.strip()
    if is_blank(name):
        raise ValidationError(PROJECT_NAME_REQUIRED)
    return name


@deconstructible
class NameValidator:
    """A one-line name: no control character at all. ``subject`` starts the sentence."""

    def __init__(self, subject: str) -> None:
        self.subject = subject

    def __call__(self, value: str) -> None:
        problem = control_character_problem(value, self.subject)
        if problem:
            raise ValidationError(f"{problem}.", code="control_character")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NameValidator) and other.subject == self.subject


PROJECT_NAME = NameValidator("The project name")
SCENE_TITLE = NameValidator("The title")
ACCOUNT_LABEL = NameValidator("The label")

MAX_TITLE_CHARACTERS = 120


def title_length_problem(length: int) -> str:
    return f"A title can be at most {MAX_TITLE_CHARACTERS} characters; this one has {length}."


# --- prompts ------------------------------------------------------------------------------

MAX_PROMPT_CHARACTERS = 2000
PROMPT_REQUIRED = "Write a prompt: it tells the model what happens in the clip."
_PROMPT_CONTROLS = frozenset("\n\t")


def normalise_line_breaks(text: str) -> str:
    """Browsers send a textarea's line breaks as CR LF, spreadsheets sometimes as CR: one LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def prompt_problem(prompt: str) -> str:
    """What is wrong with a (line-break-normalised) prompt, as a sentence; "" when nothing."""
    if is_blank(prompt):
        return PROMPT_REQUIRED
    problem = control_character_problem(prompt, "The prompt", _PROMPT_CONTROLS)
    if problem:
        return f"{problem} (only line breaks and tabs may be in a prompt)."
    if len(prompt) > MAX_PROMPT_CHARACTERS:
        return (
            f"The prompt is {len(prompt)} characters long, more than the "
            f"{MAX_PROMPT_CHARACTERS} a prompt may have; shorten it."
        )
    return ""


def validate_prompt(prompt: str) -> None:
    problem = prompt_problem(prompt)
    if problem:
        raise ValidationError(problem, code="prompt")


# --- scene settings -----------------------------------------------------------------------

# Flow's seed is a signed 32-bit number.
MAX_SEED = 2**31 - 1
SEED_RULE = f"The seed must be a whole number from 0 to {MAX_SEED}, or blank."
SEED_VALIDATORS = [MinValueValidator(0, SEED_RULE), MaxValueValidator(MAX_SEED, SEED_RULE)]

MIN_TAKES, MAX_TAKES = 1, 4
TAKES_RULE = f"Takes must be a whole number from {MIN_TAKES} to {MAX_TAKES}."
TAKES_VALIDATORS = [
    MinValueValidator(MIN_TAKES, TAKES_RULE),
    MaxValueValidator(MAX_TAKES, TAKES_RULE),
]

ASPECT_LABELS = {Aspect.LANDSCAPE: "Landscape 16:9", Aspect.PORTRAIT: "Portrait 9:16"}
ASPECT_REQUIRED = "Choose the aspect: landscape (16:9) or portrait (9:16)."
ASPECT_RULE = "The aspect must be landscape (16:9) or portrait (9:16), not “%(value)s”."

MODEL_REQUIRED = "Pick the model that renders the clip."


ENGINE_LABELS = {EngineKind.FLOW: "Google Flow", EngineKind.VERTEX: "Vertex AI"}
# A project without an account has no engine yet, so the sentence names both.
NO_ACCOUNT = "The project has no Flow or Vertex AI account to spend; ask an admin to set one."


def model_problem(
    key: str, aspect: str | None, account, mode: str | None = None, *, by_key: bool = False
) -> str:
    """Why the model ``key`` cannot make ``aspect`` clips (None: the aspect is itself wrong)
    in ``mode`` (None: any) on ``account`` (None: the project has none yet), as a sentence;
    "" when it can. The models to pick instead are named as the scene form's model menu names
    them, or by key (``by_key``) where the person types keys (a storyboard CSV)."""
    tier = account.tier if account is not None else TIER_NOT_PAID
    engine = EngineKind(account.kind) if account is not None else None
    # An extension's model follows its source take (take_actions.extend_model), not a list.
    mode = mode if mode in MODE_LABELS and mode != Mode.EXTEND else None
    model = get_model(key)
    # Without an aspect both aspects' models are offered, one name for the two.
    offered = ", ".join(
        dict.fromkeys(
            model.key if by_key else model.label
            for model in models_for(tier, aspect, engine or EngineKind.FLOW, mode)
        )
    )
    if model is None or (engine is not None and model.engine != engine):
        if model is None:
            return f"Unknown model “{key}”; pick one of {offered}."
        return (
            f"{model.label} ({model.key}) is a {ENGINE_LABELS[model.engine]} model, and the "
            f"account {account} is a {ENGINE_LABELS[engine]} account; pick one of {offered}."
        )
    name = f"{model.label} ({model.key})"
    if not model.does(mode):
        assert mode is not None
        return f"{name} does not make clips from {MODE_INPUT_WORDS[mode]}; " + (
            f"pick one of {offered}."
            if offered
            else f"no model of the account {account} does {MODE_LABELS[mode]} at its tier."
        )
    if aspect and not model.makes(aspect):
        return (
            f"{name} makes {ASPECT_LABELS[model.aspect]} clips, not "
            f"{ASPECT_LABELS.get(aspect, aspect)}; "
            "pick a model of that aspect or change the aspect."
        )
    if not model.allowed_for(tier):
        who = (
            f"{account.get_tier_display()}, which the account {account} has"
            if account is not None
            else "a project without a Flow account has"
        )
        return f"{name} needs a higher Flow tier than {who}; pick another model."
    return ""


# --- modes: what a clip is made from -----------------------------------------------------

# The words the scene form shows (Scene.Mode's labels are these).
MODE_LABELS = {
    Mode.TEXT: "Text",
    Mode.IMAGE: "Start image",
    Mode.FRAMES: "Start and end frames",
    Mode.INGREDIENTS: "Ingredients",
    Mode.EXTEND: "Extend",
}
# "… does not make clips from <these>".
MODE_INPUT_WORDS = {
    Mode.TEXT: "the prompt alone",
    Mode.IMAGE: "a start image",
    Mode.FRAMES: "a start and an end frame",
    Mode.INGREDIENTS: "reference images (ingredients)",
    Mode.EXTEND: "an earlier clip",
}
MODE_REQUIRED = (
    "Choose how the clip is made: text, start image, start and end frames, or ingredients."
)
# An extension (made from a take, generations/take_actions.py) is one for good: another mode
# would make a clip from scratch while the scene still points at the take it continued.
EXTENSION_STAYS = (
    "This scene extends a take and stays an extension; its Edit page changes what happens "
    "next, its title, seed and takes."
)
# The scene's image fields each mode uses; any other image on a scene of that mode is refused.
REFERENCE_FIELDS = ("reference_1", "reference_2", "reference_3")
MODE_IMAGE_FIELDS: dict[str, tuple[str, ...]] = {
    Mode.TEXT: (),
    Mode.IMAGE: ("start_image",),
    Mode.FRAMES: ("start_image", "end_image"),
    Mode.INGREDIENTS: REFERENCE_FIELDS,
    Mode.EXTEND: (),
}
IMAGE_LABELS = {
    "start_image": "Start image",
    "end_image": "End image",
    "reference_1": "Reference",
    "reference_2": "Reference",
    "reference_3": "Reference",
}
IMAGE_FIELD_WORDS = {
    "start_image": "a start image",
    "end_image": "an end image",
    "reference_1": "reference images",
    "reference_2": "reference images",
    "reference_3": "reference images",
}
MISSING_INPUT = {
    "start_image": "Add a start image before generating.",
    "end_image": "Add an end image: a Start and end frames clip moves from the start image to it.",
    "references": (
        f"Add 1 to {MAX_REFERENCES} reference images: an Ingredients clip shows what they show."
    ),
}

# The same, where a person is choosing the files (the scene form).
MISSING_UPLOAD = {
    "start_image": "Choose a start image (JPEG, PNG or WebP).",
    "end_image": "Choose an end image (JPEG, PNG or WebP): the clip moves from the start image "
    "to it.",
    "reference_1": f"Choose 1 to {MAX_REFERENCES} reference images (JPEG, PNG or WebP): what "
    "the clip shows.",
}


def mode_input_problems(
    mode: str, *, start: bool, end: bool, references: int, missing: bool = True
) -> dict[str, str]:
    """What is wrong with the images a ``mode`` scene would have (``start``/``end``: whether
    it has one; ``references``: how many), as {"start_image" | "end_image" | "reference_1":
    sentence} (the scene's fields; the references' problems are told on the first). ``missing=False`` leaves out the images still to be added (a scene may be
    saved before it is ready; Generate asks for them)."""
    if mode not in MODE_IMAGE_FIELDS:
        return {}
    uses = MODE_IMAGE_FIELDS[mode]
    label = MODE_LABELS[Mode(mode)]
    # "A Text clip", "An Ingredients clip": the article follows the label's sound.
    a_clip = f"{'An' if label[0] in 'AEIOU' else 'A'} {label} clip"
    problems: dict[str, str] = {}
    if start and "start_image" not in uses:
        problems["start_image"] = (
            f"{a_clip} takes no start image; choose Start image or Start and end frames, "
            "or leave the start image empty."
        )
    if end and "end_image" not in uses:
        problems["end_image"] = (
            f"{a_clip} takes no end image; choose Start and end frames, or leave the end "
            "image empty."
        )
    if references and "reference_1" not in uses:
        problems["reference_1"] = (
            f"{a_clip} takes no reference images; choose Ingredients, or leave the "
            "reference images empty."
        )
    elif references > MAX_REFERENCES:
        problems["reference_1"] = (
            f"An Ingredients clip takes 1 to {MAX_REFERENCES} reference images, not {references}."
        )
    if missing:
        if not start and "start_image" in uses:
            problems["start_image"] = MISSING_INPUT["start_image"]
        if not end and "end_image" in uses:
            problems["end_image"] = MISSING_INPUT["end_image"]
        if not references and "reference_1" in uses:
            problems["reference_1"] = MISSING_INPUT["references"]
    return problems


def mode_options_problem(mode: str, duration: int | None, account) -> str:
    """What a mode rules out among the clip options on ``account``'s engine, or ""."""
    engine = EngineKind(account.kind) if account is not None else None
    if (
        mode == Mode.INGREDIENTS
        and engine == EngineKind.VERTEX
        and isinstance(duration, int)  # else its own field refused it (DURATION_RULE)
        and duration != 8
    ):
        # Vertex AI makes clips from reference images only 8 s long.
        return f"Clips from reference images are made only 8 seconds long, not {duration} s."
    return ""


# --- Vertex AI accounts -------------------------------------------------------------------

DEFAULT_VERTEX_LOCATION = "us-central1"

VERTEX_PROJECT = RegexValidator(
    r"^(?:[a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$",
    "A Google Cloud project id is 6 to 30 lower-case letters, digits and hyphens, starting "
    "with a letter (e.g. my-studio-4821); it is shown on the Cloud console's dashboard.",
    code="vertex_project",
)
VERTEX_LOCATION = RegexValidator(
    r"^[a-z]+(?:-[a-z]+)+[0-9]+$",
    "A region is written like us-central1 or europe-west4.",
    code="vertex_location",
)
STORAGE_URI = RegexValidator(
    r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](?:/[^\s]*)?$",
    "The results prefix is a Cloud Storage address, gs://BUCKET/PREFIX/ (bucket names are "
    "lower-case letters, digits, dots, hyphens and underscores).",
    code="storage_uri",
)


# --- clip options (duration, resolution, audio, negative prompt, people) ------------------

MAX_NEGATIVE_PROMPT_CHARACTERS = 1000


def options_problems(scene, account) -> dict[str, str]:
    """What is wrong with ``scene``'s clip options on ``account``'s engine (None: the project
    has no account yet, so only what no engine accepts), as {field: sentence}.

    What an engine cannot do is refused in words rather than silently dropped, so a CSV row
    asking Flow for a 4 s clip says why it cannot have one.
    """
    engine = EngineKind(account.kind) if account is not None else EngineKind.VERTEX
    options = options_for(engine)
    where = (
        f"the {ENGINE_LABELS[engine]} account {account}" if account is not None else "any account"
    )
    problems: dict[str, str] = {}
    # A duration that is not a whole number was refused by its own field (DURATION_RULE).
    duration = scene.duration if isinstance(scene.duration, int) else None
    resolution = scene.resolution
    if duration is not None and duration not in options.durations:
        problems["duration"] = (
            f"Clips on {where} are {options.default_duration} seconds long; leave the "
            "duration blank."
            if not options.durations
            else f"A clip is {_words(options.durations, 's')} long, not {duration} s."
        )
    if resolution and resolution not in options.resolutions:
        problems["resolution"] = (
            f"Clips on {where} are {options.default_resolution}; leave the resolution blank."
            if not options.resolutions
            else f"The resolution is {_words(options.resolutions)}, not “{resolution}”."
        )
    elif resolution and "duration" not in problems:
        needed = dict(options.resolution_needs_duration).get(resolution)
        length = duration if duration is not None else options.default_duration
        if needed is not None and length != needed:
            problems["resolution"] = (
                f"{resolution_label(resolution)} clips are made only {needed} seconds long; "
                f"pick {needed} s or {resolution_label(options.default_resolution)}."
            )
    if scene.audio and not options.audio:
        problems["audio"] = f"{where.capitalize()} does not let you choose the sound track."
    negative = scene.negative_prompt
    if negative:
        if not options.negative_prompt:
            problems["negative_prompt"] = (
                f"{where.capitalize()} takes no negative prompt; leave it empty."
            )
        else:
            problem = control_character_problem(negative, "The negative prompt", _PROMPT_CONTROLS)
            if problem:
                problems["negative_prompt"] = f"{problem}."
            elif len(negative) > MAX_NEGATIVE_PROMPT_CHARACTERS:
                problems["negative_prompt"] = (
                    f"The negative prompt is {len(negative)} characters long; at most "
                    f"{MAX_NEGATIVE_PROMPT_CHARACTERS}."
                )
    people = scene.person_generation
    allowed_people = dict(options.person_generation)
    if people and people not in allowed_people:
        problems["person_generation"] = (
            f"{where.capitalize()} does not let you choose whether people appear; leave it blank."
            if not allowed_people
            else f"Who may appear is one of {_words(list(allowed_people))}, not “{people}”."
        )
    return problems


def _words(values, unit: str = "") -> str:
    """4, 6 or 8 s — a list for a sentence."""
    items = [f"{value}" for value in values]
    text = items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"
    return f"{text} {unit}" if unit else text


DURATION_RULE = "The duration is a whole number of seconds, or blank."
