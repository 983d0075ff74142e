"""A project's film in the studio: what the picks make, rendering it as a worker task, and the
zip of its takes.

``start`` freezes the picks (takes and trims) into a ``FilmRender`` row; ``run_render`` is the
django-q2 task that renders it with ``film.render_film``, writing the progress as it goes, and
stores the MP4 under ``films/<project>/<render>.mp4``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from . import film, heartbeat, storage
from .models import CannotGenerate, FilmRender, Generation, Pick, Project, Scene

log = logging.getLogger(__name__)

RENDER_TASK = "generations.film_tasks.run_render"
# The worker reports at least this often while it renders (FLOWSITE_FILM_STALE_SECONDS is
# well above it).
HEARTBEAT_SECONDS = 5.0


@dataclass
class FilmPlan:
    """The film as the picks make it now: the picks in scene order, and the scenes missing."""

    picks: list[Pick]
    missing: list[Scene]
    # Scene number (1, 2, 3… in storyboard order) of every scene, by scene id.
    numbers: dict[int, int]

    def seam_out(self, index: int) -> float:
        """Seconds the film cuts from the end of pick ``index``: the pick after it extends its
        take (``Generation.source_take``) and starts with those seconds again."""
        from .take_actions import SEAM_SECONDS

        following = self.picks[index + 1] if index + 1 < len(self.picks) else None
        if following is not None and following.take.source_take_id == self.picks[index].take_id:
            return SEAM_SECONDS
        return 0.0

    def trim_problems(self) -> dict[int, str]:
        """Why a pick's stored trims cannot be used as the picks stand now, by scene id.

        A trim checked when saved goes wrong only when an extension of its take is picked
        right after it later (a pick, a move, a pick cleared in between): its trim in may fall
        in the cut. So only those picks' clips are read, and a clip that cannot be read here
        is left to the render's own check."""
        problems = {}
        for index, pick in enumerate(self.picks):
            seam = self.seam_out(index)
            if seam and pick.trim_in is not None:
                problem = Pick.trim_problem(
                    pick.trim_in, pick.trim_out, clip_seconds(pick.take), seam
                )
                if problem:
                    problems[pick.scene_id] = problem
        return problems

    def trim_refusal(self) -> str:
        """The words refusing the film for its ``trim_problems`` (empty without any), one
        sentence per scene, for Render film and ``storyboard film`` alike."""
        problems = self.trim_problems()
        return " ".join(
            f"Scene {self.numbers[pick.scene_id]} ({pick.scene}): "
            f"{problems[pick.scene_id]} Change its trims under Picks."
            for pick in self.picks
            if pick.scene_id in problems
        )


def plan(project: Project, *, all_latest: bool = False) -> FilmPlan:
    """The picks of ``project`` in scene order, in two queries. With ``all_latest`` a scene
    without a pick contributes its newest ready take instead (untrimmed)."""
    ready = Generation.objects.filter(status=Generation.Status.READY).exclude(video="")
    scenes = list(
        project.scenes.order_by("position", "id")
        .select_related("pick__take")
        .prefetch_related(
            Prefetch("generations", queryset=ready.order_by("-take"), to_attr="ready_takes")
        )
    )
    picks, missing, numbers = [], [], {}
    for number, scene in enumerate(scenes, start=1):
        numbers[scene.pk] = number
        pick = getattr(scene, "pick", None)
        if pick is not None:
            pick.scene = scene
            picks.append(pick)
        elif all_latest and scene.ready_takes:
            picks.append(Pick(scene=scene, take=scene.ready_takes[0]))
        else:
            missing.append(scene)
    return FilmPlan(picks=picks, missing=missing, numbers=numbers)


def clip_seconds(take: Generation) -> float | None:
    """How long the take's clip lasts: as measured when it was downloaded, else (a take from
    before that was measured) read from its file when it is here; None with neither."""
    if take.video_seconds is not None:
        return take.video_seconds
    if storage.is_remote() or not take.video:
        return None
    return film.clip_duration(default_storage.path(take.video.name))


