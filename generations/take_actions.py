"""What a team does with a ready take: extend it, upscale it, or start the next scene from its
last frame.

- **Extend**: a new scene right after the take's scene, in mode "extend", pointing at the take
  (``Scene.source_take``), generated at once like any scene. Flow continues the source's last
  second (``source_clip``); Vertex AI is sent the source clip itself. An extension repeats
  that second at its start, so wherever the two are joined (the film, the card's preview) the
  source's last second is cut (``SEAM_SECONDS``).
- **Upscale** (Flow only): an ``Upscale`` row beside the take, worked by the pipeline
  (``pipeline/upscale.py``). Asking again for a resolution that exists or is under way reuses
  that row, so a second click never pays twice.
- **Last frame → next scene**: the take's last frame, read locally with PyAV, becomes the start
  image of a new scene right after it.

Each is refused in words (``CannotGenerate``) before anything is spent, checked against the
project's budget and the member's allowance in the transaction that records it, as Generate is.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from decimal import Decimal

import av
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import rules
from .engines.catalogue import (
    FLOW_BASE_RESOLUTION,
    TIERS,
    UPSCALERS,
    default_model,
    extend_model,
    model_family,
    models_for,
    resolution_label,
    tier_rank,
)
from .images import clip_frame
from .models import (
    COST_CREDITS,
    CannotGenerate,
    FlowAccount,
    Generation,
    ImageAsset,
    KeptSpend,
    Scene,
    Upscale,
    check_budget,
    reread,
)

# Flow's client sends the source's last second (24 frames at 24 fps) as the extension's
# starting window; the extension repeats it, so a join cuts this much off the source's end.
FPS = 24
SEAM_SECONDS = 1.0

EXTEND_STALE = (
    "This take was extended since the page was loaded (a second click, or a teammate), so "
    "nothing was generated. Check the new scene, then press again if you still want another."
)
VERTEX_NO_UPSCALE = (
    "Vertex AI has no upscale call: it makes 1080p or 4K clips when asked at generation. Set "
    "the scene's resolution to 1080p or 4K (8-second clips) and generate it again."
)


# --- Extend ------------------------------------------------------------------------------


def extend_problem(source: Generation | None, account: FlowAccount | None, source_id=None) -> str:
    """Why ``source`` cannot be extended on ``account``, in words, or "" when it can."""
    if source is None:
        return (
            "The take this scene extends was deleted, so it cannot be generated again."
            if source_id is None
            else "The take to extend no longer exists."
        )
    if account is None:
        return rules.NO_ACCOUNT
    if source.status != Generation.Status.READY or not source.video:
        if source.status == Generation.Status.FAILED:
            return f"{source.label} failed, so it has no clip to extend."
        return (
            f"Only a ready take can be extended; take {source.take} is "
            f"{source.get_status_display().lower()}."
        )
    if not account.is_vertex:
        media = source.media_generation_id
        if not media or media.startswith("gs://"):
            return (
                f"{source.label} was not made by Flow, and Flow extends only its own clips; "
                "use a Vertex AI account to extend it."
            )
        if source.account_id != account.pk:
            return (
                f"{source.label} was made with another Flow account, and Flow extends only "
                "the clips of the account that made them."
            )
    return ""


def planned_extension(source: Generation, prompt: str = "") -> Scene:
    """The extension scene ``source`` would get (not saved): after its scene, in extend mode,
    with the model that continues it on the project's account."""
    project = source.project
    account = project.account
    scene = Scene(
        project=project,
        mode=Scene.Mode.EXTEND,
        source_take=source,
        prompt=prompt or source.prompt,
        aspect=source.aspect,
        takes=1,
        start_image=None,
    )
    if account is not None:
        scene.model_key = extend_model(
            source.model_key, account.tier, source.aspect, account.kind
        ).key
        if account.is_vertex:
            scene.duration, scene.resolution = source.duration, source.resolution
            scene.audio = source.audio
            scene.negative_prompt = source.negative_prompt
            scene.person_generation = source.person_generation
    return scene


def extend_cost_words(source: Generation) -> str:
    """What extending costs, for the button ("20 credits", "$1.20"), "" when not known."""
    cost, unit = planned_extension(source).take_cost()
    return _amount(cost, unit)


