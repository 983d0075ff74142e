"""Managing takes: delete one (its files go too), clear a scene's failed and cancelled takes."""

from pathlib import Path

from django.conf import settings
from django.urls import reverse

from generations.models import Generation, Pick
from tests.conftest import make_image, make_scene
from tests.views_support import attach_clip, client_for, htmx_client_for, make_take

S = Generation.Status


def stored(name: str) -> Path:
    return Path(settings.MEDIA_ROOT) / name


def test_bob_deletes_a_ready_take_its_files_and_its_pick_go_too(
    project, alice, bob, django_capture_on_commit_callbacks
):
    scene = make_scene(project, make_image(project, alice))
    keep = attach_clip(make_take(scene, alice, status=S.READY), b"keep", b"p")
    gone = attach_clip(make_take(scene, alice, status=S.READY), b"gone", b"p")
    Pick.choose(gone, alice)
    files = [stored(gone.video.name), stored(gone.poster.name)]

    with django_capture_on_commit_callbacks(execute=True):
        card = htmx_client_for(bob).post(reverse("take-delete", args=[gone.uuid]))

    assert "Deleted take 2." in card.text
    assert f"clip-{gone.uuid}" not in card.text and f"clip-{keep.uuid}" in card.text
    assert not Generation.objects.filter(pk=gone.pk).exists()
    assert not Pick.objects.exists()
    assert [f.exists() for f in files] == [False, False]
    assert not files[0].parent.exists(), "the take's own folder goes with its files"
    assert stored(keep.video.name).exists()
    gallery = client_for(alice).get(reverse("project-gallery", args=[project.uuid])).text
    assert str(gone.uuid) not in gallery


def test_a_take_in_flight_is_not_deleted(project, alice):
    scene = make_scene(project, make_image(project, alice))
    active = make_take(scene, alice, status=S.ACTIVE)

    card = htmx_client_for(alice).post(reverse("take-delete", args=[active.uuid]))

    assert "cancel it before deleting it" in card.text
    assert Generation.objects.filter(pk=active.pk).exists()


def test_clear_removes_only_the_failed_and_cancelled_takes_of_that_scene(project, alice, bob):
    scene = make_scene(project, make_image(project, alice))
    other = make_scene(project, make_image(project, alice))
    make_take(scene, alice, status=S.FAILED, reason="Unsafe")
    make_take(scene, alice, status=S.CANCELLED)
    ready = attach_clip(make_take(scene, alice, status=S.READY), b"clip")
    uncertain = make_take(scene, alice, status=S.UNCERTAIN)
    elsewhere = make_take(other, alice, status=S.FAILED)

    page = client_for(bob).get(reverse("project-detail", args=[project.uuid])).text
    assert reverse("scene-clear-failed", args=[scene.uuid]) in page
    response = client_for(bob).post(reverse("scene-clear-failed", args=[scene.uuid]), follow=True)

    assert "Cleared 2 failed or cancelled takes." in response.text
    left = set(Generation.objects.values_list("pk", flat=True))
    assert left == {ready.pk, uncertain.pk, elsewhere.pk}


def test_carol_cannot_delete_or_clear_and_sees_no_such_buttons(project, alice, carol):
    scene = make_scene(project, make_image(project, alice))
    failed = make_take(scene, alice, status=S.FAILED)

    page = client_for(carol).get(reverse("project-detail", args=[project.uuid])).text
    assert "Delete take" not in page and "Clear failed" not in page
    assert client_for(carol).post(reverse("take-delete", args=[failed.uuid])).status_code == 403
    cleared = client_for(carol).post(reverse("scene-clear-failed", args=[scene.uuid]))
    assert cleared.status_code == 403
    assert Generation.objects.filter(pk=failed.pk).exists()
