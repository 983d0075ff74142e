"""Where clips, posters and start images are kept: the local media folder or a private bucket.

Django's default storage is a ``FileSystemStorage`` under ``MEDIA_ROOT`` unless
``FLOWSITE_S3_BUCKET`` names a bucket, when it is django-storages' ``S3Storage``. Downloads are
written to a complete local file either way, because ``download_to``'s promises (the whole file
or nothing, the size limit, the deadline, the sha256 taken while streaming) need a real file;
``store_file`` then puts that file under its final name. On the local folder the download is
already there and storing it costs nothing; with a bucket it is uploaded, checked and removed.

The media views check membership first, then stream a local file or, with a bucket, redirect
to a presigned URL that expires after ``FLOWSITE_S3_URL_SECONDS``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage
from django.utils.http import content_disposition_header

from .engines.base import DownloadError

log = logging.getLogger(__name__)


class StoreFailed(DownloadError):
    """The storage did not take the file, or did not keep it whole; worth another try."""

    retryable = True
    default_message = "Flowsite could not save the file to its media storage."


def is_remote() -> bool:
    """Whether stored files live outside this machine (an object store), not in MEDIA_ROOT."""
    return not isinstance(default_storage, FileSystemStorage)


def local_path(name: str) -> Path:
    """Where a download that will be stored as ``name`` is written first.

    On the local folder that is its final place, so ``store_file`` has nothing left to do;
    with an object store it is a staging folder the upload is made from.
    """
    if is_remote():
        return Path(settings.FLOWSITE_STAGING_DIR) / name
    return Path(default_storage.path(name))


def store_file(local_path: str | os.PathLike[str], name: str) -> str:
    """Keep the complete file at ``local_path`` as ``name``; returns the name it is kept under.

    With an object store the local file is removed afterwards, stored or not, so staging never
    fills up. Raises ``StoreFailed`` (a retryable ``DownloadError``, so the pipeline treats it
    like a failed download) when the store refuses the file or keeps a different size.
    """
    source = Path(local_path)
    if not is_remote() and source.resolve() == Path(default_storage.path(name)).resolve():
        # download_to's temporary file is private to its owner (0600); give it the mode every
        # other stored file has (FILE_UPLOAD_PERMISSIONS), so an nginx serving the media
        # volume as another user can read it.
        mode = default_storage.file_permissions_mode
        if mode is not None:
            source.chmod(mode)
        return name
    try:
        size = source.stat().st_size
        with source.open("rb") as handle:
            stored = default_storage.save(name, File(handle, name=source.name))
        kept = default_storage.size(stored)
        if kept != size:
            default_storage.delete(stored)
            raise StoreFailed(detail=f"the storage kept {kept} of the {size} bytes of {name}")
    except StoreFailed as error:
        log.warning("Storing %s failed: %s", name, error.detail)
        raise
    except Exception as error:
        # botocore's errors are not OSErrors; whatever the store said goes to the log.
        log.warning("Storing %s failed: %s: %s", name, type(error).__name__, error)
        raise StoreFailed(detail=f"{type(error).__name__}: {error}") from error
    finally:
        source.unlink(missing_ok=True)
    log.info("Stored %s (%d bytes)", stored, size)
    return stored


def discard(name: str) -> None:
    """Remove a stored file that turned out not to be wanted; a missing one is fine."""
    if name:
        default_storage.delete(name)


def delete_files(names: Iterable[str]) -> None:
    """Remove stored files no row names any more (call it once their rows are surely gone)
    and, on the local folder, the folders they leave empty (a take's, then its project's), so
    deleting leaves nothing behind. A file already gone is fine."""
    for name in names:
        if not name:
            continue
        default_storage.delete(name)
        if not is_remote():
            _prune(Path(default_storage.path(name)).parent)


def delete_folders(folders: Iterable[str]) -> None:
    """Remove every file stored under each of ``folders`` (a take's media folder), named by a
    row or not (a clip a worker saved and died before recording, a half-written download),
    and its staging copies with a bucket; on the local folder the folders left empty go too.
    Call it once the rows are surely gone, as ``delete_files``."""
    for folder in folders:
        if not folder:
            continue
        delete_files(_stored_under(folder.rstrip("/")))
        if is_remote():
            shutil.rmtree(Path(settings.FLOWSITE_STAGING_DIR) / folder, ignore_errors=True)
        else:
            _prune(Path(default_storage.path(folder)))


def _stored_under(folder: str) -> list[str]:
    """The names of the files stored under ``folder``, at any depth (none when it is gone)."""
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return []
    names = [f"{folder}/{name}" for name in files]
    for inner in folders:
        names += _stored_under(f"{folder}/{inner}")
    return names


def _prune(folder: Path) -> None:
    """Remove ``folder`` and the folders above it in MEDIA_ROOT while they are empty."""
    root = Path(default_storage.location).resolve()
    folder = folder.resolve()
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()  # only ever an empty one
        except OSError:
            break
        folder = folder.parent


def open_for_serving(name: str) -> File:
    """The stored file opened for reading; ``FileNotFoundError`` when it is gone."""
    return default_storage.open(name, "rb")


def presigned_url(
    name: str,
    *,
    content_type: str | None = None,
    download_name: str | None = None,
    as_attachment: bool = False,
) -> str:
    """A link to ``name`` in the private bucket, valid for ``FLOWSITE_S3_URL_SECONDS``.

    Only for a viewer whose access has just been checked: whoever holds the link can fetch
    the file until it expires. The store answers with the given type and file name.
    """
    if not is_remote():
        raise RuntimeError("Presigned URLs need an object store (FLOWSITE_S3_BUCKET).")
    parameters: dict[str, str] = {}
    if content_type:
        parameters["ResponseContentType"] = content_type
    if download_name:
        parameters["ResponseContentDisposition"] = content_disposition_header(
            as_attachment, download_name
        )
    return default_storage.url(name, parameters=parameters, expire=settings.FLOWSITE_S3_URL_SECONDS)
