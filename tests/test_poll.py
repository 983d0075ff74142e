"""The storyboard's live status: one poll request per page, only the cards that changed."""

import io
import re
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from generations.models import AccountGrant, Generation, Project, Scene
from generations.views.cards import LATE_COMMIT_MARGIN, decode_since, encode_since
from tests.conftest import make_image, make_scene, png_bytes
from tests.views_support import (
    add_scene_as,
    assert_take_offers_refused,
    attach_clip,
    client_for,
    make_take,
    seen_settings,
)

ACTIVE = Generation.Status.ACTIVE
READY = Generation.Status.READY
# The default cadences: takes in flight (FLOWSITE_PAGE_POLL_SECONDS), nothing in flight
# (FLOWSITE_IDLE_POLL_SECONDS).
FAST = 'hx-trigger="every 2000ms"'
SLOW = 'hx-trigger="every 10000ms"'


def poll_url(project, since: str, *, live: bool = True) -> str:
    """A poll as a page in the given mode sends it (fast: takes in flight)."""
    return reverse("project-poll", args=[project.uuid]) + f"?since={since}&live={int(live)}"


def since_on_page(html: str) -> str:
    return re.search(r'id="poller-since" name="since" value="(\d+)"', html).group(1)


def oob_card_ids(html: str) -> set[str]:
    return set(
        re.findall(r'<article id="scene-([0-9a-f-]+)" class="card" hx-swap-oob="true"', html)
    )


@pytest.fixture
def board(project, alice):
    """Three scenes with takes last touched an hour ago, one of them still rendering."""
    image = make_image(project, alice)
    hour_ago = timezone.now() - timedelta(hours=1)
    scenes = [make_scene(project, image, updated=hour_ago) for _ in range(3)]
    takes = [
        make_take(scenes[0], alice, status=ACTIVE, updated=hour_ago),
        make_take(scenes[1], alice, status=READY, updated=hour_ago),
        make_take(scenes[2], alice, status=READY, updated=hour_ago),
    ]
    return scenes, takes


def test_the_page_has_one_poller_whatever_the_number_of_cards(project, alice, board):
    html = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text

    assert html.count('id="poller"') == 1
    assert html.count(FAST) == 1
    assert html.count('class="card"') == 3
    assert f"/projects/{project.uuid}/poll/?since=" in html


def test_alices_idle_page_polls_slowly(project, alice, board):
    scenes, takes = board
    Generation.objects.filter(pk=takes[0].pk).update(status=READY)

    html = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text

    assert html.count('id="poller"') == 1
    assert html.count(SLOW) == 1
    assert "&live=0" in poller_url_on_page(html)
    assert "Clips are rendering" not in html


def test_alices_page_with_a_take_in_flight_polls_fast_and_says_so(project, alice, board):
    html = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text

    assert html.count(FAST) == 1
    assert "&live=1" in poller_url_on_page(html)
    assert "Clips are rendering; this page updates by itself." in html


def test_poll_answers_204_when_nothing_changed(project, alice, board):
    client = client_for(alice)
    since = since_on_page(client.get(reverse("project-detail", args=[project.uuid])).text)

    response = client.get(poll_url(project, since))

    assert response.status_code == 204
    assert response.content == b""


def test_poll_returns_only_the_changed_card_out_of_band(project, alice, board):
    scenes, takes = board
    client = client_for(alice)
    since = since_on_page(client.get(reverse("project-detail", args=[project.uuid])).text)
    Generation.objects.filter(pk=takes[0].pk).update(
        status=READY, updated=timezone.now(), finished_at=timezone.now()
    )

    response = client.get(poll_url(project, since))

    assert response.status_code == 200
    html = response.text
    assert oob_card_ids(html) == {str(scenes[0].uuid)}
    assert "Ready" in html
    # The new poller comes first (the swap target) and slows down: nothing is in flight now.
    assert html.lstrip().startswith('<div id="poller"')
    assert SLOW in html and "&amp;live=0" in html
    assert "Clips are rendering" not in html
    assert decode_since(since_on_page(html)) > decode_since(since)


