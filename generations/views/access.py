"""Who may see and change what: one lookup helper per object, called first in every view.

A person who is not a member of the project gets a 404, exactly as if the object did not
exist, so a URL never confirms that someone else's project, scene or clip is there. A member
whose role is too low for the action gets a 403.

Each helper is one query: the object, its project and the account come back with the
requester's role on that project (a subquery), so access checks cost nothing extra.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, F, Model, OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from ..models import (
    ARCHIVED_PROBLEM,
    Comment,
    FilmRender,
    Generation,
    ImageAsset,
    Invite,
    Membership,
    Project,
    Scene,
    Upscale,
)

Role = Membership.Role

_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.OWNER: 2}


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
    user: AbstractBaseUser | AnonymousUser


def htmx_login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """login_required for views htmx calls: a signed-out page is sent to sign in as a whole.

    Plain login_required answers a redirect, which htmx would follow and then swap the sign-in
    page into a card or the poller.
    """
    guarded = login_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if getattr(request, "htmx", False) and not request.user.is_authenticated:
            page = request.htmx.current_url_abs_path or resolve_url(settings.LOGIN_REDIRECT_URL)
            return HttpResponseClientRedirect(redirect_to_login(page)["Location"])
        return guarded(request, *args, **kwargs)

    return wrapper


def _check_role(actual: str, needed: str | None, project: Project | None = None) -> None:
    if needed is not None and _RANK.get(actual, -1) < _RANK[needed]:
        raise PermissionDenied(
            "Your role on this project does not let you do that. A project owner can change "
            "your role on the project's Members page."
        )
    # Editing and generating stop in an archived project; owners may still manage it
    # (restore, rename, members, delete).
    if needed == Role.EDITOR and project is not None and project.is_archived:
        raise PermissionDenied(ARCHIVED_PROBLEM.format(project=project))


def refuse_if_archived(project: Project) -> None:
    """For what any member may do but an archived project stops (comments): a role check
    with ``Role.VIEWER`` would let readers through an archive, since viewing still works."""
    if project.is_archived:
        raise PermissionDenied(ARCHIVED_PROBLEM.format(project=project))


def _membership(request: HttpRequest, project: Project, role: str) -> Membership:
    # Built, not fetched: the role came back with the object in the same query.
    return Membership(project=project, user=request.user, role=role)


def _get_with_role[M: Model](
    request: HttpRequest,
    queryset: QuerySet[M],
    role: str | None,
    *,
    superuser_reads: bool = False,
    **lookup: Any,
) -> tuple[M, str]:
    """The object ``lookup`` finds, with the requester's role on its project; 404 for
    outsiders, 403 below ``role``."""
    member_role = Subquery(
        Membership.objects.filter(project=OuterRef("project"), user_id=request.user.pk).values(
            "role"
        )[:1]
    )
    try:
        obj = queryset.annotate(member_role=member_role).get(**lookup)
    except queryset.model.DoesNotExist:
        raise Http404 from None
    found_role = obj.member_role
    if found_role is None and superuser_reads and role is None and request.user.is_superuser:
        # Admins run every project from the Django admin, whose lists show posters and start
        # images; reading media is all this grants, and only to superusers.
        found_role = Role.VIEWER
    if found_role is None:
        raise Http404
    _check_role(found_role, role, obj.project if role is not None else None)
    return obj, found_role


def get_project_for_user(
    request: HttpRequest,
    uuid: UUID,
    role: str | None = None,
    *,
    with_account: bool = True,
    **annotations: Any,
) -> tuple[Project, Membership]:
    """The project and the requester's membership; 404 for outsiders, 403 below ``role``.

    ``annotations`` ride along on the same query (the changed poll asks about the board
    there). ``with_account=False`` is for views that never touch the Flow account, whose
    secrets are decrypted whenever it is loaded.
    """
    queryset = Membership.objects.select_related("project__account" if with_account else "project")
    if annotations:
        queryset = queryset.annotate(**annotations)
    try:
        membership = queryset.get(project__uuid=uuid, user_id=request.user.pk)
    except Membership.DoesNotExist:
        raise Http404 from None
    _check_role(membership.role, role, membership.project)
    return membership.project, membership


def get_scene_for_user(
    request: HttpRequest, uuid: UUID, role: str | None = None
) -> tuple[Scene, Membership]:
    queryset = Scene.objects.select_related("project__account", "start_image")
    scene, member_role = _get_with_role(request, queryset, role, uuid=uuid)
    return scene, _membership(request, scene.project, member_role)


def get_generation_for_user(
    request: HttpRequest, uuid: UUID, role: str | None = None
) -> tuple[Generation, Membership]:
    """The take and the requester's membership (the media views use
    ``get_take_media_for_user``)."""
    queryset = Generation.objects.select_related("project__account", "scene")
    generation, member_role = _get_with_role(request, queryset, role, uuid=uuid)
    return generation, _membership(request, generation.project, member_role)


def get_take_media_for_user(request: HttpRequest, uuid: UUID) -> Generation:
    """A take for the media views, with what its download is named after (``scene_name``,
    ``project_name``); 404 unless the requester is a member. Superusers read any project's
    media, so that the admin's lists show posters.

    Only the names ride along, not the scene, the project or the Flow account: a gallery's
    first view asks for a poster per clip.
    """
    queryset = Generation.objects.annotate(
        scene_title=F("scene__title"),
        scene_position=F("scene__position"),
        project_name=F("project__name"),
    )
    take, _ = _get_with_role(request, queryset, None, superuser_reads=True, uuid=uuid)
    take.scene_name = Scene.name_for(take.scene_title, take.scene_position)
    return take


def get_upscale_media_for_user(request: HttpRequest, uuid: UUID) -> Upscale:
    """An upscaled copy of a take for the media view, with what its download is named after;
    404 unless the requester is a member (superusers read it, as they read takes)."""
    queryset = Upscale.objects.annotate(
        take_number=F("take__take"),
        scene_title=F("take__scene__title"),
        scene_position=F("take__scene__position"),
        project_name=F("project__name"),
    )
    upscale, _ = _get_with_role(request, queryset, None, superuser_reads=True, uuid=uuid)
    upscale.scene_name = Scene.name_for(upscale.scene_title, upscale.scene_position)
    return upscale


def get_image_for_user(
    request: HttpRequest, uuid: UUID, role: str | None = None, *, superuser_reads: bool = False
) -> tuple[ImageAsset, Membership]:
    queryset = ImageAsset.objects.select_related("project")
    image, member_role = _get_with_role(
        request, queryset, role, superuser_reads=superuser_reads, uuid=uuid
    )
    return image, _membership(request, image.project, member_role)


def get_invite_for_user(
    request: HttpRequest, uuid: UUID, role: str | None = None
) -> tuple[Invite, Membership]:
    queryset = Invite.objects.select_related("project")
    invite, member_role = _get_with_role(request, queryset, role, uuid=uuid)
    return invite, _membership(request, invite.project, member_role)


def get_comment_for_user(request: HttpRequest, uuid: UUID) -> tuple[Comment, Membership]:
    """A comment on a take; 404 for outsiders (who may delete it is the view's question)."""
    queryset = Comment.objects.select_related("take__scene", "take__project__account")
    comment, member_role = _get_with_role(
        request, queryset.annotate(project=F("take__project")), None, uuid=uuid
    )
    return comment, _membership(request, comment.take.project, member_role)


def get_film_for_user(
    request: HttpRequest, uuid: UUID, role: str | None = None
) -> tuple[FilmRender, Membership]:
    """A render of a project's film; 404 for outsiders, 403 below ``role``."""
    queryset = FilmRender.objects.select_related("project")
    render, member_role = _get_with_role(request, queryset, role, uuid=uuid)
    return render, _membership(request, render.project, member_role)


@dataclass(frozen=True)
class PollState:
    """What the page poll needs to know before it knows whether to answer at all."""

    role: str
    # a scene or take of the project changed after the page's token, or the list of scenes did
    changed: bool
    in_flight: bool  # some take is still on its way


def _newest_updated(model: type[Model]) -> Subquery:
    """When a project's newest ``model`` row was last touched (NULL when it has none)."""
    rows = model.objects.filter(project_id=OuterRef("project_id")).order_by("-updated")
    return Subquery(rows.values("updated")[:1])


# Built once: every open storyboard asks this every few seconds and nearly always learns
# "nothing new", and building these subqueries anew cost more than the database's answer.
# Nothing in it depends on the request (the page's token is compared in Python), so each poll
# only adds its filter. (``project_id`` rather than ``project``: a plain column compiles faster
# than a relation.)
_POLL_ROWS = Membership.objects.values(
    "role",
    "project__scenes_changed",
    takes_updated=_newest_updated(Generation),
    scenes_updated=_newest_updated(Scene),
    in_flight=Exists(
        Generation.objects.filter(
            project_id=OuterRef("project_id"), status__in=Generation.IN_FLIGHT
        )
    ),
    # An upscale under way keeps the page polling fast too (its take's card changes).
    upscaling=Exists(
        Upscale.objects.filter(project_id=OuterRef("project_id"), status__in=Upscale.IN_FLIGHT)
    ),
)


def get_poll_state_for_user(request: HttpRequest, uuid: UUID, since: datetime | None) -> PollState:
    """Membership, "changed since?" and "anything in flight?" in one query; 404 for outsiders.

    For the database it is a few index lookups on the project's takes and scenes, and the
    project row it joins anyway, whose ``scenes_changed`` tells whether scenes were added,
    deleted or moved (NULL: never). A take or scene changed after ``since`` exactly when the
    newest one was touched after it.
    """
    queryset = _POLL_ROWS.filter(project__uuid=uuid, user_id=request.user.pk)
    try:
        row = queryset.get()
    except Membership.DoesNotExist:
        raise Http404 from None
    moments = (row["project__scenes_changed"], row["takes_updated"], row["scenes_updated"])
    changed = since is None or any(moment is not None and moment > since for moment in moments)
    return PollState(
        role=row["role"],
        changed=changed,
        in_flight=bool(row["in_flight"] or row["upscaling"]),
    )
