"""The project gallery: finished clips grouped by who asked for them."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from generations.models import Generation
from tests.conftest import make_image, make_scene
from tests.views_support import client_for, make_take

READY = Generation.Status.READY


def gallery(client, project, **query):
    return client.get(reverse("project-gallery", args=[project.uuid]), query)


def sections(html: str) -> list[tuple[str, str]]:
    """(member, count text) for each section, in page order."""
    return re.findall(r'<h2>(\w[\w ]*?) <span class="count">([^<]+)</span></h2>', html)


def clip_uuids(html: str) -> list[str]:
    return re.findall(r'src="/media/take/([0-9a-f-]+)/video"', html)


@pytest.fixture
def scenes(project, alice):
    image = make_image(project, alice)
    portrait = make_image(project, alice, portrait=True)
    return (
        make_scene(project, image, title="Harbour"),
        make_scene(project, portrait, title="Tower", aspect="portrait"),
    )


def test_clips_are_grouped_by_requester_with_counts_newest_first(project, alice, bob, scenes):
    harbour, tower = scenes
    now = timezone.now()
    bobs_old = make_take(harbour, bob, status=READY, finished_at=now - timedelta(hours=2))
    bobs_new = make_take(harbour, bob, status=READY, finished_at=now - timedelta(minutes=1))
    alices = make_take(tower, alice, status=READY, finished_at=now - timedelta(hours=1))
    make_take(tower, alice, status=Generation.Status.FAILED)
    make_take(tower, bob, status=Generation.Status.ACTIVE)

    html = gallery(client_for(alice), project).text

    assert sections(html) == [("alice", "1 clip"), ("bob", "2 clips")]
    assert clip_uuids(html) == [str(alices.uuid), str(bobs_new.uuid), str(bobs_old.uuid)]
    assert "3 finished clips" in html


def test_each_clip_shows_its_facts_and_plays_in_its_own_aspect(project, alice, scenes):
    harbour, tower = scenes
    wide = make_take(harbour, alice, status=READY, seed=4242, prompt="Waves at the harbour wall")
    tall = make_take(tower, alice, status=READY, poster="clips/tall/poster.jpg")

    html = gallery(client_for(alice), project).text

    assert 'class="clip clip--landscape" controls preload="none"' in html
    assert 'class="clip clip--portrait" controls preload="none"' in html
    assert "Waves at the harbour wall" in html
    assert "<dd>4242</dd>" in html
    assert "Veo 3.1 Fast" in html
    assert "Portrait 9:16" in html and "Landscape 16:9" in html
    assert f'poster="/media/take/{wide.uuid}/poster"' not in html  # no poster file stored
    assert f'src="/media/take/{tall.uuid}/video" poster="/media/take/{tall.uuid}/poster"' in html
    assert f'href="/media/take/{tall.uuid}/video?download=1"' in html
    assert timezone.localtime(wide.finished_at).strftime("%Y") in html


def test_each_clip_says_when_it_finished_in_the_sites_time_zone(project, alice, scenes, settings):
    settings.TIME_ZONE = "Europe/Paris"
    make_take(scenes[0], alice, status=READY, finished_at=datetime(2026, 3, 4, 14, 6, tzinfo=UTC))

    html = gallery(client_for(alice), project).text

    assert '<time datetime="2026-03-04T15:06:00+01:00">4 Mar 2026, 15:06</time>' in html


def test_untitled_scenes_are_named_by_their_place_on_the_storyboard(project, alice, scenes):
    untitled = make_scene(project, title="", position=2)
    make_take(untitled, alice, status=READY, take=3)

    html = gallery(client_for(alice), project).text

    assert "<dd>Scene 3 · take 3</dd>" in html
    assert f'<option value="{untitled.uuid}">Scene 3</option>' in html


def test_the_scene_filter_shows_only_that_scenes_clips(project, alice, bob, scenes):
    harbour, tower = scenes
    kept = make_take(harbour, bob, status=READY)
    make_take(tower, alice, status=READY)

    html = gallery(client_for(alice), project, scene=str(harbour.uuid)).text

    assert clip_uuids(html) == [str(kept.uuid)]
    assert sections(html) == [("bob", "1 clip")]
    assert f'<option value="{harbour.uuid}" selected>' in html


def test_an_unknown_scene_in_the_filter_says_so_and_shows_everything(project, alice, scenes):
    make_take(scenes[0], alice, status=READY)
    make_take(scenes[1], alice, status=READY)

    html = gallery(client_for(alice), project, scene="not-a-scene").text

    assert "That scene is not in this project; showing every clip instead." in html
    assert len(clip_uuids(html)) == 2


def test_a_scene_of_another_project_is_not_a_filter_here(project, alice, account, scenes):
    from generations.models import Project

    other = Project.objects.create(name="Other", account=account)
    elsewhere = make_scene(other, title="Elsewhere")
    make_take(scenes[0], alice, status=READY)

    html = gallery(client_for(alice), project, scene=str(elsewhere.uuid)).text

    assert "That scene is not in this project" in html
    assert "Elsewhere" not in html


def _many_clips(project, users, scenes, count: int) -> None:
    now = timezone.now()
    for n in range(count):
        make_take(
            scenes[n % 2],
            users[n % len(users)],
            status=READY,
            take=n + 1,
            finished_at=now - timedelta(minutes=n),
        )


def test_the_gallery_is_paginated_and_keeps_sections_across_pages(project, alice, bob, scenes):
    _many_clips(project, [alice, bob], scenes, 60)
    client = client_for(alice)

    first = gallery(client, project).text
    second = gallery(client, project, page=2).text

    assert len(clip_uuids(first)) == 48
    assert len(clip_uuids(second)) == 12
    assert set(clip_uuids(first)).isdisjoint(clip_uuids(second))
    # Counts are the member's whole total, not what fits on the page.
    assert sections(first) == [("alice", "30 clips"), ("bob", "30 clips")]
    assert sections(second) == [("bob", "30 clips")]
    assert "Page 1 of 2" in first
    assert "?page=2" in first


def test_a_page_past_the_end_shows_the_last_page(project, alice, scenes):
    _many_clips(project, [alice], scenes, 3)

    html = gallery(client_for(alice), project, page=99).text

    assert len(clip_uuids(html)) == 3


def test_a_page_that_is_not_a_number_shows_the_first_page(project, alice, scenes):
    _many_clips(project, [alice], scenes, 50)
    client = client_for(alice)

    assert clip_uuids(gallery(client, project, page="x").text) == clip_uuids(
        gallery(client, project).text
    )


def test_the_pager_links_carry_the_scene_filter_and_nothing_else(project, alice, scenes):
    harbour, _ = scenes
    for _ in range(50):
        make_take(harbour, alice, status=READY)

    html = gallery(
        client_for(alice), project, scene=str(harbour.uuid).upper(), utm="<mail>", extra="x"
    ).text

    assert f'href="?scene={harbour.uuid}&amp;page=2"' in html
    assert "utm" not in html and "extra" not in html


def test_alice_sees_bobs_clip_the_moment_the_worker_marks_it_ready(project, alice, bob, scenes):
    take = make_take(scenes[0], bob, status=Generation.Status.DOWNLOADING)
    client = client_for(alice)
    assert clip_uuids(gallery(client, project).text) == []

    # As the worker does: one update(), which sends no signal.
    Generation.objects.filter(pk=take.pk).update(status=READY, finished_at=timezone.now())

    assert clip_uuids(gallery(client, project).text) == [str(take.uuid)]


def _queries(client, project) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert gallery(client, project).status_code == 200
    return len(captured)


def test_the_gallery_costs_the_same_queries_for_10_or_200_clips(project, alice, bob, carol, scenes):
    client = client_for(carol)
    _many_clips(project, [alice, bob], scenes, 10)
    few = _queries(client, project)

    _many_clips(project, [alice, bob, carol], scenes, 190)
    many = _queries(client, project)

    assert few == many
    # One for the project's films on the first page, one for the page's upscaled copies.
    assert many <= 9


def test_charlie_gets_404_for_the_gallery(project, charlie, scenes):
    assert gallery(client_for(charlie), project).status_code == 404
