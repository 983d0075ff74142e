"""The cached gallery: a page rendered once per gallery version, never shown stale.

Each test warms the cache with a gallery page, changes something the way people (or the
worker) really change it, and opens the gallery again: the change must show.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from generations.models import Generation, Membership, Project, Scene
from tests import tasks_support
from tests.conftest import TEST_FERNET_KEY, make_image, make_ready_scene, make_scene, png_bytes
from tests.views_support import client_for, make_take

READY = Generation.Status.READY


def gallery(client, project, **query) -> str:
    response = client.get(reverse("project-gallery", args=[project.uuid]), query)
    assert response.status_code == 200
    return response.text


def clips(html: str) -> list[str]:
    return re.findall(r'src="/media/take/([0-9a-f-]+)/video"', html)


def section_names(html: str) -> list[str]:
    return re.findall(r"<h2>(.+?) <span class=\"count\">", html)


def scene_options(html: str) -> list[str]:
    return re.findall(r'<option value="[0-9a-f-]+"[^>]*>([^<]+)</option>', html)


def body(html: str) -> str:
    """The part of the page every member shares (inside <main>)."""
    return html.split('<main class="page">', 1)[1].split("</main>", 1)[0]


def queries(client, project, **query) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as captured:
        html = gallery(client, project, **query)
    return html, len(captured)


@pytest.fixture
def scene(project, alice) -> Scene:
    return make_scene(project, make_image(project, alice), title="Harbour")


@pytest.fixture
def admin_client(db):
    return client_for(User.objects.create_superuser("root", "root@example.org", "x"))


class _FormFields(HTMLParser):
    """The fields a browser would submit from the page's main form, as they stand."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.data.setdefault(name, []).append(a.get("value") or "")
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select].append(a.get("value") or "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = [""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            # Django writes a newline after <textarea>, which browsers drop.
            self.data[self._textarea][0] = self.data[self._textarea][0].removeprefix("\n")
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea][0] += data


def admin_form(client, url: str, **changes: str) -> dict[str, list[str]]:
    """The admin change form at ``url`` as a browser would post it, with ``changes`` typed in."""
    page = client.get(url)
    assert page.status_code == 200
    form = page.text.split('id="content-main"', 1)[1]
    parser = _FormFields()
    parser.feed(form)
    data = {name: values for name, values in parser.data.items() if name != "csrfmiddlewaretoken"}
    for name, value in changes.items():
        data[name] = [value]
    return data


# --- the cache itself -------------------------------------------------------------------------


def test_a_warm_gallery_is_the_same_page_in_three_queries(project, alice, scene):
    take = make_take(scene, alice, status=READY)
    client = client_for(alice)

    cold, cold_queries = queries(client, project)
    warm, warm_queries = queries(client, project)

    assert clips(warm) == clips(cold) == [str(take.uuid)]
    assert body(warm) == body(cold)
    # The session, the user, and the membership (which carries the gallery version).
    assert warm_queries == 3
    assert cold_queries > warm_queries


def test_carol_a_viewer_is_served_the_body_alice_warmed_with_her_own_shell(
    project, alice, carol, scene
):
    make_take(scene, alice, status=READY)
    alices = gallery(client_for(alice), project)

    carols, carol_queries = queries(client_for(carol), project)

    assert body(carols) == body(alices)
    assert carol_queries == 3
    assert '<span class="topbar__user">carol</span>' in carols
    assert "alice</span>" not in carols.split("<main", 1)[0]


def test_charlie_gets_404_even_when_the_gallery_is_cached(project, alice, charlie, scene):
    make_take(scene, alice, status=READY)
    gallery(client_for(alice), project)
    gallery(client_for(alice), project, page=2)

    response = client_for(charlie).get(reverse("project-gallery", args=[project.uuid]))

    assert response.status_code == 404
    assert "Harbour" not in response.text


def test_bob_removed_from_the_project_no_longer_sees_the_cached_gallery(project, alice, bob, scene):
    make_take(scene, alice, status=READY)
    gallery(client_for(bob), project)

    Membership.objects.filter(project=project, user=bob).delete()

    response = client_for(bob).get(reverse("project-gallery", args=[project.uuid]))
    assert response.status_code == 404


