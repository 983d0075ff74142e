"""Media in a private S3 bucket (FLOWSITE_S3_BUCKET), against a real S3 server on loopback.

moto runs in server mode on 127.0.0.1 and speaks S3's HTTP API; Flowsite reaches it through
django-storages and boto3 exactly as it would reach AWS or MinIO. The storage settings under
test are the ones flowsite/settings.py builds from the environment (read in a subprocess, as
settings are read once per process).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from moto.server import ThreadedMotoServer

from generations import film_tasks, storage
from generations.models import Generation, Pick
from generations.pipeline import policy
from tests.conftest import PASSWORD
from tests.conftest import make_ready_scene as make_scene
from tests.tasks_support import settle

ROOT = Path(__file__).resolve().parent.parent
S = Generation.Status
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "flowsite-test",
    "AWS_SECRET_ACCESS_KEY": "flowsite-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}

SETTINGS_PROBE = """
import json
from django.conf import settings
print(json.dumps({"default": settings.STORAGES["default"],
                  "seconds": settings.FLOWSITE_S3_URL_SECONDS}, default=str))
"""


def _settings_from_env(**env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "flowsite.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_settings(s3_endpoint) -> dict:
    """The default storage settings.py builds for a bucket on that endpoint."""
    return _settings_from_env(
        FLOWSITE_S3_BUCKET="flowsite-media", FLOWSITE_S3_ENDPOINT_URL=s3_endpoint
    )


@pytest.fixture
def bucket(s3_endpoint, s3_settings, settings, monkeypatch, tmp_path) -> str:
    """A fresh private bucket, made Django's default storage for this test."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    name = f"flowsite-{uuid.uuid4().hex[:12]}"
    client(s3_endpoint).create_bucket(Bucket=name)
    default = json.loads(json.dumps(s3_settings["default"]))
    default["OPTIONS"]["bucket_name"] = name
    settings.STORAGES = {**settings.STORAGES, "default": default}
    settings.FLOWSITE_S3_BUCKET = name
    settings.FLOWSITE_S3_URL_SECONDS = s3_settings["seconds"]
    settings.FLOWSITE_STAGING_DIR = tmp_path / "staging"
    return name


def client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def keys(endpoint: str, bucket: str) -> set[str]:
    listing = client(endpoint).list_objects_v2(Bucket=bucket)
    return {item["Key"] for item in listing.get("Contents", [])}


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


@pytest.fixture
def ready_take(bucket, emu, project, alice) -> Generation:
    (take,) = settle(make_scene(project).generate(alice))
    assert take.status == S.READY, take.reason
    return take


