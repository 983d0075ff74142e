"""Flowsite's data: who works on what, what was asked of Flow, and what came back."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone

from . import rules
from .crypto import EncryptedTextField
from .engines.base import Aspect, Credentials, EngineKind, ImageData
from .engines.catalogue import (
    TIER_ONE,
    TIERS,
    flow_credits,
    get_model,
    options_for,
    vertex_price_per_second,
)

COST_USD = "USD"
COST_CREDITS = "credits"


class CannotGenerate(Exception):
    """Generate was refused before anything was spent; the message is for the user."""


class FlowAccountQuerySet(models.QuerySet):
    def granted_to(self, user) -> FlowAccountQuerySet:
        """The accounts staff granted to this person (see ``AccountGrant``)."""
        if user is None or not user.is_authenticated:
            return self.none()
        return self.filter(grants__user=user)


class FlowAccount(models.Model):
    """An upstream account whose credits (Flow) or cloud bill (Vertex AI) a project spends.

    Only the people and projects staff granted it to may spend it (``AccountGrant``). A Flow
    account holds either a pasted bearer token or a labs session cookie from which short-lived
    access tokens are minted; a Vertex AI account holds a Google Cloud project and either a
    service-account key (from which tokens are minted) or a pasted access token. The minted
    token is cached here so every worker shares it.
    """

    class Kind(models.TextChoices):
        FLOW = EngineKind.FLOW, "Google Flow"
        VERTEX = EngineKind.VERTEX, "Vertex AI"

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    label = models.CharField(max_length=100, unique=True, validators=[rules.ACCOUNT_LABEL])
    kind = models.CharField(max_length=10, choices=Kind, default=Kind.FLOW)
    tier = models.CharField(max_length=40, choices=TIERS, default=TIER_ONE)
    # Secrets spend the team's credits: encrypted at rest (see generations/crypto.py).
    bearer_token = EncryptedTextField(blank=True)
    session_cookie = EncryptedTextField(blank=True)
    # Vertex AI only: where the clips are made and billed, and how to sign in there.
    vertex_project = models.CharField(
        "Google Cloud project", max_length=64, blank=True, validators=[rules.VERTEX_PROJECT]
    )
    vertex_location = models.CharField(
        "region",
        max_length=40,
        blank=True,
        default=rules.DEFAULT_VERTEX_LOCATION,
        validators=[rules.VERTEX_LOCATION],
    )
    service_account_key = EncryptedTextField(blank=True)
    storage_uri = models.CharField(
        "results prefix",
        max_length=300,
        blank=True,
        validators=[rules.STORAGE_URI],
        help_text="Optional gs://BUCKET/PREFIX/ where Vertex AI writes the clips; empty: "
        "the clips come back inside the answer.",
    )
    access_token = EncryptedTextField(blank=True, editable=False)
    access_token_expires = models.DateTimeField(null=True, blank=True, editable=False)
    credits = models.IntegerField(null=True, blank=True)
    credits_checked_at = models.DateTimeField(null=True, blank=True)
    # Set after Flow throttles the account, so workers give it a rest instead of hammering it.
    cool_down_until = models.DateTimeField(null=True, blank=True)
    # Set when the session is dead or the token revoked: the account's takes wait (saying
    # this) instead of failing, and resume when an admin pastes new credentials, or by
    # themselves when a later re-check finds the credentials accepted again.
    problem = models.CharField(max_length=300, blank=True)
    # Flow refused the token or session this many times in a row (the call, then re-checks).
    # While above zero Flowsite makes no other call on the account: it re-checks the
    # credentials at cool_down_until, and sets ``problem`` after a few refusals (see
    # generations/pipeline/accounts.py).
    credential_refusals = models.PositiveSmallIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)

    objects = FlowAccountQuerySet.as_manager()

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return self.label

    @property
    def is_vertex(self) -> bool:
        return self.kind == self.Kind.VERTEX

    @property
    def auth_kind(self) -> str:
        if self.service_account_key:
            return "service-account key"
        return "session cookie" if self.session_cookie else "bearer token"

    @property
    def secret(self) -> str:
        """The credential an admin gave (for a masked hint; never shown in full)."""
        return self.service_account_key or self.session_cookie or self.bearer_token

    def clean(self) -> None:
        if self.is_vertex:
            if not self.vertex_project:
                raise ValidationError(
                    {"vertex_project": "A Vertex AI account needs its Google Cloud project id."}
                )
            if not self.vertex_location:
                self.vertex_location = rules.DEFAULT_VERTEX_LOCATION
        elif self.storage_uri:
            raise ValidationError(
                {"storage_uri": "Only a Vertex AI account writes its clips to Cloud Storage."}
            )

    def credentials(self) -> Credentials:
        return Credentials(
            key=str(self.uuid),
            tier=self.tier,
            bearer_token=self.bearer_token,
            session_cookie=self.session_cookie,
            kind=self.kind,
            service_account_key=self.service_account_key,
            cloud_project=self.vertex_project,
            location=self.vertex_location or rules.DEFAULT_VERTEX_LOCATION,
            storage_uri=self.storage_uri,
        )

    def is_granted_to(self, user) -> bool:
        return FlowAccount.objects.granted_to(user).filter(pk=self.pk).exists()

    def may_be_spent_by(self, project: Project) -> bool:
        """Whether staff granted this account to the project itself or to one of its owners."""
        return AccountGrant.objects.allowing(project).filter(account=self).exists()

    # Fields replace_credentials() changes; pass them to save(update_fields=...).
    CREDENTIAL_FIELDS = (
        "bearer_token",
        "session_cookie",
        "service_account_key",
        "access_token",
        "access_token_expires",
        "problem",
        "cool_down_until",
        "credential_refusals",
    )

    def replace_credentials(
        self, bearer_token: str = "", session_cookie: str = "", service_account_key: str = ""
    ) -> None:
        """New secrets pasted by an admin.

        The token minted from the old secrets and the old trouble (problem, cool-down) go too.
        Nothing is written here, so a form may still be validated or saved later; whoever
        saves the account also hands its waiting takes back to the worker
        (``work.resume_waiting``).
        """
        self.bearer_token, self.session_cookie = bearer_token, session_cookie
        self.service_account_key = service_account_key
        self.access_token, self.access_token_expires = "", None
        self.problem, self.cool_down_until, self.credential_refusals = "", None, 0

    def resume_waiting_generations(self) -> int:
        """Takes that waited for this account (dead session, revoked token, cool-down) are
        due again now, their waiting reason cleared. Returns how many."""
        now = timezone.now()
        count = Generation.objects.filter(
            account=self,
            status__in=[
                Generation.Status.QUEUED,
                Generation.Status.PENDING,
                Generation.Status.ACTIVE,
            ],
            claim__isnull=True,
        ).update(reason="", next_check_at=now, updated=now)
        return count

    def record_credits(self, credits: int | None) -> None:
        if credits is None:
            return
        self.credits = credits
        self.credits_checked_at = timezone.now()
        FlowAccount.objects.filter(pk=self.pk).update(
            credits=credits, credits_checked_at=self.credits_checked_at
        )


class Project(models.Model):
    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    name = models.CharField(max_length=120, validators=[rules.PROJECT_NAME])
    # Sent to Flow as the project the clips belong to.
    flow_project_id = models.UUIDField(default=uuid4, editable=False)
    account = models.ForeignKey(
        FlowAccount, models.PROTECT, related_name="projects", null=True, blank=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    # When a scene was last added, deleted or moved; None: not since the project was created,
    # which every open page has already seen (so a fresh project does not make the first poll
    # re-send its whole storyboard). Open storyboards compare it with their poll token.
    scenes_changed = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, **kwargs) -> None:
        if (
            not self._state.adding
            and kwargs.get("update_fields") is None
            and not kwargs.get("force_insert")
        ):
            # scenes_changed is written only by mark_scenes_changed's update(): a full save of
            # a copy loaded before a teammate added a scene would write the old stamp back, and
            # open storyboards would miss the new scene. Every other loaded field is written.
            deferred = self.get_deferred_fields()
            kwargs["update_fields"] = [
                field.attname
                for field in self._meta.concrete_fields
                if not field.primary_key
                and field.attname != "scenes_changed"
                and field.attname not in deferred
            ]
        super().save(**kwargs)

    def spending_problem(self) -> str:
        """Why this project may not spend its Flow account now, in words, or "" when it may.

        Asked again at every Generate, so a revoked grant stops new takes at once. Remembered
        on this instance: a command that generates scene after scene asks once.
        """
        if self.account_id is None:
            return "The project has no Flow account to spend; ask an admin to set one."
        cached = getattr(self, "_spending_problem", None)
        if cached is not None and cached[0] == self.account_id:
            return cached[1]
        problem = ""
        if not AccountGrant.objects.allowing(self).filter(account_id=self.account_id).exists():
            problem = (
                f"This project may not spend the Flow account {self.account}: staff have not "
                "granted it to the project or to one of its owners. Ask an admin."
            )
        self._spending_problem = (self.account_id, problem)
        return problem

    def check_spending(self) -> None:
        problem = self.spending_problem()
        if problem:
            raise CannotGenerate(problem)

    def generate_scenes(
        self, scenes: Iterable[Scene], user
    ) -> tuple[list[Scene], list[tuple], list[Generation]]:
        """Queue the takes of every scene here that can be generated, all in one go.

        Returns the scenes generated, for each scene left out why (in words), and the new takes.
        """
        self.check_spending()
        ready: list[Scene] = []
        skipped: list[tuple[Scene, str]] = []
        for scene in scenes:
            problem = scene.generation_problem()
            if problem:
                skipped.append((scene, problem))
            else:
                ready.append(scene)
        created = _create_generations(
            self, user, {scene.pk: scene.take_snapshots() for scene in ready}
        )
        return ready, skipped, [take for takes in created.values() for take in takes]

    def mark_scenes_changed(self) -> None:
        """Tell open storyboards their list of scenes changed (call inside the change's
        transaction): their next poll brings the whole list, in order, not just cards."""
        self.scenes_changed = timezone.now()
        # update(), not save(): a concurrent edit of the project's other fields stays intact.
        Project.objects.filter(pk=self.pk).update(scenes_changed=self.scenes_changed)

    def add_member(self, user, role: str) -> Membership:
        membership, _ = Membership.objects.update_or_create(
            project=self, user=user, defaults={"role": role}
        )
        return membership


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        EDITOR = "editor", "Editor"
        VIEWER = "viewer", "Viewer"

    project = models.ForeignKey(Project, models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role, default=Role.EDITOR)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"

    @property
    def can_edit(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.EDITOR)

    @property
    def can_manage(self) -> bool:
        return self.role == self.Role.OWNER


class AccountGrantQuerySet(models.QuerySet):
    def allowing(self, project: Project) -> AccountGrantQuerySet:
        """The grants that let this project spend an account: to the project itself, or to
        one of its owners who may still sign in."""
        owners = Membership.objects.filter(
            project_id=project.pk, role=Membership.Role.OWNER, user__is_active=True
        ).values("user_id")
        return self.filter(Q(project_id=project.pk) | Q(user_id__in=owners))


class AccountGrant(models.Model):
    """Staff let one person, or one project, spend a Flow account's credits.

    A person granted an account may create projects that spend it; a project may generate on
    its account while the account is granted to it or to one of its owners.
    """

    account = models.ForeignKey(FlowAccount, models.CASCADE, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.CASCADE,
        null=True,
        blank=True,
        related_name="account_grants",
    )
    project = models.ForeignKey(
        Project, models.CASCADE, null=True, blank=True, related_name="account_grants"
    )
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)

    objects = AccountGrantQuerySet.as_manager()

    class Meta:
        ordering = ["account", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, project__isnull=True)
                | Q(user__isnull=True, project__isnull=False),
                name="grant_to_a_user_or_a_project",
                violation_error_message="Grant the account either to a person or to a "
                "project, not both and not neither.",
            ),
            models.UniqueConstraint(
                fields=["account", "user"],
                condition=Q(user__isnull=False),
                name="one_grant_per_account_and_user",
                violation_error_message="This person already has this account.",
            ),
            models.UniqueConstraint(
                fields=["account", "project"],
                condition=Q(project__isnull=False),
                name="one_grant_per_account_and_project",
                violation_error_message="This project already has this account.",
            ),
        ]

    def __str__(self) -> str:
        grantee = f"project {self.project}" if self.project_id else str(self.user)
        return f"{self.account} for {grantee}"


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

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, models.CASCADE, related_name="scenes")
    position = models.PositiveIntegerField(default=0)
    title = models.CharField(max_length=120, blank=True, validators=[rules.SCENE_TITLE])
    prompt = models.TextField(
        max_length=rules.MAX_PROMPT_CHARACTERS,
        validators=[rules.validate_prompt],
        error_messages={"blank": rules.PROMPT_REQUIRED},
    )
    # RESTRICT, not PROTECT: an image a scene shows cannot be deleted on its own, but deleting
    # the project takes its scenes and images together.
    start_image = models.ForeignKey(
        ImageAsset, models.RESTRICT, null=True, blank=True, related_name="scenes"
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

    def clean(self) -> None:
        """The model must make this scene's aspect on the project's account (its tier), and
        the clip options must be ones the account's engine offers."""
        if not self.model_key:
            problems = rules.options_problems(
                self, getattr(self, "project", None) and self.project.account
            )
            if problems:
                raise ValidationError(problems)
            return  # the field's own rule says so
        aspect = self.aspect if self.aspect in self.AspectChoice.values else None
        project = getattr(self, "project", None)  # a form may judge a scene before it has one
        account = project and project.account
        problems = rules.options_problems(self, account)
        problem = rules.model_problem(self.model_key, aspect, account)
        if problem:
            problems["model_key"] = problem
        if problems:
            raise ValidationError(problems)

    def generation_problem(self) -> str:
        """Why this scene cannot be generated as it stands, in words, or "" when it can."""
        account = self.project.account
        if account is None:
            return "The project has no Flow account to spend; ask an admin to set one."
        if self.start_image_id is None:
            return "Add a start image before generating."
        if not self.prompt.strip():
            return rules.PROMPT_REQUIRED
        problems = rules.options_problems(self, account)
        if problems:
            return next(iter(problems.values()))
        return rules.model_problem(self.model_key, self.aspect, account)

    def generate(self, user) -> list[Generation]:
        """Create this scene's next takes (``work.generate`` also hands them to the worker)."""
        problem = self.generation_problem()
        if problem:
            raise CannotGenerate(problem)
        self.project.check_spending()
        return _create_generations(self.project, user, {self.pk: self.take_snapshots()})[self.pk]

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

    def take_snapshots(self) -> list[dict]:
        """What each of this scene's next takes asks of Flow (a seed drawn per take when the
        scene leaves it open)."""
        snapshot = {name: getattr(self, name) for name in SNAPSHOT_FIELDS}
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
    "start_image_id",
    "duration",
    "resolution",
    "audio",
    "negative_prompt",
    "person_generation",
)


