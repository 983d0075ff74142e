"""A teammate deletes the scene or take while another member acts on it.

Every view reads its scene or take (the access lookup) before its transaction starts, so a
Delete can land in between. Here the row is deleted, as bob's request would, after the
instance was read and before the change that writes to it: the member is told in words, and
nothing is left half-written (no take of a gone scene, no comment or pick pointing nowhere, no
credit spent).
"""

from __future__ import annotations

import threading
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.urls import reverse

from generations import take_actions
from generations.forms import SceneForm
from generations.models import (
    CannotGenerate,
    Comment,
    Generation,
    ImageAsset,
    Pick,
    Scene,
    Upscale,
)
from tests.conftest import make_image, make_ready_scene, make_scene, png_bytes
from tests.tasks_support import settle
from tests.views_support import attach_clip, client_for, make_take, seen_settings

S = Generation.Status


def deleted_by_bob(obj) -> None:
    """Bob's Delete, committed while alice's request holds ``obj`` as read."""
    type(obj).objects.filter(pk=obj.pk).delete()


def a_ready_take(project, alice, title="Harbour") -> Generation:
    scene = make_scene(project, make_image(project, alice), title=title)
    return attach_clip(make_take(scene, alice, status=S.READY), b"clip")


def test_alice_generating_a_scene_bob_just_deleted_is_told_and_nothing_is_queued_or_spent(
    project, alice
):
    scene = make_ready_scene(project, takes=2)
    scene.title = "Harbour"
    deleted_by_bob(scene)

    with pytest.raises(CannotGenerate, match="Harbour was just deleted by a teammate"):
        scene.generate(alice)

    assert not Generation.objects.exists()  # nor anything they would have spent


def test_alice_saving_her_edit_of_a_scene_bob_just_deleted_is_told_and_keeps_no_new_image(
    project, alice
):
    scene = make_scene(project, make_image(project, alice), title="Harbour")
    data = {
        "title": "Harbour at night",
        "prompt": "A lighthouse at night",
        "aspect": "landscape",
        "model_key": "veo_3_1_i2v_s_fast",
        "seed": "",
        "takes": "1",
        "seen_settings": seen_settings(scene),
    }
    upload = SimpleUploadedFile("night.png", png_bytes(colour=(0, 0, 40)), "image/png")
    form = SceneForm(project, data, {"start_image_file": upload}, instance=scene, user=alice)
    assert form.is_valid(), form.errors
    deleted_by_bob(scene)

    # Named as her page showed it, not by the title she had just typed.
    with pytest.raises(CannotGenerate, match="^Harbour was just deleted by a teammate"):
        form.save_scene(alice)

    assert ImageAsset.objects.count() == 1  # only the scene's first image, not the new one


def test_alice_commenting_on_a_take_bob_just_deleted_is_told_and_no_comment_is_left(project, alice):
    take = a_ready_take(project, alice)
    deleted_by_bob(take)

    with pytest.raises(CannotGenerate, match="Take 1 was just deleted by a teammate"):
        Comment.post(take, alice, "The light is perfect")

    assert not Comment.objects.exists()


def test_alice_picking_a_take_bob_just_deleted_is_told_and_no_pick_is_left(project, alice):
    take = a_ready_take(project, alice)
    deleted_by_bob(take)

    with pytest.raises(CannotGenerate, match="Take 1 was just deleted by a teammate"):
        Pick.choose(take, alice)

    assert not Pick.objects.exists()


def test_alice_retrying_a_take_whose_scene_bob_just_deleted_queues_nothing(project, alice):
    scene = make_scene(project, make_image(project, alice), title="Harbour")
    take = make_take(scene, alice, status=S.FAILED)
    take.scene, take.project = scene, project
    deleted_by_bob(scene)

    with pytest.raises(CannotGenerate, match="was just deleted by a teammate"):
        take.retry_as_new_take(alice)

    assert not Generation.objects.exists()


def test_alice_fetching_again_a_take_bob_just_deleted_is_told_who_deleted_it(project, alice):
    take = make_take(make_scene(project), alice, status=S.FAILED, download_attempts=3)
    deleted_by_bob(take)

    with pytest.raises(CannotGenerate, match="Take 1 was just deleted by a teammate"):
        take.fetch_again()


def test_alice_extending_a_take_bob_just_deleted_adds_no_scene(project, alice):
    take = a_ready_take(project, alice)
    deleted_by_bob(take)

    with pytest.raises(CannotGenerate, match="Take 1 was just deleted by a teammate"):
        take_actions.extend(take, alice, "The boat turns back", seen=0)

    assert Scene.objects.count() == 1
    assert not Generation.objects.exists()


