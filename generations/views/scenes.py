"""Scenes and their takes: add, edit, reorder, delete, generate, retry, cancel.

Generate, retry and cancel answer an htmx request with the re-rendered card plus a poller
that polls again; without JavaScript they redirect back to the storyboard with a message.
"""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from .. import work
from ..engines.catalogue import model_label
from ..forms import ExtensionForm, SceneForm
from ..models import (
    CannotGenerate,
    Comment,
    DeletedMeanwhile,
    Generation,
    Pick,
    Scene,
    delete_takes,
    reread,
)
from .access import (
    HtmxHttpRequest,
    Role,
    get_comment_for_user,
    get_generation_for_user,
    get_project_for_user,
    get_scene_for_user,
    htmx_login_required,
    refuse_if_archived,
)
from .cards import (
    TEMPLATE,
    after_card_action,
    anything_in_flight,
    card_context,
    newest_change,
    page_token,
    project_url,
    storyboard_scenes,
    take_action,
)

STALE = (
    "New takes of this scene appeared since the page was loaded (a second click, or a "
    "teammate), so nothing was generated. Check its takes, then press again if you still "
    "want more."
)


@require_http_methods(["GET", "POST"])
@login_required
def scene_create(request: HttpRequest, uuid: UUID) -> HttpResponse:
    project, membership = get_project_for_user(request, uuid, Role.EDITOR)
    form = SceneForm(project, request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        scene = form.save_scene(request.user)
        if scene is not None:
            messages.success(request, f"Added {scene}.")
            return redirect(project_url(project, scene))
    return render(
        request,
        "generations/scene_form.html",
        {"project": project, "membership": membership, "form": form, "scene": None},
    )


@require_http_methods(["GET", "POST"])
@login_required
def scene_edit(request: HttpRequest, uuid: UUID) -> HttpResponse:
    scene, membership = get_scene_for_user(request, uuid, Role.EDITOR)
    project = scene.project
    if scene.mode == Scene.Mode.EXTEND:
        return extension_edit(request, scene, membership)
    form = SceneForm(
        project, request.POST or None, request.FILES or None, instance=scene, user=request.user
    )
    if request.method == "POST" and form.is_valid():
        try:
            saved = form.save_scene(request.user)
        except DeletedMeanwhile as gone:
            messages.error(request, str(gone))
            return redirect(project_url(project))
        if saved is not None:
            messages.success(request, f"Saved {saved}.")
            return redirect(project_url(project, saved))
    return scene_form_page(request, membership, form, scene)


def scene_form_page(request: HttpRequest, membership, form, scene: Scene, **extra) -> HttpResponse:
    """The Edit page of ``scene``, a scene's or an extension's (``extra``: what the extension's
    page adds)."""
    return render(
        request,
        "generations/scene_form.html",
        {
            "project": scene.project,
            "membership": membership,
            "form": form,
            "scene": scene,
            "earlier_prompts": earlier_prompts(scene),
            **extra,
        },
    )


def extension_edit(request: HttpRequest, scene: Scene, membership) -> HttpResponse:
    """The Edit page of an extension: what happens next, its title, seed and takes. It stays
    an extension of its take (ExtensionForm has no mode to change)."""
    project = scene.project
    form = ExtensionForm(request.POST or None, instance=scene)
    if request.method == "POST" and form.is_valid():
        try:
            saved = form.save_extension()
        except DeletedMeanwhile as gone:
            messages.error(request, str(gone))
            return redirect(project_url(project))
        if saved is not None:
            messages.success(request, f"Saved {saved}.")
            return redirect(project_url(project, saved))
    source = (
        Generation.objects.select_related("scene").filter(pk=scene.source_take_id).first()
        if scene.source_take_id
        else None
    )
    return scene_form_page(request, membership, form, scene, extension=True, source=source)


def earlier_prompts(scene: Scene, limit: int = 10) -> list[str]:
    """The scene's earlier prompts, as its takes were made with them, newest first, each once:
    the edit form brings one back in a click."""
    seen: list[str] = []
    rows = scene.generations.exclude(prompt=scene.prompt).order_by("-pk").values_list("prompt")
    for (prompt,) in rows[: limit * 5]:
        if prompt not in seen:
            seen.append(prompt)
            if len(seen) == limit:
                break
    return seen


@require_POST
@login_required
def scene_move(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Swap the scene with its neighbour above or below; positions are renumbered 0..n-1."""
    scene, _ = get_scene_for_user(request, uuid, Role.EDITOR)
    project = scene.project
    direction = request.POST.get("direction")
    if direction not in ("up", "down"):
        messages.error(request, "Move a scene up or down.")
        return redirect(project_url(project, scene))
    with transaction.atomic():
        order = list(project.scenes.select_for_update().values_list("uuid", flat=True))
        if scene.uuid not in order:  # deleted by a teammate since the lookup read it
            messages.error(request, str(DeletedMeanwhile(str(scene))))
            return redirect(project_url(project))
        index = order.index(scene.uuid)
        target = index - 1 if direction == "up" else index + 1
        if 0 <= target < len(order):
            order[index], order[target] = order[target], order[index]
        project.reorder_scenes(order)
    return redirect(project_url(project, scene))


ORDER_STALE = (
    "The storyboard changed meanwhile (a teammate added, deleted or moved a scene), so the "
    "order was not saved; here is the storyboard as it is now."
)


@require_POST
@htmx_login_required
def scene_order(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    """Put the project's scenes in the order sent: every scene's uuid once (``scene``, in
    order), with the order the page showed before this move (``seen``, the same uuids). A
    drag or a keyboard move on the storyboard is this one request. htmx gets the storyboard
    back with a poller that has seen the change; without JavaScript, a redirect.

    A move is refused when the saved order is no longer the one the page saw: the whole new
    order is sent, so saving it over a teammate's move would silently undo that move. A
    request without ``seen`` (a page from before it was sent) is refused the same way."""
    answered_at = timezone.now()
    project, membership = get_project_for_user(request, uuid, Role.EDITOR)
    wanted = [uuid_or_none(value) for value in request.POST.getlist("scene")]
    seen = [uuid_or_none(value) for value in request.POST.getlist("seen")]
    with transaction.atomic():
        saved = None not in wanted and project.reorder_scenes(wanted, seen=seen)
    if not request.htmx:
        if not saved:
            messages.error(request, ORDER_STALE)
        return redirect(project_url(project))
    scenes = storyboard_scenes(project)
    ctx = card_context(
        project,
        membership,
        since=page_token(newest_change(scenes, project.scenes_changed), answered_at),
        live=anything_in_flight(scenes),
        scenes=scenes,
        poller_oob=True,
        announce_oob=True,
        order_error="" if saved else ORDER_STALE,
        announcement=(
            "Saved the order: " + ", ".join(str(scene) for scene in scenes) + "."
            if saved
            else ORDER_STALE
        ),
    )
    return render(request, f"{TEMPLATE}#order-response", ctx)


def uuid_or_none(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


@require_POST
@login_required
def scene_delete(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Delete a scene and its takes (with their files), unless a take is still in flight."""
    scene, _ = get_scene_for_user(request, uuid, Role.EDITOR)
    project = scene.project
    with transaction.atomic():
        # The scene's row first, as Generate locks it: a take Generate makes meanwhile is
        # then either among the takes read next (and counted as spent by delete_takes) or
        # never made, instead of vanishing in the cascade (PostgreSQL; SQLite writes one at a
        # time anyway).
        # Its place too, read under the lock: a teammate's move may have changed it.
        position = (
            Scene.objects.select_for_update()
            .filter(pk=scene.pk)
            .values_list("position", flat=True)
            .first()
        )
        if position is None:
            # A second Delete (a double click, a teammate): the scenes after it must not
            # move up a second time.
            messages.success(
                request, f"{scene} was already deleted (a second click, or a teammate)."
            )
            return redirect(project_url(project))
        takes = list(Generation.objects.select_for_update().filter(scene=scene))
        if any(take.in_flight for take in takes):
            messages.error(
                request,
                f"{scene} has takes still rendering; cancel them or wait for them to finish "
                "before deleting the scene.",
            )
            return redirect(project_url(project, scene))
        # Through delete_takes, not the scene's cascade: what the takes spent stays counted.
        delete_takes(takes)
        scene.delete()
        # The scenes after it move up one place: an untitled scene is named by its place
        # ("Scene 3"), and its name must stay the number it shows on the storyboard.
        project.scenes.filter(position__gt=position).update(position=F("position") - 1)
        project.mark_scenes_changed()
    messages.success(request, deleted_message(scene, len(takes)))
    return redirect(project_url(project))


def deleted_message(scene: Scene, takes: int) -> str:
    if takes == 0:
        return f"Deleted {scene}."
    return f"Deleted {scene} and its {takes} take{pluralize(takes)}."


def _last_take(scene: Scene) -> int:
    return Scene.objects.filter(pk=scene.pk).values_list("last_take", flat=True).get()


def _seen_matches(request: HttpRequest, scene: Scene) -> bool:
    """Whether the person pressed the button on a card showing the scene's newest take."""
    seen = request.POST.get("last_take", "")
    return seen.isdigit() and int(seen) == _last_take(scene)


def settings_changed(scene: Scene) -> str:
    """The refusal of a Generate pressed on a card drawn with other settings than the scene's
    (``scene`` as it is now): the card it answers with shows them, and its price."""
    takes = f"{scene.takes} take{pluralize(scene.takes)}"
    said = (
        f"This scene changed since your page showed it (a teammate's edit), so nothing was "
        f"generated; here it is as it is now ({takes} of {model_label(scene.model_key)})."
    )
    if scene.generation_problem():
        return said  # its Generate is disabled now, and the card says why
    return f"{said} Press Generate again if you still want {'them' if scene.takes != 1 else 'it'}."


@require_POST
@htmx_login_required
def scene_generate(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    scene, membership = get_scene_for_user(request, uuid, Role.EDITOR)
    error = ""
    takes: list[Generation] = []
    try:
        with transaction.atomic():
            # Locking the scene row serialises two clicks on PostgreSQL too (SQLite's
            # IMMEDIATE transactions already do), so the second one sees the first's takes;
            # and finds the scene gone if a teammate deleted it since the lookup.
            # With what Generate reads: the lookup read it before this transaction.
            reread(scene, str(scene), Scene.SETTINGS_FIELDS)
            if not _seen_matches(request, scene):
                raise CannotGenerate(STALE)
            # The card says what a press makes and costs; a teammate's edit since it was
            # drawn (more takes, a dearer model, another prompt) must not be bought unseen.
            # A card without the field (drawn before it existed) comes back fresh the same way.
            if request.POST.get("seen_settings") != scene.settings_token():
                raise CannotGenerate(settings_changed(scene))
            takes = work.generate(scene, request.user)
    except CannotGenerate as refusal:
        error = str(refusal)
    notice = f"Queued {len(takes)} take{'s' if len(takes) != 1 else ''}." if takes else ""
    return after_card_action(request, scene, membership, error=error, notice=notice)


@require_POST
@htmx_login_required
def take_retry(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    """A failed or cancelled take is asked for again as a new take; an uncertain one is
    submitted again knowingly (its submission may have reached Flow)."""
    generation, membership = get_generation_for_user(request, uuid, Role.EDITOR)
    scene = generation.scene
    scene.project = generation.project
    error = notice = ""
    try:
        with transaction.atomic():
            reread(scene, str(scene))
            if not _seen_matches(request, scene):
                raise CannotGenerate(STALE)
            reread(generation, generation.label, Generation.TRY_AGAIN_FIELDS)
            take = work.try_again(generation, request.user)
            notice = f"Queued take {take.take}."
    except CannotGenerate as refusal:
        error = str(refusal)
    return after_card_action(request, scene, membership, error=error, notice=notice)


@require_POST
@htmx_login_required
def take_cancel(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    def cancel(take: Generation) -> str:
        if not work.cancel(take, request.user):
            # Said as it is now: a teammate's Cancel a moment earlier is not a finished take,
            # nor is a teammate's Delete.
            reread(take, take.label, ["status"], lock=False)
            already = {
                Generation.Status.CANCELLED: "was already cancelled",
                Generation.Status.FAILED: "had already failed",
            }.get(take.status, "had already finished")
            raise CannotGenerate(f"{take.label} {already}; there is nothing to cancel.")
        return f"Cancelled take {take.take}."

    return take_action(request, uuid, cancel)


@require_POST
@htmx_login_required
def take_pick(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    """Make this take its scene's pick for the film (``action=clear``: the scene has none)."""

    def pick(take: Generation) -> str:
        if request.POST.get("action") == "clear":
            return "No take is picked for the film now." if Pick.clear(take.scene) else ""
        Pick.choose(take, request.user)
        return f"{take.label} is picked for the film."

    return take_action(request, uuid, pick)


@require_POST
@htmx_login_required
def take_delete(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    """Delete a finished take and its files (a take still in flight must be cancelled first)."""
    generation, membership = get_generation_for_user(request, uuid, Role.EDITOR)
    scene = generation.scene
    scene.project = generation.project
    error = notice = ""
    with transaction.atomic():
        take = Generation.objects.select_for_update().filter(pk=generation.pk).first()
        if take is None:
            notice = f"{generation.label} was already deleted."
        elif take.in_flight:
            error = f"{take.label} is still on its way; cancel it before deleting it."
        else:
            delete_takes([take])
            notice = f"Deleted take {take.take}."
    return after_card_action(request, scene, membership, error=error, notice=notice)


@require_POST
@htmx_login_required
def scene_clear_failed(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    """Delete the scene's failed and cancelled takes in one go."""
    scene, membership = get_scene_for_user(request, uuid, Role.EDITOR)
    with transaction.atomic():
        takes = list(
            Generation.objects.select_for_update().filter(
                scene=scene,
                status__in=[Generation.Status.FAILED, Generation.Status.CANCELLED],
            )
        )
        delete_takes(takes)
    count = len(takes)
    notice = f"Cleared {count} failed or cancelled take{'s' if count != 1 else ''}."
    return after_card_action(request, scene, membership, error="", notice=notice)


@require_POST
@htmx_login_required
def take_comment(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    """Every member, viewers included, may comment on a take, unless the project is archived
    (read-only for everyone)."""
    generation, membership = get_generation_for_user(request, uuid)
    refuse_if_archived(generation.project)
    scene = generation.scene
    scene.project = generation.project
    error = notice = ""
    try:
        Comment.post(generation, request.user, request.POST.get("body", ""))
        notice = f"Commented on take {generation.take}."
    except CannotGenerate as refusal:
        error = str(refusal)
    return after_card_action(request, scene, membership, error=error, notice=notice)


@require_POST
@htmx_login_required
def comment_delete(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    """A comment is deleted by its author or by an owner of the project."""
    comment, membership = get_comment_for_user(request, uuid)
    refuse_if_archived(comment.take.project)
    if not comment.may_be_deleted_by(request.user, membership.role):
        raise PermissionDenied("Only its author or an owner may delete a comment.")
    scene = comment.take.scene
    scene.project = comment.take.project
    comment.remove()
    return after_card_action(request, scene, membership, error="", notice="Comment deleted.")
