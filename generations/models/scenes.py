"""Scenes and the images they start from, and the rules for asking for takes.

Long because asking for takes is one rule read in one place: what a scene may hold, what a take
of it costs, the snapshot each take keeps, and the budget check that numbers and creates them
in the same transaction (so two clicks at the line cannot both pass).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import uuid4

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Case, F, OuterRef, Q, Value, When
from django.utils import timezone

from .. import rules
from ..budgets import amount, month_spent
from ..engines.base import Aspect, ImageData
from ..engines.catalogue import (
    flow_credits,
    get_model,
    options_for,
    resolution_label,
    vertex_price_per_second,
)
from .accounts import COST_CREDITS, COST_USD, FlowAccount
from .errors import CannotGenerate, DeletedMeanwhile
from .projects import Membership, Project

if TYPE_CHECKING:
    from .takes import Generation


def _image_path(instance: ImageAsset, filename: str) -> str:
    return f"images/{instance.project.uuid}/{instance.uuid}{_suffix(instance.mime_type)}"


def _suffix(mime_type: str) -> str:
    return {"image/png": ".png", "image/webp": ".webp"}.get(mime_type, ".jpg")


class ImageAsset(models.Model):
    """A start image as stored by Flowsite (already checked and re-encoded)."""

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, models.CASCADE, related_name="images")
    file = models.FileField(upload_to=_image_path, max_length=300)
    mime_type = models.CharField(max_length=30)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    original_name = models.CharField(max_length=255, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.original_name or str(self.uuid)

    @property
    def aspect(self) -> Aspect:
        return Aspect.PORTRAIT if self.height > self.width else Aspect.LANDSCAPE

    def image_data(self) -> ImageData:
        """The stored bytes as an engine uploads them."""
        with self.file.open("rb") as handle:
            data = handle.read()
        return ImageData(data=data, mime_type=self.mime_type, width=self.width, height=self.height)


class ImageUpload(models.Model):
    """The id Flow gave a start image, per account: an image is uploaded once and reused."""

    image = models.ForeignKey(ImageAsset, models.CASCADE, related_name="uploads")
    account = models.ForeignKey(FlowAccount, models.CASCADE, related_name="image_uploads")
    media_id = models.TextField()
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "account"], name="one_upload_per_account")
        ]

    def __str__(self) -> str:
        return f"{self.image} on {self.account}"


class Scene(models.Model):
    """One shot of a storyboard. What it may hold is judged here (the field validators and
    ``clean()``, worded in generations/rules.py), so the form, the admin and the CSV import
    refuse the same things in the same words."""

    class AspectChoice(models.TextChoices):
        LANDSCAPE = Aspect.LANDSCAPE, rules.ASPECT_LABELS[Aspect.LANDSCAPE]
        PORTRAIT = Aspect.PORTRAIT, rules.ASPECT_LABELS[Aspect.PORTRAIT]

    class Mode(models.TextChoices):
        TEXT = "text", "Text"
        IMAGE = "image", "Start image"
        FRAMES = "frames", "Start and end frames"
        INGREDIENTS = "ingredients", "Ingredients"
        EXTEND = "extend", "Extend"

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, models.CASCADE, related_name="scenes")
    # Mode extend: the ready take this scene continues (generations/take_actions.py).
    # SET_NULL, not PROTECT: deleting the source take (or its scene) must not be blocked by
    # the extension, whose own clips stand alone; PROTECT would also refuse the cascades
    # that delete a whole scene or project. Without its source the scene says so and cannot
    # be generated again.
    source_take = models.ForeignKey(
        "Generation", models.SET_NULL, null=True, blank=True, related_name="extensions"
    )
    position = models.PositiveIntegerField(default=0)
    # The highest take number this scene has given, deleted takes included: a number is never
    # given twice, so "take 2" in a comment or the trail stays one clip, and a page that saw
    # take 2 is not mistaken for one that saw a later take 2 (the Generate guard).
    last_take = models.PositiveIntegerField(default=0, editable=False)
    title = models.CharField(
        max_length=rules.MAX_TITLE_CHARACTERS, blank=True, validators=[rules.SCENE_TITLE]
    )
    prompt = models.TextField(
        max_length=rules.MAX_PROMPT_CHARACTERS,
        validators=[rules.validate_prompt],
        error_messages={"blank": rules.PROMPT_REQUIRED},
    )
    mode = models.CharField(max_length=12, choices=Mode, default=Mode.IMAGE)
    # RESTRICT, not PROTECT: an image a scene shows cannot be deleted on its own, but deleting
    # the project takes its scenes and images together.
    start_image = models.ForeignKey(
        ImageAsset, models.RESTRICT, null=True, blank=True, related_name="scenes"
    )
    end_image = models.ForeignKey(
        ImageAsset, models.RESTRICT, null=True, blank=True, related_name="+"
    )
    # The reference images of an Ingredients scene, in order, filled from the first. Three
    # columns rather than a table of references: both upstreams take at most three, their
    # order is the column's, the storyboard and the gallery load them in the same query as the
    # scene (select_related, no prefetch), and a take copies them the way it copies the start
    # image. ``references`` and ``set_references`` read and write them as a list.
    reference_1 = models.ForeignKey(
        ImageAsset, models.RESTRICT, null=True, blank=True, related_name="+"
    )
    reference_2 = models.ForeignKey(
        ImageAsset, models.RESTRICT, null=True, blank=True, related_name="+"
    )
    reference_3 = models.ForeignKey(
        ImageAsset, models.RESTRICT, null=True, blank=True, related_name="+"
    )
    aspect = models.CharField(
        max_length=10,
        choices=AspectChoice,
        default=Aspect.LANDSCAPE,
        error_messages={"blank": rules.ASPECT_REQUIRED, "invalid_choice": rules.ASPECT_RULE},
    )
    model_key = models.CharField(max_length=60, error_messages={"blank": rules.MODEL_REQUIRED})
    # None: a fresh random seed for every take.
    seed = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=rules.SEED_VALIDATORS,
        error_messages={"invalid": rules.SEED_RULE},
    )
    takes = models.PositiveSmallIntegerField(
        default=1,
        validators=rules.TAKES_VALIDATORS,
        error_messages={
            "invalid": rules.TAKES_RULE,
            "blank": rules.TAKES_RULE,
            "null": rules.TAKES_RULE,
        },
    )
    # Clip options only some engines offer (generations/engines/catalogue.py says which);
    # blank: the engine's default.
    duration = models.PositiveSmallIntegerField(
        "duration (seconds)", null=True, blank=True, error_messages={"invalid": rules.DURATION_RULE}
    )
    resolution = models.CharField(max_length=10, blank=True)
    audio = models.BooleanField("sound track", default=False)
    negative_prompt = models.TextField(blank=True)
    person_generation = models.CharField("people", max_length=20, blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "position", "id"]

    def __str__(self) -> str:
        return self.name_for(self.title, self.position)

    @staticmethod
    def name_for(title: str, position: int) -> str:
        """What a scene is called: its title, or its place on the storyboard."""
        return title or f"Scene {position + 1}"

    # The images a scene may hold, each a foreign key to ImageAsset.
    IMAGE_FIELDS = ("start_image", "end_image", *rules.REFERENCE_FIELDS)

    @classmethod
    def load_images(cls, scenes: list[Scene]) -> None:
        """Fetch every image these scenes hold in one query and set each on its scene.

        The storyboard's scenes come with their pick and source take joined; joining the five
        image columns as well made PostgreSQL weigh the join orders of eight tables on every
        card answer, planning taking ten times what running the query did.
        """
        fields = [cls._meta.get_field(name) for name in cls.IMAGE_FIELDS]
        wanted = {getattr(scene, field.attname) for scene in scenes for field in fields}
        wanted.discard(None)
        images = ImageAsset.objects.in_bulk(wanted) if wanted else {}
        for scene in scenes:
            for field in fields:
                if (image_id := getattr(scene, field.attname)) is not None:
                    # The cache, not the attribute: an image deleted in between leaves the
                    # scene's own column as it was.
                    field.set_cached_value(scene, images.get(image_id))

    @property
    def references(self) -> list[ImageAsset]:
        """The reference images, in order."""
        return [image for name in rules.REFERENCE_FIELDS if (image := getattr(self, name))]

    def card_images(self) -> list[tuple[str, ImageAsset]]:
        """(what it is, image) for each image the scene's mode uses, in the order sent."""
        images = []
        for name in rules.MODE_IMAGE_FIELDS.get(self.mode, ()):
            image = getattr(self, name) if getattr(self, f"{name}_id") else None
            if image is not None:
                label = rules.IMAGE_LABELS[name]
                if name in rules.REFERENCE_FIELDS:
                    label = f"{label} {rules.REFERENCE_FIELDS.index(name) + 1}"
                images.append((label, image))
        return images

    @property
    def reference_count(self) -> int:
        return sum(getattr(self, f"{name}_id") is not None for name in rules.REFERENCE_FIELDS)

    def set_references(self, images: list[ImageAsset | None]) -> None:
        """Hold these reference images, in order, gaps closed (at most three)."""
        kept = [image for image in images if image is not None]
        if len(kept) > len(rules.REFERENCE_FIELDS):
            raise ValueError(f"A scene holds at most {len(rules.REFERENCE_FIELDS)} references.")
        for index, name in enumerate(rules.REFERENCE_FIELDS):
            setattr(self, name, kept[index] if index < len(kept) else None)

    def mode_problems(self, *, missing: bool) -> dict[str, str]:
        """The mode's rules (rules.mode_input_problems) on the images this scene holds."""
        return rules.mode_input_problems(
            self.mode,
            start=self.start_image_id is not None,
            end=self.end_image_id is not None,
            references=self.reference_count,
            missing=missing,
        )

    # How a refusal names the models to pick instead: as the scene form's model menu does, or
    # by key, for the storyboard CSV import, whose model column holds keys.
    models_named_by_key = False

    # Columns whose bounds (a length, a number's range) clean() already covers by naming what
    # the value may be: a model, a resolution, who may appear, a duration the engine offers.
    _BOUNDS_SAID_BY_CLEAN = ("model_key", "resolution", "person_generation", "duration")
    _BOUND_CODES = ("max_length", "min_value", "max_value")

    def clean_fields(self, exclude=None) -> None:
        """The fields' own checks, without Django's words for a column's bounds ("Ensure this
        value has at most 10 characters"): where ``clean()`` names what a value may be, the
        bound would refuse it a second time, in words that do not say what to choose; the
        title's length is told in Flowsite's words."""
        try:
            super().clean_fields(exclude)
        except ValidationError as invalid:
            errors: dict[str, list[ValidationError]] = {}
            for name, field_errors in invalid.error_dict.items():
                kept = []
                for error in field_errors:
                    if error.code in self._BOUND_CODES and name in self._BOUNDS_SAID_BY_CLEAN:
                        # Only its bound failed, so the value converts: clean() judges it so.
                        field = self._meta.get_field(name)
                        setattr(self, field.attname, field.to_python(getattr(self, field.attname)))
                        continue
                    if name == "title" and error.code == "max_length":
                        error = ValidationError(
                            rules.title_length_problem(len(self.title)), code="max_length"
                        )
                    kept.append(error)
                if kept:
                    errors[name] = kept
            if errors:
                raise ValidationError(errors) from None

    def clean(self) -> None:
        """The model must make this scene's aspect in its mode on the project's account (its
        tier), the scene may hold only the images its mode uses, and the clip options must be
        ones the account's engine offers. The images still to be added are Generate's
        concern (``generation_problem``): a scene may be saved before it is ready."""
        project = getattr(self, "project", None)  # a form may judge a scene before it has one
        account = project and project.account
        problems = rules.options_problems(self, account)
        problems.update(self.mode_problems(missing=False))
        # (No mode: the scene form refused the one asked for, and said why.)
        if self.source_take_id is not None and self.mode and self.mode != self.Mode.EXTEND:
            problems["mode"] = rules.EXTENSION_STAYS
        if "duration" not in problems:
            problem = rules.mode_options_problem(self.mode, self.duration, account)
            if problem:
                problems["duration"] = problem
        if self.model_key:
            aspect = self.aspect if self.aspect in self.AspectChoice.values else None
            mode = self.mode if self.mode in self.Mode.values else None
            problem = rules.model_problem(
                self.model_key, aspect, account, mode, by_key=self.models_named_by_key
            )
            if problem:
                problems["model_key"] = problem
        # (No model: the field's own rule says so.)
        if problems:
            raise ValidationError(problems)

    def generation_problem(self) -> str:
        """Why this scene cannot be generated as it stands, in words, or "" when it can."""
        account = self.project.account
        if account is None:
            return rules.NO_ACCOUNT
        if self.mode == self.Mode.EXTEND:
            from ..take_actions import extend_problem

            problem = extend_problem(self.source_take, account, self.source_take_id)
            if problem:
                return problem
        else:
            problems = self.mode_problems(missing=True)
            if problems:
                return next(iter(problems.values()))
        if rules.is_blank(self.prompt):
            return rules.PROMPT_REQUIRED
        problems = rules.options_problems(self, account)
        if problems:
            return next(iter(problems.values()))
        problem = rules.mode_options_problem(self.mode, self.duration, account)
        if problem:
            return problem
        return rules.model_problem(self.model_key, self.aspect, account, self.mode)

    def generate(self, user) -> list[Generation]:
        """Create this scene's next takes (``work.generate`` also hands them to the worker)."""
        problem = self.generation_problem()
        if problem:
            raise CannotGenerate(problem)
        self.project.check_spending()
        try:
            return create_generations(self.project, user, {self.pk: self.take_snapshots()})[self.pk]
        except DeletedMeanwhile:
            raise DeletedMeanwhile(str(self)) from None

    # What the Edit page changes and Generate reads: a page that showed other values than
    # these must not save over them or spend on them (``settings_token``). Not ``updated``:
    # a comment, a pick or a trim bumps it too, and refusing an edit after a teammate's
    # comment would only teach people to ignore the refusal.
    SETTINGS_FIELDS = (
        "title",
        "prompt",
        "mode",
        "model_key",
        "aspect",
        "seed",
        "takes",
        "duration",
        "resolution",
        "audio",
        "negative_prompt",
        "person_generation",
        *IMAGE_FIELDS,
        "source_take",
    )

    def settings_token(self) -> str:
        """A short fingerprint of the scene's settings (``SETTINGS_FIELDS``), drawn with an
        Edit page or a card and compared when it is sent back. Computed from the values, so
        an edit changed back to what the page showed is no conflict, and no column or writer
        has to keep it."""
        values = [
            getattr(self, self._meta.get_field(name).attname) for name in self.SETTINGS_FIELDS
        ]
        return _fingerprint(values)

    @staticmethod
    def storyboard_token(scenes: Iterable[Scene]) -> str:
        """One fingerprint of the settings of all these scenes (a project's, as Generate all
        would make them): a scene edited, added or deleted changes it. By scene, not by
        place: a move changes nothing Generate all spends."""
        return _fingerprint(sorted((scene.pk, scene.settings_token()) for scene in scenes))

    # What take_cost and Generate all's filter (budgets.generate_all_total) read: a poll
    # prices Generate all from these columns alone, so a field either starts reading must
    # be added here, or every scene costs one more query.
    PRICED_FIELDS = (
        "project",
        "mode",
        *IMAGE_FIELDS,
        "prompt",
        "model_key",
        "takes",
        "resolution",
        "audio",
        "duration",
    )

    def take_cost(self) -> tuple[Decimal | None, str]:
        """What one take of this scene costs on the project's account: (US dollars, "USD")
        on Vertex AI (price per second × seconds), (credits, "credits") on Flow; None when no
        price is known."""
        account = self.project.account
        if account is None:
            return None, ""
        if account.is_vertex:
            price = vertex_price_per_second(
                self.model_key, self.resolution, self.audio, settings.VERTEX_PRICES
            )
            if price is None:
                return None, COST_USD
            seconds = self.duration or options_for(account.kind).default_duration
            return (price * seconds).quantize(Decimal("0.01")), COST_USD
        credits = flow_credits(self.model_key, account.tier)
        return (None if credits is None else Decimal(credits)), COST_CREDITS

    def cost_words(self) -> str:
        """What one click of Generate costs, for the button: "2 takes × 4 s × $0.15/s =
        $1.20", "2 takes × 20 credits = 40 credits"; "" when no price is known."""
        cost, unit = self.take_cost()
        if cost is None:
            return ""
        takes = f"{self.takes} take{'s' if self.takes != 1 else ''}"
        if unit == COST_USD:
            seconds = self.duration or options_for(self.project.account.kind).default_duration
            per_second = cost / seconds
            return f"{takes} × {seconds} s × ${per_second:.2f}/s = ${cost * self.takes:.2f}"
        return f"{takes} × {cost:.0f} credits = {cost * self.takes:.0f} credits"

    def option_facts(self) -> list[tuple[str, str]]:
        """The clip options the card shows, as (what, value): only those the project's engine
        offers (Vertex AI's length, resolution, sound, what to avoid and who may appear), so
        a Flow scene, whose lane offers none, shows none."""
        account = self.project.account
        options = options_for(account.kind if account else FlowAccount.Kind.FLOW)
        facts = []
        if options.durations:
            facts.append(("Length", f"{self.duration or options.default_duration} s"))
        if options.resolutions:
            facts.append(
                ("Resolution", resolution_label(self.resolution or options.default_resolution))
            )
        if options.audio:
            facts.append(("Sound", "On" if self.audio else "Off"))
        if options.negative_prompt and self.negative_prompt:
            facts.append(("Avoid", self.negative_prompt))
        people = dict(options.person_generation)
        if self.person_generation in people:
            facts.append(("People", people[self.person_generation]))
        return facts

    def take_snapshots(self) -> list[dict]:
        """What each of this scene's next takes asks of Flow (a seed drawn per take when the
        scene leaves it open), with only the images its mode uses."""
        snapshot = {name: getattr(self, name) for name in SNAPSHOT_FIELDS}
        used = rules.MODE_IMAGE_FIELDS.get(self.mode, ())
        for name in self.IMAGE_FIELDS:
            if name not in used:
                snapshot[f"{name}_id"] = None
        snapshot["cost"], snapshot["cost_unit"] = self.take_cost()
        return [
            {**snapshot, "seed": self.seed if self.seed is not None else random_seed()}
            for _ in range(self.takes)
        ]


