"""Generate all on an open storyboard counts the takes the page shows, as the poll brings them.

The form carries the newest take the page shows, so that one click never pays twice and never
spends on takes the person has not seen; the poll keeps that number current as a teammate's
takes arrive on the page.
"""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from generations.models import Generation, Scene
from tests.conftest import make_image, make_scene
from tests.views_support import add_scene_as, client_for, make_take, storyboard_seen


@pytest.fixture
def lighthouse(project, alice):
    return make_scene(project, make_image(project, alice), title="Lighthouse", takes=1)


def poller_url(html: str) -> str:
    return re.search(r'id="poller"[^>]* hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")


def generate_all_seen(html: str) -> str | None:
    """The newest take the Generate all form on this page (or poll answer) says it shows."""
    match = re.search(r'name="last_generation" value="(\d+)"', html)
    return match.group(1) if match else None


def generate_all(client, project, seen: str):
    url = reverse("project-generate-all", args=[project.uuid])
    return client.post(
        url, {"last_generation": seen, "seen_settings": storyboard_seen(project)}, follow=True
    )


def test_alice_can_generate_all_once_bobs_new_takes_reach_her_open_page(
    project, alice, bob, lighthouse, queued, django_capture_on_commit_callbacks
):
    alices = client_for(alice)
    page = alices.get(reverse("project-detail", args=[project.uuid])).text
    assert generate_all_seen(page) == "0"
    with django_capture_on_commit_callbacks(execute=True):
        bobs_takes = lighthouse.generate(bob)

    answer = alices.get(poller_url(page), headers={"HX-Request": "true"}).text

    assert 'id="generate-all" class="generate-all" hx-swap-oob="true"' in answer
    assert generate_all_seen(answer) == str(bobs_takes[-1].pk)
    with django_capture_on_commit_callbacks(execute=True):
        response = generate_all(alices, project, generate_all_seen(answer))
    assert "Queued 1 take for 1 scene." in response.text
    assert Generation.objects.count() == 2


def test_a_take_bob_adds_after_alices_last_poll_still_stops_her_generate_all(
    project, alice, bob, lighthouse, queued, django_capture_on_commit_callbacks
):
    alices = client_for(alice)
    page = alices.get(reverse("project-detail", args=[project.uuid])).text
    with django_capture_on_commit_callbacks(execute=True):
        lighthouse.generate(bob)
    answer = alices.get(poller_url(page), headers={"HX-Request": "true"}).text
    with django_capture_on_commit_callbacks(execute=True):
        lighthouse.generate(bob)  # after alice's page last heard from Flowsite

    response = generate_all(alices, project, generate_all_seen(answer))

    assert "New takes appeared since this page was loaded" in response.text
    assert Generation.objects.count() == 2


def test_alices_empty_storyboard_gets_generate_all_when_bob_adds_the_first_scene(
    project, alice, bob
):
    alices = client_for(alice)
    page = alices.get(reverse("project-detail", args=[project.uuid])).text
    assert generate_all_seen(page) is None, "nothing to generate yet"

    add_scene_as(bob, project, "Harbour")
    answer = alices.get(poller_url(page), headers={"HX-Request": "true"}).text

    assert ">Generate all</button>" in answer
    assert generate_all_seen(answer) == "0"


def test_carol_a_viewer_gets_no_generate_all_from_the_poll(
    project, alice, bob, carol, lighthouse, queued, django_capture_on_commit_callbacks
):
    carols = client_for(carol)
    page = carols.get(reverse("project-detail", args=[project.uuid])).text
    with django_capture_on_commit_callbacks(execute=True):
        lighthouse.generate(bob)

    answer = carols.get(poller_url(page), headers={"HX-Request": "true"}).text

    assert "Generate all" not in answer
    assert 'id="generate-all"' not in answer


def test_bobs_take_starting_to_render_brings_alice_its_card_but_not_generate_all_again(
    project, alice, bob, lighthouse
):
    hour_ago = timezone.now() - timedelta(hours=1)
    take = make_take(lighthouse, bob, status=Generation.Status.PENDING, updated=hour_ago)
    Scene.objects.filter(pk=lighthouse.pk).update(updated=hour_ago)
    alices = client_for(alice)
    page = alices.get(reverse("project-detail", args=[project.uuid])).text
    assert generate_all_seen(page) == str(take.pk)

    Generation.objects.filter(pk=take.pk).update(
        status=Generation.Status.ACTIVE, updated=timezone.now()
    )
    answer = alices.get(poller_url(page), headers={"HX-Request": "true"}).text

    assert f'id="scene-{lighthouse.uuid}" class="card" hx-swap-oob="true"' in answer
    # Neither the newest take nor any price changed: the form on her page still holds.
    assert 'id="generate-all"' not in answer


def test_bob_raising_a_scenes_takes_brings_alices_open_page_generate_alls_new_total(
    project, alice, bob, lighthouse
):
    hour_ago = timezone.now() - timedelta(hours=1)
    Scene.objects.filter(pk=lighthouse.pk).update(updated=hour_ago)
    alices = client_for(alice)
    page = alices.get(reverse("project-detail", args=[project.uuid])).text
    assert "up to 20 credits" in page

    Scene.objects.filter(pk=lighthouse.pk).update(takes=3, updated=timezone.now())
    answer = alices.get(poller_url(page), headers={"HX-Request": "true"}).text

    assert 'id="generate-all" class="generate-all" hx-swap-oob="true"' in answer
    assert "up to 60 credits" in answer
    assert generate_all_seen(answer) == "0"
