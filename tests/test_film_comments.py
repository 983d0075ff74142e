"""Comments on takes: every member writes them, viewers included; author or owner deletes."""

import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from generations.models import Comment, Generation, Scene
from tests.conftest import make_image, make_scene
from tests.views_support import attach_clip, client_for, htmx_client_for, make_take

S = Generation.Status


def a_take(project, alice):
    scene = make_scene(project, make_image(project, alice), title="Harbour")
    return attach_clip(make_take(scene, alice, status=S.READY), b"clip")


def comment_url(take) -> str:
    return reverse("take-comment", args=[take.uuid])


def test_carol_the_viewer_comments_and_the_card_shows_author_time_and_text(project, alice, carol):
    take = a_take(project, alice)

    card = htmx_client_for(carol).post(comment_url(take), {"body": "  The light is perfect  "})

    comment = Comment.objects.get()
    assert (comment.author, comment.body, comment.take) == (carol, "The light is perfect", take)
    assert "<strong>carol</strong>" in card.text and "The light is perfect" in card.text
    assert f'datetime="{comment.created.isoformat()}"'[:30] in card.text


def test_a_comment_is_escaped(project, alice, bob):
    take = a_take(project, alice)

    card = htmx_client_for(bob).post(comment_url(take), {"body": "<script>alert(1)</script>"})

    assert "<script>alert(1)</script>" not in card.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card.text


def test_empty_and_overlong_comments_are_refused_in_words(project, alice, bob):
    take = a_take(project, alice)
    client = htmx_client_for(bob)

    assert "Write something before posting" in client.post(comment_url(take), {"body": "  "}).text
    invisible = client.post(comment_url(take), {"body": "\u200b\u00a0\ufeff"}).text
    assert "Write something before posting" in invisible
    long = client.post(comment_url(take), {"body": "x" * 1001}).text
    assert "at most 1000 characters; this one has 1001" in long
    assert not Comment.objects.exists()


def test_a_comment_with_invisible_controls_is_refused_but_line_breaks_are_kept(
    project, alice, carol
):
    take = a_take(project, alice)
    client = htmx_client_for(carol)

    reordered = client.post(comment_url(take), {"body": "price \u202e0001$ rebmevon"}).text
    escape = client.post(comment_url(take), {"body": "a\x1bb"}).text
    kept = client.post(comment_url(take), {"body": "Lovely.\r\nMaybe warmer?"})

    assert "The comment contains an invisible control character (U+202E) at character 7" in (
        reordered
    )
    assert "(U+001B) at character 2" in escape
    assert [c.body for c in Comment.objects.all()] == ["Lovely.\nMaybe warmer?"]
    assert kept.status_code == 200


def test_the_author_or_an_owner_deletes_a_comment_nobody_else(project, alice, bob, carol):
    take = a_take(project, alice)
    bobs = Comment.post(take, bob, "Too dark")
    carols = Comment.post(take, carol, "Agreed")

    assert client_for(carol).post(reverse("comment-delete", args=[bobs.uuid])).status_code == 403
    html = client_for(carol).get(reverse("project-detail", args=[project.uuid])).text
    assert reverse("comment-delete", args=[carols.uuid]) in html
    assert reverse("comment-delete", args=[bobs.uuid]) not in html

    htmx_client_for(carol).post(reverse("comment-delete", args=[carols.uuid]))
    htmx_client_for(alice).post(reverse("comment-delete", args=[bobs.uuid]))

    assert not Comment.objects.exists()


def test_charlie_can_neither_comment_nor_delete(project, alice, charlie):
    take = a_take(project, alice)
    comment = Comment.post(take, alice, "Mine")

    assert client_for(charlie).post(comment_url(take), {"body": "hi"}).status_code == 404
    assert (
        client_for(charlie).post(reverse("comment-delete", args=[comment.uuid])).status_code == 404
    )
    assert list(Comment.objects.values_list("body", flat=True)) == ["Mine"]


def test_bobs_comment_reaches_alices_open_page_through_the_poll(project, alice, bob):
    take = a_take(project, alice)
    earlier = timezone.now() - timedelta(minutes=5)
    Generation.objects.update(updated=earlier)
    Scene.objects.update(updated=earlier)
    page = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text
    since = re.search(r'id="poller-since" name="since" value="(\d+)"', page).group(1)
    poll = reverse("project-poll", args=[project.uuid]) + f"?since={since}&live=0"
    assert client_for(alice).get(poll).status_code == 204

    htmx_client_for(bob).post(comment_url(take), {"body": "Take this one"})

    answer = client_for(alice).get(poll)
    assert answer.status_code == 200 and "Take this one" in answer.text


def test_carol_compares_the_ready_takes_of_a_scene_side_by_side(project, alice, carol, charlie):
    from generations.models import Pick

    scene = make_scene(project, make_image(project, alice), title="Harbour")
    first = attach_clip(make_take(scene, alice, status=S.READY), b"one")
    second = attach_clip(make_take(scene, alice, status=S.READY), b"two")
    failed = make_take(scene, alice, status=S.FAILED)
    Pick.choose(second, alice)
    url = reverse("scene-compare", args=[scene.uuid])

    html = client_for(carol).get(url).text

    videos = re.findall(r'<video data-compare-clip[^>]*src="([^"]+)"', html)
    assert videos == [reverse("media-take-video", args=[t.uuid]) for t in (first, second)]
    assert str(failed.uuid) not in html
    assert "Take 2 · <strong>picked for the film</strong>" in html
    assert 'data-compare="play"' in html and 'data-compare="pause"' in html
    assert client_for(charlie).get(url).status_code == 404


def test_compare_takes_is_offered_only_on_a_scene_with_two_ready_takes(project, alice, bob):
    failed = make_scene(project, make_image(project, alice), title="Failed")
    for _ in range(2):
        make_take(failed, alice, status=S.FAILED)
    one_ready = make_scene(project, make_image(project, alice), title="One ready")
    attach_clip(make_take(one_ready, alice, status=S.READY), b"one")
    make_take(one_ready, alice, status=S.FAILED)
    two_ready = make_scene(project, make_image(project, alice), title="Two ready")
    for clip in (b"one", b"two"):
        attach_clip(make_take(two_ready, alice, status=S.READY), clip)

    html = client_for(bob).get(reverse("project-detail", args=[project.uuid])).text

    # The compare page shows ready takes only: a link to one or none leads to nothing to compare.
    links = re.findall(r'href="/scenes/([^/]+)/compare/"', html)
    assert links == [str(two_ready.uuid)]


def test_an_archived_projects_takes_take_no_comments_and_lose_none(project, alice, carol):
    take = a_take(project, alice)
    Comment.post(take, carol, "Keep this one")
    client_for(alice).post(reverse("project-archive", args=[project.uuid]), {"archive": "1"})
    comment = Comment.objects.get()

    posted = htmx_client_for(carol).post(comment_url(take), {"body": "One more thing"})
    deleted = htmx_client_for(alice).post(reverse("comment-delete", args=[comment.uuid]))
    page = client_for(carol).get(reverse("project-detail", args=[project.uuid])).text

    assert posted.status_code == deleted.status_code == 403
    assert "Poseidon is archived, so it is read-only" in posted.text
    assert list(Comment.objects.values_list("body", flat=True)) == ["Keep this one"]
    assert "Keep this one" in page
    assert 'name="body"' not in page and "Delete this comment" not in page