def random_seed() -> int:
    return secrets.randbelow(2**31)


def _create_generations(
    project: Project, user, snapshots: dict[int, list[dict]]
) -> dict[int, list[Generation]]:
    """Number and create the new takes of these scenes (scene id -> one snapshot of what to ask
    Flow per take). Handing them to the worker is the caller's (``work``).

    The same few statements for one scene or fifty: the scenes' last take numbers in one
    query, every take in one insert.
    """
    with transaction.atomic():
        last = dict(
            Generation.objects.filter(scene_id__in=snapshots)
            .order_by()
            .values("scene_id")
            .annotate(last=models.Max("take"))
            .values_list("scene_id", "last")
        )
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


class Generation(models.Model):
    """One take of a scene: one clip asked of Flow, and everything that happened to it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SUBMITTING = "submitting", "Submitting to Flow"
        PENDING = "pending", "Waiting in Flow's queue"
        ACTIVE = "active", "Rendering"
        DOWNLOADING = "downloading", "Downloading"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        # The submit call may or may not have reached Flow; resubmitting could pay twice.
        UNCERTAIN = "uncertain", "Submission uncertain"

    IN_FLIGHT = (
        Status.QUEUED,
        Status.SUBMITTING,
        Status.PENDING,
        Status.ACTIVE,
        Status.DOWNLOADING,
    )
    FINAL = (Status.READY, Status.FAILED, Status.CANCELLED, Status.UNCERTAIN)

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    scene = models.ForeignKey(Scene, models.CASCADE, related_name="generations")
    # Denormalised so a project's gallery and poll need no join through scenes.
    project = models.ForeignKey(Project, models.CASCADE, related_name="generations")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="generations"
    )
    account = models.ForeignKey(
        FlowAccount, models.SET_NULL, null=True, blank=True, related_name="generations"
    )
    take = models.PositiveIntegerField(default=1)

    # What was asked, frozen at Generate time: editing the scene later does not rewrite history.
    prompt = models.TextField()
    model_key = models.CharField(max_length=60)
    aspect = models.CharField(max_length=10, choices=Scene.AspectChoice)
    # The scene's clip options when the take was made (blank: the engine's default).
    duration = models.PositiveSmallIntegerField(null=True, blank=True)
    resolution = models.CharField(max_length=10, blank=True)
    audio = models.BooleanField(default=False)
    negative_prompt = models.TextField(blank=True)
    person_generation = models.CharField(max_length=20, blank=True)
    seed = models.PositiveIntegerField()
    start_image = models.ForeignKey(
        ImageAsset, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    status = models.CharField(max_length=12, choices=Status, default=Status.QUEUED)
    reason = models.CharField(max_length=500, blank=True)
    # The id Flowsite chose for this clip (sent as Flow's per-clip sceneId).
    request_id = models.UUIDField(default=uuid4, unique=True, editable=False)
    operation_name = models.CharField(max_length=200, blank=True, db_index=True)
    media_generation_id = models.TextField(blank=True)
    credits_after = models.IntegerField(null=True, blank=True)
    # What the take cost when it was asked for (see Scene.take_cost): dollars or credits.
    cost = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    cost_unit = models.CharField(max_length=10, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # A worker that claims the take holds it until this time; an expired lease is reclaimed.
    lease_until = models.DateTimeField(null=True, blank=True)
    # The token of the worker pass holding the take; a pass writes only rows carrying its token,
    # so a take cancelled (claim cleared) or reclaimed by another worker is left alone.
    claim = models.UUIDField(null=True, blank=True, editable=False)
    next_check_at = models.DateTimeField(null=True, blank=True)
    # Downloads that failed in a way a fresh link may fix; bounded so a take cannot loop forever.
    download_attempts = models.PositiveSmallIntegerField(default=0)
    # Status calls failed in a row (Flow's 500s, network): the next check backs off further.
    check_errors = models.PositiveSmallIntegerField(default=0)

    video = models.FileField(max_length=300, blank=True)
    video_size = models.PositiveBigIntegerField(null=True, blank=True)
    video_sha256 = models.CharField(max_length=64, blank=True)
    poster = models.FileField(max_length=300, blank=True)
    poster_sha256 = models.CharField(max_length=64, blank=True)

    created = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Bumped on every change a viewer can see; the page poll asks "what changed since T?".
    updated = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["scene", "take"]
        indexes = [
            models.Index(fields=["status", "next_check_at"], name="gen_status_check"),
            models.Index(fields=["project", "status", "-finished_at"], name="gen_gallery"),
            # The gallery's per-member counts and one member's page of clips, from the index.
            models.Index(
                fields=["project", "status", "requested_by", "-finished_at", "-id"],
                name="gen_gallery_member",
            ),
            models.Index(fields=["project", "updated"], name="gen_project_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.scene} · take {self.take}"

    @property
    def in_flight(self) -> bool:
        return self.status in self.IN_FLIGHT

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY

    @property
    def elapsed(self) -> timedelta:
        end = self.finished_at or timezone.now()
        return end - self.created

    def media_dir(self) -> str:
        return f"clips/{self.project.uuid}/{self.uuid}"

    def cancel(self, by=None) -> bool:
        """Stop following this take. False when it had already finished.

        The conditional update also clears the worker's claim, so a pass that is polling or
        downloading this take finds its token gone and leaves the row alone. Flow has no cancel
        call: a clip already submitted may still render (and cost) upstream.
        """
        now = timezone.now()
        reason = f"Cancelled by {by}." if by is not None else "Cancelled."
        changed = Generation.objects.filter(pk=self.pk, status__in=self.IN_FLIGHT).update(
            status=self.Status.CANCELLED,
            reason=reason,
            claim=None,
            lease_until=None,
            next_check_at=None,
            finished_at=now,
            updated=now,
        )
        if changed:
            self.status, self.reason, self.claim, self.lease_until = (
                self.Status.CANCELLED,
                reason,
                None,
                None,
            )
            self.next_check_at, self.finished_at, self.updated = None, now, now
        return bool(changed)

    def retry_problem(self) -> str:
        """Why this take cannot be asked for again as it stands, in words, or ""."""
        account = self.project.account
        if account is None:
            return "The project has no Flow account to spend; ask an admin to set one."
        if self.start_image_id is None:
            return "The start image of this take no longer exists; generate from the scene."
        if get_model(self.model_key) is None:
            return f"The model {self.model_key!r} is no longer offered; generate from the scene."
        # The tier rule, in the scene's words (the take keeps the aspect it was made with).
        return rules.model_problem(self.model_key, None, account)

    def retry_as_new_take(self, user) -> Generation:
        """A new queued take of the same scene with this take's snapshot."""
        problem = self.retry_problem()
        if problem:
            raise CannotGenerate(problem)
        self.project.check_spending()
        snapshot = {
            name: getattr(self, name) for name in (*SNAPSHOT_FIELDS, "seed", "cost", "cost_unit")
        }
        return _create_generations(self.project, user, {self.scene_id: [snapshot]})[self.scene_id][
            0
        ]

    def resubmit(self, user) -> Generation:
        """Submit an uncertain take again, knowingly: it may be paid for twice."""
        if self.status != self.Status.UNCERTAIN:
            raise CannotGenerate(
                "Only a take whose submission is uncertain can be submitted again."
            )
        with transaction.atomic():
            take = self.retry_as_new_take(user)
            self.reason = f"Submitted again by {user} as take {take.take}."
            self.updated = timezone.now()
            self.save(update_fields=["reason", "updated"])
        return take


