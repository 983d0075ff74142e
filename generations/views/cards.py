"""What the storyboard page and the card actions both render: cards with their takes, the
page's poller and the ``since`` token it carries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.db.models import Count, Exists, Prefetch
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from .. import rules, take_actions
from ..models import CannotGenerate, Comment, Generation, Membership, Project, Scene, Upscale
from .access import HtmxHttpRequest, Role, get_generation_for_user
from .accounts import spend_refusal

TEMPLATE = "generations/project.html"


# --- poll tokens --------------------------------------------------------------------------
#
# The page remembers the newest change it has shown (the largest `updated` among its scenes
# and takes) as a whole number of microseconds; the poll answers with what is newer.


def encode_since(moment: datetime | None) -> str:
    if moment is None:
        return "0"
    return str(int(moment.timestamp() * 1_000_000))


# A worker stamps `updated` a moment before its transaction commits; a change committed after
# a later one would fall behind a token that jumped to the later one. Tokens therefore trail
# the answer's own start by this much: such a change still arrives on the next poll, and a
# card that changed within the margin is merely sent twice.
LATE_COMMIT_MARGIN = timedelta(seconds=2)


def page_token(newest: datetime | None, answered_at: datetime) -> str:
    """The ``since`` token a page gets: its newest change, but no later than the margin."""
    if newest is None:
        return encode_since(None)
    return encode_since(min(newest, answered_at - LATE_COMMIT_MARGIN))


def newest_change(scenes: list[Scene], *moments: datetime | None) -> datetime | None:
    """The newest ``updated`` among ``scenes`` and their takes, and ``moments`` (None: none)."""
    found = [*moments, *(scene.updated for scene in scenes)]
    found += [take.updated for scene in scenes for take in scene.take_list]
    return max((moment for moment in found if moment is not None), default=None)


def anything_in_flight(scenes: list[Scene]) -> bool:
    """Whether a take or an upscale on these cards is still on its way (the page polls fast)."""
    return any(
        take.in_flight or any(up.in_flight for up in take.upscale_list)
        for scene in scenes
        for take in scene.take_list
    )


def project_in_flight(project: Project) -> bool:
    """Whether a take or an upscale anywhere in the project is still on its way, in one
    query: the page polls fast while any is, whichever card it is on."""
    takes = Generation.objects.filter(project=project, status__in=Generation.IN_FLIGHT)
    upscales = Upscale.objects.filter(project=project, status__in=Upscale.IN_FLIGHT)
    return Project.objects.filter(pk=project.pk).filter(Exists(takes) | Exists(upscales)).exists()


def decode_since(token: str | None) -> datetime | None:
    """The moment a token stands for; None when it is missing or not one of ours."""
    if not token or not token.isdigit() or len(token) > 20:
        return None
    try:
        return datetime.fromtimestamp(int(token) / 1_000_000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


# --- cards --------------------------------------------------------------------------------


def storyboard_scenes(project: Project, scenes=None) -> list[Scene]:
    """Scenes in order with their takes (newest first), their images, comments and upscales,
    in the same few queries whatever their number.

    Read through ``project.scenes`` so every scene shares the already-loaded project (and
    its account) instead of fetching it again.
    """
    comments = Prefetch(
        "comments", queryset=Comment.objects.select_related("author"), to_attr="comment_list"
    )
    # Explicit orders: the models' default ones start with a relation (the take, the project)
    # and would join up to the project only to sort by its name.
    upscales = Prefetch(
        "upscales", queryset=Upscale.objects.order_by("resolution"), to_attr="upscale_list"
    )
    takes = Prefetch(
        "generations",
        queryset=Generation.objects.select_related("requested_by")
        .prefetch_related(comments, upscales)
        # How many scenes extend each take: the card's Extend button says how many it saw.
        .annotate(extension_count=Count("extensions"))
        .order_by("-take"),
        to_attr="take_list",
    )
    queryset = scenes if scenes is not None else project.scenes.all()
    loaded = list(
        queryset.select_related("pick", "source_take")
        .prefetch_related(takes)
        .order_by("position", "id")
    )
    Scene.load_images(loaded)
    for scene in loaded:
        take_actions.decorate(project, scene.take_list)
        # The card shows the film's pick first and folds the other takes away.
        pick = getattr(scene, "pick", None)
        scene.picked_take = next(
            (t for t in scene.take_list if pick and t.pk == pick.take_id), None
        )
        scene.other_takes = [t for t in scene.take_list if t is not scene.picked_take]
        # The compare page plays the ready takes side by side: two of them make it worth a link.
        scene.can_compare = sum(t.is_ready and bool(t.video) for t in scene.take_list) > 1
        scene.has_failed_takes = any(
            t.status in (Generation.Status.FAILED, Generation.Status.CANCELLED)
            for t in scene.take_list
        )
    return loaded


def page_poll_every(live: bool) -> str:
    """The poller's htmx cadence, e.g. "2000ms": fast while takes are in flight, slow otherwise.
    Whole milliseconds in a string, so no locale turns it into "0,5s" or "1,000ms" (htmx would
    read 0 and 1 ms)."""
    seconds = settings.FLOWSITE_PAGE_POLL_SECONDS if live else settings.FLOWSITE_IDLE_POLL_SECONDS
    return f"{max(1, round(seconds * 1000))}ms"


def card_context(
    project: Project, membership: Membership, *, since: str, live: bool, **extra
) -> dict:
    return {
        "project": project,
        "membership": membership,
        "can_edit": membership.can_edit,
        # Shown on every card's Generate, and its takes' Extend, Upscale and Retry, in place
        # of their price (see spend_refusal).
        "spend_refusal": spend_refusal(project, membership),
        "since": since,
        "live": live,
        "poll_every": page_poll_every(live),
        "max_prompt": rules.MAX_PROMPT_CHARACTERS,
        **extra,
    }


def project_url(project: Project, scene: Scene | None = None) -> str:
    url = reverse("project-detail", kwargs={"uuid": project.uuid})
    return f"{url}#scene-{scene.uuid}" if scene else url


def after_card_action(
    request: HtmxHttpRequest,
    scene: Scene,
    membership: Membership,
    *,
    error: str,
    notice: str,
    **extra,
) -> HttpResponse:
    """The answer to an action on a card: the card again, with the error or notice in it
    (htmx), or back to the storyboard with the words as a message."""
    project = scene.project
    if not request.htmx:
        if error:
            messages.error(request, f"{scene}: {error}")
        elif notice:
            messages.success(request, f"{scene}: {notice}")
        return redirect(project_url(project, scene))

    # The card comes back with its takes; the poller keeps the page's own `since`, so the next
    # poll still brings every other card that changed meanwhile.
    found = storyboard_scenes(project, project.scenes.filter(pk=scene.pk))
    if not found:
        # A teammate deleted the scene after the lookup read it: there is no card to answer
        # with. The words reach the page as any refusal's do (static/js/app.js, 404.html).
        raise Http404(
            f"{scene} was just deleted by a teammate"
            + (", so nothing was done." if error else ".")
            + " Reload the page to see the storyboard as it is now."
        )
    [fresh] = found
    since = decode_since(request.POST.get("since"))
    live = project_in_flight(project)
    ctx = card_context(
        project,
        membership,
        since=encode_since(since) if since else encode_since(fresh.updated),
        live=live,
        scene=fresh,
        card_error=error,
        card_notice=notice,
        poller_oob=True,
        # The notice is said by the page's own live region: many screen readers ignore a live
        # region that arrives already filled, as it would in the swapped card. A refusal is
        # the card's role=alert, which they do read when it arrives (said once, not twice).
        announce_oob=True,
        announcement=f"{scene}: {notice}" if notice and not error else "",
        **extra,
    )
    return render(request, f"{TEMPLATE}#card-response", ctx)


def take_action(
    request: HtmxHttpRequest, uuid: UUID, act: Callable[[Generation], str]
) -> HttpResponse:
    """An editor's action on one take, answered like every card action: ``act`` does it and
    returns the notice, or raises ``CannotGenerate`` with the refusal in words."""
    take, membership = get_generation_for_user(request, uuid, Role.EDITOR)
    scene = take.scene
    scene.project = take.project
    kept = {}
    try:
        notice, error = act(take), ""
    except CannotGenerate as refusal:
        notice, error = "", str(refusal)
        # The card comes back refused with the prompt still typed in the take's box.
        kept = {"kept_take": take.pk, "kept_prompt": request.POST.get("prompt", "")}
    return after_card_action(request, scene, membership, error=error, notice=notice, **kept)
