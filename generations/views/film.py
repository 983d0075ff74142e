"""The film page: the picks in scene order with their trims, Render film and its progress, and
every render kept, each downloadable like a clip."""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_POST, require_safe

from .. import film_tasks
from ..forms import TrimForm
from ..models import CannotGenerate, FilmRender, Generation, Pick, Scene
from .access import (
    HtmxHttpRequest,
    Role,
    get_film_for_user,
    get_project_for_user,
    get_scene_for_user,
    htmx_login_required,
)
from .media import serve_private_file

TEMPLATE = "generations/film.html"
# Renders listed on the film page, newest first.
LISTED_RENDERS = 20


def film_url(project) -> str:
    return reverse("project-film", kwargs={"uuid": project.uuid})


def _film_card_context(project, membership) -> dict:
    renders = [
        render.as_shown()
        for render in FilmRender.objects.filter(project=project)
        .select_related("requested_by")
        .with_numbers()[:LISTED_RENDERS]
    ]
    current = renders[0] if renders else None
    live = current is not None and current.active
    return {
        "project": project,
        "membership": membership,
        "can_edit": membership.can_edit,
        "current": current,
        "renders": renders,
        "live": live,
        "film_poll_every": f"{max(1, round(settings.FLOWSITE_FILM_POLL_SECONDS * 1000))}ms",
    }


@require_safe
@login_required
def project_film(request: HttpRequest, uuid: UUID) -> HttpResponse:
    project, membership = get_project_for_user(request, uuid, with_account=False)
    return _film_page(request, project, membership, film_tasks.plan(project))


