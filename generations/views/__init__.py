"""The studio's pages. Every view calls its object's lookup helper (see access.py) first."""

from .gallery import project_gallery
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
    scene_order,
    take_cancel,
    take_retry,
)

__all__ = [
    "image_file",
    "project_create",
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
    "scene_order",
    "take_cancel",
    "take_poster",
    "take_retry",
    "take_video",
]