def test_bob_polling_gets_a_card_with_no_price_once_studios_grant_is_revoked(
    project, account, alice, bob, board
):
    scenes, takes = board
    client = client_for(bob)
    since = since_on_page(client.get(reverse("project-detail", args=[project.uuid])).text)
    AccountGrant.objects.filter(account=account, user=alice).delete()  # flow_account revoke
    Generation.objects.filter(pk=takes[0].pk).update(status=READY, updated=timezone.now())

    html = client.get(poll_url(project, since)).text

    assert oob_card_ids(html) == {str(scenes[0].uuid)}
    card = html[html.index('class="card__generate"') :]
    card = card[: card.index("</form>")]
    assert "credits" not in card, "no price for an account the project can no longer spend"
    assert "This project may not spend the Flow account Studio" in card


def test_bob_polling_gets_takes_offering_nothing_at_a_price_once_studios_grant_is_revoked(
    project, account, alice, bob, board
):
    scenes, takes = board
    hour_ago = timezone.now() - timedelta(hours=1)
    ready = make_take(
        scenes[1],
        alice,
        status=READY,
        updated=hour_ago,
        media_generation_id="CAUSmade",
        video=f"clips/{project.uuid}/ready.mp4",
    )
    failed = make_take(scenes[1], alice, status=Generation.Status.FAILED, updated=hour_ago)
    client = client_for(bob)
    since = since_on_page(client.get(reverse("project-detail", args=[project.uuid])).text)
    AccountGrant.objects.filter(account=account, user=alice).delete()  # flow_account revoke
    Generation.objects.filter(pk=failed.pk).update(reason="Flow refused.", updated=timezone.now())

    html = client.get(poll_url(project, since)).text

    assert oob_card_ids(html) == {str(scenes[1].uuid)}
    assert_take_offers_refused(
        html, ready, failed, "This project may not spend the Flow account Studio"
    )


def test_one_poll_covers_every_card_that_changed(project, alice, board):
    scenes, takes = board
    client = client_for(alice)
    since = since_on_page(client.get(reverse("project-detail", args=[project.uuid])).text)
    now = timezone.now()
    Generation.objects.filter(pk=takes[0].pk).update(reason="Rendering slowly", updated=now)
    scenes[2].prompt = "The lighthouse beam sweeps the fog"
    scenes[2].updated = now
    scenes[2].save(update_fields=["prompt", "updated"])

    html = client.get(poll_url(project, since)).text

    assert oob_card_ids(html) == {str(scenes[0].uuid), str(scenes[2].uuid)}
    assert "The lighthouse beam sweeps the fog" in html
    # Still in flight: the new poller keeps polling, from the newest change it has shown or,
    # for changes this fresh, from a little before them (see LATE_COMMIT_MARGIN).
    assert FAST in html
    token = decode_since(since_on_page(html))
    assert now - LATE_COMMIT_MARGIN - timedelta(seconds=1) < token <= now


def test_the_next_poll_after_a_change_is_204_again(project, alice, board):
    scenes, takes = board
    client = client_for(alice)
    since = since_on_page(client.get(reverse("project-detail", args=[project.uuid])).text)
    Generation.objects.filter(pk=takes[0].pk).update(
        reason="Still going", updated=timezone.now() - 2 * LATE_COMMIT_MARGIN
    )

    first = client.get(poll_url(project, since))
    second = client.get(poll_url(project, since_on_page(first.text)))

    assert first.status_code == 200
    assert second.status_code == 204


def test_a_page_whose_last_take_finished_unnoticed_switches_to_slow_polling(project, alice, board):
    scenes, takes = board
    client = client_for(alice)
    since = since_on_page(client.get(reverse("project-detail", args=[project.uuid])).text)
    # Finished without `updated` moving (a worker that forgot to bump it): the page must
    # still slow down instead of polling fast forever, and show the truth of the cards it last
    # saw change.
    Generation.objects.filter(pk=takes[0].pk).update(status=READY)

    response = client.get(poll_url(project, since))

    assert response.status_code == 200
    assert 'id="poller"' in response.text
    assert SLOW in response.text
    assert str(scenes[0].uuid) in oob_card_ids(response.text)
    assert "Rendering" not in response.text