class WorkerLease(models.Model):
    """A named lease on one job that must run once across every worker (the pump).

    Taken and renewed with a conditional UPDATE, so it works the same on SQLite and PostgreSQL;
    a holder that crashes simply stops renewing and the lease lapses at ``until``.
    """

    name = models.CharField(max_length=50, unique=True)
    holder = models.CharField(max_length=64, blank=True)
    until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'} until {self.until}"

    @classmethod
    def acquire(cls, name: str, holder: str, seconds: float) -> bool:
        """Take the lease if it is free or lapsed (or renew it if ``holder`` has it)."""
        now = timezone.now()
        until = now + timedelta(seconds=seconds)
        if (
            cls.objects.filter(name=name)
            .filter(Q(until__isnull=True) | Q(until__lt=now) | Q(holder=holder))
            .update(holder=holder, until=until)
        ):
            return True
        try:
            with transaction.atomic():
                cls.objects.create(name=name, holder=holder, until=until)
        except IntegrityError:
            return False  # it exists, and someone else holds it
        return True

    @classmethod
    def release(cls, name: str, holder: str) -> None:
        cls.objects.filter(name=name, holder=holder).update(holder="", until=None)

    @classmethod
    def is_held(cls, name: str) -> bool:
        return cls.objects.filter(name=name, until__gte=timezone.now()).exists()


IN_FLIGHT_Q = Q(status__in=Generation.IN_FLIGHT)


class SignInFailure(models.Model):
    """One failed sign-in, kept while it counts towards the throttle (generations/throttle.py).

    In the database rather than Django's cache: the default cache lives in each process, and
    with several web workers each would count (and forgive) on its own.
    """

    # Case-folded, so "Alice" and "ALICE" count against the same account.
    username = models.CharField(max_length=150)
    # The client's address; for IPv6 its /64 network, which one client usually holds whole.
    address = models.CharField(max_length=64)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["username", "at"], name="signin_failure_username"),
            models.Index(fields=["address", "at"], name="signin_failure_address"),
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.address} at {self.at:%Y-%m-%d %H:%M:%S}"
