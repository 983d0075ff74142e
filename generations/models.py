"""Flowsite's data: who works on what, what was asked of Flow, and what came back.

Long because every model and its behaviour lives here, as Django apps usually keep them; it is
due to be split into a package by area (accounts and grants, projects and team, scenes and
takes, film), which has not been done yet.
"""

from __future__ import annotations

import hashlib
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
from .budgets import amount, month_start
from .crypto import EncryptedTextField
from .engines.base import Aspect, Credentials, EngineKind, ImageData
from .engines.catalogue import (
    TIER_ONE,
    TIERS,
    can_make,
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

    # --- Whether the worker may send a take on it now (failover: generations/failover.py) ---

    @staticmethod
    def open_q(now, via: str = "") -> Q:
        """Accounts Flowsite may call now: no problem waiting for an admin, credentials not
        being re-checked, no cool-down after a 429. ``via``: the path to the account from the
        queried model (``"account__"``)."""
        return (
            Q(**{f"{via}problem": ""})
            & Q(**{f"{via}credential_refusals": 0})
            & (
                Q(**{f"{via}cool_down_until__isnull": True})
                | Q(**{f"{via}cool_down_until__lte": now})
            )
        )

    def is_open(self, now) -> bool:
        """``open_q`` for a loaded account."""
        until = self.cool_down_until
        return (
            not self.problem and self.credential_refusals == 0 and (until is None or until <= now)
        )

    def can_make(self, model_key: str) -> bool:
        return can_make(self.kind, self.tier, model_key)

    def short_of_credits(self, model_key: str) -> bool:
        """Whether Flow last reported fewer credits than one take of ``model_key`` costs here
        (never for Vertex AI, which bills instead)."""
        if self.is_vertex or self.credits is None:
            return False
        cost = flow_credits(model_key, self.tier)
        return cost is not None and self.credits < cost

    def state_words(self, now) -> str:
        """What keeps the account from taking work now, in words; "" when nothing does."""
        engine = "Vertex AI" if self.is_vertex else "Flow"
        if self.problem:
            return self.problem
        if self.credential_refusals:
            return f"{engine} refused its credentials; Flowsite is re-checking them."
        if self.cool_down_until is not None and self.cool_down_until > now:
            until = timezone.localtime(self.cool_down_until)
            return f"Cooling down after {engine} throttled it, until {until:%H:%M:%S}."
        if self.credits is not None and not self.is_vertex and self.credits <= 0:
            return "Out of credits."
        return ""

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
    # Archived projects are read-only (nothing generated or edited) and out of the list by
    # default; owners restore them.
    archived_at = models.DateTimeField(null=True, blank=True)
    # Credits the project may spend in a calendar month; None: no limit (owners set it).
    monthly_budget = models.PositiveIntegerField(null=True, blank=True)

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
        if self.archived_at is not None:
            return ARCHIVED_PROBLEM.format(project=self)
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

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    def set_archived(self, archived: bool) -> bool:
        """Archive or restore; False when it already was so (two owners clicking at once)."""
        now = timezone.now() if archived else None
        changed = Project.objects.filter(pk=self.pk, archived_at__isnull=archived).update(
            archived_at=now
        )
        if changed:
            self.archived_at = now
        return bool(changed)

    def rename(self, name: str) -> None:
        self.name = name
        self.full_clean(validate_unique=False, validate_constraints=False)
        self.save(update_fields=["name"])

    def deletion_counts(self) -> dict[str, int]:
        """What deleting the project takes with it, for the confirmation."""
        return Project.objects.filter(pk=self.pk).aggregate(
            scenes=models.Count("scenes", distinct=True),
            takes=models.Count("generations", distinct=True),
        )

    def delete_with_media(self) -> dict[str, int]:
        """Delete the project, its scenes, takes and images; the clips' and posters' files go
        once that is committed (start images' files go with their rows, see cleanup.py).
        Returns what went (``deletion_counts``)."""
        video = Generation._meta.get_field("video")
        with transaction.atomic():
            counts = self.deletion_counts()
            names = [
                name
                for pair in self.generations.values_list("video", "poster")
                for name in pair
                if name
            ]
            names += [name for name in self.upscales.values_list("video", flat=True) if name]
            self.delete()
            transaction.on_commit(
                lambda: [video.storage.delete(name) for name in names], robust=True
            )
        return counts

    def duplicate(self, by) -> Project:
        """A copy with the same account, members and scenes, each scene with its images
        (their files copied too); no takes. ``by`` owns the copy."""
        from django.core.files.base import ContentFile

        scenes = list(self.scenes.select_related(*Scene.IMAGE_FIELDS).order_by("position", "id"))
        images = {
            image.pk: image
            for scene in scenes
            for name in Scene.IMAGE_FIELDS
            if (image := getattr(scene, name)) is not None
        }
        copy = Project(name=copy_name(self.name), account_id=self.account_id, created_by=by)
        written: list[ImageAsset] = []
        try:
            with transaction.atomic():
                copy.save(force_insert=True)
                Membership.objects.bulk_create(
                    [
                        Membership(project=copy, user_id=member.user_id, role=member.role)
                        for member in self.memberships.exclude(user_id=by.pk)
                    ]
                    + [Membership(project=copy, user=by, role=Membership.Role.OWNER)]
                )
                copies: dict[int, ImageAsset] = {}
                for image_id, image in images.items():
                    new = ImageAsset(
                        project=copy,
                        **{
                            name: getattr(image, name)
                            for name in (
                                "mime_type",
                                "width",
                                "height",
                                "size",
                                "sha256",
                                "original_name",
                            )
                        },
                        uploaded_by_id=image.uploaded_by_id,
                    )
                    with image.file.open("rb") as handle:
                        new.file.save("copy", ContentFile(handle.read()), save=False)
                    written.append(new)
                    copies[image_id] = new
                ImageAsset.objects.bulk_create(list(copies.values()))
                ProjectAccount.objects.bulk_create(
                    [
                        ProjectAccount(
                            project=copy, account_id=row.account_id, position=row.position
                        )
                        for row in self.later_accounts.all()
                    ]
                )
                # An extension's source take is the original project's: the copy's
                # extension scenes say their source is gone rather than point across projects.
                skip = {
                    "id",
                    "uuid",
                    "project",
                    *Scene.IMAGE_FIELDS,
                    "source_take",
                    "created",
                    "updated",
                }
                now = timezone.now()
                Scene.objects.bulk_create(
                    [
                        Scene(
                            project=copy,
                            **{
                                name: copies.get(getattr(scene, f"{name}_id"))
                                for name in Scene.IMAGE_FIELDS
                            },
                            created=now,
                            updated=now,
                            **{
                                field.attname: getattr(scene, field.attname)
                                for field in Scene._meta.concrete_fields
                                if field.name not in skip
                            },
                        )
                        for scene in scenes
                    ]
                )
        except BaseException:
            # The copied files belong to rows that were never committed.
            for image in written:
                image.file.delete(save=False)
            raise
        return copy

    def reorder_scenes(self, scene_uuids: list) -> bool:
        """Put the storyboard in the order of ``scene_uuids`` (call inside a transaction).

        The list must name every scene of this project exactly once: anything else (another
        project's scene, a scene deleted or added meanwhile, a repeat) changes nothing and
        returns False, so an order made on a stale page never half-applies.
        """
        ordered = list(self.scenes.select_for_update().only("pk", "uuid", "position"))
        by_uuid = {scene.uuid: scene for scene in ordered}
        if len(scene_uuids) != len(by_uuid) or set(scene_uuids) != set(by_uuid):
            return False
        renumbered = []
        for position, scene_uuid in enumerate(scene_uuids):
            scene = by_uuid[scene_uuid]
            if scene.position != position:
                scene.position = position
                renumbered.append(scene)
        if renumbered:
            Scene.objects.bulk_update(renumbered, ["position"])
            # Untitled scenes are named by position, so a renumbering alone changes cards too.
            self.mark_scenes_changed()
        return True

    def accounts_in_order(self) -> list[FlowAccount]:
        """Every account this project spends, first to last (``Project.account``, then its
        ``ProjectAccount`` rows), whether or not still granted; two queries at most."""
        first = [self.account] if self.account_id is not None else []
        later = [
            row.account
            for row in self.later_accounts.select_related("account").order_by("position", "id")
            if row.account_id != self.account_id
        ]
        return first + later

    def set_accounts(self, accounts: list[FlowAccount]) -> None:
        """Spend ``accounts`` in this order: the first becomes ``Project.account`` (the one
        its scenes are judged and priced on), the others the accounts the worker falls back
        on. Takes already queued move by themselves (the worker picks their account)."""
        with transaction.atomic():
            self.account = accounts[0]
            self.save(update_fields=["account"])
            self.later_accounts.all().delete()
            ProjectAccount.objects.bulk_create(
                [
                    ProjectAccount(project=self, account=account, position=position)
                    for position, account in enumerate(accounts[1:], start=1)
                ]
            )

    def add_member(self, user, role: str) -> Membership:
        membership, _ = Membership.objects.update_or_create(
            project=self, user=user, defaults={"role": role}
        )
        return membership


class ProjectAccount(models.Model):
    """An account a project falls back on, after its first account (``Project.account``):
    the worker sends a queued take on the first of the project's accounts that can take it
    now (generations/failover.py). Position 0 is the first account itself, so the rows start
    at 1; owners choose and order them among the accounts granted to the project or to one of
    its owners, and a row whose grant was revoked is skipped."""

    project = models.ForeignKey(Project, models.CASCADE, related_name="later_accounts")
    account = models.ForeignKey(FlowAccount, models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["project", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "account"], name="one_row_per_project_and_account"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account} for {self.project} (#{self.position + 1})"


ARCHIVED_PROBLEM = (
    "{project} is archived, so it is read-only: nothing can be generated or edited. "
    "An owner can restore it from the project's settings."
)


def copy_name(name: str) -> str:
    suffix = " (copy)"
    return name[: Project._meta.get_field("name").max_length - len(suffix)] + suffix


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        EDITOR = "editor", "Editor"
        VIEWER = "viewer", "Viewer"

    project = models.ForeignKey(Project, models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role, default=Role.EDITOR)
    created = models.DateTimeField(default=timezone.now)
    # Credits this member may spend in the project in a calendar month; None: no limit of
    # their own (the project's budget still holds).
    monthly_allowance = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"

    @property
    def can_edit(self) -> bool:
        # An archived project is read-only for everyone (owners restore it first).
        return self.role in (self.Role.OWNER, self.Role.EDITOR) and not self.project.is_archived

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
    title = models.CharField(max_length=120, blank=True, validators=[rules.SCENE_TITLE])
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
    def inputs_present(cls) -> Q:
        """Scenes holding the images their mode needs (rules.MODE_IMAGE_FIELDS), as a filter."""
        return (
            Q(mode=cls.Mode.TEXT)
            | Q(mode=cls.Mode.IMAGE, start_image__isnull=False)
            | Q(mode=cls.Mode.FRAMES, start_image__isnull=False, end_image__isnull=False)
            | Q(mode=cls.Mode.INGREDIENTS, reference_1__isnull=False)
        )

    @property
    def references(self) -> list[ImageAsset]:
        """The reference images, in order (loaded with the scene by ``select_related``)."""
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

    def clean(self) -> None:
        """The model must make this scene's aspect in its mode on the project's account (its
        tier), the scene may hold only the images its mode uses, and the clip options must be
        ones the account's engine offers. The images still to be added are Generate's
        concern (``generation_problem``): a scene may be saved before it is ready."""
        project = getattr(self, "project", None)  # a form may judge a scene before it has one
        account = project and project.account
        problems = rules.options_problems(self, account)
        problems.update(self.mode_problems(missing=False))
        if "duration" not in problems:
            problem = rules.mode_options_problem(self.mode, self.duration, account)
            if problem:
                problems["duration"] = problem
        if self.model_key:
            aspect = self.aspect if self.aspect in self.AspectChoice.values else None
            mode = self.mode if self.mode in self.Mode.values else None
            problem = rules.model_problem(self.model_key, aspect, account, mode)
            if problem:
                problems["model_key"] = problem
        # (No model: the field's own rule says so.)
        if problems:
            raise ValidationError(problems)

    def generation_problem(self) -> str:
        """Why this scene cannot be generated as it stands, in words, or "" when it can."""
        account = self.project.account
        if account is None:
            return "The project has no Flow account to spend; ask an admin to set one."
        if self.mode == self.Mode.EXTEND:
            from .take_actions import extend_problem

            problem = extend_problem(self.source_take, account, self.source_take_id)
            if problem:
                return problem
        else:
            problems = self.mode_problems(missing=True)
            if problems:
                return next(iter(problems.values()))
        if not self.prompt.strip():
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
    total = sum(
        snapshot["cost"] or 0
        for scene_snapshots in snapshots.values()
        for snapshot in scene_snapshots
    )
    unit = next(
        (s["cost_unit"] for scene_snapshots in snapshots.values() for s in scene_snapshots), ""
    )
    with transaction.atomic():
        if total:
            check_budget(project, user, total, unit)
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


# The takes whose credits count: Flow charges neither a failed clip nor one never submitted.
SPENDING_Q = ~Q(status="failed") & ~Q(status="cancelled", submitted_at__isnull=True)


def check_budget(project: Project, user, cost, unit: str = COST_CREDITS) -> None:
    """Refuse, in words, ``cost`` more (credits on Flow, US dollars on Vertex AI: budgets count
    in the unit of the project's account) that would pass the project's monthly budget or the
    member's monthly allowance. Call inside the transaction that creates the takes.

    The project's row is locked first (PostgreSQL; SQLite's transactions write one at a
    time anyway), so two clicks at the line are counted one after the other and cannot both
    slip under it. The budget and the allowance are read under the same lock.
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
    spent = Generation.objects.filter(
        SPENDING_Q, project_id=project.pk, cost_unit=unit, created__gte=month_start()
    ).aggregate(
        total=models.Sum("cost", default=0),
        mine=models.Sum("cost", default=0, filter=Q(requested_by_id=getattr(user, "pk", None))),
    )
    # Upscales spend the same credits, beside the takes they copy.
    upscaled = Upscale.objects.filter(
        SPENDING_Q, project_id=project.pk, cost_unit=unit, created__gte=month_start()
    ).aggregate(
        total=models.Sum("cost", default=0),
        mine=models.Sum("cost", default=0, filter=Q(requested_by_id=getattr(user, "pk", None))),
    )
    spent = {key: spent[key] + upscaled[key] for key in spent}
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
    # What the clip was made from (the scene's mode and the images it used then), so the take
    # can be asked for again as it was.
    mode = models.CharField(max_length=12, choices=Scene.Mode, default=Scene.Mode.IMAGE)
    start_image = models.ForeignKey(
        ImageAsset, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The ready take this take extends (its scene's ``source_take`` when it was asked for).
    source_take = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="+"
    )
    end_image = models.ForeignKey(
        ImageAsset, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reference_1 = models.ForeignKey(
        ImageAsset, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reference_2 = models.ForeignKey(
        ImageAsset, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reference_3 = models.ForeignKey(
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

    def manifest_entry(
        self, scene_number: int, file_name: str | None, numbers: dict | None = None
    ) -> dict:
        """What an export's manifest says of this take (``storyboard export`` and the zip of
        takes write the same fields); ``sha256`` is filled in once the file is copied.
        ``numbers`` (take id -> (scene number, take number)) names the take it extends; the
        take comes with ``upscale_list`` to list its resolutions."""
        from .take_actions import resolutions

        source = None
        if self.source_take_id is not None:
            scene, take = (numbers or {}).get(self.source_take_id, (None, None))
            source = {"scene": scene, "take": take}
        return {
            "source_take": source,
            "resolutions": resolutions(self) if self.is_ready else [],
            "scene": scene_number,
            "take": self.take,
            "prompt": self.prompt,
            "model": self.model_key,
            "aspect": self.aspect,
            "mode": self.mode,
            # The images the clip was made from (load them with ``INPUT_RELATIONS``).
            "inputs": [
                {"role": role, "file": str(image), "sha256": image.sha256}
                for role, image in self.input_images()
            ],
            "seed": self.seed,
            "status": self.status,
            "reason": self.reason,
            "requested_by": self.requested_by.get_username() if self.requested_by else None,
            "file": file_name,
            "sha256": None,
        }

    # What to select_related to read a take's images without a query each.
    INPUT_RELATIONS = ("start_image", "end_image", "reference_1", "reference_2", "reference_3")
    INPUT_ROLES = {
        "start_image": "start",
        "end_image": "end",
        "reference_1": "reference",
        "reference_2": "reference",
        "reference_3": "reference",
    }

    def input_images(self) -> list[tuple[str, ImageAsset]]:
        """(role, image) for each image this take was made from, in the order sent."""
        return [
            (self.INPUT_ROLES[name], image)
            for name in rules.MODE_IMAGE_FIELDS.get(self.mode, ())
            if getattr(self, f"{name}_id") is not None and (image := getattr(self, name))
        ]

    def missing_input(self) -> str:
        """ "The start image", "The end image" or "The reference images" when an image the
        take's mode needs is gone (deleted since), else ""."""
        missing = rules.mode_input_problems(
            self.mode,
            start=self.start_image_id is not None,
            end=self.end_image_id is not None,
            references=sum(
                getattr(self, f"{name}_id") is not None for name in rules.REFERENCE_FIELDS
            ),
        )
        words = {
            "start_image": "The start image",
            "end_image": "The end image",
            "reference_1": "The reference images",
        }
        return words[next(iter(missing))] if missing else ""

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
        if self.scene.mode == Scene.Mode.EXTEND:
            from .take_actions import extend_problem

            problem = extend_problem(self.source_take, account, self.source_take_id)
            if problem:
                return problem
        else:
            gone = self.missing_input()
            if gone:
                verb = "exist" if "images" in gone else "exists"
                return f"{gone} of this take no longer {verb}; generate from the scene."
        if get_model(self.model_key) is None:
            return f"The model {self.model_key!r} is no longer offered; generate from the scene."
        # The tier rule, in the scene's words (the take keeps the aspect it was made with).
        return rules.model_problem(self.model_key, None, account, self.mode)

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


def hash_invite_token(token: str) -> str:
    """What an invite stores of its token: a link leaked from the database opens nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


class PasswordResetRequest(models.Model):
    """One request of the password-reset form, counted by the reset throttle
    (generations/reset_throttle.py) for the address typed and for the client it came from."""

    # A keyed hash of the case-folded address typed: counted, never read back, and an address
    # that belongs to nobody here is not kept in the clear.
    email_key = models.CharField(max_length=64)
    address = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["email_key", "at"], name="reset_email_at"),
            models.Index(fields=["address", "at"], name="reset_address_at"),
        ]

    def __str__(self) -> str:
        return f"{self.address or 'unknown'} at {self.at:%Y-%m-%d %H:%M}"


class InviteQuerySet(models.QuerySet):
    def usable(self) -> InviteQuerySet:
        return self.filter(
            used_at__isnull=True, revoked_at__isnull=True, expires__gt=timezone.now()
        )


class Invite(models.Model):
    """An owner's invitation into one project with one role, followed once by whoever has the link.

    Only a hash of the link's token is kept (``hash_invite_token``); the link itself is shown
    to the owner and emailed once, when the invite is made.
    """

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, models.CASCADE, related_name="invites")
    role = models.CharField(max_length=10, choices=Membership.Role, default=Membership.Role.EDITOR)
    email = models.EmailField(blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = InviteQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.get_role_display()} of {self.project} for {self.email or 'a link'}"

    @classmethod
    def issue(cls, project: Project, role: str, by, email: str = "") -> tuple[Invite, str]:
        """A new invite and the token of its link (the token is not stored)."""
        token = secrets.token_urlsafe(32)
        now = timezone.now()
        invite = cls.objects.create(
            project=project,
            role=role,
            email=email,
            token_hash=hash_invite_token(token),
            invited_by=by,
            created=now,
            expires=now + timedelta(days=settings.FLOWSITE_INVITE_DAYS),
        )
        return invite, token

    @classmethod
    def for_token(cls, token: str) -> Invite | None:
        return (
            cls.objects.select_related("project")
            .filter(token_hash=hash_invite_token(token))
            .first()
        )

    @property
    def state(self) -> str:
        if self.used_at is not None:
            return "used"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires <= timezone.now():
            return "expired"
        return "open"

    def problem(self) -> str:
        """Why this invite cannot be followed, in words, or "" when it can."""
        return {
            "used": "This invite has already been used. Ask the project's owner for a new one.",
            "revoked": "This invite was withdrawn by the project's owner.",
            "expired": "This invite has expired. Ask the project's owner for a new one.",
        }.get(self.state, "")

    def revoke(self) -> bool:
        """Withdraw the invite; False when it was already used or withdrawn."""
        now = timezone.now()
        changed = Invite.objects.filter(
            pk=self.pk, used_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=now)
        if changed:
            self.revoked_at = now
        return bool(changed)

    def claim(self, user) -> bool:
        """Use the invite for ``user`` (call inside the transaction that adds them).

        One conditional UPDATE: of two people following the link at once, the database lets
        exactly one change the row; the other finds it used and gets False.
        """
        now = timezone.now()
        changed = Invite.objects.usable().filter(pk=self.pk).update(used_at=now, used_by=user)
        if changed:
            self.used_at, self.used_by = now, user
        return bool(changed)


class AuditEvent(models.Model):
    """Who did what, when, in which project: written once, never changed (the admin shows it
    read-only). Names are copied in, so the trail still reads after a person or a project is
    deleted."""

    class Action(models.TextChoices):
        INVITE_SENT = "invite.sent", "Invite made"
        INVITE_USED = "invite.used", "Invite used"
        INVITE_REVOKED = "invite.revoked", "Invite withdrawn"
        MEMBER_ADDED = "member.added", "Member added"
        MEMBER_ROLE = "member.role", "Role changed"
        MEMBER_REMOVED = "member.removed", "Member removed"
        PROJECT_RENAMED = "project.renamed", "Project renamed"
        PROJECT_ARCHIVED = "project.archived", "Project archived"
        PROJECT_RESTORED = "project.restored", "Project restored"
        PROJECT_DELETED = "project.deleted", "Project deleted"
        PROJECT_DUPLICATED = "project.duplicated", "Project duplicated"
        TAKES_GENERATED = "takes.generated", "Takes generated"
        TAKE_CANCELLED = "take.cancelled", "Take cancelled"
        ACCOUNT_GRANTED = "account.granted", "Account granted"
        ACCOUNT_REVOKED = "account.revoked", "Account revoked"
        ACCOUNT_CHECKED = "account.checked", "Account checked again"
        BUDGET_CHANGED = "budget.changed", "Budget changed"
        ALLOWANCE_CHANGED = "allowance.changed", "Allowance changed"
        ACCOUNTS_ORDERED = "accounts.ordered", "Accounts chosen"

    at = models.DateTimeField(default=timezone.now, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    actor_name = models.CharField(max_length=150, blank=True, editable=False)
    project = models.ForeignKey(
        Project,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_events",
        editable=False,
    )
    project_name = models.CharField(max_length=120, blank=True, editable=False)
    action = models.CharField(max_length=30, choices=Action, editable=False)
    details = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["project", "-at", "-id"], name="audit_project_at")]

    def __str__(self) -> str:
        return (
            f"{self.at:%Y-%m-%d %H:%M} {self.actor_name or 'system'}: {self.get_action_display()}"
        )

    @classmethod
    def record(
        cls, action: str, actor=None, project: Project | None = None, **details
    ) -> AuditEvent:
        actor = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
        return cls.objects.create(
            action=action,
            actor=actor,
            actor_name=actor.get_username() if actor else "",
            project=project if project is not None and project.pk else None,
            project_name=project.name if project is not None else "",
            details=details,
        )

    def summary(self) -> str:
        """The details in a line a person reads."""
        # Sorted: PostgreSQL's jsonb keeps keys in its own order, SQLite in the written one.
        return "; ".join(
            f"{key.replace('_', ' ')}: {_plain(value)}"
            for key, value in sorted(self.details.items())
        )


def _plain(value) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


class Pick(models.Model):
    """The take a scene's team chose for the film, with where to cut it.

    One row per scene at most (the one-to-one is the database's promise); the take must be a
    ready take of that scene, which ``Scene.set_pick`` checks.
    """

    scene = models.OneToOneField(Scene, models.CASCADE, related_name="pick")
    take = models.ForeignKey(Generation, models.CASCADE, related_name="picks")
    # Seconds into the clip where the film enters and leaves it; None: its start and its end.
    trim_in = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    trim_out = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    picked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    picked_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.scene}: take {self.take.take}"

    @property
    def trimmed(self) -> bool:
        return self.trim_in is not None or self.trim_out is not None

    @classmethod
    def choose(cls, take: Generation, user=None) -> Pick:
        """Make ``take`` its scene's pick (replacing any other); its card reaches every open page
        through the poll, because the scene's ``updated`` moves."""
        if take.status != Generation.Status.READY or not take.video:
            raise CannotGenerate("Only a ready take can be picked for the film.")
        now = timezone.now()
        with transaction.atomic():
            pick, _ = Pick.objects.update_or_create(
                scene_id=take.scene_id,
                defaults={
                    "take": take,
                    "trim_in": None,
                    "trim_out": None,
                    "picked_by": user,
                    "picked_at": now,
                },
            )
            Scene.objects.filter(pk=take.scene_id).update(updated=now)
        return pick

    @classmethod
    def clear(cls, scene: Scene) -> bool:
        """The scene has no pick any more; False when it had none."""
        now = timezone.now()
        with transaction.atomic():
            deleted, _ = Pick.objects.filter(scene_id=scene.pk).delete()
            if deleted:
                Scene.objects.filter(pk=scene.pk).update(updated=now)
        return bool(deleted)


def _film_path(instance: FilmRender, filename: str) -> str:
    return instance.file_name()


class FilmRender(models.Model):
    """One render of a project's film: who asked, which takes and trims, how far it got.

    Every render is kept as a version. While one renders, the worker writes its progress (the
    share of frames done) and ``heartbeat``; a render whose heartbeat stops is a worker that
    died, which ``reap_stale`` marks failed so the film can be rendered again.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RENDERING = "rendering", "Rendering"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RENDERING)

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, models.CASCADE, related_name="films")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The takes and trims rendered, frozen when the render was asked for: scene number and
    # name, take number and uuid, trim_in, trim_out (see film_tasks.snapshot).
    segments = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=Status, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    step = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    video = models.FileField(upload_to=_film_path, max_length=300, blank=True)
    video_size = models.PositiveBigIntegerField(null=True, blank=True)
    video_sha256 = models.CharField(max_length=64, blank=True)
    duration = models.FloatField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["project", "-created"], name="film_project_created")]

    def __str__(self) -> str:
        return f"Film of {self.project} at {self.created:%Y-%m-%d %H:%M}"

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY and bool(self.video)

    def file_name(self) -> str:
        return f"films/{self.project.uuid}/{self.uuid}.mp4"

    @classmethod
    def reap_stale(cls, project: Project | None = None, *, seconds: float | None = None) -> int:
        """Renders whose worker stopped beating (killed, crashed) are failed, so the film can
        be rendered again; their temporary files go with them (film_tasks.discard_part)."""
        seconds = settings.FLOWSITE_FILM_STALE_SECONDS if seconds is None else seconds
        cutoff = timezone.now() - timedelta(seconds=seconds)
        stale = cls.objects.filter(status__in=cls.ACTIVE).filter(
            Q(heartbeat__lt=cutoff) | Q(heartbeat__isnull=True, created__lt=cutoff)
        )
        if project is not None:
            stale = stale.filter(project=project)
        return stale.update(
            status=cls.Status.FAILED,
            reason="The worker stopped in the middle of this render; nothing of it was kept. "
            "Render the film again.",
            finished_at=timezone.now(),
        )


class Comment(models.Model):
    """A member's note on a take: plain text, shown on its card with author and time."""

    MAX_LENGTH = 1000

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    take = models.ForeignKey(Generation, models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    body = models.TextField(max_length=MAX_LENGTH)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.author} on {self.take}"

    @classmethod
    def post(cls, take: Generation, author, body: str) -> Comment:
        """A new comment; its card reaches every open page through the poll."""
        text = body.strip()
        if not text:
            raise CannotGenerate("Write something before posting the comment.")
        if len(text) > cls.MAX_LENGTH:
            raise CannotGenerate(
                f"A comment holds at most {cls.MAX_LENGTH} characters; this one has {len(text)}."
            )
        with transaction.atomic():
            comment = cls.objects.create(take=take, author=author, body=text)
            Scene.objects.filter(pk=take.scene_id).update(updated=comment.created)
        return comment

    def may_be_deleted_by(self, user, role: str) -> bool:
        return role == Membership.Role.OWNER or (
            self.author_id is not None and self.author_id == user.pk
        )

    def remove(self) -> None:
        with transaction.atomic():
            self.delete()
            Scene.objects.filter(pk=self.take.scene_id).update(updated=timezone.now())


# A model of its own module (upscaled copies of takes), registered with the app here.
from .upscales import Upscale  # noqa: E402