def test_a_stopped_page_gets_only_recent_cards_again(project, alice, board):
    scenes, takes = board
    client = client_for(alice)
    Generation.objects.filter(pk=takes[0].pk).update(status=READY)

    response = client.get(poll_url(project, encode_since(timezone.now())))

    assert SLOW in response.text
    assert oob_card_ids(response.text) == set()


def test_a_missing_or_garbled_token_brings_every_card(project, alice, board):
    client = client_for(alice)

    for url in (
        reverse("project-poll", args=[project.uuid]),
        poll_url(project, "yesterday"),
        poll_url(project, "9" * 40),
    ):
        assert len(oob_card_ids(client.get(url).text)) == 3


def test_viewers_poll_too_but_their_cards_have_no_buttons(project, carol, board):
    response = client_for(carol).get(reverse("project-poll", args=[project.uuid]))

    assert response.status_code == 200
    # The one form a viewer gets is the comment on a take.
    forms = re.findall(r'<form method="post" action="([^"]+)"', response.text)
    assert forms and all(re.fullmatch(r"/takes/[0-9a-f-]+/comments/", url) for url in forms)
    assert "/generate/" not in response.text
    assert "/retry/" not in response.text
    assert "Veo 3.1 Fast" in response.text


def _queries(client, url) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    return response.status_code, len(captured)


def _grow(project, alice, scenes: int, takes_each: int) -> None:
    """Scenes of every mode (text, start image, frames, ingredients with three references),
    each with its takes: what a card shows grows, its queries must not."""
    image = make_image(project, alice)
    end = make_image(project, alice, color=(200, 40, 40))
    hour_ago = timezone.now() - timedelta(hours=1)
    modes = [
        {"mode": "text", "model_key": "veo_3_1_t2v_fast"},
        {"image": image},
        {"image": image, "mode": "frames", "end_image": end, "model_key": "veo_3_1_i2v_s_fast_fl"},
        {
            "mode": "ingredients",
            "reference_1": image,
            "reference_2": end,
            "reference_3": image,
            "model_key": "veo_3_1_r2v_fast_landscape",
        },
    ]
    for index in range(scenes):
        scene = make_scene(project, updated=hour_ago, **modes[index % len(modes)])
        for _ in range(takes_each):
            make_take(scene, alice, status=ACTIVE, updated=hour_ago)


def test_an_unchanged_poll_costs_three_queries_however_big_the_board(project, alice, board):
    client = client_for(alice)
    since = encode_since(timezone.now())

    small = _queries(client, poll_url(project, since))
    _grow(project, alice, scenes=20, takes_each=4)
    large = _queries(client, poll_url(project, since))

    # The session, the user, and one query for membership + "what changed, what is in flight".
    assert small == (204, 3)
    assert large == (204, 3)


def test_a_changed_poll_costs_the_same_queries_for_few_or_many_changed_cards(project, alice, board):
    client = client_for(alice)
    since = encode_since(timezone.now() - timedelta(minutes=1))
    Generation.objects.filter(project=project).update(updated=timezone.now())
    small_status, small = _queries(client, poll_url(project, since))

    _grow(project, alice, scenes=20, takes_each=4)
    Generation.objects.filter(project=project).update(updated=timezone.now())
    large_status, large = _queries(client, poll_url(project, since))

    assert small_status == large_status == 200
    assert small == large
    # The cards' takes carry their comments and their upscaled copies, and the scenes their
    # images: one more query each, whatever the number of cards.
    assert large <= 9


