"""The project's rendered films head the gallery, newest first, each with its download."""

import re
from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from generations.models import FilmRender, Project
from generations.views.gallery import FILMS_SHOWN
from tests.conftest import make_image, make_scene
from tests.views_support import client_for, make_take


def film(project, user, *, minutes_ago: int, status=FilmRender.Status.READY) -> FilmRender:
    render = FilmRender.objects.create(
        project=project,
        requested_by=user,
        status=status,
        segments=[{"scene": 1, "take": 1}],
        duration=8.0,
        created=timezone.now() - timedelta(minutes=minutes_ago),
    )
    if status == FilmRender.Status.READY:
        render.video.name = render.file_name()
        render.save(update_fields=["video"])
    return render


def gallery(client, project, **query):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("project-gallery", args=[project.uuid]), query)
    assert response.status_code == 200
    return response.text, len(captured)


def films_shown(html: str) -> list[str]:
    return re.findall(r'src="/media/film/([0-9a-f-]+)/video"', html)


def test_carol_sees_the_ready_films_first_newest_first_with_their_downloads(
    project, alice, bob, carol, account
):
    scene = make_scene(project, make_image(project, alice), title="Harbour")
    clip = make_take(scene, alice, status="ready", video="clips/x/clip.mp4")
    older = film(project, alice, minutes_ago=30)
    newer = film(project, bob, minutes_ago=5)
    film(project, alice, minutes_ago=1, status=FilmRender.Status.FAILED)
    film(project, alice, minutes_ago=2, status=FilmRender.Status.RENDERING)
    elsewhere = Project.objects.create(name="Elsewhere", account=account)
    film(elsewhere, alice, minutes_ago=3)

    html, _ = gallery(client_for(carol), project)

    assert films_shown(html) == [str(newer.uuid), str(older.uuid)]
    assert f'href="/media/film/{newer.uuid}/video?download=1" download' in html
    assert html.index("/media/film/") < html.index(f"/media/take/{clip.uuid}/video")
    assert "by bob" in html


def test_the_films_cost_one_query_however_many_there_are(project, alice, bob, carol):
    client = client_for(carol)
    film(project, alice, minutes_ago=60)
    html_one, one = gallery(client, project)
    for minutes in range(FILMS_SHOWN + 3):
        film(project, bob if minutes % 2 else alice, minutes_ago=minutes)

    html_many, many = gallery(client, project)

    assert len(films_shown(html_one)) == 1
    assert len(films_shown(html_many)) == FILMS_SHOWN
    assert one == many


def test_a_filtered_gallery_shows_clips_only(project, alice, carol):
    scene = make_scene(project, make_image(project, alice), title="Harbour")
    make_take(scene, alice, status="ready", video="clips/x/clip.mp4")
    film(project, alice, minutes_ago=5)

    html, _ = gallery(client_for(carol), project, scene=str(scene.uuid))

    assert films_shown(html) == []
