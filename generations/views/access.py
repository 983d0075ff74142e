"""Who may see and change what: one lookup helper per object, called first in every view.

A person who is not a member of the project gets a 404, exactly as if the object did not
exist, so a URL never confirms that someone else's project, scene or clip is there. A member
whose role is too low for the action gets a 403.

Each helper is one query: the object, its project and the account come back with the
requester's role on that project (a subquery), so access checks cost nothing extra.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache, wraps
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import connections, router
from django.db.models import Model, OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from ..models import Generation, ImageAsset, Membership, Project, Scene

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


def _check_role(actual: str, needed: str | None) -> None:
    if needed is not None and _RANK.get(actual, -1) < _RANK[needed]:
        raise PermissionDenied("Your role on this project does not allow that.")


def _role_subquery(request: HttpRequest, project_ref: str) -> Subquery:
    return Subquery(
        Membership.objects.filter(project=OuterRef(project_ref), user_id=request.user.pk).values(
            "role"
        )[:1]
    )


def _membership(request: HttpRequest, project: Project, role: str) -> Membership:
    # Built, not fetched: the role came back with the object in the same query.
    return Membership(project=project, user=request.user, role=role)


def _get_with_role[M: Model](
    request: HttpRequest,
    queryset: QuerySet[M],
    project_ref: str,
    role: str | None,
    *,
    superuser_reads: bool = False,
    **lookup: Any,
) -> tuple[M, str]:
    try:
        obj = queryset.annotate(member_role=_role_subquery(request, project_ref)).get(**lookup)
    except (queryset.model.DoesNotExist, ValueError):
        raise Http404 from None
    member_role = obj.member_role
    if member_role is None and superuser_reads and role is None and request.user.is_superuser:
        # Admins run every project from the Django admin, whose lists show posters and start
        # images; reading media is all this grants, and only to superusers.
        member_role = Role.VIEWER
    if member_role is None:
        raise Http404
    _check_role(member_role, role)
    return obj, member_role


def _get_project_for_user(
    request: HttpRequest,
    uuid: UUID,
    role: str | None = None,
    *,
    with_account: bool = True,
    **annotations: Any,
) -> tuple[Project, Membership]:
    """The project and the requester's membership; 404 for outsiders, 403 below ``role``.

    ``annotations`` ride along on the same query (the page poll asks "what changed?" there).
    ``with_account=False`` is for views that never touch the Flow account: the project comes
    from one hand-written statement instead, and its account is loaded only if asked for.
    """
    if not with_account and not annotations:
        project = _project_with_role(request.user.pk, uuid)
        _check_role(project.member_role, role)
        return project, _membership(request, project, project.member_role)
    queryset = Membership.objects.select_related("project__account")
    if annotations:
        queryset = queryset.annotate(**annotations)
    try:
        membership = queryset.get(project__uuid=uuid, user_id=request.user.pk)
    except Membership.DoesNotExist:
        raise Http404 from None
    _check_role(membership.role, role)
    return membership.project, membership


def _project_with_role(user_id: int, uuid: UUID) -> Project:
    """The project, with the user's role as ``member_role``; 404 unless they are a member.

    Building this join through the ORM costs about 0.3 ms of Python, twice what the rest of a
    cached gallery page costs (benchmarks/gallery.py); a raw query still converts every column
    the way the ORM does.
    """
    return _raw_one(Project, _project_with_role_sql, user_id, uuid)


def _raw_one[M: Model](model: type[M], sql: Callable[[str], str], *params: Any) -> M:
    """The row ``sql`` (built for the database alias) finds, as a model instance; 404 when
    none. The last parameter is the object's uuid, prepared as the uuid field prepares it."""
    alias = router.db_for_read(model)
    *others, uuid = params
    uuid_value = model._meta.get_field("uuid").get_db_prep_value(uuid, connections[alias])
    found = list(model.objects.raw(sql(alias), [*others, uuid_value]))
    if not found:
        raise Http404
    return found[0]