def test_a_signed_out_page_is_sent_to_sign_in_instead_of_swapping_it_into_the_poller(
    project, client
):
    page = reverse("project-detail", args=[project.uuid])

    response = client.get(
        poll_url(project, "0"),
        headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver{page}"},
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{reverse('login')}?next={page}"
    assert response.content == b""


def test_the_storyboard_page_costs_the_same_queries_for_few_or_many_scenes(project, alice, board):
    client = client_for(alice)
    url = reverse("project-detail", args=[project.uuid])
    small = _queries(client, url)

    _grow(project, alice, scenes=20, takes_each=4)
    large = _queries(client, url)

    assert small == large


def test_a_change_committed_behind_the_token_is_not_lost_when_polling_slows(project, alice, board):
    scenes, takes = board
    client = client_for(alice)
    now = timezone.now()
    # Another card changed at `now`; the page's token moved there. The worker's "ready" for
    # take 0 was stamped a second earlier but committed only afterwards.
    Generation.objects.filter(pk=takes[1].pk).update(reason="Seen", updated=now)
    since = since_on_page(
        client.get(poll_url(project, encode_since(now - timedelta(minutes=5)))).text
    )
    Generation.objects.filter(pk=takes[0].pk).update(
        status=READY, updated=now - timedelta(seconds=1), finished_at=now
    )

    response = client.get(poll_url(project, since))

    assert response.status_code == 200
    assert str(scenes[0].uuid) in oob_card_ids(response.text)
    assert SLOW in response.text
    assert decode_since(since_on_page(response.text)) >= decode_since(since)


def test_a_change_committed_behind_a_later_one_arrives_on_the_next_poll(project, alice, board):
    scenes, takes = board
    client = client_for(alice)
    now = timezone.now()
    # Take 1 changed and committed at `now`; a poll shows it and hands out a new token.
    Generation.objects.filter(pk=takes[1].pk).update(reason="Seen", updated=now)
    first = client.get(poll_url(project, encode_since(now - timedelta(minutes=5))))
    # The worker's change to take 0 (still rendering) was stamped just before `now` but
    # committed only after that poll.
    Generation.objects.filter(pk=takes[0].pk).update(
        reason="Almost there", updated=now - timedelta(milliseconds=500)
    )

    second = client.get(poll_url(project, since_on_page(first.text)))

    assert second.status_code == 200
    assert str(scenes[0].uuid) in oob_card_ids(second.text)
    assert "Almost there" in second.text
    assert FAST in second.text, "still polling fast: take 0 is in flight"


# --- Every poll is signed in and re-checks membership -------------------------------------------


def poller_url_on_page(html: str) -> str:
    return re.search(r'id="poller"[^>]* hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")


def test_the_page_poller_carries_its_token_mode_and_role_and_an_unchanged_poll_costs_three_queries(
    project, alice, board
):
    client = client_for(alice)
    url = poller_url_on_page(client.get(reverse("project-detail", args=[project.uuid])).text)
    query = url.split("?", 1)[1]

    assert sorted(part.split("=")[0] for part in query.split("&")) == ["live", "role", "since"]
    # The session, the user, and one query: membership, "what changed, what is in flight".
    assert _queries(client, url) == (204, 3)


def test_once_alice_signs_out_her_open_page_is_sent_to_sign_in_and_shown_nothing_new(
    project, alice, board
):
    scenes, takes = board
    alices = client_for(alice)
    page = reverse("project-detail", args=[project.uuid])
    url = poller_url_on_page(alices.get(page).text)
    assert alices.get(url, headers={"HX-Request": "true"}).status_code == 204

    alices.post(reverse("logout"))
    headers = {"HX-Request": "true", "HX-Current-URL": f"http://testserver{page}"}
    unchanged = alices.get(url, headers=headers)
    Generation.objects.filter(pk=takes[0].pk).update(
        status=READY, reason="Finished after sign-out", updated=timezone.now()
    )
    changed = alices.get(url, headers=headers)
    plain = alices.get(url)

    for answer in (unchanged, changed):
        assert answer.status_code == 200
        assert answer["HX-Redirect"] == f"{reverse('login')}?next={page}"
        assert answer.content == b""
    assert plain.status_code == 302 and plain["Location"].startswith(reverse("login"))
    assert b"Finished after sign-out" not in plain.content


def test_bob_removed_from_the_project_gets_the_same_404_as_for_a_project_that_does_not_exist(
    project, alice, bob, board
):
    bobs = client_for(bob)
    url = poller_url_on_page(bobs.get(reverse("project-detail", args=[project.uuid])).text)
    assert bobs.get(url).status_code == 204
    missing = client_for(bob).get(url.replace(str(project.uuid), str(uuid.uuid4())))

    project.memberships.filter(user=bob).delete()
    removed = bobs.get(url)

    assert removed.status_code == missing.status_code == 404
    assert without_per_response_tokens(removed.text) == without_per_response_tokens(missing.text)


@pytest.mark.parametrize("live", [True, False])
@pytest.mark.parametrize("since_minutes_ago", [None, 0, 60])
def test_charlie_polling_alices_project_learns_nothing_whatever_he_asks(
    project, alice, charlie, board, live, since_minutes_ago
):
    charlies = client_for(charlie)
    if since_minutes_ago is None:
        url = reverse("project-poll", args=[project.uuid])
    else:
        since = encode_since(timezone.now() - timedelta(minutes=since_minutes_ago))
        url = poll_url(project, since, live=live)
    missing = url.replace(str(project.uuid), str(uuid.uuid4()))

    answer = charlies.get(url, headers={"HX-Request": "true"})
    nothing = charlies.get(missing, headers={"HX-Request": "true"})

    assert answer.status_code == nothing.status_code == 404
    assert without_per_response_tokens(answer.text) == without_per_response_tokens(nothing.text)
    assert "HX-Redirect" not in answer


def without_per_response_tokens(html: str) -> str:
    """The styled 404 page carries a CSRF token masked afresh and a CSP nonce drawn afresh for
    every response: random, so they say nothing about the project, and are left out when two
    answers are compared."""
    return re.sub(
        r'("X-CSRFToken": "|name="csrfmiddlewaretoken" value="|nonce=")[^"]+', r"\1", html
    )


# --- The storyboard's structure: scenes added, deleted or moved by a teammate --------------------


def oob_storyboard(html: str) -> str:
    """The storyboard swapped out of band in a poll answer (the whole ordered list)."""
    match = re.search(
        r'<div class="storyboard" id="scenes" hx-swap-oob="true">(.*?)\n</div>', html, re.S
    )
    assert match, "the answer has no out-of-band storyboard"
    return match.group(1)


def card_ids_in_order(html: str) -> list[str]:
    return re.findall(r'<article id="scene-([0-9a-f-]+)" class="card"', html)


def open_page(client, project) -> str:
    """The poll URL of alice's open storyboard (with its token and mode)."""
    return poller_url_on_page(client.get(reverse("project-detail", args=[project.uuid])).text)


def test_a_scene_bob_adds_arrives_in_order_in_alices_next_poll_as_one_storyboard_swap(
    project, alice, bob, board
):
    scenes, takes = board
    alices = client_for(alice)
    url = open_page(alices, project)
    added = add_scene_as(bob, project, "Closing shot", "The boat drifts out of frame")

    response = alices.get(url)

    assert response.status_code == 200
    html = response.text
    board_html = oob_storyboard(html)
    assert card_ids_in_order(board_html) == [str(s.uuid) for s in [*scenes, added]]
    assert "The boat drifts out of frame" in board_html
    # One swap for the whole list: no card carries its own, which htmx would swap again.
    assert oob_card_ids(html) == set()
    assert html.lstrip().startswith('<div id="poller"')
    assert FAST in html, "take 0 is still rendering"
    # The new token covers the change, trailing it by at most the late-commit margin.
    token = decode_since(since_on_page(html))
    project.refresh_from_db()
    assert token > decode_since(re.search(r"since=(\d+)", url).group(1))
    assert project.scenes_changed - LATE_COMMIT_MARGIN - timedelta(seconds=1) < token
    assert token <= project.scenes_changed


def test_a_scene_bob_deletes_is_gone_from_alices_next_poll(project, alice, bob, board):
    scenes, takes = board
    alices = client_for(alice)
    url = open_page(alices, project)

    assert client_for(bob).post(reverse("scene-delete", args=[scenes[1].uuid])).status_code == 302
    html = alices.get(url).text

    assert card_ids_in_order(oob_storyboard(html)) == [str(scenes[0].uuid), str(scenes[2].uuid)]
    assert str(scenes[1].uuid) not in html


def test_a_scene_bob_moves_comes_in_its_new_place_in_alices_next_poll(project, alice, bob, board):
    scenes, takes = board
    alices = client_for(alice)
    url = open_page(alices, project)

    client_for(bob).post(reverse("scene-move", args=[scenes[2].uuid]), {"direction": "up"})
    html = alices.get(url).text

    assert card_ids_in_order(oob_storyboard(html)) == [
        str(scenes[0].uuid),
        str(scenes[2].uuid),
        str(scenes[1].uuid),
    ]


def test_moving_the_first_scene_up_changes_nothing_and_alices_poll_stays_204(
    project, alice, bob, board
):
    scenes, takes = board
    alices = client_for(alice)
    url = open_page(alices, project)

    client_for(bob).post(reverse("scene-move", args=[scenes[0].uuid]), {"direction": "up"})

    assert _queries(alices, url) == (204, 3)


def test_a_card_change_alone_still_comes_as_that_card_not_the_whole_storyboard(
    project, alice, board
):
    scenes, takes = board
    alices = client_for(alice)
    url = open_page(alices, project)
    Generation.objects.filter(pk=takes[0].pk).update(reason="Slow", updated=timezone.now())

    html = alices.get(url).text

    assert oob_card_ids(html) == {str(scenes[0].uuid)}
    assert 'id="scenes"' not in html


def test_a_structure_change_the_page_already_shows_costs_three_queries_and_answers_204(
    project, alice, board
):
    Project.objects.filter(pk=project.pk).update(
        scenes_changed=timezone.now() - timedelta(minutes=30)
    )
    alices = client_for(alice)

    assert _queries(alices, open_page(alices, project)) == (204, 3)


def test_once_the_storyboard_was_sent_and_the_change_settled_the_next_poll_is_204(
    project, alice, board
):
    alices = client_for(alice)
    url = open_page(alices, project)
    # A teammate's change that committed a while ago, beyond the late-commit margin.
    Project.objects.filter(pk=project.pk).update(
        scenes_changed=timezone.now() - 2 * LATE_COMMIT_MARGIN
    )

    first = alices.get(url)

    assert len(card_ids_in_order(oob_storyboard(first.text))) == 3
    assert _queries(alices, poller_url_on_page(first.text)) == (204, 3)


def test_a_slowing_page_gets_the_storyboard_when_a_scene_was_deleted_just_before_its_token(
    project, alice, bob, board
):
    scenes, takes = board
    Generation.objects.filter(pk=takes[0].pk).update(status=READY)
    client_for(bob).post(reverse("scene-delete", args=[scenes[2].uuid]))
    # The page's token moved just past the deletion (its commit came late, say), and nothing
    # is in flight any more: the last answer re-checks a little before the token.
    since = encode_since(timezone.now())

    html = client_for(alice).get(poll_url(project, since)).text

    assert SLOW in html
    assert card_ids_in_order(oob_storyboard(html)) == [str(scenes[0].uuid), str(scenes[1].uuid)]


def test_importing_a_storyboard_into_an_open_project_reaches_its_next_poll(
    project, alice, board, tmp_path
):
    alices = client_for(alice)
    url = open_page(alices, project)
    (tmp_path / "harbour.png").write_bytes(png_bytes())
    csv_path = tmp_path / "more.csv"
    csv_path.write_text("image,prompt,aspect\nharbour.png,Gulls over the harbour,landscape\n")

    args = ["import", str(csv_path), "--project", project.name, "--user", "alice"]
    call_command("storyboard", *args, stdout=io.StringIO())
    html = alices.get(url).text

    assert len(card_ids_in_order(oob_storyboard(html))) == 4
    assert "Gulls over the harbour" in html


# --- An idle page: nothing in flight, it still polls, slowly --------------------------------------


@pytest.fixture
def idle_board(project, alice, board):
    """The board with its rendering take finished an hour ago: nothing is in flight."""
    scenes, takes = board
    Generation.objects.filter(pk=takes[0].pk).update(status=READY)
    return scenes, takes


def test_an_unchanged_idle_poll_is_204_with_three_queries(project, alice, idle_board):
    alices = client_for(alice)
    url = open_page(alices, project)
    assert "&live=0" in url

    assert _queries(alices, url) == (204, 3)
    assert _queries(alices, url) == (204, 3), "and again: the slow timer runs on"


def test_bobs_new_scene_reaches_alices_idle_page_on_her_next_poll_which_stays_slow(
    project, alice, bob, idle_board
):
    scenes, takes = idle_board
    alices = client_for(alice)
    url = open_page(alices, project)
    added = add_scene_as(bob, project, "Closing shot", "The boat drifts out of frame")

    html = alices.get(url).text

    assert card_ids_in_order(oob_storyboard(html)) == [str(s.uuid) for s in [*scenes, added]]
    # A new scene puts nothing in flight: the page keeps polling slowly, from a newer token.
    assert SLOW in html and "&amp;live=0" in html
    assert "Clips are rendering" not in html
    assert decode_since(since_on_page(html)) > decode_since(re.search(r"since=(\d+)", url).group(1))


def test_bobs_generate_press_reaches_alices_idle_page_on_her_next_poll_and_switches_it_to_fast(
    project, alice, bob, idle_board
):
    scenes, takes = idle_board
    alices = client_for(alice)
    url = open_page(alices, project)
    last_take = scenes[1].generations.order_by("-take").first().take

    pressed = client_for(bob).post(
        reverse("scene-generate", args=[scenes[1].uuid]),
        {"last_take": str(last_take), "seen_settings": seen_settings(scenes[1])},
    )
    assert pressed.status_code == 302
    html = alices.get(url).text

    # Bob's queued take is on its card, and the page now polls fast, saying why.
    assert oob_card_ids(html) == {str(scenes[1].uuid)}
    assert "Queued" in html
    assert FAST in html and "&amp;live=1" in html
    assert "Clips are rendering; this page updates by itself." in html
    # In fast mode with nothing new, alice's next poll is the usual three-query 204.
    Generation.objects.filter(project=project).update(updated=timezone.now() - timedelta(hours=1))
    Scene.objects.filter(project=project).update(updated=timezone.now() - timedelta(hours=1))
    assert _queries(alices, poller_url_on_page(html)) == (204, 3)


def test_takes_starting_behind_alices_token_still_switch_her_idle_page_to_fast(
    project, alice, idle_board
):
    scenes, takes = idle_board
    alices = client_for(alice)
    url = open_page(alices, project)
    # In flight again, stamped an hour ago (a late commit, or a worker that forgot `updated`):
    # nothing is newer than the token, but the idle page must not poll slowly through it.
    Generation.objects.filter(pk=takes[2].pk).update(status=ACTIVE)

    html = alices.get(url).text

    assert FAST in html and "&amp;live=1" in html
    assert _queries(alices, poller_url_on_page(html)) == (204, 3)


def test_a_page_whose_last_take_finished_switches_to_slow_polling_then_answers_204(
    project, alice, board
):
    scenes, takes = board
    alices = client_for(alice)
    url = open_page(alices, project)
    assert "&live=1" in url
    Generation.objects.filter(pk=takes[0].pk).update(
        status=READY, updated=timezone.now() - 2 * LATE_COMMIT_MARGIN
    )

    html = alices.get(url).text

    assert oob_card_ids(html) == {str(scenes[0].uuid)}
    assert SLOW in html and "&amp;live=0" in html
    assert "Clips are rendering" not in html
    assert _queries(alices, poller_url_on_page(html)) == (204, 3)


def test_a_poller_from_before_idle_polling_is_taken_for_a_fast_one(project, alice, board):
    # Pages rendered before pollers said their mode only polled with takes in flight.
    alices = client_for(alice)
    legacy = open_page(alices, project).replace("&live=1", "")

    assert _queries(alices, legacy) == (204, 3)


# --- Clips keep playing through swaps: a ready take's <video> is preserved by a stable id -------


def test_a_take_turning_ready_brings_its_preserved_clip_in_alices_next_poll(project, alice, board):
    scenes, takes = board
    alices = client_for(alice)
    page = alices.get(reverse("project-detail", args=[project.uuid])).text
    # Rendering: no clip yet, so nothing on the page holds the id the clip will have.
    assert f'id="clip-{takes[0].uuid}"' not in page
    # The ready takes' clips on the page, each under an id of its own take.
    ready = [take for take in takes if take.status == READY]
    for take in ready:
        attach_clip(take, b"\x00" * 64)
    page = alices.get(reverse("project-detail", args=[project.uuid])).text
    url = poller_url_on_page(page)
    for take in ready:
        assert page.count(f'<video id="clip-{take.uuid}" hx-preserve="true"') == 1

    attach_clip(takes[0], b"\x00" * 64)
    Generation.objects.filter(pk=takes[0].pk).update(status=READY, updated=timezone.now())
    html = alices.get(url).text

    # The new clip comes with the card; the browser has no element of that id to keep, so it
    # shows this one.
    assert oob_card_ids(html) == {str(scenes[0].uuid)}
    assert f'<video id="clip-{takes[0].uuid}" hx-preserve="true"' in html
    assert f'src="/media/take/{takes[0].uuid}/video"' in html


def test_a_clip_comes_under_the_same_id_whether_its_card_or_the_whole_storyboard_is_swapped(
    project, alice, bob, board
):
    scenes, takes = board
    attach_clip(takes[1], b"\x00" * 64)
    alices = client_for(alice)
    url = open_page(alices, project)
    clip = f'<video id="clip-{takes[1].uuid}" hx-preserve="true"'

    Generation.objects.filter(pk=takes[1].pk).update(reason="Seen", updated=timezone.now())
    card_swap = alices.get(url).text
    client_for(bob).post(reverse("scene-move", args=[scenes[1].uuid]), {"direction": "up"})
    list_swap = alices.get(url).text

    assert oob_card_ids(card_swap) == {str(scenes[1].uuid)} and card_swap.count(clip) == 1
    assert 'id="scenes"' in list_swap and list_swap.count(clip) == 1


def test_bob_made_a_viewer_while_his_page_is_open_gets_it_drawn_again_without_buttons(
    project, alice, bob, board
):
    client = client_for(bob)
    page = reverse("project-detail", args=[project.uuid])
    url = poller_url_on_page(client.get(page).text)
    assert client.get(url, headers={"HX-Request": "true"}).status_code == 204

    project.memberships.filter(user=bob).update(role="viewer")
    answer = client.get(url, headers={"HX-Request": "true"})

    assert answer.headers["HX-Refresh"] == "true"
    again = client.get(page).text
    assert "Your role on this project is now viewer." in again
    assert "/generate/" not in again
    assert 'id="scene-order"' not in again
    # Drawn for his new role, the page polls quietly again.
    assert client.get(poller_url_on_page(again), headers={"HX-Request": "true"}).status_code == 204


def test_carol_made_an_editor_while_her_page_is_open_gets_the_buttons(project, carol, board):
    client = client_for(carol)
    page = reverse("project-detail", args=[project.uuid])
    url = poller_url_on_page(client.get(page).text)

    project.memberships.filter(user=carol).update(role="editor")

    assert client.get(url, headers={"HX-Request": "true"}).headers["HX-Refresh"] == "true"
    again = client.get(page).text
    assert "Your role on this project is now editor." in again
    assert "/generate/" in again


def test_a_poller_drawn_before_pollers_said_their_role_is_not_sent_a_reload(project, alice, board):
    since = encode_since(timezone.now())

    answer = client_for(alice).get(poll_url(project, since), headers={"HX-Request": "true"})

    assert answer.status_code == 204
    assert "HX-Refresh" not in answer.headers
