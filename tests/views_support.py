"""Builders shared by the page tests: takes and their clips in the database, and signed-in
clients (start images and scenes come from tests/conftest.py); and readers of a page's forms."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from html import unescape

from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from generations.models import Generation, Project, Scene
from tests.conftest import make_scene, png_bytes


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


def forms_to(html: str, url: str) -> list[str]:
    """Each form on the page that posts to ``url``, from its action to its end."""
    return [part[: part.index("</form>")] for part in html.split(f'action="{url}"')[1:]]


def button_disabled(form: str) -> bool:
    """Whether the server drew the form's button disabled (not app.js while the form is sent)."""
    return re.search(r"<button\b[^>]*\sdisabled[\s>]", form) is not None


def assert_take_offers_refused(
    html: str, ready: Generation, failed: Generation, refusal: str
) -> None:
    """On ``ready``'s Extend and both its upscales, and on ``failed``'s Retry, ``refusal`` in
    place of a price, disabled; ``ready``'s free last frame, which spends no account, offered
    as ever."""
    [extend] = forms_to(html, reverse("take-extend", args=[ready.uuid]))
    upscales = forms_to(html, reverse("take-upscale", args=[ready.uuid]))
    [retry] = forms_to(html, reverse("take-retry", args=[failed.uuid]))
    assert len(upscales) == 2, "1080p and 4K"
    for form in (extend, *upscales, retry):
        assert refusal in form
        assert button_disabled(form), "the action would be refused"
        assert "data-cost" not in form, "no price for an account the project can no longer spend"
    [last_frame] = forms_to(html, reverse("take-last-frame", args=[ready.uuid]))
    assert not button_disabled(last_frame) and "free" in last_frame


def form_values(html: str) -> dict[str, str]:
    """What a browser sends for the form in ``html`` as it was drawn: its inputs' values
    (boxes only when checked; no files), its textareas' text and its selects' chosen options
    (the first when none is marked)."""
    values: dict[str, str] = {}
    for tag in re.findall(r"<input\b[^>]*>", html):
        name = re.search(r'\sname="([^"]+)"', tag)
        kind = re.search(r'\stype="([^"]+)"', tag)
        kind = kind.group(1) if kind else "text"
        if name is None or kind == "file":
            continue
        if kind in ("checkbox", "radio") and not re.search(r"\schecked[\s>/]", tag):
            continue
        value = re.search(r'\svalue="([^"]*)"', tag)
        if value is None:
            values[name.group(1)] = "on" if kind == "checkbox" else ""
        else:
            values[name.group(1)] = unescape(value.group(1))
    for name, text in re.findall(
        r'<textarea\b[^>]*\sname="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S
    ):
        # A browser drops the line break that follows the opening tag.
        values[name] = unescape(text).removeprefix("\n")
    for name, options in re.findall(
        r'<select\b[^>]*\sname="([^"]+)"[^>]*>(.*?)</select>', html, re.S
    ):
        chosen = re.search(r'<option value="([^"]*)"[^>]*\sselected', options) or re.search(
            r'<option value="([^"]*)"', options
        )
        values[name] = unescape(chosen.group(1)) if chosen else ""
    return values


def edit_page_values(html: str) -> dict[str, str]:
    """The values the scene's Edit page sends when saved as it was drawn."""
    start = html.index('enctype="multipart/form-data"')
    return form_values(html[start : html.index("</form>", start)])


def text_scene(project: Project, **fields) -> Scene:
    """A text-to-video scene (no image to upload), ``fields`` over its defaults."""
    defaults = {"mode": "text", "model_key": "veo_3_1_t2v_fast", "prompt": "a dog"}
    return make_scene(project, **{**defaults, **fields})


def edit_url(scene: Scene) -> str:
    return reverse("scene-edit", args=[scene.uuid])


def open_edit_page(user, scene: Scene) -> dict[str, str]:
    """The fields of ``scene``'s Edit page as ``user``'s browser would send them back."""
    return edit_page_values(client_for(user).get(edit_url(scene)).text)


def seen_settings(scene: Scene) -> str:
    """The settings a page drawn now shows of ``scene`` (what its Edit page and its card's
    Generate send back), for tests that post those forms without drawing the page."""
    return Scene.objects.get(pk=scene.pk).settings_token()


def storyboard_seen(project: Project) -> str:
    """The scenes' settings a storyboard drawn now shows (what its Generate all sends back)."""
    return Scene.storyboard_token(Scene.objects.filter(project=project))
