"""Private media: only members get the bytes, with Range for seeking and nginx hand-off."""

import pytest
from django.urls import reverse
from django.utils.http import http_date

from generations.models import Generation
from tests.conftest import make_image, make_scene
from tests.views_support import attach_clip, client_for, make_take

VIDEO = bytes(range(256)) * 40  # 10 240 bytes, every offset recognisable
POSTER = b"\xff\xd8\xff\xe0poster-bytes\xff\xd9"


@pytest.fixture
def clip(project, alice):
    scene = make_scene(project, make_image(project, alice), title="Opening")
    take = make_take(scene, alice, status=Generation.Status.READY, video_sha256="ab" * 32)
    return attach_clip(take, VIDEO, POSTER)


def video_url(take, **query) -> str:
    url = reverse("media-take-video", args=[take.uuid])
    return url + ("?download=1" if query.get("download") else "")


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_a_member_gets_the_whole_clip_streamed(clip, bob):
    response = client_for(bob).get(video_url(clip))

    assert response.status_code == 200
    assert response.streaming
    assert body(response) == VIDEO
    assert response["Content-Type"] == "video/mp4"
    assert response["Content-Length"] == str(len(VIDEO))
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Disposition"].startswith("inline")
    assert "private" in response["Cache-Control"]


def test_a_range_answers_206_with_exactly_those_bytes(clip, carol):
    response = client_for(carol).get(video_url(clip), headers={"Range": "bytes=1000-1999"})

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 1000-1999/{len(VIDEO)}"
    assert response["Content-Length"] == "1000"
    assert body(response) == VIDEO[1000:2000]


def test_an_open_ended_and_a_suffix_range_are_served(clip, alice):
    client = client_for(alice)

    open_ended = client.get(video_url(clip), headers={"Range": "bytes=10000-"})
    suffix = client.get(video_url(clip), headers={"Range": "bytes=-100"})
    past_the_end = client.get(video_url(clip), headers={"Range": "bytes=10200-99999"})

    assert open_ended.status_code == 206
    assert body(open_ended) == VIDEO[10000:]
    assert suffix["Content-Range"] == f"bytes {len(VIDEO) - 100}-{len(VIDEO) - 1}/{len(VIDEO)}"
    assert body(suffix) == VIDEO[-100:]
    assert past_the_end["Content-Range"] == f"bytes 10200-10239/{len(VIDEO)}"
    assert body(past_the_end) == VIDEO[10200:]


def test_a_range_past_the_end_is_416(clip, alice):
    response = client_for(alice).get(video_url(clip), headers={"Range": "bytes=20000-20100"})

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(VIDEO)}"


def test_a_malformed_or_multiple_range_gets_the_whole_file(clip, alice):
    client = client_for(alice)

    for header in ("bytes=abc", "items=0-10", "bytes=0-10,20-30", "bytes=50-10"):
        response = client.get(video_url(clip), headers={"Range": header})
        assert response.status_code == 200, header
        assert body(response) == VIDEO


def test_if_range_with_the_current_etag_honours_the_range(clip, alice):
    client = client_for(alice)
    etag = client.get(video_url(clip))["ETag"]

    response = client.get(video_url(clip), headers={"Range": "bytes=0-9", "If-Range": etag})

    assert response.status_code == 206
    assert body(response) == VIDEO[:10]


