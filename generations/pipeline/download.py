"""Downloading one finished clip (and its poster) into its take's folder."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from django.db.models import F
from django.utils import timezone

from .. import storage
from ..engines.base import ClipStatus, DownloadError, DownloadResult
from ..models import Generation
from .claims import release
from .policy import DOWNLOAD_ATTEMPTS, S, shorten

if TYPE_CHECKING:
    from .passes import Pass

log = logging.getLogger(__name__)

# --- Downloading one finished clip --------------------------------------------------------------


class Download:
    """Fetch one finished clip (and its poster) into the take's folder, then mark it ready.

    The take's folder is its own and the take is claimed, so anything half-written there is
    left from an attempt that died (a killed worker) and is removed first.
    """

    def __init__(
        self, run: Pass, token: UUID, generation: Generation, clip: ClipStatus, engine=None
    ) -> None:
        self.now = run.now
        self.counts = run.counts
        self.token = token
        self.generation = generation
        self.clip = clip
        # An engine that fetches its own clips (Vertex AI: inside the answer, or from a
        # bucket that needs its token) does; otherwise the clip's URL is signed and public.
        self.fetch = getattr(engine, "fetch_video", None)

    def release(self, **fields) -> int:
        """Give the take back with ``fields`` written, if this download still holds it."""
        return release(self.token, [S.DOWNLOADING], [self.generation.pk], **fields)

    def run(self) -> None:
        from ..engines.download import download_to

        generation, clip = self.generation, self.clip
        video_name = f"{generation.media_dir()}/clip.mp4"
        poster_name = f"{generation.media_dir()}/poster.jpg"
        # The media folder itself, or the staging folder when the storage is a bucket.
        folder = storage.local_path(video_name).parent
        remove_temp_files(folder)
        video: DownloadResult | None = None
        poster: DownloadResult | None = None
        try:
            if not clip.video_url:
                raise ContractDownloadError()
            if self.fetch is not None:
                video = self.fetch(clip, storage.local_path(video_name), kind="video")
            else:
                video = download_to(clip.video_url, storage.local_path(video_name), kind="video")
            # Each whole local file into the storage as soon as it is complete: already there
            # in the media folder, uploaded (and the local copy removed) with a bucket.
            video_name = storage.store_file(video.path, video_name)
            if clip.poster_url:
                try:
                    poster = download_to(
                        clip.poster_url, storage.local_path(poster_name), kind="image"
                    )
                except DownloadError as error:
                    if error.retryable:
                        raise
                    # A poster is a nicety; the clip itself is what the team waits for.
                    log.warning("poster of take %s not kept: %s", generation.pk, error.message)
            if poster is not None:
                poster_name = storage.store_file(poster.path, poster_name)
        except DownloadError as error:
            # A clip already fetched stays only beside a row that says so.
            _unlink(video, video_name)
            self.failed(error)
            return
        except Exception as error:
            log.exception("downloading take %s failed unexpectedly", generation.pk)
            _unlink(video, video_name)
            self.failed(DownloadError(detail=str(error)), retryable=True)
            return
        if poster is None:
            poster_name = ""
        done = self.release(
            status=S.READY,
            reason="",
            video=video_name,
            video_size=video.size,
            video_sha256=video.sha256,
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

    def failed(self, error: DownloadError, *, retryable: bool | None = None) -> None:
        retryable = error.retryable if retryable is None else retryable
        attempts = self.generation.download_attempts + 1
        if retryable and attempts < DOWNLOAD_ATTEMPTS:
            # The next status call signs fresh URLs; ask for them right away.
            self.counts["download_retries"] += self.release(
                status=S.ACTIVE,
                download_attempts=F("download_attempts") + 1,
                next_check_at=self.now,
                updated=timezone.now(),
            )
            return
        reason = error.message
        if retryable:
            reason = f"{reason} Flowsite gave up after {attempts} download attempts."
        self.counts["failed"] += self.release(
            status=S.FAILED,
            reason=shorten(reason),
            download_attempts=attempts,
            finished_at=self.now,
            next_check_at=None,
            updated=timezone.now(),
        )


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
