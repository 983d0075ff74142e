"""The project gallery: every finished clip, one section per member who asked for it.

The body of a gallery page (everything but the site's shell) is the same for every member, so
it is rendered once and kept in Django's cache under the project's ``gallery_version``, which
every change to what a page shows bumps in the change's own transaction (generations/signals.py,
``Project.mark_scenes_changed`` and the worker's ``Download.run``). A warm page then costs the
sign-in, the membership lookup and the shell: three queries however big the gallery.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from uuid import UUID

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.cache import cache as body_cache
from django.core.paginator import Paginator
from django.db.models import Count, F, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import get_template, render_to_string
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET

from .. import models
from ..engines import catalogue
from ..models import Generation, Project, Scene
from ..templatetags import studio
from .access import get_project_for_user

log = logging.getLogger(__name__)

PAGE_SIZE = 48
TEMPLATE = "generations/gallery.html"
# Versioned keys never go stale, so the timeout only bounds how long an old version's bodies
# linger in a shared cache; a per-process cache also drops its oldest past CACHES' MAX_ENTRIES.
BODY_SECONDS = 24 * 60 * 60
# What a filter naming no scene of this project is keyed as: such pages are all alike.
UNKNOWN_SCENE = "unknown"


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
    """A gallery page: the membership check, then the body from the cache or rendered.

    The membership lookup runs first, every time, and reads the project's gallery version in
    the same query. Everything the body shows is read after it, so a change racing this
    request can only make it store newer data under the older version (which readers of that
    version may then see early), never older data under the newer one: the change and its bump
    commit together, and whoever reads the new version reads the change too.
    """
    project, membership = get_project_for_user(request, uuid, with_account=False)
    scene = _scene_key(request.GET.get("scene", ""))
    number = _page_number(request.GET.get("page"))
    key = body_key(project, scene, number)
    body = _cached(key)
    if body is None:
        body = _render_body(project, scene, number)
        _store(key, body)
    return render(request, TEMPLATE, {"project": project, "membership": membership, "body": body})


def body_key(project: Project, scene: str, number: int) -> str:
    # The uuid, not the pk: a database rebuilt behind a shared cache may hand the same pk to
    # another project, whose version starts at 0 again.
    return f"gallery:{_body_format()}:{project.uuid.hex}:{project.gallery_version}:{scene}:{number}"


def _body_format() -> str:
    """Changes whenever code that shapes a body changes, so that a deploy never serves a body
    cached by the previous release from a shared cache: the template, this module, the
    template filters, the model catalogue (its labels) and the models (choice labels, how
    an untitled scene is named). The template is looked up each time (its loader caches it)
    because the development server reloads edited templates without restarting."""
    return _format_of(get_template(TEMPLATE).template.source)


@lru_cache(maxsize=8)
def _format_of(template_source: str) -> str:
    digest = hashlib.sha256(template_source.encode())
    for module in (sys.modules[__name__], studio, catalogue, models):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:12]


def _scene_key(wanted: str) -> str:
    wanted = wanted.strip()
    if not wanted:
        return ""
    try:
        return str(UUID(wanted))
    except ValueError:
        return UNKNOWN_SCENE


def _page_number(raw: str | None) -> int:
    # The paginator's own rule (not a number: page 1), applied before the key is made, so
    # that "?page=x" and "?page=1" share one body; other numbers are the paginator's to place.
    try:
        return int(raw or 1)
    except ValueError:
        return 1


def _cached(key: str) -> SafeString | None:
    # The cache only saves work: when it is down (a shared Redis), pages are rendered.
    try:
        return body_cache.get(key)
    except Exception:
        log.warning("gallery cache unavailable; rendering the page", exc_info=True)
        return None


def _store(key: str, body: SafeString) -> None:
    try:
        body_cache.set(key, body, BODY_SECONDS)
    except Exception:
        log.warning("gallery cache unavailable; the page was not kept", exc_info=True)


def _render_body(project: Project, scene_key: str, number: int) -> SafeString:
    """The part of the page every member sees alike, from the database."""
    scenes: list[Scene] = list(project.scenes.only("uuid", "title", "position", "project_id"))

    clips = project.generations.filter(status=Generation.Status.READY)
    scene_error = ""
    selected: Scene | None = None
    if scene_key:
        selected = next((scene for scene in scenes if str(scene.uuid) == scene_key), None)
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
    total = sum(totals.values())
    # The page numbers come from the counts already in hand: no COUNT query of its own.
    page = Paginator(range(total), PAGE_SIZE).get_page(number)
    sections = _page_sections(clips, totals, (page.number - 1) * PAGE_SIZE)

    return render_to_string(
        f"{TEMPLATE}#body",
        {
            "project": project,
            "scenes": scenes,
            "selected": selected,
            "scene_error": scene_error,
            "page": page,
            "sections": sections,
            "total": total,
            # The pager's links carry the filter as the key has it, not whatever else the
            # request that happened to render the body had in its query string.
            "query": {"scene": str(selected.uuid)} if selected else {},
        },
    )


def _page_sections(clips: QuerySet[Generation], totals: dict, start: int) -> list[Section]:
    """The members' sections of the page that starts at clip number ``start``.

    Members come in name order (a deleted account's clips last), each member's clips newest
    first, and pages cut through this one ordering. Rather than sorting every clip of the
    project to find one page (tens of milliseconds at 10,000 clips), the members' counts say
    which members the page spans and where it starts in each; their clips come from one query
    whose parts each walk the gen_gallery_member index for one member.
    """
    names = dict(
        get_user_model()
        .objects.filter(pk__in=[pk for pk in totals if pk is not None])
        .order_by("username")
        .values_list("pk", "username")
    )
    ordered = [*names, *([None] if None in totals else [])]
    wanted = Q()
    spans: list[Section] = []
    end = start + PAGE_SIZE
    first = 0  # the member's first clip, counted over the whole ordering
    for requester in ordered:
        count = totals[requester]
        begin, stop = max(start, first), min(end, first + count)
        if begin < stop:
            if requester is None:
                mine = clips.filter(requested_by__isnull=True)
            else:
                mine = clips.filter(requested_by=requester)
            newest_first = mine.order_by(F("finished_at").desc(nulls_last=True), "-pk")
            wanted |= Q(pk__in=newest_first.values("pk")[begin - first : stop - first])
            name = names[requester] if requester is not None else "A former member"
            spans.append(Section(requester, name, count))
        first += count
        if first >= end:
            break
    if not spans:
        return []
    rank = {section.requester_id: index for index, section in enumerate(spans)}
    page_clips = sorted(
        Generation.objects.filter(wanted).select_related("scene"),
        key=lambda clip: (rank[clip.requested_by_id], *_newest_first(clip)),
    )
    for clip in page_clips:
        spans[rank[clip.requested_by_id]].clips.append(clip)
    return spans


def _newest_first(clip: Generation) -> tuple[float, int]:
    finished = clip.finished_at.timestamp() if clip.finished_at else float("-inf")
    return -finished, -clip.pk
