"""Media answers under hostile or unusual requests: Range edge cases and what may be cached."""

import pytest
from django.urls import reverse

from generations.models import Generation
from tests.conftest import make_image, make_scene
from tests.views_support import attach_clip, client_for, make_take

VIDEO = bytes(range(256)) * 40  # 10 240 bytes, every offset recognisable
POSTER = b"\xff\xd8\xff\xe0poster-bytes\xff\xd9"
# Past the 4,300 digits Python converts to an int by default.
HUGE = "9" * 5000


@pytest.fixture
def clip(project, alice):
    scene = make_scene(project, make_image(project, alice), title="Opening")
    take = make_take(scene, alice, status=Generation.Status.READY, video_sha256="ab" * 32)
    return attach_clip(take, VIDEO, POSTER)


def media_urls(clip) -> list[str]:
    return [
        reverse("media-take-video", args=[clip.uuid]),
        reverse("media-take-poster", args=[clip.uuid]),
        reverse("media-image", args=[clip.start_image.uuid]),
    ]


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_a_range_number_of_thousands_of_digits_is_416_not_500_on_every_media_view(clip, alice):
    client = client_for(alice)

    for url in media_urls(clip):
        for header in (f"bytes={HUGE}-", f"bytes={HUGE}-{HUGE}9"):
            response = client.get(url, headers={"Range": header})
            assert response.status_code == 416, (url, header[:20])
            assert response["Content-Range"].startswith("bytes */")


def test_a_huge_last_position_or_suffix_means_up_to_the_end(clip, alice):
    client = client_for(alice)
    url = media_urls(clip)[0]

    last = client.get(url, headers={"Range": f"bytes=10000-{HUGE}"})
    suffix = client.get(url, headers={"Range": f"bytes=-{HUGE}"})
    padded = client.get(url, headers={"Range": f"bytes={'0' * 5000}5-{'0' * 5000}9"})

    assert last.status_code == 206
    assert body(last) == VIDEO[10000:]
    assert suffix["Content-Range"] == f"bytes 0-{len(VIDEO) - 1}/{len(VIDEO)}"
    assert body(suffix) == VIDEO
    assert padded["Content-Range"] == f"bytes 5-9/{len(VIDEO)}"
    assert body(padded) == VIDEO[5:10]


def test_a_huge_first_position_after_a_smaller_last_is_ignored(clip, alice):
    response = client_for(alice).get(
        media_urls(clip)[0], headers={"Range": f"bytes={HUGE}9-{HUGE}"}
    )

    assert response.status_code == 200
    assert body(response) == VIDEO


@pytest.mark.parametrize("start", [len(VIDEO), len(VIDEO) + 1, 99999])
def test_an_open_range_from_the_end_or_past_it_is_416_not_the_whole_file(clip, alice, start):
    response = client_for(alice).get(media_urls(clip)[0], headers={"Range": f"bytes={start}-"})

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(VIDEO)}"


def test_the_last_byte_alone_is_still_served(clip, alice):
    response = client_for(alice).get(
        media_urls(clip)[0], headers={"Range": f"bytes={len(VIDEO) - 1}-"}
    )

    assert response.status_code == 206
    assert body(response) == VIDEO[-1:]


# --- caching ---------------------------------------------------------------------------------


def test_media_may_be_kept_by_the_browser_only_if_checked_again_before_each_use(clip, alice):
    client = client_for(alice)

    for url in media_urls(clip):
        response = client.get(url)
        assert response["Cache-Control"] == "private, no-cache", url
        again = client.get(url, headers={"If-None-Match": response["ETag"]})
        assert again.status_code == 304, url
        assert again["ETag"] == response["ETag"]
        assert again["Cache-Control"] == "private, no-cache"


def test_a_removed_member_revalidating_a_cached_clip_gets_404(clip, project, bob):
    client = client_for(bob)
    url = media_urls(clip)[0]
    etag = client.get(url)["ETag"]

    project.memberships.filter(user=bob).delete()

    assert client.get(url, headers={"If-None-Match": etag}).status_code == 404


def test_behind_nginx_the_hand_off_is_not_cached_for_an_hour_either(clip, alice, settings):
    settings.FLOWSITE_X_ACCEL_REDIRECT = "/protected/"

    response = client_for(alice).get(media_urls(clip)[0])

    assert response["Cache-Control"] == "private, no-cache"
