"""Projects, their members and the accounts granted to them.

Long because a project's money and ownership rules sit with it: which accounts it spends, in
what order and while still granted (``still_granted``), what moving to an account paid in
another unit does to its budget and its members' allowances (cleared in the same transaction,
``set_accounts``), and who may stop being its owner (``last_owner_refusals``), read in one
place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import uuid4

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import cached_property

from .. import rules
from ..budgets import limit_problem, limits_words
from .accounts import COST_CREDITS, FlowAccount
from .errors import CannotGenerate

if TYPE_CHECKING:
    from .scenes import ImageAsset, Scene
    from .takes import Generation


# A budget or an allowance is never below nothing (0 stops all spending).
LIMIT_MIN = MinValueValidator(Decimal(0))


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
    # What the project may spend in a calendar month, in its first account's unit (whole
    # credits on Flow, dollars and cents on Vertex AI; set_accounts clears it when that
    # changes); None: no limit.
    monthly_budget = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, validators=[LIMIT_MIN]
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(monthly_budget__gte=0) | Q(monthly_budget__isnull=True),
                name="budget_not_negative",
            )
        ]

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

    @cached_property
    def limits_unit(self) -> str:
        """The unit its budget and its members' allowances count in: its first account's as
        saved, credits without one (as on the Spend page). An account a form chose but has not
        saved yet does not change it: ``set_accounts`` does, and clears them."""
        if self.pk is None:
            return self.account.cost_unit if self.account_id is not None else COST_CREDITS
        kind = Project.objects.filter(pk=self.pk).values_list("account__kind", flat=True).get()
        return FlowAccount.unit_for(kind)

    def clean_fields(self, exclude=None) -> None:
        # Here, not in clean(): a form without the budget (the admin's project page) is not
        # refused for one it cannot show.
        super().clean_fields(exclude)
        if self.monthly_budget is not None and "monthly_budget" not in (exclude or ()):
            problem = limit_problem(self.monthly_budget, self.limits_unit)
            if problem:
                raise ValidationError({"monthly_budget": problem})

    def spending_problem(self) -> str:
        """Why this project may not spend its account now, in words, or "" when it may.

        Asked again at every Generate, so a revoked grant stops new takes at once. Remembered
        on this instance: a command that generates scene after scene asks once.
        """
        if self.archived_at is not None:
            return ARCHIVED_PROBLEM.format(project=self)
        if self.account_id is None:
            return rules.NO_ACCOUNT
        cached = getattr(self, "_spending_problem", None)
        if cached is not None and cached[0] == self.account_id:
            return cached[1]
        problem = ""
        if not AccountGrant.objects.allowing(self).filter(account_id=self.account_id).exists():
            problem = (
                f"This project may not spend the {self.account.upstream} account {self.account}: "
                "staff have not granted it to the project or to one of its owners. Ask an admin."
            )
        self._spending_problem = (self.account_id, problem)
        return problem

    def wake_waiting_takes(self, username: str | None = None) -> int:
        """Queued takes of this project (``username``'s, when given) that wait for their own
        account to rest or be fixed are due now, so the worker's next pass looks again at the
        project's other accounts: after an owner raised the budget or an allowance that kept
        them off a dearer account (generations/failover.py), they go out there at once.
        Returns how many. A take merely backing off on an open account keeps its time."""
        from .takes import Generation

        now = timezone.now()
        waiting = Generation.objects.filter(
            project=self,
            status=Generation.Status.QUEUED,
            claim__isnull=True,
            next_check_at__gt=now,
        ).exclude(FlowAccount.open_q(now, via="account__"))
        if username is not None:
            waiting = waiting.filter(requested_by__username=username)
        return waiting.update(next_check_at=now)

    def last_owner_words(self, leaving: list[Membership]) -> str:
        """Why these members of this project may not all stop being owners (removed, demoted
        or moved elsewhere), or "" (``last_owner_refusals``)."""
        return next(iter(last_owner_refusals(leaving)), "")

    def granted_accounts(self) -> set[int]:
        """The accounts staff let this project spend now, granted to it or to one of its
        owners who may sign in (``AccountGrant.allowing``); one query."""
        return set(AccountGrant.objects.allowing(self).values_list("account_id", flat=True))

    def lost_accounts_words(
        self, granted_before: set[int], member, by, *, removed: bool = False
    ) -> str:
        """After ``by`` demoted or removed ``member``, an owner until then: which of this
        project's accounts it may no longer spend (``granted_accounts`` was ``granted_before``),
        because staff granted them to ``member``, not to the project; in words for ``by``,
        with what to do. "" when it lost none. A query for the grants and, when one was lost,
        one for the project's later accounts."""
        lost = granted_before - self.granted_accounts() if granted_before else set()
        if not lost:
            return ""
        accounts = [account for account in self.accounts_in_order() if account.pk in lost]
        if not accounts:
            return ""
        you = member.pk == by.pk
        who = "you" if you else str(member)
        gone = f"{who} {'are' if you else 'is'} no longer {'a member' if removed else 'an owner'}"
        back = "back as an owner" if removed else "an owner again"
        again = (
            f"an owner {'adds' if removed else 'makes'} you {back}"
            if you
            else f"you {'add' if removed else 'make'} {member} {back}"
        )
        said = []
        if accounts[0].pk == self.account_id:
            first = accounts.pop(0)
            said.append(
                f"{self} can no longer spend the {first.upstream} account {first}: staff "
                f"granted it to {who}, not to the project, and {gone}. Generate is refused "
                f"until {again} or an admin grants {first} to {self}."
            )
        if accounts:
            names = ", ".join(str(account) for account in accounts)
            them = "it" if len(accounts) == 1 else "them"
            said.append(
                f"{self} no longer falls back on {names}: staff granted {them} to {who}, not "
                f"to the project, and {gone}; {them} {'is' if them == 'it' else 'are'} skipped "
                f"until {again} or an admin grants {them} to {self}."
            )
        return " ".join(said)

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
        from .scenes import create_generations

        self.check_spending()
        ready: list[Scene] = []
        skipped: list[tuple[Scene, str]] = []
        for scene in scenes:
            problem = scene.generation_problem()
            if problem:
                skipped.append((scene, problem))
            else:
                ready.append(scene)
        created = create_generations(
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
        """Archive or restore; False when it already was so (two owners clicking at once).
        Open storyboards redraw themselves, read-only or editable again."""
        now = timezone.now() if archived else None
        with transaction.atomic():
            changed = Project.objects.filter(pk=self.pk, archived_at__isnull=archived).update(
                archived_at=now
            )
            if changed:
                self.archived_at = now
                self.mark_scenes_changed()
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
        """Delete the project, its scenes, takes, images and films; the clips', posters' and
        films' files, every file under its takes' folders, and the folders they leave empty go
        once that is committed (start
        images' files go with their rows, see cleanup.py). Returns what went
        (``deletion_counts``)."""
        from .. import storage
        from .takes import Generation

        with transaction.atomic():
            counts = self.deletion_counts()
            names = [
                name
                for pair in self.generations.values_list("video", "poster")
                for name in pair
                if name
            ]
            names += [name for name in self.upscales.values_list("video", flat=True) if name]
            names += [name for name in self.films.values_list("video", flat=True) if name]
            # Also what no row names: a clip a worker saved and died before recording.
            folders = [Generation.project_folder(self.uuid)]
            self.delete()

            def delete_files() -> None:
                storage.delete_files(names)
                storage.delete_folders(folders)

            transaction.on_commit(delete_files, robust=True)
        return counts

    def duplicate(self, by) -> Project:
        """A copy with the same account, members and scenes, each scene with its images
        (their files copied too); no takes. ``by`` owns the copy.

        The monthly budget and every member's allowance come along (same account, so the same
        unit): a copy without them would let a member refused here spend at once there. The
        copy counts its own month, as every project does."""
        from django.core.files.base import ContentFile

        from .scenes import ImageAsset, Scene

        scenes = list(self.scenes.select_related(*Scene.IMAGE_FIELDS).order_by("position", "id"))
        images = {
            image.pk: image
            for scene in scenes
            for name in Scene.IMAGE_FIELDS
            if (image := getattr(scene, name)) is not None
        }
        written: list[ImageAsset] = []
        try:
            with transaction.atomic():
                # Read with the account, and locked as set_accounts locks it: the budget and
                # the allowances copied are in the unit of the account copied.
                account_id, budget = (
                    Project.objects.select_for_update()
                    .filter(pk=self.pk)
                    .values_list("account_id", "monthly_budget")
                    .get()
                )
                copy = Project(
                    name=copy_name(self.name),
                    account_id=account_id,
                    monthly_budget=budget,
                    created_by=by,
                )
                copy.save(force_insert=True)
                members = list(self.memberships.all())
                allowances = {member.user_id: member.monthly_allowance for member in members}
                Membership.objects.bulk_create(
                    [
                        Membership(
                            project=copy,
                            user_id=member.user_id,
                            role=member.role,
                            monthly_allowance=member.monthly_allowance,
                        )
                        for member in members
                        if member.user_id != by.pk
                    ]
                    + [
                        Membership(
                            project=copy,
                            user=by,
                            role=Membership.Role.OWNER,
                            monthly_allowance=allowances.get(by.pk),
                        )
                    ]
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

    def limits_words(self) -> str:
        """Its monthly budget and its members' allowances in words (``budgets.limits_words``),
        "" when it has none; two queries."""
        allowances = dict(
            self.memberships.filter(monthly_allowance__isnull=False)
            .order_by("user__username")
            .values_list("user__username", "monthly_allowance")
        )
        return limits_words(self.monthly_budget, allowances, self.limits_unit)

    def reorder_scenes(self, scene_uuids: list, seen: list | None = None) -> bool:
        """Put the storyboard in the order of ``scene_uuids`` (call inside a transaction).

        The list must name every scene of this project exactly once: anything else (another
        project's scene, a scene deleted or added meanwhile, a repeat) changes nothing and
        returns False, so an order made on a stale page never half-applies. ``seen`` is the
        order the page showed before its move: when the saved order is no longer that one (a
        teammate moved a scene meanwhile, or sent a move at the same instant), it changes
        nothing and returns False too, rather than silently undoing the teammate's move. Only
        a caller that read the order under this same lock may leave ``seen`` out.
        """
        from .scenes import Scene

        # Locked, and in the storyboard's own order (position, then id: as storyboard_scenes
        # draws it), so ``seen`` is compared with what a page drawn now would show.
        ordered = list(
            self.scenes.select_for_update()
            .only("pk", "uuid", "position")
            .order_by("position", "id")
        )
        by_uuid = {scene.uuid: scene for scene in ordered}
        if len(scene_uuids) != len(by_uuid) or set(scene_uuids) != set(by_uuid):
            return False
        if seen is not None and list(seen) != [scene.uuid for scene in ordered]:
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
        ``ProjectAccount`` rows), whether or not still granted; two queries at most. Each later
        account says whether it still is (``granted``, from the same query)."""
        first = [self.account] if self.account_id is not None else []
        rows = (
            self.later_accounts.select_related("account")
            .annotate(granted=still_granted())
            .order_by("position", "id")
        )
        later = [
            row.account.note_granted(row.granted)
            for row in rows
            if row.account_id != self.account_id
        ]
        return first + later

    def engine_move_problem(self, account: FlowAccount) -> str:
        """Why this project may not move to ``account``, in words, or "" when it may: its
        scenes are made for its account's engine (models, modes and options), and would not
        be valid on the other's. Asked by the owners' settings and by the admin alike."""
        current = self.account
        if current is None or current.kind == account.kind or not self.scenes.exists():
            return ""
        return (
            f"The scenes of {self} are made for {current.get_kind_display()}; "
            f"choose {current.get_kind_display()} accounts, or start a new project for "
            f"{account.get_kind_display()}."
        )

    def set_accounts(self, accounts: list[FlowAccount]) -> ClearedLimits | None:
        """Spend ``accounts`` in this order: the first becomes ``Project.account`` (the one
        its scenes are judged and priced on), the others the accounts the worker falls back
        on. Takes already queued move by themselves (the worker picks their account).

        The budget and the members' allowances count in the first account's unit (credits on
        Flow, US dollars on Vertex AI). When the new first account is paid in the other unit
        they are cleared in the same transaction, not kept as numbers that now mean another
        sum (1,000 credits are not $1,000). Returns what was cleared; None when nothing was.
        """
        with transaction.atomic():
            # Locked: the unit compared is the one the budget was set in, not a stale copy's.
            was = (
                Project.objects.select_for_update(of=("self",))
                .filter(pk=self.pk)
                .values("account__kind", "monthly_budget")
                .get()
            )
            was_unit = FlowAccount.unit_for(was["account__kind"])
            self.account = accounts[0]
            fields = ["account"]
            cleared = None
            if self.account.cost_unit != was_unit:
                limited = self.memberships.filter(monthly_allowance__isnull=False)
                allowances = dict(
                    limited.order_by("user__username").values_list(
                        "user__username", "monthly_allowance"
                    )
                )
                limited.update(monthly_allowance=None)
                self.monthly_budget = None
                fields.append("monthly_budget")
                if was["monthly_budget"] is not None or allowances:
                    cleared = ClearedLimits(was_unit, was["monthly_budget"], allowances)
            self.save(update_fields=fields)
            self.__dict__.pop("limits_unit", None)
            self.later_accounts.all().delete()
            ProjectAccount.objects.bulk_create(
                [
                    ProjectAccount(project=self, account=account, position=position)
                    for position, account in enumerate(accounts[1:], start=1)
                ]
            )
        return cleared

    @classmethod
    def start(cls, name: str, account: FlowAccount | None, owner, how: str) -> Project:
        """A new project with ``owner`` as its first owner, in the audit trail with ``how``
        it began ("page", "import", "demo"). Call inside a transaction: the three rows go
        together."""
        from .team import AuditEvent

        project = cls.objects.create(name=name, account=account, created_by=owner)
        project.add_member(owner, Membership.Role.OWNER)
        AuditEvent.record(
            AuditEvent.Action.PROJECT_CREATED,
            owner,
            project,
            how=how,
            account=account.label if account is not None else None,
        )
        return project

    def add_member(self, user, role: str) -> Membership:
        membership, _ = Membership.objects.update_or_create(
            project=self, user=user, defaults={"role": role}
        )
        return membership


@dataclass(frozen=True)
class ClearedLimits:
    """What ``Project.set_accounts`` cleared when the project moved to an account paid in
    another unit, in the unit they had been set in."""

    unit: str  # COST_CREDITS or COST_USD
    budget: Decimal | None
    allowances: dict[str, Decimal]  # username -> monthly allowance


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
    # What this member may spend in the project in a calendar month, in the budget's unit;
    # None: no limit of their own (the project's budget still holds).
    monthly_allowance = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, validators=[LIMIT_MIN]
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user"),
            models.CheckConstraint(
                condition=Q(monthly_allowance__gte=0) | Q(monthly_allowance__isnull=True),
                name="allowance_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"

    def clean_fields(self, exclude=None) -> None:
        # As Project.clean_fields: only a form that shows the allowance is refused for it.
        super().clean_fields(exclude)
        if (
            self.monthly_allowance is not None
            and "monthly_allowance" not in (exclude or ())
            and self.project_id is not None
        ):
            problem = limit_problem(self.monthly_allowance, self.project.limits_unit)
            if problem:
                raise ValidationError({"monthly_allowance": problem})

    @property
    def can_edit(self) -> bool:
        # An archived project is read-only for everyone (owners restore it first).
        return self.role in (self.Role.OWNER, self.Role.EDITOR) and not self.project.is_archived

    @property
    def can_manage(self) -> bool:
        return self.role == self.Role.OWNER


def last_owner_refusals(
    leaving: list[Membership], then: str = "make someone else an owner first"
) -> list[str]:
    """Why some of these memberships, of one project or several, may not all stop being
    owners (removed, demoted or moved elsewhere): a project whose owners are all among them
    would have nobody left to invite, re-role or budget. One sentence per such project, ending
    with what to do (``then``); none when another owner stays everywhere. One query (none when
    no owner is leaving)."""
    owners = [row for row in leaving if row.role == Membership.Role.OWNER]
    if not owners:
        return []
    staying = set(
        Membership.objects.filter(
            project_id__in={row.project_id for row in owners}, role=Membership.Role.OWNER
        )
        .exclude(pk__in=[row.pk for row in owners])
        .values_list("project_id", flat=True)
    )
    by_project: dict[int, list[Membership]] = {}
    for row in owners:
        if row.project_id not in staying:
            by_project.setdefault(row.project_id, []).append(row)
    return [
        f"{rows[0].user} is the only owner of {rows[0].project}; {then}."
        if len(rows) == 1
        else f"{', '.join(str(row.user) for row in rows)} are the only owners of "
        f"{rows[0].project}; {then}."
        for rows in by_project.values()
    ]


def deleting_people_refusals(user_ids: list[int]) -> list[str]:
    """Why these people may not all be deleted (their memberships go with them): a project
    they alone own would keep members with nobody to invite, re-role or budget them. A project
    with nobody else in it is no reason: nobody else could reach it either way, and it stays
    for staff to hand on or delete (``left_without_members``). Two queries."""
    others = Membership.objects.filter(project=models.OuterRef("project_id")).exclude(
        user_id__in=user_ids
    )
    leaving = Membership.objects.filter(
        models.Exists(others), user_id__in=user_ids, role=Membership.Role.OWNER
    ).select_related("project", "user")
    return last_owner_refusals(
        list(leaving), then="make someone else an owner first, or delete the project"
    )


def left_without_members(user_ids: list[int]) -> list[Project]:
    """The projects these people are all the members of, by name: once they are deleted only
    staff reach them, in the admin. One query."""
    others = Membership.objects.filter(project=models.OuterRef("pk")).exclude(user_id__in=user_ids)
    projects = Project.objects.filter(memberships__user_id__in=user_ids).exclude(
        models.Exists(others)
    )
    return list(projects.distinct().order_by("name"))


def still_granted(account: str = "account_id", project: str = "project_id") -> models.Exists:
    """An annotation or filter: the account at ``account`` (a path from the queried model) is
    still granted to the project at ``project``, or to one of its owners who may sign in
    (``AccountGrant.allowing``, for many rows at once)."""
    owners = Membership.objects.filter(
        project_id=models.OuterRef(models.OuterRef(project)),
        role=Membership.Role.OWNER,
        user__is_active=True,
    ).values("user_id")
    return models.Exists(
        AccountGrant.objects.filter(account_id=models.OuterRef(account)).filter(
            Q(project_id=models.OuterRef(project)) | Q(user_id__in=owners)
        )
    )


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
