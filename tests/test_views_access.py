"""Who may reach what: outsiders see nothing (404), viewers change nothing (403)."""

import re

import pytest
from django.conf import settings
from django.urls import URLPattern, reverse

from generations import urls as generation_urls
from generations.models import (
    Comment,
    FilmRender,
    Generation,
    ImageAsset,
    Invite,
    Membership,
    Pick,
    Project,
    Scene,
    Upscale,
)
from tests.conftest import make_image, make_scene
from tests.views_support import attach_clip, client_for, make_take

# URL name -> which object its <uuid> addresses.
ADDRESSED_BY = {
    "project-detail": "project",
    "project-poll": "project",
    "project-gallery": "project",
    "project-members": "project",
    "project-generate-all": "project",
    "scene-create": "project",
    "scene-order": "project",
    "scene-edit": "scene",
    "scene-move": "scene",
    "scene-delete": "scene",
    "scene-generate": "scene",
    "take-retry": "failed_take",
    "take-cancel": "active_take",
    "take-fetch-again": "failed_take",
    "take-pick": "ready_take",
    "media-take-video": "ready_take",
    "media-take-poster": "ready_take",
    "media-image": "image",
    "project-invites": "project",
    "invite-revoke": "invite",
    "project-settings": "project",
    "project-accounts": "project",
    "project-archive": "project",
    "project-duplicate": "project",
    "project-delete": "project",
    "project-audit": "project",
    "project-spend": "project",
    "project-spend-csv": "project",
    "project-film": "project",
    "project-film-card": "project",
    "project-film-render": "project",
    "scene-trim": "scene",
    "media-film-video": "film",
    "project-takes-zip": "project",
    "take-delete": "failed_take",
    "scene-clear-failed": "scene",
    "take-comment": "ready_take",
    "comment-delete": "comment",
    "scene-compare": "scene",
    "take-extend": "ready_take",
    "take-upscale": "ready_take",
    "take-last-frame": "ready_take",
    "media-upscale-video": "upscale",
}

# Everything a viewer may not do (the POSTs that change something or spend credits).
CHANGES = {
    "project-members",
    "project-generate-all",
    "scene-create",
    "scene-order",
    "scene-edit",
    "scene-move",
    "scene-delete",
    "scene-generate",
    "take-retry",
    "take-cancel",
    "take-fetch-again",
    "project-invites",
    "invite-revoke",
    "project-settings",
    "project-accounts",
    "project-archive",
    "project-duplicate",
    "project-delete",
    "project-spend",
    "take-pick",
    "project-film-render",
    "scene-trim",
    "take-delete",
    "scene-clear-failed",
    "comment-delete",
    "take-extend",
    "take-upscale",
    "take-last-frame",
}

# Pages only owners may even read (the project's invites, settings and activity).
OWNER_PAGES = {"project-invites", "project-settings", "project-audit"}

# What a viewer may POST: a comment (an empty one here, which is refused and changes nothing).
VIEWER_POSTS = {"take-comment"}


def project_urls() -> list[URLPattern]:
    return [p for p in generation_urls.urlpatterns if "uuid" in p.pattern.converters]


@pytest.fixture
def world(project, alice):
    image = make_image(project, alice)
    scene = make_scene(project, image)
    ready = attach_clip(
        make_take(scene, alice, status=Generation.Status.READY), b"\x00" * 64, b"\xff" * 8
    )
    return {
        "project": project,
        "scene": scene,
        "image": image,
        "ready_take": ready,
        "failed_take": make_take(scene, alice, status=Generation.Status.FAILED, reason="Unsafe"),
        "active_take": make_take(scene, alice, status=Generation.Status.ACTIVE),
        "invite": Invite.issue(project, Membership.Role.EDITOR, alice)[0],
        "film": ready_film(project, alice),
        "comment": Comment.objects.create(take=ready, author=alice, body="Lovely light"),
        "upscale": ready_upscale(project, ready),
    }


def ready_upscale(project, take) -> Upscale:
    from django.core.files.base import ContentFile

    upscale = Upscale(project=project, take=take, resolution="1080p", status=Upscale.Status.READY)
    upscale.video.save(upscale.file_name(), ContentFile(b"\x00" * 64), save=False)
    upscale.save()
    return upscale


def ready_film(project, alice) -> FilmRender:
    from django.core.files.base import ContentFile

    film = FilmRender(project=project, requested_by=alice, status=FilmRender.Status.READY)
    film.video.save(film.file_name(), ContentFile(b"\x00" * 64), save=False)
    film.save()
    return film


def url_for(pattern: URLPattern, world) -> str:
    return reverse(pattern.name, kwargs={"uuid": world[ADDRESSED_BY[pattern.name]].uuid})


def snapshot() -> tuple:
    return (
        list(
            Project.objects.values_list("pk", "name", "account_id", "archived_at", "monthly_budget")
        ),
        list(Membership.objects.order_by("pk").values_list("pk", "role", "monthly_allowance")),
        list(Scene.objects.order_by("pk").values_list("pk", "position", "prompt", "updated")),
        list(Generation.objects.order_by("pk").values_list("pk", "status", "updated")),
        list(FilmRender.objects.order_by("pk").values_list("pk", "status")),
        list(Comment.objects.order_by("pk").values_list("pk", "body")),
        list(Pick.objects.order_by("pk").values_list("pk", "take_id", "trim_in", "trim_out")),
        ImageAsset.objects.count(),
        list(Invite.objects.order_by("pk").values_list("pk", "revoked_at", "used_at")),
        list(Upscale.objects.order_by("pk").values_list("pk", "status", "updated")),
    )


