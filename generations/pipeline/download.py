"""Downloading finished clips (and their posters) into their takes' folders.

Downloads run beside submitting and polling. A clip can trickle in for minutes, and while
one did, every other take waited for the pass that was fetching it. So the pump owns a small
pool of download threads (``Downloads``, FLOWSITE_DOWNLOAD_SLOTS of them): a status pass
that finds a clip finished hands it to the pool and goes on; with every thread busy, the
clip waits for one, its take still claimed. The rules the rest of the worker keeps hold here
too:

- the take stays claimed with its token the whole time, and every write is conditional on
  it, so a thread that lost its take (cancelled, taken over) changes nothing;
- its lease is renewed by the pump's keeper (``claims.Keeper``) while the download waits and
  runs, and only until the pump's task must end, so a dead worker's take is back within a
  lease; a link that expired while waiting is a retryable failure that asks for fresh ones;
- the file is written to a ``.part`` file and renamed when whole; a killed worker leaves only
  ``.part`` files, which the reaper removes once it takes the take back (``reap``);
- each thread uses its own database connection, keeps it for the next download while others
  wait for a slot (a hundred takes finishing together made a hundred PostgreSQL
  connections otherwise) and closes it when none is waiting;
- the pump waits for its downloads before it lets its lease go (starting no new ones
  meanwhile), and a download is given a deadline that ends before the cluster's task
  timeout, so none outlives its task; one that did anyway is left to the reaper.

A pass run outside the pump (tests, benchmarks, an open transaction whose rows other
connections cannot see) has no pool and downloads inline, one after another.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from django.core.files import File
from django.db import close_old_connections, connections
from django.db.models import F
from django.utils import timezone
from PIL import Image

from .. import storage
from ..engines.base import ClipStatus, DownloadError, DownloadResult
from ..engines.download import save_bytes
from ..film import clip_duration
from ..images import clip_frame
from ..models import Generation
from .accounts import engine_for
from .claims import Hold
from .policy import (
    DOWNLOAD_ATTEMPTS,
    S,
    download_deadline,
    download_lease,
    download_work_seconds,
    shorten,
)

if TYPE_CHECKING:
    from .claims import Keeper, Renewal
    from .passes import Pass

log = logging.getLogger(__name__)


# --- Running downloads beside the pump ----------------------------------------------------------


class Downloads:
    """The pump's download threads: at most ``slots`` downloads at once; clips found finished
    while every slot is busy wait for one in order, still claimed and leased."""

    def __init__(self, slots: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="flowsite-download")
        self.running: set[Future] = set()
        self.finished = Counter[str]()
        self.lock = threading.Lock()
        # Downloads handed over that no thread has started yet.
        self.waiting = 0
        self.closed = False

    def busy(self) -> bool:
        self.running = {future for future in self.running if not future.done()}
        return bool(self.running)

    def start(self, download: Download, keeper: Keeper | None) -> None:
        renewal = None
        if keeper is not None:
            # From now, not from when a slot frees: a download waiting for one is held too,
            # until it must have ended (``Download.deadline``).
            seconds = download_work_seconds()
            if download.stop_at is not None:
                seconds = download.stop_at - time.monotonic()
            renewal = keeper.add(download.hold, download_lease(), seconds)
        with self.lock:
            self.waiting += 1
        self.running.add(self.pool.submit(self.run, download, keeper, renewal))

    def run(self, download: Download, keeper: Keeper | None, renewal: Renewal | None) -> None:
        with self.lock:
            self.waiting -= 1
        # A connection kept from the previous download is dropped if it broke or outlived
        # CONN_MAX_AGE, as Django does between two requests.
        close_old_connections()
        try:
            download.run()
        except Exception:
            # Its take stays held until the lease lapses; then the reaper takes it back.
            log.exception("downloading take %s failed unexpectedly", download.generation.pk)
        finally:
            if keeper is not None and renewal is not None:
                keeper.discard(renewal)
            with self.lock:
                self.finished.update(download.counts)
                idle_next = self.waiting == 0
            if idle_next:
                connections.close_all()

    def collect(self) -> Counter[str]:
        """What the downloads finished since the last call did, as counters."""
        with self.lock:
            finished, self.finished = self.finished, Counter()
        return finished

    def close(self) -> None:
        self.closed = True

    def wait(self, timeout: float | None) -> bool:
        """Wait for the downloads handed over (at most ``timeout`` seconds); True when all
        ended. One still running past it is abandoned: its lease lapses and the reaper takes
        it back; one still waiting for a slot is dropped the same way."""
        self.closed = True
        _, not_done = wait(self.running, timeout=None if timeout is None else max(timeout, 0.0))
        self.pool.shutdown(wait=False, cancel_futures=True)
        with self.lock:
            # Those cancelled never start: the downloads still running close their connections.
            self.waiting = 0
        return not not_done


def temp_folder(generation: Generation) -> Path:
    """Where a take's downloads are written: its media folder, or its staging folder when the
    storage is a bucket."""
    return storage.local_path(f"{generation.media_dir()}/clip.mp4").parent


# --- Downloading one finished clip --------------------------------------------------------------


class Download:
    """Fetch one finished clip (and its poster) into the take's folder, then mark it ready.

    The take's folder is its own and the take is claimed, so anything half-written there is
    left from an attempt that died (a killed worker) and is removed first.
    """

    def __init__(
        self, run: Pass, token: UUID, generation: Generation, clip: ClipStatus, account=None
    ) -> None:
        self.now = run.now
        self.stop_at = run.stop_at
        # A download on a thread of its own counts apart (``Pass.download``); the pump adds
        # it up (``Downloads.collect``).
        self.counts = run.counts
        self.hold = Hold(token, [S.DOWNLOADING], [generation.pk])
        self.generation = generation
        self.clip = clip
        self.account = account
        self.fetch = None

    def run(self) -> None:
        # An engine that fetches its own clips (Vertex AI: inside the answer, or from a
        # bucket that needs its token) does; otherwise the clip's URL is signed and public.
        # The download makes its own engine: the pass closes its engines when it ends, and a
        # download on a slot of its own may outlive the pass.
        engine = None
        if self.account is not None:
            try:
                engine = engine_for(self.account)
            except ValueError:  # no usable credentials: only a signed URL can be fetched
                engine = None
        self.fetch = getattr(engine, "fetch_video", None)
        try:
            self.fetch_files()
        finally:
            close = getattr(engine, "close", None)
            if callable(close):
                close()

    def fetch_files(self) -> None:
        # Looked up at each call, so a test can stand in for it (tests/test_race.py).
        from ..engines.download import download_to

        generation, clip = self.generation, self.clip
        video_name = f"{generation.media_dir()}/clip.mp4"
        poster_name = f"{generation.media_dir()}/poster.jpg"
        remove_temp_files(temp_folder(generation))
        video: DownloadResult | None = None
        poster: DownloadResult | None = None
        try:
            if not clip.video_url:
                raise ContractDownloadError()
            if clip.video_data and self.fetch is None:
                # The clip came inside the answer (some Flow upscales): nothing to fetch.
                video = save_bytes(clip.video_data, storage.local_path(video_name), kind="video")
            elif self.fetch is not None:
                video = self.fetch(
                    clip, storage.local_path(video_name), kind="video", deadline=self.deadline()
                )
            else:
                video = download_to(
                    clip.video_url,
                    storage.local_path(video_name),
                    kind="video",
                    deadline=self.deadline(),
                )
            if clip.poster_url:
                poster = self.fetch_poster(clip.poster_url, storage.local_path(poster_name))
            if poster is None:
                # Before the clip is stored: with a bucket its local copy goes then.
                poster = first_frame_poster(video.path, storage.local_path(poster_name), generation)
            seconds = clip_duration(str(video.path))
            # Each whole local file into the storage: already there in the media folder,
            # uploaded (and the local copy removed) with a bucket.
            video_name = storage.store_file(video.path, video_name)
            if poster is not None:
                poster_name = storage.store_file(poster.path, poster_name)
        except DownloadError as error:
            # A clip (or poster) already fetched stays only beside a row that says so.
            _unlink(video, video_name)
            _unlink(poster, poster_name)
            self.failed(error)
            return
        except Exception as error:
            log.exception("downloading take %s failed unexpectedly", generation.pk)
            _unlink(video, video_name)
            _unlink(poster, poster_name)
            self.failed(DownloadError(detail=str(error)), retryable=True)
            return
        if poster is None:
            poster_name = ""
        done = self.hold.release(
            status=S.READY,
            reason="",
            video=video_name,
            video_size=video.size,
            video_sha256=video.sha256,
            video_seconds=seconds,
            poster=poster_name,
            poster_sha256=poster.sha256 if poster else "",
            finished_at=timezone.now(),
            next_check_at=None,
            updated=timezone.now(),
        )
        if done:
            self.counts["ready"] += 1
            return
        # No longer ours: cancelled (its files go), or taken over by a worker that saw our
        # lease lapse and already finished. Its files have the same names and the same bytes
        # (one clip), so what a ready row names stays.
        row = (
            Generation.objects.filter(pk=generation.pk).values("status", "video", "poster").first()
        )
        ready = row is not None and row["status"] == S.READY
        if not (ready and row["video"] == video_name):
            _unlink(video, video_name)
        if poster is not None and not (ready and row["poster"] == poster_name):
            _unlink(poster, poster_name)

    def fetch_poster(self, url: str, dest: Path) -> DownloadResult | None:
        """The poster behind Flow's link, or None when it cannot be fetched or is no image.

        A poster is a nicety: its failure never fails the take nor fetches its clip again
        (a link refused or expired once is not worth another status call); the clip's first
        frame stands in for it."""
        from ..engines.download import download_to

        try:
            poster = download_to(url, dest, kind="image", deadline=self.deadline())
            with Image.open(poster.path) as image:
                image.load()
            return poster
        except Exception as error:
            dest.unlink(missing_ok=True)
            log.warning("poster of take %s not fetched: %s", self.generation.pk, error)
            return None

    def deadline(self) -> float:
        """Seconds a file may take: its own deadline, cut short so that the download ends
        before the pump's task would be killed (a pass starts none without time for it)."""
        if self.stop_at is None:
            return download_deadline()
        return max(1.0, min(download_deadline(), self.stop_at - time.monotonic()))

    def failed(self, error: DownloadError, *, retryable: bool | None = None) -> None:
        """Ask again for fresh links, or give up after DOWNLOAD_ATTEMPTS in this round.

        The count only grows: it is what says the upstream finished (and charged) the clip
        (``SPENDING_Q``). A take fetched again starts a round of its own at the next multiple
        of DOWNLOAD_ATTEMPTS (``Generation.fetch_again``), so it gets them all again.
        """
        retryable = error.retryable if retryable is None else retryable
        attempts = self.generation.download_attempts + 1
        if retryable and attempts % DOWNLOAD_ATTEMPTS:
            # The next status call signs fresh URLs; ask for them right away.
            self.counts["download_retries"] += self.hold.release(
                status=S.ACTIVE,
                download_attempts=F("download_attempts") + 1,
                next_check_at=self.now,
                updated=timezone.now(),
            )
            return
        reason = error.message
        if retryable:
            reason = f"{reason} Flowsite gave up after {DOWNLOAD_ATTEMPTS} download attempts."
        self.counts["failed"] += self.hold.release(
            status=S.FAILED,
            reason=shorten(reason),
            download_attempts=attempts,
            finished_at=self.now,
            next_check_at=None,
            updated=timezone.now(),
        )