def snapshot(film_plan: FilmPlan) -> list[dict]:
    """What a render keeps of each pick: enough to name it and to find its clip again, and
    the seconds its end is cut where the next pick extends it (``FilmPlan.seam_out``)."""
    segments = [
        {
            "scene": film_plan.numbers[pick.scene_id],
            "scene_name": str(pick.scene),
            "take": pick.take.take,
            "take_uuid": str(pick.take.uuid),
            "trim_in": float(pick.trim_in) if pick.trim_in is not None else None,
            "trim_out": float(pick.trim_out) if pick.trim_out is not None else None,
        }
        for pick in film_plan.picks
    ]
    for index, segment in enumerate(segments):
        if seam := film_plan.seam_out(index):
            segment["seam_out"] = seam
    return segments


def start(project: Project, user) -> FilmRender:
    """A new render of the picks, queued once committed. Refused (``CannotGenerate``, in
    words) with no picks or while another render of the project is under way."""
    film_plan = plan(project)
    if not film_plan.picks:
        raise CannotGenerate("No scene has a picked take yet; pick a take on the storyboard.")
    if refusal := film_plan.trim_refusal():
        # Refused here, in words beside the picks, rather than failed later by the worker.
        raise CannotGenerate(refusal)
    with transaction.atomic():
        # Locking the project serialises two clicks; a render whose worker died is failed
        # first, so it does not block the new one.
        Project.objects.select_for_update().filter(pk=project.pk).exists()
        reap(project)
        if FilmRender.objects.filter(project=project, status__in=FilmRender.ACTIVE).exists():
            raise CannotGenerate("The film is already rendering; wait for it to finish.")
        render = FilmRender.objects.create(
            project=project, requested_by=user, segments=snapshot(film_plan)
        )
        transaction.on_commit(lambda: queue(render.pk))
    return render


def queue(render_id: int) -> None:
    from django_q.tasks import async_task

    async_task(RENDER_TASK, render_id, task_name=f"film-{render_id}", group="flowsite-film")


def reap(project: Project | None = None, *, statuses=FilmRender.ACTIVE) -> int:
    """Fail the renders (of ``project``, else of every project; in ``statuses``) whose worker
    died, and remove the temporary files they left."""
    stale = FilmRender.objects.stale(statuses)
    if project is not None:
        stale = stale.filter(project=project)
    before = {
        render.pk: render
        for render in stale.select_related("project").only("uuid", "project__uuid")
    }
    if not before:
        return 0
    # Only these: a render found stale after the look-up would keep its temporary file.
    count = FilmRender.reap_stale(FilmRender.objects.filter(pk__in=before))
    if count:
        still = set(
            FilmRender.objects.filter(pk__in=before, status__in=FilmRender.ACTIVE).values_list(
                "pk", flat=True
            )
        )
        for pk, render in before.items():
            if pk not in still:
                discard_part(render)
    return count


def part_path(render: FilmRender) -> Path:
    """Where the render is written before it is complete (``film.render_film``'s rule)."""
    final = storage.local_path(render.file_name())
    return final.with_name(f".{final.name}{film.PART_SUFFIX}")


def discard_part(render: FilmRender) -> None:
    part_path(render).unlink(missing_ok=True)


def run_render(render_id: int) -> str:
    """The worker task: render, store and mark ready, or say why it failed."""
    claimed = FilmRender.objects.filter(pk=render_id, status=FilmRender.Status.QUEUED).update(
        status=FilmRender.Status.RENDERING, heartbeat=timezone.now(), step="Reading the clips"
    )
    if not claimed:
        return "not queued"
    render = FilmRender.objects.select_related("project").get(pk=render_id)
    reporter = _Reporter(render)
    try:
        with clip_files(render.segments) as segments:
            final = storage.local_path(render.file_name())
            final.parent.mkdir(parents=True, exist_ok=True)
            result = film.render_film(segments, final, reporter)
        digest = _sha256(final)
        size = final.stat().st_size
        name = storage.store_file(final, render.file_name())
    except Reaped:
        return "reaped"
    except film.FilmError as error:
        _fail(render, str(error))
        return "failed"
    except (storage.StoreFailed, OSError) as error:
        # An OSError names a server path and an errno: the log keeps them, every member of the
        # project reads the reason.
        log.warning("Film render %s could not be written or stored: %r", render.uuid, error)
        _fail(
            render,
            "The film could not be written to or saved in media storage; render again, and "
            "tell an admin if it keeps failing.",
        )
        return "failed"
    except Exception as error:
        log.exception("Film render %s failed", render.uuid)
        _fail(render, f"The render failed unexpectedly ({type(error).__name__}).")
        return "failed"
    # Only a render still rendering becomes ready: one the watchdog failed meanwhile (its
    # heartbeat had stopped, a worker slow past the limit) stays failed, as its card says,
    # and what this worker stored is not kept.
    finished = FilmRender.objects.filter(pk=render.pk, status=FilmRender.Status.RENDERING).update(
        video=name,
        video_size=size,
        video_sha256=digest,
        duration=result.duration,
        status=FilmRender.Status.READY,
        progress=100,
        step="Done",
        finished_at=timezone.now(),
        heartbeat=timezone.now(),
    )
    if not finished:
        storage.discard(name)
        return "reaped"
    return "ready"