@lru_cache
def _project_with_role_sql(alias: str) -> str:
    quote = connections[alias].ops.quote_name
    return (
        f"SELECT p.*, m.role AS member_role "
        f"FROM {quote(Project._meta.db_table)} p "
        f"INNER JOIN {quote(Membership._meta.db_table)} m ON m.project_id = p.id "
        f"WHERE m.user_id = %s AND p.uuid = %s"
    )


def _get_scene_for_user(
    request: HttpRequest, uuid: UUID, role: str | None = None
) -> tuple[Scene, Membership]:
    queryset = Scene.objects.select_related("project__account", "start_image")
    scene, member_role = _get_with_role(request, queryset, "project", role, uuid=uuid)
    return scene, _membership(request, scene.project, member_role)


def _get_generation_for_user(
    request: HttpRequest, uuid: UUID, role: str | None = None
) -> tuple[Generation, Membership]:
    """The take and the requester's membership (the media views use
    ``_get_take_media_for_user``)."""
    queryset = Generation.objects.select_related("project__account", "scene")
    generation, member_role = _get_with_role(request, queryset, "project", role, uuid=uuid)
    return generation, _membership(request, generation.project, member_role)


def _get_take_media_for_user(request: HttpRequest, uuid: UUID) -> Generation:
    """A take for the media views, with what its download is named after (``scene_name``,
    ``project_name``); 404 unless the requester is a member. Superusers read any project's
    media, so that the admin's lists show posters.

    One raw statement instead of the ORM's join with a role subquery (about 0.4 ms of Python):
    a gallery's first view asks for a poster per clip, 48 of them a page
    (benchmarks/media.py). It reads what any take lookup reads, and the columns still go
    through the model's fields.
    """
    take = _raw_one(Generation, _take_media_sql, request.user.pk, uuid)
    if take.member_role is None and not request.user.is_superuser:
        raise Http404
    take.scene_name = Scene.name_for(take.scene_title, take.scene_position)
    return take


@lru_cache
def _take_media_sql(alias: str) -> str:
    quote = connections[alias].ops.quote_name
    return (
        f"SELECT g.*, m.role AS member_role, s.title AS scene_title, "
        f"s.position AS scene_position, p.name AS project_name "
        f"FROM {quote(Generation._meta.db_table)} g "
        f"INNER JOIN {quote(Scene._meta.db_table)} s ON s.id = g.scene_id "
        f"INNER JOIN {quote(Project._meta.db_table)} p ON p.id = g.project_id "
        f"LEFT JOIN {quote(Membership._meta.db_table)} m "
        f"ON m.project_id = g.project_id AND m.user_id = %s "
        f"WHERE g.uuid = %s"
    )


def _get_image_for_user(
    request: HttpRequest, uuid: UUID, role: str | None = None, *, superuser_reads: bool = False
) -> tuple[ImageAsset, Membership]:
    queryset = ImageAsset.objects.select_related("project")
    image, member_role = _get_with_role(
        request, queryset, "project", role, superuser_reads=superuser_reads, uuid=uuid
    )
    return image, _membership(request, image.project, member_role)


@dataclass(frozen=True)
class PollState:
    """What the page poll needs to know before it knows whether to answer at all."""

    role: str
    # a scene or take of the project changed after the page's token, or the list of scenes did
    changed: bool
    in_flight: bool  # some take is still on its way


# decode_since never yields anything earlier; "no token" means "everything is new".
_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


POLL_PASS_SALT = "flowsite.poll-pass"
# A storyboard stays open all day; past this its poller falls back to the session (still fine).
POLL_PASS_MAX_AGE = 12 * 3600


def poll_pass(user_id: int, project_uuid: UUID) -> str:
    """A signed note "this user opened this project's page", carried by the page's poller.

    It lets the poll answer "nothing changed" (204, an empty body) without loading the session
    and the user, which is most of what an idle poll costs (benchmarks/page_poll.py).
    Membership is still checked on every poll; and whenever there is something to show, the
    poll goes through the normal signed-in path, so a pass alone never reveals a card.
    """
    return signing.TimestampSigner(salt=POLL_PASS_SALT).sign(f"{user_id}:{project_uuid}")