def test_if_range_with_a_stale_etag_or_date_sends_the_whole_clip(clip, alice):
    client = client_for(alice)

    stale_tag = client.get(video_url(clip), headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    stale_date = client.get(
        video_url(clip), headers={"Range": "bytes=0-9", "If-Range": http_date(86400)}
    )

    assert stale_tag.status_code == 200
    assert body(stale_tag) == VIDEO
    assert stale_date.status_code == 200
    assert body(stale_date) == VIDEO


def test_if_range_with_the_current_last_modified_honours_the_range(clip, alice):
    client = client_for(alice)
    last_modified = client.get(video_url(clip))["Last-Modified"]

    response = client.get(
        video_url(clip), headers={"Range": "bytes=5-6", "If-Range": last_modified}
    )

    assert response.status_code == 206
    assert body(response) == VIDEO[5:7]


def test_a_matching_if_none_match_answers_304(clip, alice):
    client = client_for(alice)
    etag = client.get(video_url(clip))["ETag"]

    assert client.get(video_url(clip), headers={"If-None-Match": etag}).status_code == 304


def test_download_asks_the_browser_to_save_under_a_readable_name(clip, alice):
    response = client_for(alice).get(video_url(clip, download=True))

    assert response["Content-Disposition"] == (
        f'attachment; filename="poseidon-opening-take-{clip.take}.mp4"'
    )
    assert body(response) == VIDEO


def test_a_clip_of_an_untitled_scene_downloads_under_its_place_on_the_storyboard(clip, alice):
    clip.scene.title = ""
    clip.scene.save(update_fields=["title"])
    clip.project.name = "Poséidon"
    clip.project.save(update_fields=["name"])

    response = client_for(alice).get(video_url(clip, download=True))

    position = clip.scene.position + 1
    assert response["Content-Disposition"] == (
        f'attachment; filename="poseidon-scene-{position}-take-{clip.take}.mp4"'
    )


def test_an_admin_reads_a_poster_of_a_project_they_are_not_on(clip, admin_client):
    response = admin_client.get(reverse("media-take-poster", args=[clip.uuid]))

    assert response.status_code == 200


def test_behind_nginx_the_view_only_checks_access_and_hands_over(clip, alice, settings):
    settings.FLOWSITE_X_ACCEL_REDIRECT = "/protected/"

    response = client_for(alice).get(video_url(clip, download=True))

    assert response.status_code == 200
    assert response.content == b""
    assert response["X-Accel-Redirect"] == f"/protected/{clip.video.name}"
    assert response["Content-Type"] == "video/mp4"
    assert response["Content-Disposition"].startswith("attachment")


def test_the_poster_and_the_start_image_are_served_to_members(clip, carol):
    client = client_for(carol)

    poster = client.get(reverse("media-take-poster", args=[clip.uuid]))
    image = client.get(reverse("media-image", args=[clip.start_image.uuid]))

    assert poster.status_code == 200
    assert body(poster) == POSTER
    assert poster["Content-Type"] == "image/jpeg"
    assert image.status_code == 200
    assert image["Content-Type"] == "image/png"
    with clip.start_image.file.open("rb") as stored:
        assert body(image) == stored.read()


def test_charlie_gets_404_for_every_media_url(clip, charlie):
    client = client_for(charlie)

    for url in (
        video_url(clip),
        video_url(clip, download=True),
        reverse("media-take-poster", args=[clip.uuid]),
        reverse("media-image", args=[clip.start_image.uuid]),
    ):
        assert client.get(url, headers={"Range": "bytes=0-9"}).status_code == 404, url


def test_charlie_gets_404_even_behind_nginx(clip, charlie, settings):
    settings.FLOWSITE_X_ACCEL_REDIRECT = "/protected/"

    response = client_for(charlie).get(video_url(clip))

    assert response.status_code == 404
    assert "X-Accel-Redirect" not in response


def test_signed_out_visitors_are_sent_to_sign_in(clip, client):
    response = client.get(video_url(clip))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_clip_still_rendering_is_404(project, alice):
    scene = make_scene(project, make_image(project, alice))
    take = make_take(scene, alice, status=Generation.Status.ACTIVE)

    assert client_for(alice).get(video_url(take)).status_code == 404


def test_a_clip_whose_file_vanished_is_404_not_500(clip, alice):
    clip.video.storage.delete(clip.video.name)

    assert client_for(alice).get(video_url(clip)).status_code == 404


def test_there_is_no_public_media_url(clip, alice, settings):
    response = client_for(alice).get(f"/media/{clip.video.name}")

    assert response.status_code == 404
    assert settings.MEDIA_URL is None


def media_urls(take) -> list[str]:
    return [
        video_url(take),
        reverse("media-take-poster", args=[take.uuid]),
        reverse("media-image", args=[take.start_image.uuid]),
    ]


def test_a_superuser_who_is_no_member_can_read_media_for_the_admin(clip, django_user_model):
    admin = django_user_model.objects.create_superuser("dana", "dana@example.org", "pw")
    client = client_for(admin)

    for url in media_urls(clip):
        assert client.get(url).status_code == 200, url


def test_staff_without_superuser_rights_gets_404_like_any_outsider(clip, charlie):
    charlie.is_staff = True
    charlie.save(update_fields=["is_staff"])
    client = client_for(charlie)

    for url in media_urls(clip):
        assert client.get(url).status_code == 404, url


def test_a_superuser_who_is_no_member_still_cannot_open_the_storyboard(clip, django_user_model):
    admin = django_user_model.objects.create_superuser("dana", "dana@example.org", "pw")
    response = client_for(admin).get(reverse("project-detail", args=[clip.project.uuid]))
    assert response.status_code == 404
