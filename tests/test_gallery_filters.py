"""The gallery's filters (member, scene, date) and sort (newest, scene order)."""

from __future__ import annotations

import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from generations.models import Generation, Pick
from tests.conftest import make_scene
from tests.views_support import client_for, make_take

S = Generation.Status


def shown(html: str) -> list[str]:
    return re.findall(r'data-label="([^"]+)"', html)


def gallery(user, project, **query) -> str:
    response = client_for(user).get(reverse("project-gallery", args=[project.uuid]), query)
    assert response.status_code == 200
    return response.text


def clips(project, alice, bob):
    now = timezone.now()
    first = make_scene(project, title="First")
    second = make_scene(project, title="Second")
    # Newest first would put Second before First; scene order the other way round.
    make_take(first, alice, status=S.READY, finished_at=now - timedelta(days=10))
    make_take(second, alice, status=S.READY, finished_at=now - timedelta(hours=1))
    make_take(first, bob, status=S.READY, finished_at=now - timedelta(hours=2))
    return first, second


def test_alice_sees_only_bobs_clips_when_she_picks_bob(project, alice, bob, carol):
    clips(project, alice, bob)
    html = gallery(carol, project, member="bob")
    assert shown(html) == ["First, take 2 by bob"]
    assert '<option value="bob" selected>bob</option>' in html


def test_the_date_filter_keeps_the_clips_finished_within_the_period(project, alice, bob, carol):
    clips(project, alice, bob)
    assert shown(gallery(carol, project, date="week")) == [
        "Second, take 1 by alice",
        "First, take 2 by bob",
    ]
    assert len(shown(gallery(carol, project, date="month"))) == 3


def test_scene_order_sorts_each_members_clips_by_the_storyboard(project, alice, bob, carol):
    clips(project, alice, bob)
    assert shown(gallery(carol, project))[:2] == [
        "Second, take 1 by alice",
        "First, take 1 by alice",
    ]
    assert shown(gallery(carol, project, sort="scene"))[:2] == [
        "First, take 1 by alice",
        "Second, take 1 by alice",
    ]


def test_carol_sees_only_the_picked_takes_when_she_asks_for_them(project, alice, bob, carol):
    first, _ = clips(project, alice, bob)
    Pick.objects.create(scene=first, take=first.generations.get(requested_by=bob), picked_by=alice)

    html = gallery(carol, project, picked="1")

    assert shown(html) == ["First, take 2 by bob"]
    assert '<option value="1" selected>Picked for the film</option>' in html
    assert len(shown(gallery(carol, project))) == 3


def test_filters_combine_and_the_pager_keeps_them(project, alice, bob, carol):
    first, _ = clips(project, alice, bob)
    html = gallery(carol, project, member="alice", scene=str(first.uuid), sort="scene")
    assert shown(html) == ["First, take 1 by alice"]
    assert "Clear" in html


def test_an_unknown_member_or_period_falls_back_to_everything_with_a_word(
    project, alice, bob, carol
):
    clips(project, alice, bob)
    html = gallery(carol, project, member="mallory", date="forever", sort="random")
    assert len(shown(html)) == 3
    assert "That member has no clips here; showing every member&#x27;s instead." in html


def test_alices_project_list_shows_the_newest_clips_poster(project, alice, bob):
    from tests.views_support import attach_clip

    scene = make_scene(project, title="First")
    now = timezone.now()
    older = attach_clip(
        make_take(scene, bob, status=S.READY, finished_at=now - timedelta(days=1)), b"v", b"p"
    )
    newest = attach_clip(make_take(scene, bob, status=S.READY, finished_at=now), b"v", b"p")
    make_take(scene, bob, status=S.FAILED)

    html = client_for(alice).get(reverse("project-list")).text

    assert f'src="/media/take/{newest.uuid}/poster"' in html
    assert str(older.uuid) not in html
