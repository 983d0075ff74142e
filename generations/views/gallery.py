"""The project gallery: every finished clip, one section per member who asked for it.

Every page is rendered from the database on each request, so a change shows at once with no
cache to keep in step. A page costs the same few queries at any size and any depth: members'
counts place the page, and one query brings its clips through the gen_gallery_member index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from ..engines.catalogue import FLOW_BASE_RESOLUTION, UPSCALERS, resolution_label
from ..models import FilmRender, Generation, Pick, Scene, Upscale
from .access import get_project_for_user

PAGE_SIZE = 48
# What a card shows, read as plain rows: the template reads a dict's keys at once, where each
# attribute of a model costs it a failed key lookup first, and a page has 48 cards.
CARD_FIELDS = (
    "id",
    "uuid",
    "scene_id",
    "requested_by_id",
    "take",
    "prompt",
    "model_key",
    "aspect",
    "mode",
    "seed",
    "poster",
    "finished_at",
    "resolution",
)
ASPECTS = dict(Scene.AspectChoice.choices)
MODES = dict(Scene.Mode.choices)
# Stands for a clip's uuid in its media addresses, reversed once a page (_complete_cards).
ANY_UUID = str(UUID(int=0))
# The date filter: how far back a clip may have finished.
PERIODS = {
    "today": ("Today", timedelta(days=1)),
    "week": ("Last 7 days", timedelta(days=7)),
    "month": ("Last 30 days", timedelta(days=30)),
}
SORTS = {"newest": "Newest first", "scene": "Scene order"}
# Rendered films shown above the clips (newest first); the film page lists every version.
FILMS_SHOWN = 6


@dataclass
class Section:
    """One member's clips on this page, and how many they have in all."""

    requester_id: int | None
    name: str
    total: int
    clips: list[dict] = field(default_factory=list)


@require_GET
@login_required
def project_gallery(request: HttpRequest, uuid: UUID) -> HttpResponse:
    project, _ = get_project_for_user(request, uuid)
    # Ordered here: the model's default ordering starts with the project, which would join
    # the projects table to sort by its name.
    rows = project.scenes.order_by("position", "pk").values_list("pk", "uuid", "title", "position")
    scenes = [
        {
            "pk": pk,
            "uuid": scene_uuid,
            "name": Scene.name_for(title, position),
            "position": position,
        }
        for pk, scene_uuid, title, position in rows
    ]

    clips = project.generations.filter(status=Generation.Status.READY)
    query: dict[str, str] = {}
    scene_error = ""
    selected: dict | None = None
    wanted = request.GET.get("scene", "").strip()
    if wanted:
        wanted_uuid = _uuid_or_none(wanted)
        selected = next((scene for scene in scenes if scene["uuid"] == wanted_uuid), None)
        if selected is None:
            scene_error = "That scene is not in this project; showing every clip instead."
        else:
            # By the scene alone (it is this project's): with the project in the filter too,
            # SQLite walks every clip of the project in gen_gallery_member to find the scene's.
            clips = Generation.objects.filter(
                scene_id=selected["pk"], status=Generation.Status.READY
            )
            query["scene"] = str(selected["uuid"])
    period = request.GET.get("date", "")
    if period in PERIODS:
        clips = clips.filter(finished_at__gte=timezone.now() - PERIODS[period][1])
        query["date"] = period
    mode = request.GET.get("mode", "")
    if mode in MODES:
        clips = clips.filter(mode=mode)
        query["mode"] = mode
    if request.GET.get("picked") == "1":
        clips = clips.filter(Exists(Pick.objects.filter(take_id=OuterRef("pk"))))
        query["picked"] = "1"
    sort = request.GET.get("sort", "")
    if sort in SORTS and sort != "newest":
        query["sort"] = sort
    else:
        sort = "newest"

    totals = dict(
        clips.order_by()
        .values("requested_by")
        .annotate(count=Count("pk"))
        .values_list("requested_by", "count")
    )
    # Every member with clips under the other filters is offered, so the member filter is
    # read from the same counts and names: no query of its own.
    names = member_names(totals)
    member = request.GET.get("member", "")
    wanted_member = next((pk for pk, (_, key) in names.items() if key == member), "all")
    if wanted_member != "all":
        totals = {wanted_member: totals[wanted_member]}
        query["member"] = member
    elif member:
        scene_error = "That member has no clips here; showing every member's instead."
    total = sum(totals.values())
    # The page numbers come from the counts already in hand: no COUNT query of its own.
    page = Paginator(range(total), PAGE_SIZE).get_page(request.GET.get("page"))
    positions = {scene["pk"]: scene["position"] for scene in scenes} if sort == "scene" else None
    sections = _page_sections(clips, totals, names, (page.number - 1) * PAGE_SIZE, positions)
    _complete_cards(sections, {scene["pk"]: scene["name"] for scene in scenes})
    # The films head the first page of the whole gallery; a filtered view is about clips.
    films = ready_films(project) if page.number == 1 and not query else []

    return render(
        request,
        "generations/gallery.html",
        {
            "project": project,
            "scenes": scenes,
            "selected": selected,
            "scene_error": scene_error,
            "page": page,
            "sections": sections,
            "films": films,
            "total": total,
            "members": [
                {"key": key, "name": name, "selected": pk == wanted_member}
                for pk, (name, key) in names.items()
            ],
            "periods": {key: label for key, (label, _) in PERIODS.items()},
            "period": query.get("date", ""),
            "modes": MODES,
            "mode": query.get("mode", ""),
            "picked": "picked" in query,
            "sorts": SORTS,
            "sort": sort,
            "filtered": bool(query),
            # The pager's links keep the filters and nothing else the address carried.
            "query": query,
        },
    )


