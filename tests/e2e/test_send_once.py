"""A form is sent once, in a real Chromium: a double-click on a form's button while its answer
is on its way sends nothing more (a second Add scene stored its image again and made a second
scene that Generate all then paid for), whether the browser posts the form or htmx does. The
buttons come back when the answer does not replace the page: a refusal, a page restored from
the back/forward cache.
"""

from __future__ import annotations

import time

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from generations.forms import SceneForm
from generations.models import Comment, Generation, Scene
from tests.conftest import make_image, make_scene
from tests.e2e.test_archived_while_open import ARCHIVED, archive
from tests.e2e.test_card_redraws import card, open_storyboard, take_item
from tests.e2e.test_image_input import open_new_scene_form, send_picture, wide_picture
from tests.views_support import make_take

pytestmark = pytest.mark.browser


def slowly(monkeypatch, owner, name: str) -> None:
    """``owner.name`` takes a second longer on the server, as storing a 20 MB picture does: the
    second click of a double-click lands while the first request is still being answered."""
    original = getattr(owner, name)

    def held(*args, **kwargs):
        time.sleep(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, held)


def double_click(page: Page, button) -> None:
    """Two clicks on ``button``, the second once the first has sent its request (a person's
    double-click is that slow; two clicks in one go would make one navigation). The mouse, not
    the locator: a locator waits for the page the first click is loading."""
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    with page.expect_request(lambda request: request.method == "POST"):
        page.mouse.click(x, y)
    page.mouse.click(x, y)


def test_alices_double_click_on_add_scene_makes_one_scene(page: Page, project, alice, monkeypatch):
    open_new_scene_form(page, project)
    page.get_by_label("Title").fill("Harbour")
    page.get_by_label("Prompt").fill("Gulls wheel over the quay")
    send_picture(page, "drop", "quay.png", wide_picture())
    slowly(monkeypatch, SceneForm, "save_scene")

    double_click(page, page.get_by_role("button", name="Add scene"))

    expect(card(page, "Harbour")).to_have_count(1)
    page.reload()
    expect(card(page, "Harbour")).to_have_count(1)
    assert Scene.objects.filter(project=project, title="Harbour").count() == 1


def test_alices_double_click_on_a_comments_button_posts_it_once(
    page: Page, project, alice, monkeypatch
):
    harbour = make_scene(project, make_image(project, alice), title="Harbour")
    take = make_take(harbour, alice, status=Generation.Status.READY)
    open_storyboard(page, project, "alice")
    slowly(monkeypatch, Comment, "post")

    take_item(page, "Harbour", 1).get_by_label("Comment on take 1").fill("too dark at the end")
    double_click(page, take_item(page, "Harbour", 1).get_by_role("button", name="Comment"))

    expect(card(page, "Harbour").locator(".card__notice")).to_have_text("Commented on take 1.")
    page.reload()
    expect(card(page, "Harbour").locator(".comment__body")).to_have_text(["too dark at the end"])
    assert Comment.objects.filter(take=take).count() == 1


def test_bobs_comment_button_comes_back_after_a_refusal(
    page: Page, project, alice, bob, settings, expected_refusals
):
    # His page does not poll again during the test: only the click can tell him.
    settings.FLOWSITE_IDLE_POLL_SECONDS = 600
    harbour = make_scene(project, make_image(project, alice), title="Harbour")
    take = make_take(harbour, alice, status=Generation.Status.READY)
    expected_refusals.append(reverse("take-comment", args=[take.uuid]))
    open_storyboard(page, project, "bob")
    archive(project, alice)

    note = take_item(page, "Harbour", 1).get_by_label("Comment on take 1")
    note.fill("too dark at the end")
    button = take_item(page, "Harbour", 1).get_by_role("button", name="Comment")
    button.click()

    expect(page.get_by_role("alert")).to_contain_text(ARCHIVED)
    expect(button).to_be_enabled()


def test_alices_add_scene_button_waits_for_the_answer_and_comes_back_with_the_page_from_history(
    page: Page, project, alice
):
    open_new_scene_form(page, project)
    page.get_by_label("Title").fill("Harbour")
    page.get_by_label("Prompt").fill("Gulls wheel over the quay")
    send_picture(page, "drop", "quay.png", wide_picture())
    # The post stays on its way (the browser never sends it): the page stays as she left it.
    page.evaluate("window.addEventListener('submit', (event) => event.preventDefault())")
    add = page.get_by_role("button", name="Add scene")
    add.click()
    expect(add).to_be_disabled()

    # Chromium here keeps no page in its back/forward cache, so the page's coming back from it
    # is told as the browser tells it.
    page.evaluate("window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
    expect(add).to_be_enabled()
