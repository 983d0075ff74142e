"""Download all: the picked (or all) takes and manifest.json as one zip, streamed as built."""

import hashlib
import io
import json
import os
import zipfile

import pytest
from django.core.management import call_command
from django.urls import reverse

from generations.film_tasks import ZIP_CHUNK
from generations.models import Generation, Pick, delete_takes
from tests.conftest import make_image, make_scene
from tests.views_support import attach_clip, client_for, make_take

S = Generation.Status


def board(project, alice, bob):
    first = make_scene(project, make_image(project, alice), title="Harbour")
    second = make_scene(project, make_image(project, alice), title="Storm")
    clips = {
        "a": attach_clip(make_take(first, alice, status=S.READY), os.urandom(300_000)),
        "b": attach_clip(make_take(first, bob, status=S.READY), os.urandom(1000)),
        "c": make_take(second, bob, status=S.FAILED, reason="Unsafe"),
        "d": attach_clip(make_take(second, bob, status=S.READY), os.urandom(2000)),
    }
    Pick.choose(clips["b"], alice)
    Pick.choose(clips["d"], alice)
    return clips


def download(user, project, query="") -> tuple[zipfile.ZipFile, list[bytes]]:
    response = client_for(user).get(reverse("project-takes-zip", args=[project.uuid]) + query)
    assert response.status_code == 200
    assert response.streaming, "sent as it is built"
    assert "attachment" in response["Content-Disposition"]
    chunks = list(response.streaming_content)
    return zipfile.ZipFile(io.BytesIO(b"".join(chunks))), chunks


def test_carol_downloads_the_picks_with_a_manifest_of_the_export_fields(
    project, alice, bob, carol, tmp_path
):
    clips = board(project, alice, bob)

    archive, _ = download(carol, project)

    assert sorted(archive.namelist()) == [
        "manifest.json",
        "scene-01-take-2.mp4",
        "scene-02-take-2.mp4",
    ]
    manifest = json.loads(archive.read("manifest.json"))
    assert [(t["scene"], t["take"]) for t in manifest["takes"]] == [(1, 2), (2, 2)]
    data = archive.read("scene-01-take-2.mp4")
    assert data == clips["b"].video.open("rb").read()
    assert manifest["takes"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    call_command("storyboard", "export", "--project", "Poseidon", "--out", str(tmp_path))
    exported = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest) == set(exported)
    assert set(manifest["takes"][0]) == set(exported["takes"][0])


def test_all_takes_lists_every_take_and_zips_every_ready_clip(project, alice, bob):
    board(project, alice, bob)

    archive, _ = download(alice, project, "?all=1")

    assert len([n for n in archive.namelist() if n.endswith(".mp4")]) == 3
    manifest = json.loads(archive.read("manifest.json"))
    failed = [t for t in manifest["takes"] if t["status"] == "failed"]
    assert failed == [failed[0]] and failed[0]["file"] is None and failed[0]["reason"] == "Unsafe"


def test_the_zip_is_sent_in_small_pieces_however_large_the_clips(project, alice, bob):
    board(project, alice, bob)

    _, chunks = download(alice, project, "?all=1")

    assert sum(map(len, chunks)) > 300_000
    assert max(map(len, chunks)) <= ZIP_CHUNK + 4096, "no piece holds a whole clip"


def test_a_missing_clip_is_named_and_nothing_is_downloaded(project, alice, bob):
    clips = board(project, alice, bob)
    clips["b"].video.storage.delete(clips["b"].video.name)

    response = client_for(alice).get(reverse("project-takes-zip", args=[project.uuid]), follow=True)

    assert "the stored clip is missing for scene-01-take-2.mp4" in response.text


@pytest.mark.parametrize(
    ("query", "kept"),
    [("?all=1", ["scene-01-take-1.mp4", "scene-01-take-2.mp4"]), ("", ["scene-01-take-1.mp4"])],
)
def test_a_take_bob_deletes_while_alice_downloads_is_left_out_of_a_whole_zip_and_named(
    project, alice, bob, query, kept, django_capture_on_commit_callbacks
):
    clips = board(project, alice, bob)
    Pick.choose(clips["a"], alice)  # the large clip goes first in either zip
    response = client_for(alice).get(reverse("project-takes-zip", args=[project.uuid]) + query)
    chunks = []
    for chunk in response.streaming_content:
        if not chunks:
            # Alice has the first piece of take 1; bob deletes the second scene's take.
            with django_capture_on_commit_callbacks(execute=True):
                delete_takes([clips["d"]])
        chunks.append(chunk)

    assert not clips["d"].video.storage.exists(clips["d"].video.name)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == ["manifest.json", *kept]
    assert archive.read("scene-01-take-1.mp4") == clips["a"].video.open("rb").read()
    manifest = json.loads(archive.read("manifest.json"))
    [gone] = [t for t in manifest["takes"] if (t["scene"], t["take"]) == (2, 2)]
    assert gone["file"] is None and gone["sha256"] is None
    assert gone["left_out"] == (
        "scene-02-take-2.mp4 is not in this zip: the take was deleted while the zip was made."
    )
    assert all("left_out" not in t for t in manifest["takes"] if t is not gone)


def test_with_nothing_picked_the_zip_is_refused_in_words_and_not_offered(project, alice):
    scene = make_scene(project, make_image(project, alice))
    make_take(scene, alice, status=Generation.Status.FAILED)
    client = client_for(alice)

    picks = client.get(reverse("project-takes-zip", args=[project.uuid]), follow=True)
    every = client.get(reverse("project-takes-zip", args=[project.uuid]) + "?all=1", follow=True)

    assert picks.redirect_chain and every.redirect_chain, "no zip holding only a manifest"
    assert "No take is picked yet, so there is nothing to download" in picks.text
    assert "No take is ready yet, so there is nothing to download." in every.text
    assert "Download the picks (zip)" not in picks.text


def test_compare_with_no_ready_take_says_so_without_player_buttons(project, alice, bob):
    scene = make_scene(project, make_image(project, alice))

    page = client_for(bob).get(reverse("scene-compare", args=[scene.uuid])).text

    assert "has no ready take yet" in page
    assert "Play all" not in page and "0 ready takes" not in page


def test_charlie_gets_404(project, alice, bob, charlie):
    board(project, alice, bob)

    assert (
        client_for(charlie).get(reverse("project-takes-zip", args=[project.uuid])).status_code
        == 404
    )