def extensions_of(source: Generation) -> int:
    return Scene.objects.filter(source_take=source).count()


def extend(source: Generation, user, prompt: str, *, seen: int | None = None) -> Scene:
    """A new scene after ``source``'s, extending it with ``prompt``, with its take queued.

    ``seen``: how many extensions of ``source`` the person's page showed; if there are more
    now (a second click, a teammate), nothing is made, as Generate refuses a stale card.
    """
    from . import work

    prompt = rules.normalise_line_breaks(prompt or "").strip()
    if rules.is_blank(prompt):
        raise CannotGenerate("Write what happens next before extending the take.")
    project = source.project
    with transaction.atomic():
        # Locking the source's scene serialises two clicks (SQLite's IMMEDIATE transactions
        # already do), so the second one sees the first's extension. Both rows were read
        # before this transaction: a teammate may have deleted them since.
        reread(source.scene, str(source.scene), ["position"])
        if seen is not None and extensions_of(source) != seen:
            raise CannotGenerate(EXTEND_STALE)
        reread(
            source,
            source.label,
            ["status", "video", "media_generation_id", "account"],
        )
        problem = extend_problem(source, project.account, source.pk)
        if problem:
            raise CannotGenerate(problem)
        scene = planned_extension(source, prompt)
        scene.position = source.scene.position + 1
        try:
            scene.full_clean(exclude=["project", "source_take", "start_image"])
        except ValidationError as invalid:
            raise CannotGenerate(" ".join(invalid.messages)) from None
        _make_room_after(source.scene)
        scene.save(force_insert=True)
        project.mark_scenes_changed()
        work.generate(scene, user)
    return scene


def _make_room_after(scene: Scene) -> None:
    """Move every scene after ``scene`` down one place (inside the caller's transaction)."""
    Scene.objects.filter(project_id=scene.project_id, position__gt=scene.position).update(
        position=F("position") + 1
    )


@dataclass(frozen=True)
class SourceClip:
    """What an engine needs of the clip an extension continues (``ClipRequest`` fields)."""

    media_id: str = ""
    frames: tuple[int, int] | None = None
    video_uri: str = ""
    video: bytes = field(default=b"", repr=False)

    def fields(self) -> dict:
        return {
            "source_media_id": self.media_id,
            "source_frames": self.frames,
            "source_video_uri": self.video_uri,
            "source_video": self.video,
        }


def source_clip(source: Generation | None, *, inline: bool) -> SourceClip:
    """The clip ``source`` as an engine is sent it: Flow's media id and the window of its last
    second (counted on the stored clip), or for an engine that takes clips inline (Vertex AI)
    its Cloud Storage address or its bytes. ``CannotGenerate`` when it is gone."""
    if source is None or source.status != Generation.Status.READY or not source.video:
        raise CannotGenerate("The take this one extends was deleted before it could be sent.")
    try:
        if inline:
            if source.media_generation_id.startswith("gs://"):
                return SourceClip(video_uri=source.media_generation_id)
            with default_storage.open(source.video.name, "rb") as handle:
                return SourceClip(video=handle.read())
        frames = clip_frames(source)
    except (OSError, av.FFmpegError):
        raise CannotGenerate(
            "The clip this take extends could not be read from Flowsite's storage."
        ) from None
    return SourceClip(
        media_id=source.media_generation_id, frames=(max(1, frames - FPS + 1), frames)
    )


def clip_frames(take: Generation) -> int:
    """How many frames the take's stored clip has."""
    with default_storage.open(take.video.name, "rb") as handle, av.open(handle) as container:
        stream = container.streams.video[0]
        return stream.frames or sum(1 for _ in container.decode(stream))


# --- Upscale ------------------------------------------------------------------------------


