"""The project gallery: every finished clip, one section per member who asked for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ..models import Generation, Scene
from .access import _get_project_for_user

PAGE_SIZE = 48


@dataclass
class Section:
    """One member's clips on this page, and how many they have in all."""

    requester_id: int | None
    name: str
    total: int
    clips: list[Generation] = field(default_factory=list)


@require_GET
@login_required
def project_gallery(request: HttpRequest, uuid: UUID) -> HttpResponse:
    project, membership = _get_project_for_user(request, uuid)
    scenes: list[Scene] = list(project.scenes.only("uuid", "title", "position", "project_id"))

    clips = project.generations.filter(status=Generation.Status.READY)
    scene_error = ""
    selected: Scene | None = None
    wanted = request.GET.get("scene", "").strip()
    if wanted:
        selected = next((scene for scene in scenes if str(scene.uuid) == wanted), None)
        if selected is None:
            scene_error = "That scene is not in this project; showing every clip instead."
        else:
            clips = clips.filter(scene=selected)

    totals = dict(
        clips.order_by()
        .values("requested_by")
        .annotate(count=Count("pk"))
        .values_list("requested_by", "count")
    )
    # Members in name order (a deleted account's clips last), each member's clips newest first;
    # pages cut through this one ordering, so a member's section may continue on the next page.
    ordered = clips.select_related("requested_by", "scene").order_by(
        F("requested_by__username").asc(nulls_last=True),
        F("finished_at").desc(nulls_last=True),
        "-pk",
    )
    page = Paginator(ordered, PAGE_SIZE).get_page(request.GET.get("page"))

    sections: list[Section] = []
    for clip in page.object_list:
        if not sections or sections[-1].requester_id != clip.requested_by_id:
            name = str(clip.requested_by) if clip.requested_by else "A former member"
            sections.append(
                Section(clip.requested_by_id, name, totals.get(clip.requested_by_id, 0))
            )
        sections[-1].clips.append(clip)

    return render(
        request,
        "generations/gallery.html",
        {
            "project": project,
            "membership": membership,
            "scenes": scenes,
            "selected": selected,
            "scene_error": scene_error,
            "page": page,
            "sections": sections,
            "total": sum(totals.values()),
        },
    )
