"""Actions on a ready take: extend it, upscale it, start the next scene from its last frame;
and on a failed take whose clip was made, fetch that clip again.

Each is one POST from the take's card, for editors, answered like Generate: the card again
(htmx) or a redirect back to the storyboard with a message. A new scene reaches every open
page, this one included, through the page poll (the list of scenes changed).
"""

from __future__ import annotations

from uuid import UUID

from django.http import HttpResponse
from django.views.decorators.http import require_POST

from .. import take_actions, work
from ..models import CannotGenerate, Generation
from .access import HtmxHttpRequest, htmx_login_required
from .cards import take_action


@require_POST
@htmx_login_required
def take_extend(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    def extend(take: Generation) -> str:
        seen = request.POST.get("extensions_seen", "")
        if not seen.isdigit():
            raise CannotGenerate(take_actions.EXTEND_STALE)
        prompt = request.POST.get("prompt", "")
        extension = take_actions.extend(take, request.user, prompt, seen=int(seen))
        return (
            f"Added {extension} after this scene, extending take {take.take}; its take is queued."
        )

    return take_action(request, uuid, extend)


@require_POST
@htmx_login_required
def take_upscale(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    def upscale(take: Generation) -> str:
        again = request.POST.get("again") == "1"
        resolution = request.POST.get("resolution", "")
        _, notice = take_actions.request_upscale(take, request.user, resolution, again=again)
        return notice

    return take_action(request, uuid, upscale)


@require_POST
@htmx_login_required
def take_fetch_again(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    """Ask the upstream again for a clip it made but whose download failed: free, since no
    new clip is asked for (``Generation.fetch_again``)."""

    def fetch_again(take: Generation) -> str:
        work.fetch_again(take)
        return f"Fetching the clip of take {take.take} again; no new clip is paid for."

    return take_action(request, uuid, fetch_again)


@require_POST
@htmx_login_required
def take_last_frame(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    def last_frame(take: Generation) -> str:
        new = take_actions.last_frame_scene(take, request.user)
        return f"Added {new} after this scene, starting from the last frame of take {take.take}."

    return take_action(request, uuid, last_frame)