def _complete_cards(sections: list[Section], scene_names: dict[int, str]) -> None:
    """Give each card its scene's name, its aspect's label and its media addresses."""
    # A clip's addresses differ only by its uuid, so each is reversed once a page rather than
    # once a card: reverse() checks its result against the route's pattern every time.
    video = reverse("media-take-video", args=[ANY_UUID])
    poster = reverse("media-take-poster", args=[ANY_UUID])
    upscaled = reverse("media-upscale-video", args=[ANY_UUID])
    # The page's upscaled copies in one query: each card lists its resolutions.
    copies: dict[int, list[dict]] = {}
    ids = [clip["id"] for section in sections for clip in section.clips]
    for row in (
        Upscale.objects.filter(take_id__in=ids, status=Upscale.Status.READY)
        .exclude(video="")
        .order_by("resolution")
        .values("take_id", "uuid", "resolution")
    ):
        copies.setdefault(row["take_id"], []).append(
            {
                "label": UPSCALERS[row["resolution"]].label,
                "url": upscaled.replace(ANY_UUID, str(row["uuid"])),
            }
        )
    for section in sections:
        for clip in section.clips:
            clip["upscales"] = copies.get(clip["id"], [])
            clip["resolutions"] = [
                resolution_label(clip["resolution"] or FLOW_BASE_RESOLUTION),
                *(copy["label"] for copy in clip["upscales"]),
            ]
            key = str(clip["uuid"])
            clip["scene"] = scene_names[clip["scene_id"]]
            clip["aspect_label"] = ASPECTS.get(clip["aspect"], clip["aspect"])
            clip["mode_label"] = MODES.get(clip["mode"], clip["mode"])
            clip["video_url"] = video.replace(ANY_UUID, key)
            clip["poster_url"] = poster.replace(ANY_UUID, key) if clip["poster"] else ""


def ready_films(project) -> list[FilmRender]:
    """The project's newest ready films with who asked for each, in one query."""
    return list(
        FilmRender.objects.filter(project=project, status=FilmRender.Status.READY)
        .exclude(video="")
        .select_related("requested_by")
        .only("uuid", "created", "duration", "segments", "requested_by__username")
        .order_by("-created", "-id")[:FILMS_SHOWN]
    )


def _uuid_or_none(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def member_names(totals: dict) -> dict:
    """{user pk or None: (name, key)} of the members in ``totals``, in name order (a deleted
    account's clips last). The key stands for the member in the address (``?member=``)."""
    rows = (
        get_user_model()
        .objects.filter(pk__in=[pk for pk in totals if pk is not None])
        .order_by("username")
        .values_list("pk", "username")
    )
    names = {pk: (username, username) for pk, username in rows}
    if None in totals:
        # Not a possible username (those have no spaces), so never mistaken for one.
        names[None] = ("A former member", "former member")
    return names


def _page_sections(
    clips: QuerySet[Generation],
    totals: dict,
    names: dict,
    start: int,
    positions: dict[int, int] | None = None,
) -> list[Section]:
    """The members' sections of the page that starts at clip number ``start``.

    Members come in name order (a deleted account's clips last), each member's clips newest
    first, and pages cut through this one ordering. Rather than sorting every clip of the
    project to find one page (work that grows with the project, and deep pages pay most), the
    members' counts say which members the page spans and where it starts in each; their clips
    come from one query whose parts each walk the gen_gallery_member index for one member.
    """
    ordered = [pk for pk in names if pk in totals]
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
            if positions is None:
                ordering = mine.order_by(F("finished_at").desc(nulls_last=True), "-pk")
            else:
                ordering = mine.order_by("scene__position", "scene_id", "take", "pk")
            wanted |= Q(pk__in=ordering.values("pk")[begin - first : stop - first])
            spans.append(Section(requester, names[requester][0], count))
        first += count
        if first >= end:
            break
    if not spans:
        return []
    rank = {section.requester_id: index for index, section in enumerate(spans)}
    if positions is None:
        within = _newest_first
    else:

        def within(clip: dict) -> tuple:
            return positions[clip["scene_id"]], clip["scene_id"], clip["take"], clip["id"]

    page_clips = sorted(
        # No SQL ordering (the default one joins scenes and projects): sorted here instead.
        Generation.objects.filter(wanted).order_by().values(*CARD_FIELDS),
        key=lambda clip: (rank[clip["requested_by_id"]], *within(clip)),
    )
    for clip in page_clips:
        spans[rank[clip["requested_by_id"]]].clips.append(clip)
    return spans


def _newest_first(clip: dict) -> tuple[float, int]:
    finished = clip["finished_at"].timestamp() if clip["finished_at"] else float("-inf")
    return -finished, -clip["id"]