def upscale_problem(take: Generation, account: FlowAccount | None, resolution: str) -> str:
    """Why ``take`` cannot be upscaled to ``resolution`` on ``account``, or ""."""
    upscaler = UPSCALERS.get(resolution)
    if upscaler is None:
        return "Upscale to 1080p or 4K."
    if account is None:
        return rules.NO_ACCOUNT
    if account.is_vertex:
        return VERTEX_NO_UPSCALE
    if take.status != Generation.Status.READY or not take.video:
        return f"Only a ready take can be upscaled; take {take.take} is {take.get_status_display().lower()}."
    media = take.media_generation_id
    if not media or media.startswith("gs://") or take.account_id != account.pk:
        return (
            f"{take.label} was not made by this Flow account, and Flow upscales only the "
            "clips of the account that made them."
        )
    if tier_rank(account.tier) < tier_rank(upscaler.min_tier):
        tiers = dict(TIERS)
        instead = " Upscale to 1080p instead." if resolution == "4k" else ""
        return (
            f"Upscaling to {upscaler.label} needs a Flow {tiers[upscaler.min_tier]} account; "
            f"the account {account} is {tiers.get(account.tier, account.tier)}.{instead}"
        )
    return ""


def upscale_cost(resolution: str) -> Decimal:
    return Decimal(UPSCALERS[resolution].credits)


def upscale_cost_words(resolution: str) -> str:
    cost = upscale_cost(resolution)
    return "free" if not cost else _amount(cost, COST_CREDITS)


def request_upscale(
    take: Generation, user, resolution: str, *, again: bool = False
) -> tuple[Upscale, str]:
    """The take's ``resolution`` copy, asked of Flow unless it exists or is under way; with
    what happened, in words. A failed one is asked again; an uncertain one (Flow may have it
    already) only with ``again``, knowingly."""
    from . import tasks

    project = take.project
    with transaction.atomic():
        # One row per take and size, and this lock: two clicks make one upscale. The take was
        # read before this transaction: a teammate may have deleted it since.
        reread(take, take.label, ["status", "video", "media_generation_id", "account"])
        project.check_spending()
        problem = upscale_problem(take, project.account, resolution)
        if problem:
            raise CannotGenerate(problem)
        label = UPSCALERS[resolution].label
        existing = Upscale.objects.filter(take=take, resolution=resolution).first()
        if existing is not None and existing.status == Upscale.Status.READY:
            return existing, f"{take.label} already has a {label} copy."
        if existing is not None and existing.in_flight:
            return existing, f"{take.label} is already being upscaled to {label}."
        if existing is not None and existing.status == Upscale.Status.UNCERTAIN and not again:
            raise CannotGenerate(
                f"Flow may already be upscaling take {take.take} to {label} (its answer was "
                "lost); ask again knowingly to submit it once more, which may be charged twice."
            )
        cost = upscale_cost(resolution)
        if cost:
            check_budget(project, user, cost, COST_CREDITS)
        now = timezone.now()
        fresh = {
            "status": Upscale.Status.QUEUED,
            "reason": "",
            "account_id": project.account_id,
            "requested_by": user,
            "cost": cost,
            "cost_unit": COST_CREDITS,
            "operation_name": "",
            "attempts": 0,
            "check_errors": 0,
            "download_attempts": 0,
            "claim": None,
            "lease_until": None,
            "next_check_at": None,
            "submitted_at": None,
            "finished_at": None,
            "created": now,
            "updated": now,
        }
        if existing is None:
            upscale = Upscale.objects.create(
                take=take, project=project, resolution=resolution, **fresh
            )
        else:
            from uuid import uuid4

            # The row is asked for afresh, so what the last request spent (one Flow
            # cancelled, or an uncertain one sent again) is kept before it is overwritten.
            KeptSpend.keep(upscales=Upscale.objects.filter(pk=existing.pk))
            # A new request id: the old one may be known to Flow already.
            Upscale.objects.filter(pk=existing.pk).update(request_id=uuid4(), **fresh)
            upscale = Upscale.objects.get(pk=existing.pk)
        Generation.objects.filter(pk=take.pk).update(updated=now)
        transaction.on_commit(tasks.start_pump)
    return upscale, f"Upscaling take {take.take} to {label}."