def _poll_pass_user(token: str | None, project_uuid: UUID) -> int | None:
    """The user a valid pass for this project was issued to, else None."""
    if not token:
        return None
    verified = _verified_pass(token, settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))
    if verified is None:
        return None
    value, issued = verified
    if time.time() - issued > POLL_PASS_MAX_AGE:
        return None
    user_id, _, uuid = value.partition(":")
    if uuid != str(project_uuid) or not user_id.isdigit():
        return None
    return int(user_id)


@lru_cache(maxsize=4096)
def _verified_pass(token: str, key: str, fallbacks: tuple[str, ...]) -> tuple[str, int] | None:
    """The pass's value and when it was issued, if its signature holds under these keys.

    A page sends the same pass on every poll all day, and checking the HMAC is a fifth of what
    an unchanged poll costs, so a signature is checked once per process and key set; its age
    is still checked on every poll, by the caller. The keys are part of the cache key so a
    rotated-out key stops being honoured at once.
    """
    signer = signing.TimestampSigner(key=key, fallback_keys=fallbacks, salt=POLL_PASS_SALT)
    try:
        # Signer.unsign checks the signature and leaves "value:timestamp" for us to split.
        stamped = signing.Signer.unsign(signer, token)
        value, issued = stamped.rsplit(signer.sep, 1)
        return value, signing.b62_decode(issued)
    except (signing.BadSignature, ValueError):
        return None


def _poll_state_for_user(request: HttpRequest, uuid: UUID, since: datetime | None) -> PollState:
    return _poll_state(request.user.pk, uuid, since)


def _poll_state_for_pass(token: str | None, uuid: UUID, since: datetime | None) -> PollState | None:
    """The poll state for the holder of a valid pass who is still a member, else None."""
    user_id = _poll_pass_user(token, uuid)
    if user_id is None:
        return None
    try:
        return _poll_state(user_id, uuid, since)
    except Http404:
        return None


def _poll_state(user_id: int, uuid: UUID, since: datetime | None) -> PollState:
    """Membership, "changed since?" and "anything in flight?" in one statement; 404 for
    outsiders.

    Every open storyboard asks this every few seconds and nearly always learns "nothing new",
    so it is written as SQL: building the same three correlated subqueries with the ORM costs
    about a millisecond of Python per poll (benchmarks/page_poll.py), several times the rest
    of the request. For the database it is a few index lookups (gen_project_updated,
    gen_gallery, the scenes' project index) and the project row it joins anyway, whose
    ``scenes_changed`` tells whether scenes were added, deleted or moved (NULL: never, which
    compares as not newer).
    """
    alias = router.db_for_read(Membership)
    connection = connections[alias]
    # The three dates compared are the same moment in the same kind of column.
    moment = connection.ops.adapt_datetimefield_value(since or _BEGINNING)
    params = [
        moment,
        moment,
        moment,
        *Generation.IN_FLIGHT,
        Project._meta.get_field("uuid").get_db_prep_value(uuid, connection),
        user_id,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_poll_state_sql(alias), params)
        row = cursor.fetchone()
    if row is None:
        raise Http404
    return PollState(role=row[0], changed=since is None or bool(row[1]), in_flight=bool(row[2]))


@lru_cache
def _poll_state_sql(alias: str) -> str:
    quote = connections[alias].ops.quote_name
    generations = quote(Generation._meta.db_table)
    scenes = quote(Scene._meta.db_table)
    memberships = quote(Membership._meta.db_table)
    projects = quote(Project._meta.db_table)
    statuses = ", ".join(["%s"] * len(Generation.IN_FLIGHT))
    return (
        f"SELECT m.role, "
        f"(p.scenes_changed > %s "
        f"OR EXISTS (SELECT 1 FROM {generations} g WHERE g.project_id = m.project_id "
        f"AND g.updated > %s) "
        f"OR EXISTS (SELECT 1 FROM {scenes} s WHERE s.project_id = m.project_id "
        f"AND s.updated > %s)), "
        f"EXISTS (SELECT 1 FROM {generations} g WHERE g.project_id = m.project_id "
        f"AND g.status IN ({statuses})) "
        f"FROM {memberships} m INNER JOIN {projects} p ON p.id = m.project_id "
        f"WHERE p.uuid = %s AND m.user_id = %s"
    )