def signed_in(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


# --- Settings ---------------------------------------------------------------------------------


def test_a_bucket_in_the_environment_makes_media_a_private_s3_storage_with_minute_links():
    built = _settings_from_env(
        FLOWSITE_S3_BUCKET="studio-media", FLOWSITE_S3_ENDPOINT_URL="http://127.0.0.1:9000"
    )

    default = built["default"]
    assert default["BACKEND"] == "storages.backends.s3.S3Storage"
    options = default["OPTIONS"]
    assert options["bucket_name"] == "studio-media"
    assert options["endpoint_url"] == "http://127.0.0.1:9000"
    assert options["default_acl"] is None, "no ACL is sent: objects stay private"
    assert options["querystring_auth"] is True
    assert options["querystring_expire"] == built["seconds"] == 60


def test_without_a_bucket_media_stay_in_the_local_folder():
    built = _settings_from_env(FLOWSITE_S3_BUCKET="")

    assert built["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"


def test_on_the_local_folder_a_download_is_stored_where_it_already_is(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    assert not storage.is_remote()
    path = storage.local_path("clips/p/t/clip.mp4")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"clip")

    path.chmod(0o600)  # as download_to's temporary file is created

    assert path == tmp_path / "media" / "clips/p/t/clip.mp4"
    assert storage.store_file(path, "clips/p/t/clip.mp4") == "clips/p/t/clip.mp4"
    assert path.read_bytes() == b"clip"
    # Readable by nginx serving the media volume as another user, like uploaded images.
    assert path.stat().st_mode & 0o777 == settings.FILE_UPLOAD_PERMISSIONS == 0o644


# --- The pipeline ---------------------------------------------------------------------------


def test_on_the_local_folder_a_downloaded_clip_is_readable_by_an_nginx_of_another_user(
    emu, project, alice, settings
):
    (take,) = settle(make_scene(project).generate(alice))

    assert take.status == S.READY, take.reason
    for name in (take.video.name, take.poster.name, take.start_image.file.name):
        assert (Path(settings.MEDIA_ROOT) / name).stat().st_mode & 0o777 == 0o644, name


def test_a_take_downloaded_by_the_worker_lands_in_the_bucket_and_nowhere_on_disk(
    ready_take, bucket, s3_endpoint, settings
):
    take = ready_take
    assert storage.is_remote()
    assert take.video.name == f"{take.media_dir()}/clip.mp4"
    assert take.poster.name == f"{take.media_dir()}/poster.jpg"
    stored = keys(s3_endpoint, bucket)
    assert {take.video.name, take.poster.name, take.start_image.file.name} <= stored

    s3 = client(s3_endpoint)
    video = s3.get_object(Bucket=bucket, Key=take.video.name)
    data = video["Body"].read()
    assert hashlib.sha256(data).hexdigest() == take.video_sha256
    assert len(data) == take.video_size
    assert video["ContentType"] == "video/mp4"
    poster = s3.get_object(Bucket=bucket, Key=take.poster.name)["Body"].read()
    assert hashlib.sha256(poster).hexdigest() == take.poster_sha256

    assert files_under(Path(settings.MEDIA_ROOT)) == []
    assert files_under(Path(settings.FLOWSITE_STAGING_DIR)) == [], "staging copies removed"


def test_a_flow_poster_that_fails_is_made_from_the_clip_before_the_clip_goes_to_the_bucket(
    bucket, emu, project, alice, s3_endpoint, settings
):
    [take] = settle(make_scene(project, "[fault:broken-poster] a kite").generate(alice))

    assert take.status == S.READY, take.reason
    poster = client(s3_endpoint).get_object(Bucket=bucket, Key=take.poster.name)["Body"].read()
    assert hashlib.sha256(poster).hexdigest() == take.poster_sha256
    assert poster.startswith(b"\xff\xd8\xff")
    assert files_under(Path(settings.FLOWSITE_STAGING_DIR)) == [], "staging copies removed"


def test_a_trim_past_the_end_of_a_clip_in_the_bucket_is_refused_as_bob_types_it(
    ready_take, bucket, project, alice, bob, s3_endpoint
):
    # Measured on the way into the bucket: the film page needs no copy of the clip here.
    assert ready_take.video_seconds == pytest.approx(2.0, abs=0.05)
    pick = Pick.choose(ready_take, alice)
    prefix = f"s{pick.scene.uuid.hex[:8]}"
    client = Client()
    client.force_login(bob)

    refused = client.post(
        reverse("scene-trim", args=[pick.scene.uuid]),
        {f"{prefix}-trim_in": "3", f"{prefix}-trim_out": ""},
    )

    assert refused.status_code == 400
    assert "Trim in (3 s) must be inside the clip, which lasts 2.00 s." in refused.text
    pick.refresh_from_db()
    assert pick.trim_in is None


def test_make_posters_reads_the_clip_from_the_bucket_and_stores_its_poster_there(
    ready_take, bucket, s3_endpoint, settings
):
    take = ready_take
    client(s3_endpoint).delete_object(Bucket=bucket, Key=take.poster.name)
    Generation.objects.filter(pk=take.pk).update(poster="", poster_sha256="")

    call_command("make_posters", stdout=io.StringIO())

    take.refresh_from_db()
    assert take.poster.name == f"{take.media_dir()}/poster.jpg"
    poster = client(s3_endpoint).get_object(Bucket=bucket, Key=take.poster.name)["Body"].read()
    assert hashlib.sha256(poster).hexdigest() == take.poster_sha256
    assert files_under(Path(settings.MEDIA_ROOT)) == []
    assert files_under(Path(settings.FLOWSITE_STAGING_DIR)) == [], "staging copies removed"


def test_an_upload_that_fails_leaves_no_staging_copy_and_says_so(bucket, settings, s3_endpoint):
    staged = storage.local_path("clips/p/t/clip.mp4")
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"\x00" * 1024)
    client(s3_endpoint).delete_bucket(Bucket=bucket)

    with pytest.raises(storage.StoreFailed, match="could not save") as refused:
        storage.store_file(staged, "clips/p/t/clip.mp4")

    assert refused.value.retryable
    assert "NoSuchBucket" in refused.value.detail

    assert not staged.exists()


def test_a_bucket_that_refuses_uploads_fails_the_take_in_words_after_retries(
    bucket, emu, project, alice, s3_endpoint, settings
):
    (take,) = settle(make_scene(project).generate(alice), until=(S.PENDING, S.ACTIVE))
    # Flow has the start image already; from now on every upload is refused.
    s3 = client(s3_endpoint)
    for key in keys(s3_endpoint, bucket):
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)

    (take,) = settle([take])

    assert take.status == S.FAILED
    assert take.reason.startswith("Flowsite could not save the file to its media storage.")
    assert "Flowsite gave up after 4 download attempts." in take.reason
    assert take.download_attempts == policy.DOWNLOAD_ATTEMPTS
    assert not take.video and not take.poster
    assert files_under(Path(settings.FLOWSITE_STAGING_DIR)) == []
    assert files_under(Path(settings.MEDIA_ROOT)) == []


