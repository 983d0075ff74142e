"""The storyboard's order as one request: every scene's uuid once, from an editor, for this
project only; a stale or foreign list changes nothing."""

from __future__ import annotations

import re
import uuid

from django.urls import reverse

from generations.models import Generation, Project, Upscale
from tests.conftest import make_scene
from tests.views_support import client_for, htmx_client_for, make_take


def titles(project: Project) -> list[str]:
    return list(project.scenes.order_by("position").values_list("title", flat=True))


def order(client, project, scenes):
    return client.post(
        reverse("scene-order", args=[project.uuid]), {"scene": [str(s.uuid) for s in scenes]}
    )


def test_bob_puts_the_storyboard_in_a_new_order_with_one_request(project, bob):
    a, b, c = (make_scene(project, title=name) for name in "ABC")
    before = Project.objects.get(pk=project.pk).scenes_changed

    response = order(htmx_client_for(bob), project, [c, a, b])

    assert response.status_code == 200
    assert titles(project) == ["C", "A", "B"]
    # Other open pages learn of it: their next poll brings the whole list.
    assert Project.objects.get(pk=project.pk).scenes_changed != before
    # The storyboard comes back in its new order with ↑ off on the first card and ↓ on the
    # last, a poller that has seen this change, and the news for screen readers.
    html = response.text
    assert re.findall(r'card__title">(\w)<', html) == ["C", "A", "B"]
    assert len(re.findall(r'data-move="up" aria-label="Move \w up" disabled', html)) == 1
    assert 'aria-label="Move C up" disabled' in html
    assert 'aria-label="Move B down" disabled' in html
    assert 'id="poller" class="poller" hx-swap-oob="true"' in html
    assert "Saved the order: C, A, B." in html


def test_without_javascript_the_order_is_saved_and_the_page_reloads(project, bob):
    a, b = (make_scene(project, title=name) for name in "AB")
    response = order(client_for(bob), project, [b, a])
    assert response.status_code == 302
    assert titles(project) == ["B", "A"]


def test_carol_a_viewer_may_not_reorder(project, carol):
    a, b = (make_scene(project, title=name) for name in "AB")
    assert order(client_for(carol), project, [b, a]).status_code == 403
    assert titles(project) == ["A", "B"]


def test_charlie_outside_the_project_gets_a_404(project, charlie):
    a, b = (make_scene(project, title=name) for name in "AB")
    assert order(client_for(charlie), project, [b, a]).status_code == 404
    assert titles(project) == ["A", "B"]


def test_a_scene_of_another_project_in_the_list_changes_nothing(project, bob, charlie):
    a, b = (make_scene(project, title=name) for name in "AB")
    other = Project.objects.create(name="Elsewhere", created_by=charlie)
    other.add_member(bob, "editor")
    foreign = make_scene(other, title="X")

    response = order(htmx_client_for(bob), project, [b, foreign])

    assert response.status_code == 200
    assert titles(project) == ["A", "B"]
    assert titles(other) == ["X"]
    assert "the order was not saved" in response.text
    assert re.findall(r'card__title">(\w)<', response.text) == ["A", "B"]


def test_a_list_made_before_a_teammate_added_a_scene_changes_nothing(project, bob, alice):
    a, b = (make_scene(project, title=name) for name in "AB")
    make_scene(project, title="C")  # alice's, after bob's page was drawn
    before = Project.objects.get(pk=project.pk).scenes_changed

    response = order(client_for(bob), project, [b, a])

    assert titles(project) == ["A", "B", "C"]
    assert Project.objects.get(pk=project.pk).scenes_changed == before
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("the order was not saved" in m for m in messages)


def test_a_repeated_or_malformed_uuid_changes_nothing(project, bob):
    a, b = (make_scene(project, title=name) for name in "AB")
    client = htmx_client_for(bob)
    order(client, project, [a, a])
    client.post(reverse("scene-order", args=[project.uuid]), {"scene": [str(b.uuid), "nope"]})
    client.post(reverse("scene-order", args=[project.uuid]), {"scene": [str(uuid.uuid4())] * 2})
    assert titles(project) == ["A", "B"]


def test_a_page_reordered_while_an_upscale_renders_keeps_polling_fast(project, bob):
    a, b = (make_scene(project, title=name) for name in "AB")
    take = make_take(a, bob, status=Generation.Status.READY)
    Upscale.objects.create(
        project=project, take=take, resolution="1080p", status=Upscale.Status.ACTIVE
    )

    html = order(htmx_client_for(bob), project, [b, a]).text

    poller = re.search(r'id="poller"[^>]* hx-get="([^"]+)"', html).group(1)
    assert "&amp;live=1" in poller


def test_bob_clearing_a_card_while_another_scenes_upscale_renders_keeps_the_page_polling_fast(
    project, bob
):
    a, b = (make_scene(project, title=name) for name in "AB")
    upscaled = make_take(a, bob, status=Generation.Status.READY)
    Upscale.objects.create(
        project=project, take=upscaled, resolution="1080p", status=Upscale.Status.ACTIVE
    )
    make_take(b, bob, status=Generation.Status.FAILED)

    html = htmx_client_for(bob).post(reverse("scene-clear-failed", args=[b.uuid])).text

    assert "Cleared 1 failed or cancelled take." in html
    poller = re.search(r'id="poller"[^>]* hx-get="([^"]+)"', html).group(1)
    assert "&amp;live=1" in poller
