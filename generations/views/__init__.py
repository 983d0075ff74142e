"""The studio's pages. Every view calls its object's lookup helper (see access.py) first."""

from .film import (
    film_video,
    project_film,
    project_film_card,
    project_film_render,
    project_takes_zip,
    scene_compare,
    scene_trim,
)
from .gallery import project_gallery
from .manage import (
    project_accounts,
    project_archive,
    project_delete,
    project_duplicate,
    project_settings,
)
from .media import image_file, take_poster, take_video, upscale_video
from .projects import (
    project_create,
    project_detail,
    project_generate_all,
    project_list,
    project_members,
    project_poll,
)
from .scenes import (
    comment_delete,
    scene_clear_failed,
    scene_create,
    scene_delete,
    scene_edit,
    scene_generate,
    scene_move,
    scene_order,
    take_cancel,
    take_comment,
    take_delete,
    take_pick,
    take_retry,
)
from .spend import project_spend, project_spend_csv
from .take_actions import take_extend, take_last_frame, take_upscale
from .team import invite_accept, invite_revoke, project_audit, project_invites

__all__ = [
    "project_accounts",
    "take_extend",
    "take_last_frame",
    "take_upscale",
    "upscale_video",
    "comment_delete",
    "film_video",
    "project_film",
    "project_film_card",
    "project_film_render",
    "scene_trim",
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
    "project_takes_zip",
    "scene_clear_failed",
    "scene_compare",
    "scene_create",
    "scene_delete",
    "scene_edit",
    "scene_generate",
    "scene_move",
    "scene_order",
    "take_cancel",
    "take_comment",
    "take_delete",
    "take_pick",
    "take_poster",
    "take_retry",
    "take_video",
]