# --- Serving --------------------------------------------------------------------------------


def test_a_member_is_redirected_to_a_short_presigned_link_that_serves_the_clip(
    ready_take, client, alice, s3_endpoint
):
    take = ready_take
    response = signed_in(client, alice).get(reverse("media-take-video", args=[take.uuid]))

    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"
    link = response["Location"]
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}" == s3_endpoint
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == ["60"]
    assert query["X-Amz-Signature"]

    fetched = httpx.get(link)
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).hexdigest() == take.video_sha256
    assert fetched.headers["content-type"] == "video/mp4"
    assert fetched.headers["content-disposition"].startswith("inline;")

    # Browsers seek with Range; the store answers it.
    part = httpx.get(link, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert len(part.content) == 100


def test_a_download_link_names_the_file_as_an_attachment(ready_take, client, carol):
    url = reverse("media-take-video", args=[ready_take.uuid]) + "?download=1"
    response = signed_in(client, carol).get(url)

    assert response.status_code == 302
    fetched = httpx.get(response["Location"])
    assert fetched.status_code == 200
    disposition = fetched.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "poseidon" in disposition and ".mp4" in disposition


def test_posters_and_start_images_are_served_through_presigned_links_too(ready_take, client, bob):
    signed_in(client, bob)
    for url, sha256 in (
        (reverse("media-take-poster", args=[ready_take.uuid]), ready_take.poster_sha256),
        (reverse("media-image", args=[ready_take.start_image.uuid]), ready_take.start_image.sha256),
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        fetched = httpx.get(response["Location"])
        assert fetched.status_code == 200
        assert fetched.headers["content-type"].startswith("image/")
        assert hashlib.sha256(fetched.content).hexdigest() == sha256


def test_charlie_gets_404_for_alice_clip_and_no_link(ready_take, client, charlie, s3_endpoint):
    signed_in(client, charlie)
    for url in (
        reverse("media-take-video", args=[ready_take.uuid]),
        reverse("media-take-poster", args=[ready_take.uuid]),
        reverse("media-image", args=[ready_take.start_image.uuid]),
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "Location" not in response
        assert urlsplit(s3_endpoint).netloc.encode() not in response.content
        assert b"X-Amz" not in response.content


def test_a_signed_out_visitor_gets_no_link(ready_take, client, s3_endpoint):
    response = client.get(reverse("media-take-video", args=[ready_take.uuid]))

    assert response.status_code == 302
    assert urlsplit(response["Location"]).netloc != urlsplit(s3_endpoint).netloc
    assert "X-Amz" not in response["Location"]


def test_the_bucket_is_private_a_link_without_signature_is_refused(ready_take, bucket, s3_endpoint):
    unsigned = f"{s3_endpoint}/{bucket}/{ready_take.video.name}"
    assert httpx.get(unsigned).status_code == 403

    grants = client(s3_endpoint).get_object_acl(Bucket=bucket, Key=ready_take.video.name)
    grantees = [grant["Grantee"].get("URI", "") for grant in grants["Grants"]]
    assert not [uri for uri in grantees if "AllUsers" in uri or "AuthenticatedUsers" in uri]


def test_the_link_lasts_flowsite_s3_url_seconds_from_now(ready_take, client, alice, settings):
    settings.FLOWSITE_S3_URL_SECONDS = 5
    before = datetime.now(UTC).replace(microsecond=0)
    response = signed_in(client, alice).get(reverse("media-take-video", args=[ready_take.uuid]))

    query = parse_qs(urlsplit(response["Location"]).query)
    # S3 itself refuses the link once X-Amz-Date + X-Amz-Expires has passed.
    assert query["X-Amz-Expires"] == ["5"]
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before <= signed_at <= datetime.now(UTC)


def test_deleting_a_stored_clip_removes_the_object(ready_take, bucket, s3_endpoint):
    storage.discard(ready_take.video.name)

    assert ready_take.video.name not in keys(s3_endpoint, bucket)
    assert not default_storage.exists(ready_take.video.name)


def test_a_clip_deleted_from_the_bucket_while_alice_downloads_the_zip_is_left_out_and_named(
    bucket, emu, project, alice, s3_endpoint
):
    first, second = settle(make_scene(project, takes=2).generate(alice))
    assert first.status == second.status == S.READY
    response = signed_in(Client(), alice).get(
        reverse("project-takes-zip", args=[project.uuid]) + "?all=1"
    )
    chunks = []
    for chunk in response.streaming_content:
        if not chunks:
            # The view saw every object; the second goes before its turn (a teammate's
            # delete, a lifecycle rule).
            client(s3_endpoint).delete_object(Bucket=bucket, Key=second.video.name)
        chunks.append(chunk)
    assert_left_out(chunks)


def assert_left_out(chunks: list[bytes]) -> None:
    """The zip is whole, without take 2's clip, and its manifest says why."""
    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == ["manifest.json", "scene-01-take-1.mp4"]
    manifest = json.loads(archive.read("manifest.json"))
    [gone] = [t for t in manifest["takes"] if t["take"] == 2]
    assert gone["file"] is None
    assert gone["left_out"].startswith("scene-01-take-2.mp4 is not in this zip")


def test_a_clip_gone_between_its_head_and_its_body_is_left_out_of_the_zip_and_named(
    bucket, emu, project, alice, s3_endpoint, monkeypatch
):
    first, second = settle(make_scene(project, takes=2).generate(alice))
    real_open = film_tasks.default_storage.open

    def open_then_lose(name, mode="rb"):
        # S3 answered the HEAD of opening; the object goes before the first read's GET.
        opened = real_open(name, mode)
        if name == second.video.name:
            client(s3_endpoint).delete_object(Bucket=bucket, Key=name)
        return opened

    monkeypatch.setattr(film_tasks, "default_storage", StorageWith(open_then_lose))
    response = signed_in(Client(), alice).get(
        reverse("project-takes-zip", args=[project.uuid]) + "?all=1"
    )
    assert_left_out(list(response.streaming_content))


class StorageWith:
    """The default storage with its ``open`` replaced."""

    def __init__(self, open_):
        self.open = open_

    def __getattr__(self, name):
        return getattr(default_storage, name)


def test_deleting_alices_take_removes_a_clip_in_the_bucket_no_row_named(
    ready_take, bucket, s3_endpoint, settings, alice, django_capture_on_commit_callbacks
):
    # What a worker that uploaded a clip and died before recording it leaves: an object in
    # the take's folder no row names, and its staging copy.
    folder = ready_take.media_dir()
    default_storage.save(f"{folder}/clip-1080p.mp4", io.BytesIO(b"an upscale nobody recorded"))
    staged = Path(settings.FLOWSITE_STAGING_DIR) / folder / "clip.mp4"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(b"a clip never uploaded")

    with django_capture_on_commit_callbacks(execute=True):
        signed_in(Client(), alice).post(reverse("take-delete", args=[ready_take.uuid]))

    assert not Generation.objects.filter(pk=ready_take.pk).exists()
    assert [key for key in keys(s3_endpoint, bucket) if key.startswith(f"{folder}/")] == []
    assert files_under(Path(settings.FLOWSITE_STAGING_DIR) / folder) == []
