"""The benchmarks that play an open storyboard (freshness, the load test) read Flowsite's real
poller and sign people in the way Flowsite does, so they keep measuring the page as it is."""

from datetime import timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from benchmarks.load.poller import SHOWN_CLIP, Poller, Schedule
from benchmarks.load.seed import _signed_in_session
from generations.models import Generation
from tests.conftest import make_image, make_scene
from tests.views_support import attach_clip, client_for, make_take, seen_settings


def test_the_benchmarks_poll_alices_page_where_and_as_often_as_htmx_would(project, alice, settings):
    settings.FLOWSITE_PAGE_POLL_SECONDS = 0.75
    hour_ago = timezone.now() - timedelta(hours=1)
    scene = make_scene(project, make_image(project, alice), updated=hour_ago)
    make_take(scene, alice, status=Generation.Status.ACTIVE, updated=hour_ago)
    client = client_for(alice)

    poller = Poller.read(client.get(reverse("project-detail", args=[project.uuid])).text)
    answer = client.get(poller.url, headers={"HX-Request": "true"})

    assert poller.seconds == 0.75
    assert poller.live
    assert "&live=1" in poller.url and "&amp;" not in poller.url
    # Nothing changed since the page was rendered: the poll is an empty 204.
    assert answer.status_code == 204


def test_the_benchmarks_see_alices_clip_on_its_card_and_poll_slowly_once_nothing_is_in_flight(
    project, alice, settings
):
    settings.FLOWSITE_IDLE_POLL_SECONDS = 7.5
    hour_ago = timezone.now() - timedelta(hours=1)
    scene = make_scene(project, make_image(project, alice), updated=hour_ago)
    take = make_take(scene, alice, status=Generation.Status.READY, updated=hour_ago)
    take = attach_clip(take, b"\x00" * 64)
    client = client_for(alice)

    html = client.get(reverse("project-detail", args=[project.uuid])).text
    poller = Poller.read(html)

    assert set(SHOWN_CLIP.findall(html)) == {str(take.uuid)}
    assert (poller.polls, poller.live, poller.seconds) == (True, False, 7.5)
    assert client.get(poller.url, headers={"HX-Request": "true"}).status_code == 204


def test_the_benchmarks_switch_alices_page_to_the_cadence_of_the_poller_a_poll_brings(
    project, alice, bob, settings
):
    settings.FLOWSITE_PAGE_POLL_SECONDS = 0.75
    settings.FLOWSITE_IDLE_POLL_SECONDS = 7.5
    hour_ago = timezone.now() - timedelta(hours=1)
    scene = make_scene(project, make_image(project, alice), updated=hour_ago)
    client = client_for(alice)
    schedule = Schedule(
        Poller.read(client.get(reverse("project-detail", args=[project.uuid])).text), now=100.0
    )
    assert schedule.due == 107.5

    # Bob presses Generate: alice's next (slow) poll brings his take and a fast poller.
    client_for(bob).post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "0", "seen_settings": seen_settings(scene)},
    )
    schedule.fired()
    answer = client.get(schedule.poller.url, headers={"HX-Request": "true"})
    schedule.swapped(Poller.read(answer.text), now=107.6)

    assert answer.status_code == 200
    assert schedule.poller.live and schedule.due == 108.35


def test_a_poller_keeps_its_beat_through_204s_and_restarts_it_when_a_200_swaps_it():
    schedule = Schedule(Poller("/poll/?since=1", 1.0), now=100.0)
    assert schedule.due == 101.0

    schedule.fired()  # a 204: htmx's timer runs on from the firing, not from the answer
    assert schedule.due == 102.0

    schedule.swapped(Poller("/poll/?since=2", 1.0), now=102.3)  # a 200 at 102.3 s
    assert (schedule.poller.url, schedule.due) == ("/poll/?since=2", 103.3)


def test_a_load_test_member_is_signed_in_by_the_session_the_seed_made_for_bob(
    project, bob, settings
):
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = _signed_in_session(bob)

    page = client.get(reverse("project-detail", args=[project.uuid]))

    assert page.status_code == 200
    assert page.wsgi_request.user == bob
