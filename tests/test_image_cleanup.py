"""Start images nothing refers to any more are removed, with their files, once committed."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.db.models import RestrictedError
from django.urls import reverse
from django.utils import timezone

from generations import cleanup
from generations.cleanup import remove_abandoned_images
from generations.models import Generation, ImageAsset, Scene
from tests.conftest import make_image, make_scene, png_bytes
from tests.views_support import client_for, make_take, seen_settings


def stored(image: ImageAsset) -> Path:
    return Path(image.file.path)


def edit_with_new_image(client, scene: Scene):
    return client.post(
        reverse("scene-edit", args=[scene.uuid]),
        {
            **{
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
            "seen_settings": seen_settings(scene),
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


# --- uploads kept for a scene form that failed ---------------------------------------------


def kept_after_a_failed_form(client, project) -> ImageAsset:
    response = client.post(
        reverse("scene-create", args=[project.uuid]),
        {
            "prompt": "",
            "aspect": "landscape",
            "model_key": "veo_3_1_i2v_s_fast",
            "takes": "1",
            "start_image_file": SimpleUploadedFile("kept.png", png_bytes(), "image/png"),
        },
    )
    assert response.status_code == 200 and "Write a prompt" in response.text
    return ImageAsset.objects.get(original_name="kept.png")


def test_an_upload_kept_for_a_failed_form_goes_with_its_file_once_the_grace_period_is_over(
    project, bob, settings, django_capture_on_commit_callbacks
):
    settings.FLOWSITE_KEPT_IMAGE_HOURS = 24
    kept = kept_after_a_failed_form(client_for(bob), project)

    with django_capture_on_commit_callbacks(execute=True):
        # Bob may still be correcting his form: the image stays.
        assert remove_abandoned_images(now=kept.created + timedelta(hours=23)) == 0
    assert ImageAsset.objects.filter(pk=kept.pk).exists() and stored(kept).exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert remove_abandoned_images(now=kept.created + timedelta(hours=25)) == 1
    assert not ImageAsset.objects.filter(pk=kept.pk).exists()
    assert not stored(kept).exists()


def test_the_sweep_keeps_old_images_a_scene_or_a_take_uses(
    project, bob, django_capture_on_commit_callbacks
):
    on_scene, on_take, abandoned = (make_image(project, bob, color=(i, 0, 0)) for i in range(3))
    make_scene(project, on_scene)
    take = make_take(make_scene(project, on_scene), bob, status=Generation.Status.READY)
    Generation.objects.filter(pk=take.pk).update(start_image=on_take)

    with django_capture_on_commit_callbacks(execute=True):
        removed = remove_abandoned_images(now=timezone.now() + timedelta(days=30))

    assert removed == 1
    assert set(ImageAsset.objects.values_list("pk", flat=True)) == {on_scene.pk, on_take.pk}
    assert not stored(abandoned).exists()


def test_the_sweep_removes_many_abandoned_images_batch_by_batch(project, bob, monkeypatch):
    monkeypatch.setattr(cleanup, "SWEEP_BATCH", 2)
    for i in range(5):
        make_image(project, bob, color=(i, 1, 1))

    assert remove_abandoned_images(now=timezone.now() + timedelta(days=2)) == 5
    assert not ImageAsset.objects.exists()


def test_the_image_sweep_runs_every_hour_from_one_schedule(db):
    from django_q.models import Schedule

    sweep = Schedule.objects.get(func="generations.cleanup.remove_abandoned_images")
    assert sweep.schedule_type == Schedule.HOURLY and sweep.repeats == -1
