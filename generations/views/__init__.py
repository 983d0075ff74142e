"""The studio's pages. Every view calls its object's lookup helper (see access.py) first."""

from .gallery import project_gallery
from .manage import project_archive, project_delete, project_duplicate, project_settings
from .media import image_file, take_poster, take_video
from .projects import (
    project_create,
    project_detail,
    project_generate_all,
    project_list,
    project_members,
    project_poll,
)
from .scenes import (
    scene_create,
    scene_delete,
    scene_edit,
    scene_generate,
    scene_move,
    take_cancel,
    take_retry,
)
from .spend import project_spend, project_spend_csv
from .team import invite_accept, invite_revoke, project_audit, project_invites

__all__ = [
    "image_file",
    "invite_accept",
    "invite_revoke",
    "project_invites",
    "project_archive",
    "project_audit",
    "project_create",
    "project_delete",
    "project_duplicate",
    "project_settings",
    "project_spend",
    "project_spend_csv",
    "project_detail",
    "project_gallery",
    "project_generate_all",
    "project_list",
    "project_members",
    "project_poll",
    "scene_create",
    "scene_delete",
    "scene_edit",
    "scene_generate",
    "scene_move",
    "take_cancel",
    "take_poster",
    "take_retry",
    "take_video",
]