def test_every_project_url_is_known_to_these_tests():
    assert {p.name for p in project_urls()} == set(ADDRESSED_BY)


def test_charlie_gets_404_on_every_project_url(world, charlie):
    client = client_for(charlie)
    before = snapshot()

    for pattern in project_urls():
        url = url_for(pattern, world)
        got = client.get(url).status_code
        posted = client.post(url, {"direction": "up", "action": "add"}).status_code
        # 405 says only "this URL takes the other method", for any UUID at all.
        assert {got, posted} <= {404, 405}, (pattern.name, got, posted)
        assert 404 in (got, posted), pattern.name

    assert snapshot() == before


def test_charlie_gets_404_for_a_uuid_that_does_not_exist_either(world, charlie):
    from uuid import uuid4

    client = client_for(charlie)
    for name in ("project-detail", "scene-edit", "media-take-video"):
        assert client.get(reverse(name, kwargs={"uuid": uuid4()})).status_code == 404


def test_carol_gets_403_on_every_change_and_generate(world, carol, monkeypatch):
    client = client_for(carol)
    before = snapshot()

    for pattern in project_urls():
        url = url_for(pattern, world)
        status = client.post(url, {"direction": "up", "action": "add", "username": "carol"})
        expected = 403 if pattern.name in CHANGES else 302 if pattern.name in VIEWER_POSTS else 405
        assert status.status_code == expected, pattern.name

    assert snapshot() == before


def test_carol_cannot_even_open_the_scene_forms(world, carol):
    client = client_for(carol)

    assert client.get(reverse("scene-create", args=[world["project"].uuid])).status_code == 403
    assert client.get(reverse("scene-edit", args=[world["scene"].uuid])).status_code == 403


def test_carol_sees_every_page_and_fragment(world, carol):
    client = client_for(carol)
    # A take is picked, so the picks' zip has something to send.
    Pick.choose(world["ready_take"])

    for pattern in project_urls():
        if (
            pattern.name
            in ((CHANGES | OWNER_PAGES) - {"project-members", "project-spend"}) | VIEWER_POSTS
        ):
            continue
        assert client.get(url_for(pattern, world)).status_code == 200, pattern.name


def test_only_owners_open_the_owners_pages(world, alice, bob, carol):
    for name in OWNER_PAGES:
        url = reverse(name, args=[world["project"].uuid])
        assert client_for(alice).get(url).status_code == 200, name
        assert client_for(bob).get(url).status_code == 403, name
        assert client_for(carol).get(url).status_code == 403, name


def test_carol_sees_no_edit_or_generate_buttons(world, carol):
    html = client_for(carol).get(reverse("project-detail", args=[world["project"].uuid])).text

    # Viewers comment on takes (the one form they get); nothing else they could post.
    main = re.sub(
        r'<form method="post" action="/takes/[^"]+/comments/".*?</form>',
        "",
        html.split("<main")[1],
        flags=re.S,
    )
    assert 'method="post"' not in main
    for fragment in ("/scenes/new/", "/edit/", "/generate/", "/delete/", "/move/", "/retry/"):
        assert fragment not in html, fragment
    assert "Retry as a new take" not in html
    assert "Generate all" not in html
    assert "Failed" in html and "Unsafe" in html


def test_bob_sees_the_buttons_carol_does_not(world, bob):
    html = client_for(bob).get(reverse("project-detail", args=[world["project"].uuid])).text

    assert "Generate all" in html
    assert "Retry as a new take" in html
    assert reverse("scene-edit", args=[world["scene"].uuid]) in html
    assert reverse("scene-generate", args=[world["scene"].uuid]) in html
    assert reverse("take-cancel", args=[world["active_take"].uuid]) in html


def test_signed_out_visitors_are_sent_to_sign_in_from_every_url(world, client):
    for pattern in [
        *project_urls(),
        *[p for p in generation_urls.urlpatterns if not p.pattern.converters],
    ]:
        url = url_for(pattern, world) if pattern.name in ADDRESSED_BY else reverse(pattern.name)
        response = client.get(url)
        if response.status_code == 405:
            response = client.post(url)
        assert response.status_code == 302, pattern.name
        assert response["Location"].startswith(reverse("login")), pattern.name


def htmx_called() -> set[str]:
    """The URL names the pages have htmx call: every hx-get and hx-post, and the storyboard's
    order (app.js posts to the ``data-url`` of ``#scene-order``)."""
    called: set[str] = set()
    for template in (settings.BASE_DIR / "templates").rglob("*.html"):
        called |= set(
            re.findall(r"""(?:hx-get|hx-post|data-url)="\{% url '([\w-]+)'""", template.read_text())
        )
    return called


def test_a_signed_out_page_is_sent_to_sign_in_as_a_whole_by_every_view_htmx_calls(world, client):
    # A plain redirect to sign in would be followed by htmx, and the sign-in page swapped into
    # a card, the storyboard or the poller.
    page = reverse("project-detail", args=[world["project"].uuid])
    headers = {"HX-Request": "true", "HX-Current-URL": f"http://testserver{page}"}
    called = htmx_called()
    assert {"project-poll", "scene-generate", "scene-order"} <= called <= set(ADDRESSED_BY)
    before = snapshot()

    for name in called:
        url = reverse(name, kwargs={"uuid": world[ADDRESSED_BY[name]].uuid})
        response = client.post(url, headers=headers)
        if response.status_code == 405:
            response = client.get(url, headers=headers)
        assert response.status_code == 200, name
        assert response["HX-Redirect"] == f"{reverse('login')}?next={page}", name
        assert response.content == b"", name

    assert snapshot() == before