def test_alice_extending_a_take_whose_scene_bob_just_deleted_adds_no_scene(project, alice):
    take = a_ready_take(project, alice)
    deleted_by_bob(take.scene)

    with pytest.raises(CannotGenerate, match="Harbour was just deleted by a teammate"):
        take_actions.extend(take, alice, "The boat turns back", seen=0)

    assert not Scene.objects.exists()


def test_alice_upscaling_a_take_bob_just_deleted_asks_flow_for_nothing(project, alice):
    take = a_ready_take(project, alice)
    deleted_by_bob(take)

    with pytest.raises(CannotGenerate, match="Take 1 was just deleted by a teammate"):
        take_actions.request_upscale(take, alice, "1080p")

    assert not Upscale.objects.exists()


def test_alice_starting_a_scene_from_the_last_frame_of_a_deleted_scene_adds_none(
    emu, project, alice
):
    [take] = settle(make_ready_scene(project).generate(alice))
    assert take.status == S.READY, take.reason
    name = str(take.scene)
    deleted_by_bob(take.scene)

    with pytest.raises(CannotGenerate, match=f"{name} was just deleted by a teammate"):
        take_actions.last_frame_scene(take, alice)

    assert not Scene.objects.exists()
    assert not ImageAsset.objects.filter(original_name__startswith="last-frame").exists()


def test_a_404_that_says_why_shows_its_words_and_a_bare_one_the_usual_page(project, alice):
    # The path a "scene just deleted" answer takes to the page (static/js/app.js shows the
    # error page's first paragraph): a take with no clip yet answers its video with words.
    take = make_take(make_scene(project), alice)
    client = client_for(alice)

    worded = client.get(reverse("media-take-video", args=[take.uuid]))
    bare = client.get(reverse("media-take-video", args=[Scene().uuid]))

    assert worded.status_code == bare.status_code == 404
    assert "<p>This clip is not ready.</p>" in worded.text
    assert "There is nothing here, or it belongs to a project you are not on." not in bare.text
    assert (
        "There is nothing here: it was deleted (perhaps by a teammate, a moment ago), or it "
        "belongs to a project you are not on." in bare.text
    )


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL only: SQLite writes one at a time"
)
@pytest.mark.django_db(transaction=True)
def test_bobs_scene_delete_waits_for_alices_generate_and_keeps_its_take(project, alice, bob):
    # Alice's Generate holds the scene's row while it makes a take; bob's Delete, sent at that
    # moment, must wait for it and then see the take (still queued, so it refuses), not
    # delete the scene under it (the database then refused alice's take at commit: a 500).
    scene = make_scene(project, make_image(project, alice), title="Harbour")
    locked, made = threading.Event(), threading.Event()

    def alices_generate() -> None:
        try:
            with transaction.atomic():
                Scene.objects.select_for_update().get(pk=scene.pk)
                locked.set()
                made.wait(5)
                make_take(scene, alice, status=S.QUEUED)
        finally:
            connection.close()

    answers: list[int] = []

    def bobs_delete() -> None:
        try:
            answers.append(
                client_for(bob).post(reverse("scene-delete", args=[scene.uuid])).status_code
            )
        finally:
            connection.close()

    generate, delete = (
        threading.Thread(target=alices_generate),
        threading.Thread(target=bobs_delete),
    )
    generate.start()
    assert locked.wait(5)
    delete.start()
    time.sleep(0.5)  # bob's Delete is waiting on the scene's row now
    made.set()
    generate.join(10)
    delete.join(10)

    assert answers == [302]
    assert Scene.objects.filter(pk=scene.pk).exists()
    assert Generation.objects.filter(scene_id=scene.pk).count() == 1


def test_alices_pick_on_a_take_bob_deleted_before_she_clicked_says_it_may_be_deleted(
    project, alice, bob
):
    # Her card is stale: the lookup finds nothing, and (an outsider must learn nothing) cannot
    # tell a deleted take from another project's; the words must fit the member too.
    take = a_ready_take(project, alice)
    client_for(bob).post(reverse("take-delete", args=[take.uuid]))

    answer = client_for(alice).post(reverse("take-pick", args=[take.uuid]), HTTP_HX_REQUEST="true")

    assert answer.status_code == 404
    assert "it was deleted (perhaps by a teammate, a moment ago)" in answer.text
