"""Start images nothing refers to any more are removed, with their files, once committed."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.db.models import RestrictedError
from django.urls import reverse

from generations.models import Generation, ImageAsset, Scene
from tests.conftest import make_image, make_scene, png_bytes
from tests.views_support import client_for, make_take


def stored(image: ImageAsset) -> Path:
    return Path(image.file.path)


def edit_with_new_image(client, scene: Scene):
    return client.post(
        reverse("scene-edit", args=[scene.uuid]),
        {
            "title": "Opening",
            "prompt": scene.prompt,
            "aspect": "landscape",
            "model_key": scene.model_key,
            "seed": "",
            "takes": "1",
            "start_image_file": SimpleUploadedFile(
                "new.png", png_bytes(colour=(200, 10, 10)), "image/png"
            ),
        },
    )


def test_a_replaced_start_image_nothing_else_uses_goes_with_its_file(
    project, bob, django_capture_on_commit_callbacks
):
    old = make_image(project, bob)
    scene = make_scene(project, old)

    with django_capture_on_commit_callbacks(execute=True):
        response = edit_with_new_image(client_for(bob), scene)

    scene.refresh_from_db()
    assert response.status_code == 302
    assert scene.start_image_id != old.pk
    assert not ImageAsset.objects.filter(pk=old.pk).exists()
    assert not stored(old).exists()
    assert stored(scene.start_image).exists()


def test_a_replaced_start_image_a_take_was_made_from_is_kept(
    project, bob, django_capture_on_commit_callbacks
):
    old = make_image(project, bob)
    scene = make_scene(project, old)
    make_take(scene, bob, status=Generation.Status.READY)

    with django_capture_on_commit_callbacks(execute=True):
        edit_with_new_image(client_for(bob), scene)

    assert ImageAsset.objects.filter(pk=old.pk).exists()
    assert stored(old).exists()


def test_deleting_a_scene_removes_the_images_only_it_and_its_takes_used(
    project, bob, django_capture_on_commit_callbacks
):
    shared, own, earlier = (make_image(project, bob) for _ in range(3))
    scene = make_scene(project, own)
    make_scene(project, shared)
    other_scene_with_shared = make_scene(project, shared)
    # A take made before the scene's image was replaced.
    earlier_take = make_take(scene, bob, status=Generation.Status.FAILED)
    Generation.objects.filter(pk=earlier_take.pk).update(start_image=earlier)
    make_take(scene, bob, status=Generation.Status.READY)
    scene.refresh_from_db()

    with django_capture_on_commit_callbacks(execute=True):
        client_for(bob).post(reverse("scene-delete", args=[scene.uuid]))

    assert set(ImageAsset.objects.values_list("pk", flat=True)) == {shared.pk}
    assert not stored(own).exists() and not stored(earlier).exists()
    assert stored(shared).exists()
    assert other_scene_with_shared.start_image_id == shared.pk


def test_a_rolled_back_deletion_keeps_the_image_and_its_file(project, bob):
    image = make_image(project, bob)
    scene = make_scene(project, image)

    with pytest.raises(RuntimeError), transaction.atomic():
        scene.delete()
        raise RuntimeError("rolled back")

    assert ImageAsset.objects.filter(pk=image.pk).exists()
    assert stored(image).exists()


def test_a_file_another_image_row_still_names_is_never_deleted(
    project, bob, django_capture_on_commit_callbacks
):
    image = make_image(project, bob)
    twin = ImageAsset.objects.create(
        project=project,
        file=image.file.name,
        mime_type=image.mime_type,
        width=image.width,
        height=image.height,
        size=image.size,
        sha256=image.sha256,
    )
    scene = make_scene(project, image)
    make_scene(project, twin)

    with django_capture_on_commit_callbacks(execute=True):
        scene.delete()

    assert not ImageAsset.objects.filter(pk=image.pk).exists()
    assert stored(twin).exists()


def test_a_project_whose_scenes_have_start_images_can_be_deleted_with_its_files(
    project, bob, django_capture_on_commit_callbacks
):
    image = make_image(project, bob)
    scene = make_scene(project, image)
    make_take(scene, bob, status=Generation.Status.READY)

    with django_capture_on_commit_callbacks(execute=True):
        project.delete()

    assert not ImageAsset.objects.filter(pk=image.pk).exists()
    assert not Scene.objects.filter(pk=scene.pk).exists()
    assert not stored(image).exists()


def test_a_start_image_a_scene_still_shows_cannot_be_deleted_on_its_own(project, bob):
    image = make_image(project, bob)
    make_scene(project, image)

    with pytest.raises(RestrictedError):
        image.delete()

    assert stored(image).exists()