class Reaped(Exception):
    """The render was failed by the watchdog while this worker still ran it (its heartbeat
    had stopped for longer than the limit): it stops here, and writes nothing over that."""


def _fail(render: FilmRender, reason: str) -> None:
    discard_part(render)
    FilmRender.objects.filter(pk=render.pk).update(
        status=FilmRender.Status.FAILED,
        reason=reason[:500],
        finished_at=timezone.now(),
        heartbeat=timezone.now(),
    )


class _Reporter:
    """Writes a render's progress (share of frames done) and step, each time the percentage or
    the step changes and at least every HEARTBEAT_SECONDS, never more often than that needs."""

    def __init__(self, render: FilmRender) -> None:
        self.render = render
        self.last = (-1, "")
        self.last_at = 0.0
        self.beaten_at = time.monotonic()

    def __call__(self, done: int, total: int, step: str) -> None:
        percent = min(99, done * 100 // max(1, total))
        now = time.monotonic()
        if (percent, step) == self.last and now - self.last_at < HEARTBEAT_SECONDS:
            return
        self.last, self.last_at = (percent, step), now
        rendering = FilmRender.objects.filter(
            pk=self.render.pk, status=FilmRender.Status.RENDERING
        ).update(progress=percent, step=step[:200], heartbeat=timezone.now())
        if not rendering:
            raise Reaped  # render_film removes its partial file on the way out
        # A render is a worker at work too: two long renders holding both workers keep the
        # watchdog waiting, and must not look like a stalled cluster (generations.heartbeat).
        if now - self.beaten_at >= min(heartbeat.stale_seconds() / 4, 30.0):
            self.beaten_at = now
            heartbeat.beat()


@contextlib.contextmanager
def clip_files(segments: list[dict]) -> Iterator[list[film.Segment]]:
    """The rendered segments with a local path for each clip: the stored file itself on the
    local folder; with a bucket a copy in the staging folder, removed afterwards."""
    uuids = [segment["take_uuid"] for segment in segments]
    takes = {
        str(take.uuid): take
        for take in Generation.objects.filter(uuid__in=uuids).only("uuid", "status", "video")
    }
    staging = None
    try:
        built = []
        for segment in segments:
            label = f"Scene {segment['scene']} take {segment['take']}"
            take = takes.get(segment["take_uuid"])
            if take is None or not take.is_ready or not take.video:
                raise film.FilmError(f"{label} is no longer a ready take; pick another.")
            if storage.is_remote():
                if staging is None:
                    Path(settings.FLOWSITE_STAGING_DIR).mkdir(parents=True, exist_ok=True)
                    staging = tempfile.mkdtemp(prefix="film-", dir=settings.FLOWSITE_STAGING_DIR)
                path = os.path.join(staging, f"{take.uuid}.mp4")
                try:
                    source = default_storage.open(take.video.name, "rb")
                except FileNotFoundError:
                    # Found a moment ago: deleted since (the bucket's error names its key).
                    raise film.ClipGone(label) from None
                with source, open(path, "wb") as out:
                    shutil.copyfileobj(source, out, 1024 * 1024)
            else:
                path = default_storage.path(take.video.name)
                if not os.path.exists(path):
                    raise film.FilmError(f"{label}: its clip is missing from storage.")
            built.append(
                film.Segment(
                    path=path,
                    label=label,
                    trim_in=segment.get("trim_in"),
                    trim_out=segment.get("trim_out"),
                    seam_out=segment.get("seam_out") or 0.0,
                )
            )
        yield built
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- the takes as one zip ---------------------------------------------------------------


class _Sink:
    """Where zipfile writes: it keeps what was written until the response takes it.

    It can tell its position but cannot seek, so zipfile writes each entry's sizes and CRC
    after its data (a data descriptor) instead of going back to the header, and nothing has to
    be kept once it is sent: memory stays one chunk, whatever the number or size of the takes.
    """

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def zip_entries(project: Project, *, picks_only: bool) -> tuple[list[dict], list[tuple]]:
    """The manifest's entries (the fields of ``storyboard export``) and the clips to put in the
    zip as (take, file name): the picked takes, or every take of every scene."""
    takes = (
        Generation.objects.select_related("requested_by", *Generation.INPUT_RELATIONS)
        .prefetch_related(Prefetch("upscales", to_attr="upscale_list"))
        .order_by("take", "id")
    )
    scenes = project.scenes.order_by("position", "id").select_related("pick")
    scenes = list(scenes.prefetch_related(Prefetch("generations", queryset=takes)))
    numbers = take_numbers(scenes)
    entries, copies = [], []
    for number, scene in enumerate(scenes, start=1):
        pick = getattr(scene, "pick", None)
        for take in scene.generations.all():
            if picks_only and (pick is None or pick.take_id != take.pk):
                continue
            file_name = None
            if take.is_ready and take.video:
                suffix = Path(take.video.name).suffix or ".mp4"
                file_name = f"scene-{number:02d}-take-{take.take}{suffix}"
                copies.append((take, file_name))
            entries.append(take.manifest_entry(number, file_name, numbers))
    return entries, copies


def take_numbers(scenes) -> dict[int, tuple[int, int]]:
    """Take id -> (scene number, take number), for a manifest to name an extension's source."""
    return {
        take.pk: (number, take.take)
        for number, scene in enumerate(scenes, start=1)
        for take in scene.generations.all()
    }


ZIP_CHUNK = 64 * 1024


def stream_zip(project_name: str, entries: list[dict], copies: list[tuple]) -> Iterator[bytes]:
    """The zip's bytes as they are made: each clip as stored (MP4 does not compress), then
    ``manifest.json`` with the sha256 taken while each clip went by and, for a take deleted
    while the zip streamed, ``left_out`` saying why its clip is not in it."""
    import json
    import zipfile

    sink = _Sink()
    hashes: dict[str, str] = {}
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for take, file_name in copies:
            # The view checked every file before the first byte went, but a teammate may
            # delete a take (or its scene) while the zip streams. Its file is opened and its
            # first piece read before its entry is begun (a bucket says an object is gone only
            # when it is read: opening asks for its head, the first read fetches it), so a file
            # gone by its turn leaves no half entry: it is left out, and the manifest, written
            # last, says so. Stopping instead would leave the member a cut-off file that is not
            # a zip, with no error to read.
            try:
                source = default_storage.open(take.video.name, "rb")
                chunk = source.read(ZIP_CHUNK)
            except Exception:
                # Any backend's "not there" (a bucket's is its client's own error); a file
                # that is still there but cannot be read is a real failure.
                if default_storage.exists(take.video.name):
                    raise
                log.info("Zip of %s: %s was deleted before its turn", project_name, file_name)
                continue
            digest = hashlib.sha256()
            info = zipfile.ZipInfo(file_name, date_time=timezone.localtime().timetuple()[:6])
            large = (take.video_size or 0) >= 2**31
            with source, archive.open(info, "w", force_zip64=large) as target:
                while chunk:
                    digest.update(chunk)
                    target.write(chunk)
                    yield sink.take()
                    chunk = source.read(ZIP_CHUNK)
            hashes[file_name] = digest.hexdigest()
            yield sink.take()
        for entry in entries:
            if entry["file"] in hashes:
                entry["sha256"] = hashes[entry["file"]]
            elif entry["file"] is not None:
                entry["left_out"] = (
                    f"{entry['file']} is not in this zip: the take was deleted while the zip "
                    "was made."
                )
                entry["file"] = None
        manifest = {
            "project": project_name,
            "exported_at": timezone.now().isoformat(),
            "takes": entries,
        }
        archive.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
    yield sink.take()
