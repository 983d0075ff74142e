"""The query-count guarantees of issue 5: what an open page, the gallery at size, a clip and a
polling pass cost the database, whatever the size of the project.

Timings live in benchmarks/ (ratios measured side by side); these are the counts that must hold
on every run.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from generations import pipeline
from generations.models import Generation, Membership, Scene
from generations.views.cards import encode_since
from generations.views.gallery import PAGE_SIZE
from tests.conftest import make_image, make_scene
from tests.tasks_support import takes_keep_rendering
from tests.views_support import attach_clip, client_for, make_take

S = Generation.Status
HOUR_AGO = timedelta(hours=1)
MODES = ["text", "image", "frames", "ingredients"]


def _count(client, url: str, **headers) -> tuple[object, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, headers=headers)
    return response, len(captured)


def _board(project, user, scenes: int, takes_each: int, *, rendering: int = 1) -> list[Scene]:
    """Scenes with takes last touched an hour ago; the first ``rendering`` takes still active."""
    moment = timezone.now() - HOUR_AGO
    rows = Scene.objects.bulk_create(
        Scene(
            project=project,
            position=project.scenes.count() + n,
            prompt=f"Shot {n}",
            model_key="veo_3_1_i2v_s_fast",
            updated=moment,
        )
        for n in range(scenes)
    )
    Generation.objects.bulk_create(
        Generation(
            scene=scene,
            project=project,
            requested_by=user,
            account=project.account,
            take=take,
            prompt=scene.prompt,
            model_key=scene.model_key,
            aspect=scene.aspect,
            seed=take,
            status=S.ACTIVE if index * takes_each + take <= rendering else S.READY,
            created=moment,
            updated=moment,
        )
        for index, scene in enumerate(rows)
        for take in range(1, takes_each + 1)
    )
    return rows


def _poll_url(project, since) -> str:
    return reverse("project-poll", args=[project.uuid]) + f"?since={encode_since(since)}"


def _oob_cards(html: str) -> set[str]:
    return set(re.findall(r'<article id="scene-([0-9a-f-]+)"[^>]*hx-swap-oob="true"', html))


# --- the page poll ---------------------------------------------------------------------------


def test_an_unchanged_poll_answers_204_in_at_most_three_queries_however_big_the_board(
    project, alice
):
    client = client_for(alice)
    _board(project, alice, scenes=1, takes_each=1)
    small, small_queries = _count(client, _poll_url(project, timezone.now()), HX_Request="true")

    _board(project, alice, scenes=60, takes_each=4)
    large, large_queries = _count(client, _poll_url(project, timezone.now()), HX_Request="true")

    assert (small.status_code, small.content) == (204, b"")
    assert (large.status_code, large.content) == (204, b"")
    # The session, the user, and one statement: membership, "changed since?", "in flight?".
    assert small_queries <= 3
    assert large_queries == small_queries


def test_a_poll_after_changes_returns_only_the_changed_cards_in_the_same_queries(project, alice):
    client = client_for(alice)
    scenes = _board(project, alice, scenes=40, takes_each=3)
    since = timezone.now() - timedelta(minutes=1)

    Generation.objects.filter(scene=scenes[7], take=2).update(
        status=S.READY, updated=timezone.now()
    )
    one, one_queries = _count(client, _poll_url(project, since), HX_Request="true")
    Generation.objects.filter(scene__in=scenes[10:30]).update(updated=timezone.now())
    many, many_queries = _count(client, _poll_url(project, since), HX_Request="true")

    assert one.status_code == many.status_code == 200
    assert _oob_cards(one.text) == {str(scenes[7].uuid)}
    assert _oob_cards(many.text) == {str(s.uuid) for s in [scenes[7], *scenes[10:30]]}
    # The session, the user, "changed?", the membership with the newest take, then the
    # scenes, their takes, the takes' comments and upscales. Takes changing state leave
    # Generate all as it was, so it is neither priced nor sent.
    assert one_queries == many_queries == 8
    assert 'id="generate-all"' not in one.text + many.text


def test_a_poll_after_scene_edits_prices_generate_all_in_one_more_query_however_many_scenes(
    project, alice
):
    client = client_for(alice)
    scenes = _board(project, alice, scenes=2, takes_each=1)
    since = timezone.now() - timedelta(minutes=1)
    Scene.objects.filter(pk=scenes[0].pk).update(takes=2, updated=timezone.now())
    few, few_queries = _count(client, _poll_url(project, since), HX_Request="true")

    more = _board(project, alice, scenes=40, takes_each=3)
    Scene.objects.filter(project=project).update(updated=timezone.now() - HOUR_AGO)
    Scene.objects.filter(pk__in=[more[3].pk, more[30].pk]).update(takes=4, updated=timezone.now())
    many, many_queries = _count(client, _poll_url(project, since), HX_Request="true")

    assert 'id="generate-all" class="generate-all" hx-swap-oob="true"' in few.text
    assert 'id="generate-all" class="generate-all" hx-swap-oob="true"' in many.text
    assert _oob_cards(many.text) == {str(more[3].uuid), str(more[30].uuid)}
    assert few_queries == many_queries == 9


def test_alices_storyboard_loads_the_images_of_every_mode_in_one_query_apart_from_the_scenes(
    project, alice
):
    red, blue = make_image(project, alice), make_image(project, alice, color=(0, 0, 200))
    make_scene(project, red, mode="frames", end_image=blue, model_key="veo_3_1_i2v_s_fast_fl")
    make_scene(
        project,
        mode="ingredients",
        reference_1=red,
        reference_2=blue,
        reference_3=red,
        model_key="veo_3_1_r2v_fast_landscape",
    )
    with CaptureQueriesContext(connection) as captured:
        page = client_for(alice).get(reverse("project-detail", args=[project.uuid]))

    assert page.text.count(f'src="/media/image/{red.uuid}"') == 3
    statements = [query["sql"] for query in captured]
    [scenes] = [sql for sql in statements if sql.startswith('SELECT "generations_scene"."id"')]
    # Joined into the scenes' statement, the five image columns made PostgreSQL plan an
    # eight-table join on every card answer (5 ms of planning for 0.4 ms of work): only the
    # film's pick and an extension's source take ride along.
    assert scenes.count(" JOIN ") == 2
    assert sum(sql.startswith('SELECT "generations_imageasset"') for sql in statements) == 1


def test_charlie_polling_alice_project_gets_404_from_the_three_query_path(project, charlie):
    _board(project, charlie, scenes=2, takes_each=1)

    response, _ = _count(client_for(charlie), _poll_url(project, timezone.now()), HX_Request="true")

    assert response.status_code == 404


# --- the gallery at size -----------------------------------------------------------------------


def _ready_clips(project, members: list[User], count: int, *, scenes: int = 20) -> None:
    now = timezone.now()
    rows = Scene.objects.bulk_create(
        Scene(project=project, position=n, prompt=f"Shot {n}", model_key="veo_3_1_i2v_s_fast")
        for n in range(scenes)
    )
    Generation.objects.bulk_create(
        (
            Generation(
                scene=rows[n % scenes],
                project=project,
                requested_by=members[n % len(members)],
                account=project.account,
                take=n // scenes + 1,
                prompt="A lighthouse at dusk",
                model_key="veo_3_1_i2v_s_fast",
                aspect="landscape",
                # Every mode present: a card's facts grow, the page's queries must not.
                mode=MODES[n % len(MODES)],
                seed=n,
                status=S.READY,
                video=f"clips/{n}/clip.mp4",
                finished_at=now - timedelta(seconds=n),
            )
            for n in range(count)
        ),
        batch_size=2000,
    )


def _members(project, count: int) -> list[User]:
    users = User.objects.bulk_create(User(username=f"member{n:02d}") for n in range(count))
    Membership.objects.bulk_create(
        Membership(project=project, user=user, role=Membership.Role.EDITOR) for user in users
    )
    return users


def _gallery(client, project, **query):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("project-gallery", args=[project.uuid]), query)
    assert response.status_code == 200
    return response.text, len(captured)


def _shown(html: str) -> list[str]:
    return re.findall(r'src="/media/take/([0-9a-f-]+)/video"', html)


def test_the_gallery_costs_the_same_queries_for_10_clips_as_for_10000_by_20_members(
    project, account, carol
):
    from generations.models import Project

    small = Project.objects.create(name="Small", account=account)
    small.add_member(carol, Membership.Role.VIEWER)
    members = _members(project, 20)
    _ready_clips(small, members[:3], 10)
    _ready_clips(project, members, 10_000)
    client = client_for(carol)
    pages = math.ceil(10_000 / PAGE_SIZE)

    small_html, small_queries = _gallery(client, small)
    first_html, first_queries = _gallery(client, project)
    deep_html, deep_queries = _gallery(client, project, page=150)
    last_html, last_queries = _gallery(client, project, page=pages)
    scene_html, scene_queries = _gallery(client, project, scene=str(project.scenes.first().uuid))
    filtered_html, filtered_queries = _gallery(
        client, project, member="member03", date="week", sort="scene", page=3
    )
    mode_html, mode_queries = _gallery(client, project, mode="frames", page=2)

    # The session, the user, the membership with its project, the scenes, the members'
    # counts, their names, the page's clips and their upscaled copies, however many clips and
    # however deep the page; the first page of the whole gallery adds one for the project's films.
    assert small_queries == first_queries == 9
    assert deep_queries == last_queries == scene_queries == 8
    # Filtered by member and date and sorted by scene, or by mode, a page costs the same.
    assert filtered_queries == mode_queries == 8
    assert len(_shown(mode_html)) == PAGE_SIZE
    assert f"Page 2 of {math.ceil(2_500 / PAGE_SIZE)}" in mode_html
    assert len(_shown(filtered_html)) == PAGE_SIZE
    assert "Page 3 of 11" in filtered_html  # member03's 500 clips
    assert len(_shown(small_html)) == 10
    assert len(_shown(first_html)) == len(_shown(deep_html)) == PAGE_SIZE
    assert f"Page 1 of {pages}" in first_html
    assert f"Page 150 of {pages}" in deep_html
    assert len(_shown(last_html)) == 10_000 - (pages - 1) * PAGE_SIZE
    assert len(_shown(scene_html)) == PAGE_SIZE


def test_walking_every_gallery_page_gives_each_clip_once_in_member_then_newest_order(
    project, alice, bob, carol
):
    # Uneven sections (so pages start inside a member's clips), a former member, equal times.
    members = _members(project, 3)
    _ready_clips(project, [members[0]] * 5 + [members[1]] + [members[2]] * 3 + [alice], 130)
    Generation.objects.filter(seed__in=[40, 41]).update(finished_at=timezone.now())
    gone = User.objects.create_user("zed")
    _ready_clips(project, [gone], 9, scenes=2)
    gone.delete()
    expected = [
        str(u)
        for u in Generation.objects.filter(project=project, status=S.READY)
        .order_by(F("requested_by__username").asc(nulls_last=True), "-finished_at", "-pk")
        .values_list("uuid", flat=True)
    ]
    client = client_for(carol)

    walked: list[str] = []
    for page in range(1, math.ceil(len(expected) / PAGE_SIZE) + 1):
        html, _ = _gallery(client, project, page=page)
        walked += _shown(html)

    assert walked == expected
    assert "A former member" in _gallery(client, project, page=3)[0]


# --- a clip ---------------------------------------------------------------------------------


def test_a_clip_handed_to_nginx_costs_three_queries_and_no_body(project, alice, settings):
    settings.FLOWSITE_X_ACCEL_REDIRECT = "/protected/"
    scene = make_scene(project, make_image(project, alice))
    take = attach_clip(make_take(scene, alice, status=S.READY), b"\x00" * 4096)

    response, queries = _count(client_for(alice), reverse("media-take-video", args=[take.uuid]))

    assert response.status_code == 200
    assert response.content == b""
    assert response["X-Accel-Redirect"] == f"/protected/{take.video.name}"
    assert queries == 3


# --- a polling pass ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", [30, 130])
def test_a_polling_pass_makes_one_status_call_and_the_same_statements_per_batch(
    flow_emulator, project, alice, settings, count
):
    settings.FLOW_STATUS_BATCH_SIZE = 50
    # Longer than any pass: on a loaded machine a pass can outlast half the default lease, and
    # renewing the held takes' lease between two batches is a statement of its own.
    settings.FLOWSITE_CHECK_LEASE = 600
    project.account.bearer_token = flow_emulator.token
    project.account.save()
    takes_keep_rendering(project, alice, count)
    calls_before = flow_emulator.stats["check"]
    marks: list[int] = []

    with CaptureQueriesContext(connection) as captured:
        counts = pipeline.run_pass(
            now=timezone.now() + timedelta(seconds=1),
            heartbeat=lambda: marks.append(len(captured.captured_queries)),
        )

    batches = math.ceil(count / 50)
    assert counts["checked"] == count
    assert flow_emulator.stats["check"] - calls_before == batches
    # Heartbeats: after reaping, after submitting, then after each batch (the first batch also
    # carries the pass's one lookup of due takes and their accounts).
    per_batch = [b - a for a, b in zip(marks[2:], marks[3:], strict=False)]
    assert len(marks) == 2 + batches
    assert len(set(per_batch)) <= 1
    # Flow is still rendering every one of them (pending or active): nothing to download.
    still = Generation.objects.filter(project=project, status__in=[S.PENDING, S.ACTIVE])
    assert still.count() == count
