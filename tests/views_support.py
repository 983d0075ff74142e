"""Builders shared by the page tests: takes and their clips in the database, and signed-in
clients (start images and scenes come from tests/conftest.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from generations.models import Generation, Project, Scene
from tests.conftest import png_bytes


def make_take(
    scene: Scene,
    user=None,
    *,
    status: str = Generation.Status.QUEUED,
    take: int | None = None,
    updated: datetime | None = None,
    finished_at: datetime | None = None,
    **fields,
) -> Generation:
    if take is None:
        take = scene.generations.count() + 1
    moment = updated or timezone.now()
    if status in Generation.FINAL and finished_at is None:
        finished_at = moment
    # As create_generations does: the scene's counter has given this number.
    Scene.objects.filter(pk=scene.pk, last_take__lt=take).update(last_take=take)
    scene.last_take = max(scene.last_take, take)
    return Generation.objects.create(
        scene=scene,
        project_id=scene.project_id,
        requested_by=user,
        account_id=scene.project.account_id,
        take=take,
        prompt=fields.pop("prompt", scene.prompt),
        model_key=fields.pop("model_key", scene.model_key),
        aspect=fields.pop("aspect", scene.aspect),
        seed=fields.pop("seed", 1234),
        mode=fields.pop("mode", scene.mode),
        start_image_id=scene.start_image_id,
        end_image_id=scene.end_image_id,
        reference_1_id=scene.reference_1_id,
        reference_2_id=scene.reference_2_id,
        reference_3_id=scene.reference_3_id,
        status=status,
        created=moment - timedelta(seconds=42),
        updated=moment,
        finished_at=finished_at,
        **fields,
    )


def attach_clip(take: Generation, video: bytes, poster: bytes = b"") -> Generation:
    """Store clip files the way the worker does (names relative to MEDIA_ROOT)."""
    storage = take.video.storage
    take.video.name = storage.save(f"{take.media_dir()}/clip.mp4", ContentFile(video))
    take.video_size = len(video)
    if poster:
        take.poster.name = storage.save(f"{take.media_dir()}/poster.jpg", ContentFile(poster))
    take.save(update_fields=["video", "video_size", "poster"])
    return take


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def htmx_client_for(user) -> Client:
    client = Client(headers={"HX-Request": "true"})
    client.force_login(user)
    return client


def add_scene_as(user, project: Project, title: str, prompt: str = "The boat reaches open water"):
    """``user`` adds a scene with a start image through the storyboard's own form."""
    added = client_for(user).post(
        reverse("scene-create", args=[project.uuid]),
        {
            "title": title,
            "prompt": prompt,
            "aspect": "landscape",
            "model_key": "veo_3_1_i2v_s_fast",
            "seed": "",
            "takes": "1",
            "start_image_file": SimpleUploadedFile("scene.png", png_bytes(), "image/png"),
        },
    )
    assert added.status_code == 302, added.content[:500]
    return Scene.objects.get(project=project, title=title)
