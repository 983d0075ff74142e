"""Flow and Vertex AI accounts: who pays Google, with what credentials, in what state."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import uuid4

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .. import rules
from ..budgets import COST_CREDITS, COST_USD
from ..crypto import EncryptedTextField, is_sealed
from ..engines.base import Credentials, EngineKind
from ..engines.catalogue import TIER_ONE, TIERS, can_make, flow_credits

if TYPE_CHECKING:
    from .projects import Project


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
    def cost_unit(self) -> str:
        """What its takes cost, and so its projects' budgets count: COST_USD or COST_CREDITS."""
        return self.unit_for(self.kind)

    @classmethod
    def unit_for(cls, kind: str | None) -> str:
        """The cost unit of accounts of ``kind``; credits without one (a project with no
        account counts as Flow did before Vertex AI)."""
        return COST_USD if kind == cls.Kind.VERTEX else COST_CREDITS

    @property
    def upstream(self) -> str:
        """The engine's name in sentences for people: "Flow" or "Vertex AI"."""
        return EngineKind(self.kind).label

    def unusable_secret(self, error: object = None) -> str:
        """What a take or the account says when no call can be signed: nothing pasted, or
        nothing that decrypts or parses (``error`` says which)."""
        secret = "service-account key or token" if self.is_vertex else "token or session cookie"
        why = f" ({error})" if error else ""
        return (
            f"The {self.upstream} account {self} has no usable {secret}{why}; ask an admin to "
            "paste one."
        )

    # What an admin pasted; access_token is only minted from these.
    PASTED_SECRETS = ("bearer_token", "session_cookie", "service_account_key")

    @property
    def secret_sealed(self) -> bool:
        """Whether a pasted secret was stored under keys this process lacks: lists show that
        instead of reading it (which raises ``UndecryptableSecret``)."""
        return is_sealed(self, *self.PASTED_SECRETS)

    SEALED_HINT = "cannot be decrypted with FLOWSITE_FERNET_KEYS; paste it again"

    @property
    def auth_kind(self) -> str:
        if self.secret_sealed:
            return "secret"
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

    def may_be_spent_by(self, project: Project) -> bool:
        """Whether staff granted this account to the project itself or to one of its owners."""
        from .projects import AccountGrant

        return AccountGrant.objects.allowing(project).filter(account=self).exists()

    # Whether the project a page lists this account for may still spend it, as the query that
    # read the account answered (``note_granted``): no query per account to ask again. Taken
    # as granted where no query asked.
    granted = True

    def note_granted(self, granted: bool) -> FlowAccount:
        """Remember whether the project it is listed for may still spend it (``granted``)."""
        self.granted = granted
        return self

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
        from .takes import Generation

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
        engine = self.upstream
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
