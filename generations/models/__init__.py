"""Flowsite's data, by area: accounts, projects and their team, scenes, takes, film, and
what deleted clips spent.

Each module imports the areas before it and reaches a later area only inside a method, so the
modules load in one direction; everything is importable from ``generations.models``."""

from .accounts import COST_CREDITS, COST_USD, FlowAccount, FlowAccountQuerySet
from .errors import CannotGenerate, DeletedMeanwhile, reread
from .film import Comment, FilmRender, Pick, _film_path
from .projects import (
    ARCHIVED_PROBLEM,
    AccountGrant,
    AccountGrantQuerySet,
    ClearedLimits,
    Membership,
    Project,
    ProjectAccount,
    copy_name,
    deleting_people_refusals,
    last_owner_refusals,
    left_without_members,
    still_granted,
)
from .scenes import (
    SNAPSHOT_FIELDS,
    SPENDING_Q,
    ImageAsset,
    ImageUpload,
    Scene,
    _image_path,
    _suffix,
    check_budget,
    create_generations,
    random_seed,
)
from .spend import KEPT_Q, KeptSpend, delete_takes
from .takes import IN_FLIGHT_Q, Generation, WorkerLease
from .team import (
    AuditEvent,
    Invite,
    InviteQuerySet,
    PasswordResetRequest,
    SignInFailure,
    hash_invite_token,
)
from .upscales import Upscale

__all__ = [
    "Upscale",
    "KEPT_Q",
    "KeptSpend",
    "delete_takes",
    "COST_USD",
    "COST_CREDITS",
    "CannotGenerate",
    "DeletedMeanwhile",
    "reread",
    "FlowAccountQuerySet",
    "FlowAccount",
    "Project",
    "ARCHIVED_PROBLEM",
    "still_granted",
    "copy_name",
    "last_owner_refusals",
    "deleting_people_refusals",
    "left_without_members",
    "Membership",
    "AccountGrantQuerySet",
    "ClearedLimits",
    "AccountGrant",
    "ProjectAccount",
    "_image_path",
    "_suffix",
    "ImageAsset",
    "ImageUpload",
    "Scene",
    "SNAPSHOT_FIELDS",
    "random_seed",
    "create_generations",
    "SPENDING_Q",
    "check_budget",
    "Generation",
    "IN_FLIGHT_Q",
    "WorkerLease",
    "SignInFailure",
    "hash_invite_token",
    "InviteQuerySet",
    "Invite",
    "AuditEvent",
    "PasswordResetRequest",
    "Pick",
    "_film_path",
    "FilmRender",
    "Comment",
]
