"""The pick: each scene has at most one take chosen for the film, set and cleared on its card."""

import re
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from generations.models import Generation, Pick
from tests.conftest import make_image, make_scene
from tests.views_support import attach_clip, client_for, htmx_client_for, make_take

S = Generation.Status


@pytest.fixture
def scene(project, alice):
    return make_scene(project, make_image(project, alice), title="Harbour")


def ready(scene, user, take=None):
    return attach_clip(make_take(scene, user, status=S.READY, take=take), b"\x00" * 64)


def pick_url(take) -> str:
    return reverse("take-pick", args=[take.uuid])


def test_bob_picks_a_take_and_the_card_shows_it_first_and_marked(project, scene, alice, bob):
    first, second, third = ready(scene, alice), ready(scene, alice), ready(scene, alice)

    response = htmx_client_for(bob).post(pick_url(first), {"action": "pick"})

    assert response.status_code == 200
    html = response.text
    assert Pick.objects.get(scene=scene).take == first
    assert Pick.objects.get(scene=scene).picked_by == bob
    picked_block = html.split('class="takes takes--pick"')[1].split("</ol>")[0]
    assert f"clip-{first.uuid}" in picked_block and "Picked for the film" in picked_block
    folded = html.split("<details")[1].split("</details>")[0]
    assert f"clip-{second.uuid}" in folded and f"clip-{third.uuid}" in folded
    assert "2 other takes" in folded


def test_the_pick_is_said_in_the_pages_live_region_and_a_refusal_only_in_the_cards_alert(
    scene, alice
):
    take = ready(scene, alice)
    failed = make_take(scene, alice, status=S.FAILED, reason="Unsafe")
    client = htmx_client_for(alice)

    picked = client.post(pick_url(take), {"action": "pick"}).text
    refused = client.post(pick_url(failed), {"action": "pick"}).text

    assert (
        '<p id="announcer" class="visually-hidden" aria-live="polite" hx-swap-oob="innerHTML">'
        "Harbour: Take 1 is picked for the film.</p>"
    ) in picked
    assert '<p class="card__notice">Take 1 is picked for the film.</p>' in picked
    assert 'id="announcer"' not in refused
    assert re.search(r'class="card__error" role="alert">Only a ready take can be picked', refused)


def test_picking_another_take_replaces_the_pick(scene, alice, bob):
    first, second = ready(scene, alice), ready(scene, alice)
    client = htmx_client_for(bob)
    client.post(pick_url(first), {"action": "pick"})

    client.post(pick_url(second), {"action": "pick"})

    assert list(Pick.objects.filter(scene=scene).values_list("take", flat=True)) == [second.pk]


def test_the_database_refuses_a_second_pick_for_one_scene(scene, alice):
    first, second = ready(scene, alice), ready(scene, alice)
    Pick.objects.create(scene=scene, take=first)

    with pytest.raises(IntegrityError), transaction.atomic():
        Pick.objects.create(scene=scene, take=second)


def test_alice_clears_the_pick_and_the_takes_unfold(scene, alice):
    take = ready(scene, alice)
    Pick.choose(take, alice)

    response = htmx_client_for(alice).post(pick_url(take), {"action": "clear"})

    assert not Pick.objects.filter(scene=scene).exists()
    assert "<details" not in response.text
    assert "Pick for the film" in response.text


def test_a_take_that_is_not_ready_cannot_be_picked(scene, alice):
    failed = make_take(scene, alice, status=S.FAILED, reason="Unsafe")

    response = htmx_client_for(alice).post(pick_url(failed), {"action": "pick"})

    assert "Only a ready take can be picked" in response.text
    assert not Pick.objects.exists()


def test_without_javascript_the_pick_redirects_back_to_the_storyboard(project, scene, alice):
    take = ready(scene, alice)

    response = client_for(alice).post(pick_url(take), {"action": "pick"})

    assert response.status_code == 302
    assert response["Location"].endswith(f"#scene-{scene.uuid}")
    assert Pick.objects.get(scene=scene).take == take


def test_carol_may_not_pick_and_charlie_gets_404(scene, alice, carol, charlie):
    take = ready(scene, alice)

    assert client_for(carol).post(pick_url(take), {"action": "pick"}).status_code == 403
    assert client_for(charlie).post(pick_url(take), {"action": "pick"}).status_code == 404
    assert not Pick.objects.exists()


def test_carol_sees_the_pick_but_no_pick_buttons(project, scene, alice, carol):
    take = ready(scene, alice)
    Pick.choose(take, alice)

    html = client_for(carol).get(reverse("project-detail", args=[project.uuid])).text

    assert "Picked for the film" in html
    assert pick_url(take) not in html


def test_alices_open_page_gets_bobs_pick_through_the_poll(project, scene, alice, bob):
    take = ready(scene, alice, take=1)
    Generation.objects.filter(pk=take.pk).update(updated=timezone.now() - timedelta(minutes=5))
    scene.__class__.objects.filter(pk=scene.pk).update(
        updated=timezone.now() - timedelta(minutes=5)
    )
    page = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text
    since = re.search(r'id="poller-since" name="since" value="(\d+)"', page).group(1)
    poll = reverse("project-poll", args=[project.uuid]) + f"?since={since}&live=0"
    assert client_for(alice).get(poll).status_code == 204

    htmx_client_for(bob).post(pick_url(take), {"action": "pick"})

    answer = client_for(alice).get(poll)
    assert answer.status_code == 200
    assert f'id="scene-{scene.uuid}"' in answer.text
    assert "Picked for the film" in answer.text


def test_the_storyboard_command_picks_take_n_of_scene_position(project, scene, alice):
    from io import StringIO

    from django.core.management import CommandError, call_command

    ready(scene, alice, take=1)
    second = ready(scene, alice, take=2)
    out = StringIO()

    call_command(
        "storyboard", "pick", "--project", "Poseidon", "--scene", "1", "--take", "2", stdout=out
    )

    assert Pick.objects.get(scene=scene).take == second
    assert "Picked take 2 of scene 1" in out.getvalue()
    with pytest.raises(CommandError, match="there is no scene 3"):
        call_command("storyboard", "pick", "--project", "Poseidon", "--scene", "3", "--take", "1")
    with pytest.raises(CommandError, match="Scene 1 has no take 9"):
        call_command("storyboard", "pick", "--project", "Poseidon", "--scene", "1", "--take", "9")