def decorate(project, takes: list[Generation]) -> None:
    """What a card shows of each ready take's actions, worked out in memory (the takes come
    with ``upscale_list``): the resolutions it exists in, what Extend and each Upscale
    would cost or why they cannot be done."""
    account = project.account
    for take in takes:
        take.project = project
        take.resolution_labels = [resolution_label(size) for size in resolutions(take)]
        if not take.is_ready or account is None:
            continue
        take.extend_problem = extend_problem(take, account, take.pk)
        take.extend_cost = "" if take.extend_problem else extend_cost_words(take)
        take.upscale_note = VERTEX_NO_UPSCALE if account.is_vertex else ""
        take.upscale_offers = []
        if account.is_vertex:
            continue
        for resolution, upscaler in UPSCALERS.items():
            existing = next(
                (up for up in getattr(take, "upscale_list", []) if up.resolution == resolution),
                None,
            )
            take.upscale_offers.append(
                {
                    "resolution": resolution,
                    "label": upscaler.label,
                    "cost": upscale_cost_words(resolution),
                    "problem": upscale_problem(take, account, resolution),
                    "existing": existing,
                }
            )


def resolutions(take: Generation) -> list[str]:
    """The resolutions of ``take`` that can be played (needs ``take.upscale_list``)."""
    base = take.resolution or FLOW_BASE_RESOLUTION
    ready = [up.label for up in getattr(take, "upscale_list", []) if up.is_ready]
    return [base, *ready]


# --- Last frame -> next scene ------------------------------------------------------------


def last_frame_name(take: Generation) -> str:
    return f"last-frame-of-take-{take.uuid}.png"


def last_frame_png(take: Generation) -> bytes:
    """The clip's last frame as PNG bytes, decoded locally."""
    with default_storage.open(take.video.name, "rb") as handle:
        image = clip_frame(handle, last=True)
    if image is None:
        raise CannotGenerate(f"The clip of take {take.take} has no frame to start from.")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def last_frame_scene(take: Generation, user) -> Scene:
    """A new scene right after the take's, starting from its last frame."""
    from .images import ImageRejected, store_start_image

    if take.status != Generation.Status.READY or not take.video:
        raise CannotGenerate(
            f"Only a ready take has a last frame; take {take.take} is "
            f"{take.get_status_display().lower()}."
        )
    project = take.project
    name = last_frame_name(take)
    already = (
        Scene.objects.filter(project=project, start_image__original_name=name)
        .order_by("position")
        .first()
    )
    if already is not None:
        raise CannotGenerate(f"{already} already starts from the last frame of take {take.take}.")
    try:
        data = last_frame_png(take)
    except (OSError, av.FFmpegError):
        raise CannotGenerate(f"The clip of take {take.take} could not be read.") from None
    account = project.account
    model = take.model_key
    if account is not None and rules.model_problem(
        model, take.aspect, account, mode=Scene.Mode.IMAGE
    ):
        # A text or frames take's model may make no clip from a start image: the new scene
        # gets one that does, of the same family (Fast stays Fast) where the account has one.
        offered = models_for(account.tier, take.aspect, account.kind, Scene.Mode.IMAGE)
        same = [m for m in offered if model_family(m.key) == model_family(model)]
        model = (same or offered or [default_model(account.tier, take.aspect, account.kind)])[0].key
    image: ImageAsset | None = None
    try:
        with transaction.atomic():
            # The take's scene was read before this transaction: a teammate may have deleted
            # it since, and the new scene's place is counted from it.
            reread(take.scene, str(take.scene), ["position"])
            if Scene.objects.filter(project=project, start_image__original_name=name).exists():
                raise CannotGenerate(
                    f"A scene already starts from the last frame of take {take.take}."
                )
            image = store_start_image(project, ContentFile(data, name=name), user, name=name)
            scene = Scene(
                project=project,
                mode=Scene.Mode.IMAGE,
                start_image=image,
                prompt=take.prompt,
                aspect=take.aspect,
                model_key=model,
                takes=1,
                position=take.scene.position + 1,
            )
            _make_room_after(take.scene)
            scene.save(force_insert=True)
            project.mark_scenes_changed()
    except ImageRejected as rejected:
        raise CannotGenerate(str(rejected)) from None
    except BaseException:
        if image is not None and image.file:
            image.file.delete(save=False)
        raise
    return scene


def _amount(cost, unit: str) -> str:
    if cost is None:
        return ""
    from .budgets import amount

    return amount(cost, unit)
