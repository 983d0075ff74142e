"""``make_posters``: posters for the takes downloaded before Flowsite made them itself, from the
first frame of each stored clip."""

from __future__ import annotations

import hashlib
import io

import av
import pytest
from django.core.management import CommandError, call_command
from PIL import Image, ImageChops, ImageStat

from generations import storage
from generations.models import Generation
from generations.storage import StoreFailed
from tests.film_support import media_path, ready_takes


def make_posters(*args: str) -> str:
    out = io.StringIO()
    call_command("make_posters", *args, stdout=out)
    return out.getvalue()


def without_poster(take: Generation) -> None:
    """As a take downloaded before posters were made looks: its clip and no poster."""
    media_path(take.poster.name).unlink()
    Generation.objects.filter(pk=take.pk).update(poster="", poster_sha256="")


def test_make_posters_gives_each_old_take_its_clips_first_frame_once(
    emu, project, alice, django_assert_num_queries
):
    first, second, broken = ready_takes(project, alice, takes=3)
    [kept] = ready_takes(project, alice)
    for take in (first, second, broken):
        without_poster(take)
    media_path(broken.video.name).write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4096))
    kept_poster = media_path(kept.poster.name).read_bytes()

    # Two takes a batch: two reads, and one write for each poster made.
    with django_assert_num_queries(4):
        printed = make_posters("--batch", "2")

    assert printed == (
        f"{broken} in project Poseidon: its clip could not be read, so it still has no poster.\n"
        "Made 2 poster(s) from their clips' first frames.\n"
    )
    for take in Generation.objects.filter(pk__in=[first.pk, second.pk]):
        assert take.poster.name == f"{take.media_dir()}/poster.jpg"
        data = media_path(take.poster.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == take.poster_sha256
        with av.open(str(media_path(take.video.name))) as container:
            frame = next(container.decode(video=0)).to_image()
        with Image.open(io.BytesIO(data)) as poster:
            assert (poster.format, poster.size) == ("JPEG", frame.size)
            assert ImageStat.Stat(ImageChops.difference(poster.convert("RGB"), frame)).mean[0] < 2
    broken.refresh_from_db()
    assert (broken.poster.name, broken.poster_sha256) == ("", "")
    assert not media_path(f"{broken.media_dir()}/poster.jpg").exists()
    assert media_path(kept.poster.name).read_bytes() == kept_poster

    made = list(Generation.objects.order_by("pk").values("pk", "poster", "poster_sha256"))
    again = make_posters()

    assert again.endswith("Made 0 poster(s) from their clips' first frames.\n")
    assert list(Generation.objects.order_by("pk").values("pk", "poster", "poster_sha256")) == made


def test_make_posters_says_how_far_it_got_when_the_storage_refuses_a_poster(
    emu, project, alice, monkeypatch
):
    [take] = ready_takes(project, alice)
    without_poster(take)

    def refuse(path, name):
        raise StoreFailed(detail="the bucket is read-only")

    monkeypatch.setattr(storage, "store_file", refuse)
    with pytest.raises(CommandError) as refused:
        make_posters()

    assert str(refused.value) == (
        "Flowsite could not save the file to its media storage. Made 0 poster(s) before that; "
        "run the command again once the storage works."
    )
    take.refresh_from_db()
    assert take.poster.name == ""
    with pytest.raises(CommandError, match=r"^--batch must be at least 1\.$"):
        make_posters("--batch", "0")