def test_the_pager_links_carry_only_the_filter_whatever_the_request_that_rendered_it_had(
    project, alice, bob, scene
):
    for _ in range(50):
        make_take(scene, alice, status=READY)
    client = client_for(alice)

    first = gallery(client, project, scene=str(scene.uuid), utm="<mail>", extra="x")
    again = gallery(client_for(bob), project, scene=str(scene.uuid))

    assert f'href="?scene={scene.uuid}&amp;page=2"' in first
    assert "utm" not in first and "extra" not in first
    assert body(again) == body(first)


def test_pages_and_filters_are_cached_apart(project, alice, bob, scene):
    other = make_scene(project, title="Tower")
    for n in range(50):
        make_take(scene if n % 2 else other, alice, status=READY)
    client = client_for(alice)

    first, second = gallery(client, project), gallery(client, project, page=2)
    towers = gallery(client, project, scene=str(other.uuid))

    assert len(clips(first)) == 48 and len(clips(second)) == 2
    assert len(clips(towers)) == 25
    assert body(gallery(client_for(bob), project, page="not a number")) == body(first)
    assert clips(gallery(client, project, page=99)) == clips(second)


# --- takes ------------------------------------------------------------------------------------


@pytest.fixture
def emu(flow_emulator, account, settings):
    settings.FLOWSITE_POLL_INTERVAL = 0.1
    account.bearer_token = flow_emulator.token
    account.save(update_fields=["bearer_token"])
    return flow_emulator


def test_alice_sees_bobs_new_clip_in_the_gallery_after_the_worker_downloads_it(
    emu, project, alice, bob
):
    scene = make_ready_scene(project)
    client = client_for(alice)
    assert clips(gallery(client, project)) == []

    [take] = tasks_support.settle(scene.generate(bob))

    assert take.status == READY
    html = gallery(client, project)
    assert clips(html) == [str(take.uuid)]
    assert section_names(html) == ["bob"]