def _film_page(
    request: HttpRequest,
    project,
    membership,
    film_plan: film_tasks.FilmPlan,
    refused: TrimForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The film page; ``refused``: a trim form sent back with what was typed and why not."""
    problems = film_plan.trim_problems()
    rows = []
    for index, pick in enumerate(film_plan.picks):
        form = TrimForm(
            initial={"trim_in": pick.trim_in, "trim_out": pick.trim_out}, prefix=_prefix(pick.scene)
        )
        if refused is not None and refused.prefix == form.prefix:
            form = refused
        seam = film_plan.seam_out(index)
        problem = problems.get(pick.scene_id, "")
        # Where the film leaves the clip is the trim out or the seam's cut, whichever comes
        # first: said as the one place the render will cut. (Trims it cannot use are told by
        # the problem instead, beside the trims as they are set.)
        length = film_tasks.clip_seconds(pick.take) if seam and not problem else None
        words, span = pick.film_words(length, 0.0 if problem else seam)
        rows.append(
            {
                "pick": pick,
                "number": film_plan.numbers[pick.scene_id],
                "form": form,
                "problem": problem,
                "seam_out": seam,
                "words": words,
                "span": span,
            }
        )
    missing = [(film_plan.numbers[scene.pk], scene) for scene in film_plan.missing]
    ctx = _film_card_context(project, membership) | {"rows": rows, "missing": missing}
    return render(request, TEMPLATE, ctx, status=status)


def _prefix(scene: Scene) -> str:
    return f"s{scene.uuid.hex[:8]}"


@require_safe
@htmx_login_required
def project_film_card(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    """The film card alone: what the page polls while a render is queued or running. The
    page's live region hears of the render's state when it differs from what the polling card
    showed (``?said=``)."""
    project, membership = get_project_for_user(request, uuid, with_account=False)
    ctx = _film_card_context(project, membership)
    return _film_card_response(request, ctx, said=request.GET.get("said"))


def _film_card_response(request: HttpRequest, ctx: dict, said: str | None) -> HttpResponse:
    current = ctx["current"]
    words = current.state_words if current is not None else ""
    if words and words != said:
        ctx |= {"announce_oob": True, "film_announcement": words}
    return render(request, f"{TEMPLATE}#film-card-response", ctx)


@require_POST
@htmx_login_required
def project_film_render(request: HtmxHttpRequest, uuid: UUID) -> HttpResponse:
    project, membership = get_project_for_user(request, uuid, Role.EDITOR, with_account=False)
    error = ""
    try:
        film_tasks.start(project, request.user)
    except CannotGenerate as refusal:
        error = str(refusal)
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, "The film is rendering; this page shows its progress.")
        return redirect(film_url(project))
    ctx = _film_card_context(project, membership) | {"film_error": error}
    if error:
        return render(request, f"{TEMPLATE}#film-card", ctx)  # said by the card's alert
    return _film_card_response(request, ctx, said=None)


@require_POST
@login_required
def scene_trim(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Set where the film enters and leaves the scene's picked take (blank: its start, its end).
    A refusal shows the film page again with what was typed and why, beside the take."""
    scene, membership = get_scene_for_user(request, uuid, Role.EDITOR)
    project = scene.project
    film_plan = film_tasks.plan(project)
    index = next((i for i, p in enumerate(film_plan.picks) if p.scene_id == scene.pk), None)
    if index is None:
        messages.error(request, f"{scene} has no picked take to trim; pick one first.")
        return redirect(film_url(project))
    pick = film_plan.picks[index]
    form = TrimForm(
        request.POST,
        prefix=_prefix(scene),
        clip_seconds=film_tasks.clip_seconds(pick.take),
        seam=film_plan.seam_out(index),
    )
    if not form.is_valid():
        return _film_page(request, project, membership, film_plan, refused=form, status=400)
    trims = {"trim_in": form.cleaned_data["trim_in"], "trim_out": form.cleaned_data["trim_out"]}
    with transaction.atomic():
        # The pick was read before this; a teammate may have deleted its take (or the scene)
        # since, or picked another take, whose cut these trims were not typed for.
        saved = Pick.objects.filter(pk=pick.pk, take_id=pick.take_id).update(**trims)
        if saved:
            Scene.objects.filter(pk=scene.pk).update(updated=timezone.now())
    if not saved:
        messages.error(
            request,
            f"{scene}: take {pick.take.take} was just deleted or unpicked by a teammate, so the "
            "trims were not saved. Here is the film as it is now.",
        )
        return redirect(film_url(project))
    messages.success(request, f"{scene}: trims saved.")
    return redirect(film_url(project))


@require_safe
@login_required
def film_video(request: HttpRequest, uuid: UUID) -> HttpResponseBase:
    render_, _ = get_film_for_user(request, uuid)
    if not render_.is_ready:
        raise Http404("This film is not ready.")
    # To the second: two renders made in the same minute download as two files.
    stamp = timezone.localtime(render_.created).strftime("%Y%m%d-%H%M%S")
    name = f"{slugify(render_.project.name) or 'project'}-film-{stamp}.mp4"
    return serve_private_file(
        request, render_.video, "video/mp4", name, etag_seed=render_.video_sha256
    )


@require_safe
@login_required
def project_takes_zip(request: HttpRequest, uuid: UUID) -> HttpResponseBase:
    """The picked takes (``?all=1``: every take) and ``manifest.json`` as one zip, streamed
    as it is built."""
    project, _ = get_project_for_user(request, uuid, with_account=False)
    picks_only = request.GET.get("all") != "1"
    entries, copies = film_tasks.zip_entries(project, picks_only=picks_only)
    if not copies:
        messages.error(
            request,
            "No take is picked yet, so there is nothing to download: pick a take of each scene "
            "on its card, or download every ready take."
            if picks_only
            else "No take is ready yet, so there is nothing to download.",
        )
        return redirect(film_url(project))
    missing = [name for take, name in copies if not default_storage.exists(take.video.name)]
    if missing:
        messages.error(
            request,
            "Nothing was downloaded: the stored clip is missing for "
            + ", ".join(missing)
            + ". Retry those takes or pick others.",
        )
        return redirect(film_url(project))
    which = "picks" if picks_only else "takes"
    name = f"{slugify(project.name) or 'project'}-{which}.zip"
    response = StreamingHttpResponse(
        film_tasks.stream_zip(project.name, entries, copies), content_type="application/zip"
    )
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["Cache-Control"] = "private, no-store"
    return response


@require_safe
@login_required
def scene_compare(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """The ready takes of one scene side by side, to be played and paused together."""
    scene, membership = get_scene_for_user(request, uuid)
    takes = list(
        scene.generations.filter(status=Generation.Status.READY)
        .exclude(video="")
        .select_related("requested_by")
        .order_by("take")
    )
    pick = Pick.objects.filter(scene=scene).values_list("take_id", flat=True).first()
    return render(
        request,
        "generations/compare.html",
        {
            "project": scene.project,
            "scene": scene,
            "membership": membership,
            "takes": takes,
            "picked_id": pick,
        },
    )