# What a take copies from its scene at Generate time.
SNAPSHOT_FIELDS = (
    "prompt",
    "model_key",
    "aspect",
    "mode",
    "start_image_id",
    "end_image_id",
    "reference_1_id",
    "reference_2_id",
    "reference_3_id",
    "duration",
    "resolution",
    "audio",
    "negative_prompt",
    "person_generation",
    "source_take_id",
)


def _fingerprint(values) -> str:
    # hashlib, not hash(): the token must be the same in every process and after a restart.
    text = json.dumps(values, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def random_seed() -> int:
    return secrets.randbelow(2**31)


def create_generations(
    project: Project, user, snapshots: dict[int, list[dict]]
) -> dict[int, list[Generation]]:
    """Number and create the new takes of these scenes (scene id -> one snapshot of what to ask
    Flow per take). Handing them to the worker is the caller's (``work``).

    The same few statements for one scene or fifty: the scenes' take counters moved in one
    update and read back in one query, every take in one insert.
    """
    from .takes import Generation

    total = sum(
        snapshot["cost"] or 0
        for scene_snapshots in snapshots.values()
        for snapshot in scene_snapshots
    )
    unit = next(
        (s["cost_unit"] for scene_snapshots in snapshots.values() for s in scene_snapshots), ""
    )
    unpriced = sorted(
        {
            s["model_key"]
            for scene_snapshots in snapshots.values()
            for s in scene_snapshots
            if s["cost"] is None
        }
    )
    with transaction.atomic():
        if total or unpriced:
            check_budget(project, user, total, unit, unpriced=unpriced)
        counts = {scene_id: len(todo) for scene_id, todo in snapshots.items() if todo}
        if counts:
            # Moved before they are read: the update holds the scenes' rows, so two Generates
            # of one scene at once number their takes one after the other.
            moved = Scene.objects.filter(pk__in=counts).update(
                last_take=F("last_take")
                + Case(*(When(pk=pk, then=Value(n)) for pk, n in counts.items()), default=0)
            )
            # A scene read before this transaction may have been deleted by a teammate since:
            # its takes would point nowhere (a foreign key failing at commit) and be charged.
            if moved != len(counts):
                raise DeletedMeanwhile("A scene of this storyboard")
        # The number before this Generate's first take, per scene.
        last = {
            pk: last_take - counts[pk]
            for pk, last_take in Scene.objects.filter(pk__in=counts).values_list("pk", "last_take")
        }
        now = timezone.now()
        created = {
            scene_id: [
                Generation(
                    scene_id=scene_id,
                    project_id=project.pk,
                    requested_by=user,
                    account_id=project.account_id,
                    take=last.get(scene_id, 0) + number,
                    created=now,
                    updated=now,
                    **snapshot,
                )
                for number, snapshot in enumerate(scene_snapshots, start=1)
            ]
            for scene_id, scene_snapshots in snapshots.items()
        }
        takes = [take for scene_takes in created.values() for take in scene_takes]
        if takes:
            Generation.objects.bulk_create(takes)
    return created


# The takes (and upscales) whose cost counts. The upstream charges for every clip it
# finished, whatever became of Flowsite's download of it afterwards: a failed row counts when
# a download of it was tried, since ``download_attempts`` only grows once the upstream (Flow
# or Vertex AI alike) answered that the clip was ready, and is never set back (a take fetched
# again keeps it: ``Generation.fetch_again``). It counts too when the upstream accepted it
# (``submitted_at``) and never reported it failed (``upstream_failed``): Flowsite stopped
# following it (stuck, an answer it could not read, an operation the upstream no longer
# knows), and the upstream may have made and charged its clip, as for an uncertain one. A
# clip the upstream refused or reported failed, and one cancelled before it was sent, cost
# nothing.
SPENDING_Q = (
    ~Q(status="failed")
    | Q(download_attempts__gt=0)
    | Q(submitted_at__isnull=False, upstream_failed=False)
) & ~Q(status="cancelled", submitted_at__isnull=True)


def check_budget(
    project: Project, user, cost, unit: str = COST_CREDITS, *, unpriced: Iterable[str] = ()
) -> None:
    """Refuse, in words, ``cost`` more (credits on Flow, US dollars on Vertex AI: budgets count
    in the unit of the project's account) that would pass the project's monthly budget or the
    member's monthly allowance. Call inside the transaction that creates the takes.

    Takes of ``unpriced`` models (no price known, say a preview model left out of
    VERTEX_PRICES) record no cost, so under a budget or an allowance they are refused: they
    would spend without counting.

    The project's row is locked first (PostgreSQL; SQLite's transactions write one at a
    time anyway), so two clicks at the line are counted one after the other and cannot both
    slip under it. The budget and the allowance are read under the same lock. What is spent
    already is ``month_spending``'s (takes, upscales and what deleted ones spent), the sum the
    Spend page shows, read in one query.
    """
    limits = (
        Project.objects.select_for_update().filter(pk=project.pk).values("monthly_budget").first()
    )
    budget = limits["monthly_budget"] if limits else None
    allowance = (
        Membership.objects.filter(project_id=project.pk, user_id=getattr(user, "pk", None))
        .values_list("monthly_allowance", flat=True)
        .first()
    )
    if budget is None and allowance is None:
        return
    if unpriced:
        names = ", ".join(model.label if (model := get_model(key)) else key for key in unpriced)
        limit = (
            f"{project}'s monthly budget"
            if budget is not None
            else f"your monthly allowance in {project}"
        )
        raise CannotGenerate(
            f"Flowsite knows no price for {names}, so it cannot keep these takes within "
            f"{limit}. Pick a priced model, or ask an admin to price this one."
        )
    # A statement of its own after the lock, not part of the locking one: that one's
    # subqueries would read as of before the wait, missing what the click ahead just added.
    spent = (
        Project.objects.filter(pk=project.pk)
        .values(
            total=month_spent(OuterRef("pk"), unit),
            mine=month_spent(OuterRef("pk"), unit, requested_by_id=getattr(user, "pk", None)),
        )
        .get()
    )
    if budget is not None and spent["total"] + cost > budget:
        left = max(0, budget - spent["total"])
        raise CannotGenerate(
            f"This would spend {amount(cost, unit)}, but {project} has {amount(left, unit)} "
            f"left of its monthly budget of {amount(budget, unit)}. An owner can raise the "
            "budget on the "
            "Spend page."
        )
    if allowance is not None and spent["mine"] + cost > allowance:
        left = max(0, allowance - spent["mine"])
        raise CannotGenerate(
            f"This would spend {amount(cost, unit)}, but you have {amount(left, unit)} left of "
            f"your monthly allowance of {amount(allowance, unit)} in {project}. Ask an owner to "
            "raise it."
        )