def test_alice_no_longer_sees_a_clip_after_an_admin_deletes_it(
    project, alice, bob, scene, admin_client
):
    kept, deleted = make_take(scene, bob, status=READY), make_take(scene, bob, status=READY)
    client = client_for(alice)
    assert set(clips(gallery(client, project))) == {str(kept.uuid), str(deleted.uuid)}

    response = admin_client.post(
        reverse("admin:generations_generation_delete", args=[deleted.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert clips(gallery(client, project)) == [str(kept.uuid)]


def test_alice_no_longer_sees_clips_an_admin_deletes_together_in_one_statement_per_project(
    project, alice, bob, scene, admin_client
):
    takes = [make_take(scene, bob, status=READY) for _ in range(5)]
    client = client_for(alice)
    assert len(clips(gallery(client, project))) == 5
    before = Project.objects.get(pk=project.pk).gallery_version

    response = admin_client.post(
        reverse("admin:generations_generation_changelist"),
        {"action": "delete_selected", "_selected_action": [t.pk for t in takes[:4]], "post": "yes"},
    )

    assert response.status_code == 302
    assert clips(gallery(client, project)) == [str(takes[4].uuid)]
    assert Project.objects.get(pk=project.pk).gallery_version == before + 1


def test_a_take_that_fails_leaves_the_cached_gallery_as_it_was(emu, project, alice, bob):
    scene = make_ready_scene(project, "[fault:fail] a shot Flow refuses")
    client = client_for(alice)
    gallery(client, project)
    version = Project.objects.get(pk=project.pk).gallery_version

    [take] = tasks_support.settle(scene.generate(bob))

    assert take.status == Generation.Status.FAILED
    assert Project.objects.get(pk=project.pk).gallery_version == version
    assert clips(gallery(client, project)) == []


# --- scenes -----------------------------------------------------------------------------------


def test_alice_sees_the_new_scene_title_in_the_gallery_after_bob_renames_it(
    project, alice, bob, scene
):
    make_take(scene, alice, status=READY)
    client = client_for(alice)
    assert "Harbour · take 1" in gallery(client, project)

    response = client_for(bob).post(
        reverse("scene-edit", args=[scene.uuid]),
        {
            "title": "Lighthouse",
            "prompt": scene.prompt,
            "aspect": scene.aspect,
            "model_key": scene.model_key,
            "seed": "",
            "takes": "1",
        },
    )

    assert response.status_code == 302
    html = gallery(client, project)
    assert "Lighthouse · take 1" in html and "Harbour" not in html
    assert scene_options(html) == ["Lighthouse"]


def test_alice_sees_a_scene_bob_adds_in_the_gallerys_filter(project, alice, bob, scene):
    client = client_for(alice)
    assert scene_options(gallery(client, project)) == ["Harbour"]

    response = client_for(bob).post(
        reverse("scene-create", args=[project.uuid]),
        {
            "title": "Tower",
            "prompt": "A tower in fog",
            "aspect": "landscape",
            "model_key": "veo_3_1_i2v_s_fast",
            "seed": "",
            "takes": "1",
            "start_image_file": start_image_upload(),
        },
    )

    assert response.status_code == 302
    assert scene_options(gallery(client, project)) == ["Harbour", "Tower"]


def start_image_upload() -> SimpleUploadedFile:
    return SimpleUploadedFile("tower.png", png_bytes(), "image/png")


def test_alice_sees_the_new_scene_order_and_names_after_bob_moves_a_scene(project, alice, bob):
    untitled = make_scene(project)  # named by its position: "Scene 1"
    titled = make_scene(project, title="Tower")
    make_take(untitled, alice, status=READY)
    client = client_for(alice)
    html = gallery(client, project)
    assert scene_options(html) == ["Scene 1", "Tower"]
    assert "Scene 1 · take 1" in html

    client_for(bob).post(reverse("scene-move", args=[titled.uuid]), {"direction": "up"})

    html = gallery(client, project)
    assert scene_options(html) == ["Tower", "Scene 2"]
    assert "Scene 2 · take 1" in html


def test_alice_no_longer_sees_a_scene_or_its_clips_after_bob_deletes_it(project, alice, bob, scene):
    other = make_scene(project, title="Tower")
    kept = make_take(other, alice, status=READY)
    for _ in range(3):
        make_take(scene, alice, status=READY)
    client = client_for(alice)
    assert len(clips(gallery(client, project))) == 4
    before = Project.objects.get(pk=project.pk).gallery_version

    response = client_for(bob).post(reverse("scene-delete", args=[scene.uuid]))

    assert response.status_code == 302
    html = gallery(client, project)
    assert clips(html) == [str(kept.uuid)]
    assert scene_options(html) == ["Tower"]
    # The scene, its three takes and the storyboard notice: two bumps, not five.
    assert Project.objects.get(pk=project.pk).gallery_version == before + 2


def test_alice_sees_a_scene_renamed_in_the_admin(project, alice, scene, admin_client):
    make_take(scene, alice, status=READY)
    client = client_for(alice)
    assert "Harbour · take 1" in gallery(client, project)
    url = reverse("admin:generations_scene_change", args=[scene.pk])

    response = admin_client.post(url, admin_form(admin_client, url, title="Breakwater"))

    assert response.status_code == 302, response.text[:3000]
    assert "Breakwater · take 1" in gallery(client, project)


def test_a_scene_moved_to_another_project_in_the_admin_leaves_both_galleries(
    project, alice, account, scene, admin_client
):
    other = Project.objects.create(name="Other", account=account)
    other.add_member(alice, Membership.Role.OWNER)
    client = client_for(alice)
    assert scene_options(gallery(client, project)) == ["Harbour"]
    assert scene_options(gallery(client, other)) == []
    url = reverse("admin:generations_scene_change", args=[scene.pk])

    response = admin_client.post(url, admin_form(admin_client, url, project=str(other.pk)))

    assert response.status_code == 302, response.text[:3000]
    assert scene_options(gallery(client, project)) == []
    assert scene_options(gallery(client, other)) == ["Harbour"]


# --- the project and its people -------------------------------------------------------------


def test_alice_sees_the_new_project_name_after_an_admin_renames_it(
    project, alice, scene, admin_client
):
    client = client_for(alice)
    assert "← Poseidon" in gallery(client, project)
    url = reverse("admin:generations_project_change", args=[project.pk])

    response = admin_client.post(url, admin_form(admin_client, url, name="Triton"))

    assert response.status_code == 302, response.text[:3000]
    html = gallery(client, project)
    assert "← Triton" in html and "Poseidon" not in html


def test_an_admin_saving_a_project_loaded_before_a_clip_landed_keeps_the_clip_showing(
    project, alice, scene
):
    stale_copy = Project.objects.get(pk=project.pk)
    take = make_take(scene, alice, status=READY)
    client = client_for(alice)
    assert clips(gallery(client, project)) == [str(take.uuid)]

    stale_copy.name = "Triton"
    stale_copy.save()

    html = gallery(client, project)
    assert "← Triton" in html and clips(html) == [str(take.uuid)]
    assert Project.objects.get(pk=project.pk).gallery_version >= 2


def test_alice_sees_bobs_new_username_after_an_admin_changes_it(
    project, alice, bob, scene, admin_client
):
    make_take(scene, bob, status=READY)
    client = client_for(alice)
    assert section_names(gallery(client, project)) == ["bob"]
    url = reverse("admin:auth_user_change", args=[bob.pk])

    response = admin_client.post(url, admin_form(admin_client, url, username="robert"))

    assert response.status_code == 302, response.text[:3000]
    assert section_names(gallery(client, project)) == ["robert"]


def test_signing_in_does_not_empty_the_cache(project, alice, bob, scene):
    make_take(scene, bob, status=READY)
    gallery(client_for(alice), project)
    version = Project.objects.get(pk=project.pk).gallery_version

    assert client_for(bob).login(username="bob", password="correct horse battery staple")

    assert Project.objects.get(pk=project.pk).gallery_version == version


def test_alice_sees_bobs_clips_under_a_former_member_after_an_admin_deletes_bob(
    project, alice, bob, scene, admin_client
):
    take = make_take(scene, bob, status=READY)
    client = client_for(alice)
    assert section_names(gallery(client, project)) == ["bob"]

    response = admin_client.post(reverse("admin:auth_user_delete", args=[bob.pk]), {"post": "yes"})

    assert response.status_code == 302
    html = gallery(client, project)
    assert section_names(html) == ["A former member"]
    assert clips(html) == [str(take.uuid)]


# --- a cache shared by several hosts ------------------------------------------------------------

REDIS_URL = os.environ.get("FLOWSITE_CACHE_URL") or "redis://127.0.0.1:6379/15"


def _redis_reachable() -> bool:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 0.5):
            return True
    except OSError:
        return False


def test_flowsite_cache_url_puts_the_cache_on_redis():
    # Settings are read once per process: read them in one started as a deployment would be.
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.CACHES['default']['BACKEND'], settings.CACHES['default']['LOCATION'])"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "flowsite.settings",
        "FLOWSITE_FERNET_KEYS": TEST_FERNET_KEY,
        "FLOWSITE_CACHE_URL": "redis://cache.internal:6379/1",
    }

    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "django.core.cache.backends.redis.RedisCache",
        "redis://cache.internal:6379/1",
    ]


@pytest.fixture
def redis_cache(settings):
    if not _redis_reachable():
        pytest.skip(f"Redis is not reachable at {urlsplit(REDIS_URL).netloc}; not tested")
    import redis

    prefix = f"flowsite-test-{uuid.uuid4().hex[:10]}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    client = redis.Redis.from_url(REDIS_URL)
    yield lambda: client.keys(f"{prefix}:*")
    for key in client.keys(f"{prefix}:*"):
        client.delete(key)


def test_carol_is_served_from_redis_the_page_alice_warmed_then_bobs_change(
    project, alice, bob, carol, scene, redis_cache
):
    make_take(scene, alice, status=READY)
    alices = gallery(client_for(alice), project)

    carols, carol_queries = queries(client_for(carol), project)
    make_take(scene, bob, status=READY)
    after = gallery(client_for(carol), project)

    assert len(redis_cache()) == 2  # one body per gallery version
    assert body(carols) == body(alices) and carol_queries == 3
    assert section_names(after) == ["alice", "bob"]
