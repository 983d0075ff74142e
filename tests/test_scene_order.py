"""The storyboard's order as one request: every scene's uuid once, with the order the page
saw before the move, from an editor, for this project only; a stale or foreign list, or one
made on a page that had not seen a teammate's move, changes nothing."""

from __future__ import annotations

import re
import uuid

from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from generations.models import Generation, Project, Upscale
from tests.conftest import make_scene
from tests.views_support import client_for, htmx_client_for, make_take


def titles(project: Project) -> list[str]:
    return list(project.scenes.order_by("position").values_list("title", flat=True))


def order(client, project, scenes, seen=None):
    """Post ``scenes`` as the new order, from a page that saw ``seen`` (the saved order when
    not given: a page drawn just now)."""
    if seen is None:
        seen = list(project.scenes.order_by("position", "id").values_list("uuid", flat=True))
    return client.post(
        reverse("scene-order", args=[project.uuid]),
        {
            "scene": [str(s.uuid) for s in scenes],
            "seen": [str(getattr(s, "uuid", s)) for s in seen],
        },
    )


def drawn_order(html: str) -> list[str]:
    """The scenes' uuids in the order the storyboard in ``html`` shows them."""
    return re.findall(r'<article id="scene-([0-9a-f-]+)" class="card"', html)


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


def test_a_signed_out_page_is_sent_to_sign_in_instead_of_swapping_it_into_the_storyboard(
    project,
):
    a, b = (make_scene(project, title=name) for name in "AB")
    page = reverse("project-detail", args=[project.uuid])
    signed_out = Client(
        headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver{page}"}
    )

    response = order(signed_out, project, [b, a])

    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{reverse('login')}?next={page}"
    assert response.content == b""
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


def test_bobs_move_from_a_page_drawn_before_alices_move_is_refused_and_alices_order_stays(
    project, alice, bob
):
    a, b, c = (make_scene(project, title=name) for name in "ABC")
    # Both pages show A, B, C; alice moves C to the top.
    assert order(htmx_client_for(alice), project, [c, a, b], seen=[a, b, c]).status_code == 200
    before = Project.objects.get(pk=project.pk).scenes_changed

    # Bob, unrefreshed, swaps his first two cards: his list names every scene, but was made
    # on A, B, C, and saving it would undo alice's move.
    response = order(htmx_client_for(bob), project, [b, a, c], seen=[a, b, c])

    assert response.status_code == 200
    assert titles(project) == ["C", "A", "B"]
    assert Project.objects.get(pk=project.pk).scenes_changed == before
    assert "the order was not saved" in response.text
    assert "Saved the order" not in response.text
    # His storyboard comes back as alice left it, so his next move starts from her order.
    assert re.findall(r'card__title">(\w)<', response.text) == ["C", "A", "B"]
    again = order(htmx_client_for(bob), project, [a, c, b], seen=drawn_order(response.text))
    assert "Saved the order: A, C, B." in again.text
    assert titles(project) == ["A", "C", "B"]


def test_of_two_moves_sent_from_the_same_page_at_once_only_the_first_is_saved(project, bob):
    a, b, c = (make_scene(project, title=name) for name in "ABC")
    seen = [a.uuid, b.uuid, c.uuid]
    with transaction.atomic():
        first = project.reorder_scenes([c.uuid, a.uuid, b.uuid], seen=seen)
    with transaction.atomic():
        second = project.reorder_scenes([b.uuid, a.uuid, c.uuid], seen=seen)
    assert (first, second) == (True, False)
    assert titles(project) == ["C", "A", "B"]


def test_alice_moves_twice_in_a_row_and_both_moves_are_saved(project, alice):
    a, b, c = (make_scene(project, title=name) for name in "ABC")
    client = htmx_client_for(alice)

    first = order(client, project, [b, a, c], seen=[a, b, c])
    assert "Saved the order: B, A, C." in first.text
    # The next move is made on the storyboard the first answer drew.
    assert drawn_order(first.text) == [str(b.uuid), str(a.uuid), str(c.uuid)]
    second = order(client, project, [b, c, a], seen=drawn_order(first.text))

    assert "Saved the order: B, C, A." in second.text
    assert titles(project) == ["B", "C", "A"]


def test_an_order_sent_without_the_order_the_page_saw_changes_nothing(project, bob):
    a, b = (make_scene(project, title=name) for name in "AB")
    response = htmx_client_for(bob).post(
        reverse("scene-order", args=[project.uuid]), {"scene": [str(b.uuid), str(a.uuid)]}
    )
    assert "the order was not saved" in response.text
    assert titles(project) == ["A", "B"]


def test_the_order_request_takes_as_many_queries_for_six_scenes_as_for_two(project, bob):
    def queries_to_reverse(count: int) -> int:
        project.scenes.all().delete()
        scenes = [make_scene(project, title=f"S{n}") for n in range(count)]
        client = htmx_client_for(bob)
        client.get(reverse("project-detail", args=[project.uuid]))  # the session, warmed
        with CaptureQueriesContext(connection) as captured:
            response = order(client, project, scenes[::-1], seen=scenes)
        assert "Saved the order" in response.text
        return len(captured)

    assert queries_to_reverse(6) == queries_to_reverse(2)
