"""Actions on a ready take: extend it, upscale it, start the next scene from its last frame.

Each is one POST from the take's card, for editors, answered like Generate: the card again
(htmx) or a redirect back to the storyboard with a message. A new scene reaches every open
page, this one included, through the page poll (the list of scenes changed).
"""

from __future__ import annotations

from uuid import UUID

from django.http import HttpResponse
from django.views.decorators.http import require_POST

from .. import take_actions
from ..models import CannotGenerate
from .access import HtmxHttpRequest, Role, get_generation_for_user, htmx_login_required
from .scenes import _after_card_action


@require_POST
@htmx_login_required
def take_extend(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    take, membership = get_generation_for_user(request, uuid, Role.EDITOR)
    scene = take.scene
    scene.project = take.project
    seen = request.POST.get("extensions_seen", "")
    error = notice = ""
    try:
        if not seen.isdigit():
            raise CannotGenerate(take_actions.EXTEND_STALE)
        extension = take_actions.extend(
            take, request.user, request.POST.get("prompt", ""), seen=int(seen)
        )
        notice = (
            f"Added {extension} after this scene, extending take {take.take}; its take is queued."
        )
    except CannotGenerate as refusal:
        error = str(refusal)
    return _after_card_action(request, scene, membership, error=error, notice=notice)


@require_POST
@htmx_login_required
def take_upscale(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    take, membership = get_generation_for_user(request, uuid, Role.EDITOR)
    scene = take.scene
    scene.project = take.project
    error = notice = ""
    try:
        _, notice = take_actions.request_upscale(
            take,
            request.user,
            request.POST.get("resolution", ""),
            again=request.POST.get("again") == "1",
        )
    except CannotGenerate as refusal:
        error = str(refusal)
    return _after_card_action(request, scene, membership, error=error, notice=notice)


@require_POST
@htmx_login_required
def take_last_frame(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    take, membership = get_generation_for_user(request, uuid, Role.EDITOR)
    scene = take.scene
    scene.project = take.project
    error = notice = ""
    try:
        new = take_actions.last_frame_scene(take, request.user)
        notice = f"Added {new} after this scene, starting from the last frame of take {take.take}."
    except CannotGenerate as refusal:
        error = str(refusal)
    return _after_card_action(request, scene, membership, error=error, notice=notice)