def first_frame_poster(video: str | File, dest: Path, take: Generation) -> DownloadResult | None:
    """A poster for a clip its engine gave none for (Vertex AI), or whose poster could not be
    fetched: its first frame (from its path, or a stored clip opened) as a JPEG, written as a
    downloaded poster is (whole or not at all). None when it cannot be made."""
    try:
        image = clip_frame(video)
        if image is None:
            raise ValueError("the clip has no frame")
        data = io.BytesIO()
        image.save(data, "JPEG", quality=85)
        return save_bytes(data.getvalue(), dest, kind="image")
    except Exception as error:
        # Whatever went wrong, a poster is a nicety: the clip is what the team waits for.
        log.warning("poster of take %s not made from its first frame: %s", take.pk, error)
        return None


def remove_temp_files(folder: Path) -> int:
    """Delete the ``.<name>.*.part`` files ``download_to`` writes before renaming."""
    removed = 0
    for path in folder.glob(".*.part") if folder.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    if removed:
        log.info("removed %d half-written download(s) in %s", removed, folder)
    return removed


def _unlink(result: DownloadResult | None, name: str) -> None:
    """Remove a download wherever it got to: its local file and its stored copy ``name``."""
    if result is not None:
        Path(result.path).unlink(missing_ok=True)
        storage.discard(name)


class ContractDownloadError(DownloadError):
    retryable = True
    default_message = "Flow said the clip is ready but gave no link to download it."
