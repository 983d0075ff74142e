"""Carol, a viewer, filters the gallery and reviews the clips full screen, by keyboard only."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.e2e.studio_support import build_studio
from tests.e2e.test_new_user import sign_in

pytestmark = pytest.mark.browser

SIZES = {"desktop": (1440, 900), "phone": (390, 844)}


def test_carol_filters_the_gallery_and_pages_through_the_clips_by_keyboard(
    page: Page, project, alice, bob, carol, tmp_path, screenshots
):
    studio = build_studio(project, alice, bob, tmp_path)
    sign_in(page, "carol")
    page.goto(reverse("project-gallery", args=[studio.project.uuid]))
    expect(page.locator("[data-review-clip]")).to_have_count(3)

    # From the keyboard the arrows go through the options without applying any (a closed
    # select fires `change` on each); Enter applies the one reached, and the new page gives
    # the focus back to the filter.
    member = page.get_by_label("Member")
    member.focus()
    page.keyboard.press("ArrowDown")  # alice
    page.keyboard.press("ArrowDown")  # bob
    expect(member).to_have_value("bob")
    expect(member).to_be_focused()
    expect(page.locator("[data-review-clip]")).to_have_count(3)
    assert "member=" not in page.url
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"member=bob"))
    expect(page.locator("[data-review-clip]")).to_have_count(2)
    expect(member).to_be_focused()
    # Or the Show button, which stays for that: the focus comes back to it.
    page.keyboard.press("ArrowUp")  # alice
    page.keyboard.press("ArrowUp")  # everyone
    expect(member).to_have_value("")
    show = page.get_by_role("button", name="Show")
    show.focus()
    expect(page.locator("[data-review-clip]")).to_have_count(2)
    page.keyboard.press("Enter")
    expect(page).not_to_have_url(re.compile(r"member=bob"))
    expect(page.locator("[data-review-clip]")).to_have_count(3)
    expect(show).to_be_focused()

    # A choice made with the mouse applies at once, and the focus stays on its filter.
    scene = page.get_by_label("Scene")
    scene.click()
    scene.select_option(label="Harbour")
    expect(page.locator("[data-review-clip]")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"scene="))
    expect(scene).to_be_focused()

    review = page.get_by_role("button", name="Review full screen")
    review.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Review clips")
    expect(dialog).to_be_visible()
    label = page.locator("#review-label")
    expect(label).to_have_text("Harbour, take 1 by alice (1 of 2)")
    video = page.locator("#review-video")
    expect(video).to_have_accessible_name("Harbour, take 1 by alice")
    page.keyboard.press("ArrowRight")
    expect(label).to_have_text("Harbour, take 2 by bob (2 of 2)")
    page.keyboard.press("ArrowRight")  # wraps round to the first
    expect(label).to_have_text("Harbour, take 1 by alice (1 of 2)")
    page.keyboard.press("ArrowLeft")
    expect(label).to_have_text("Harbour, take 2 by bob (2 of 2)")
    video.evaluate("v => { v.muted = true; }")
    page.keyboard.press("Space")
    expect(video).to_have_js_property("paused", False)
    page.keyboard.press("Space")
    expect(video).to_have_js_property("paused", True)
    # A pause that lands before a slow clip starts interrupts play(); that is no error.
    page.evaluate(
        """() => {
            const space = () => new KeyboardEvent("keydown", {key: " ", bubbles: true});
            document.getElementById("review-video").load();  // not ready: play() will wait
            document.body.dispatchEvent(space());
            document.body.dispatchEvent(space());
        }"""
    )
    expect(video).to_have_js_property("paused", True)
    page.wait_for_timeout(200)  # the interrupted play() settles after the pause
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(review).to_be_focused()


@pytest.mark.parametrize("size", SIZES)
def test_screenshots_of_the_storyboard_gallery_and_review_mode(
    page: Page, project, alice, bob, tmp_path, screenshots, size
):
    studio = build_studio(project, alice, bob, tmp_path)
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, "alice")
    page.goto(reverse("project-detail", args=[studio.project.uuid]))
    expect(page.locator("article.card")).to_have_count(3)
    page.screenshot(path=screenshots / f"craft-storyboard-{size}.png", full_page=True)
    page.goto(reverse("project-gallery", args=[studio.project.uuid]))
    expect(page.locator("[data-review-clip]")).to_have_count(3)
    page.screenshot(path=screenshots / f"craft-gallery-{size}.png", full_page=True)
    page.get_by_role("button", name="Review full screen").click()
    expect(page.locator("#review-label")).to_have_text("Harbour, take 1 by alice (1 of 3)")
    for _ in range(3):  # on to the portrait one
        if "Lighthouse" in page.locator("#review-label").text_content():
            break
        page.keyboard.press("ArrowRight")
    expect(page.locator("#review-label")).to_contain_text("Lighthouse")
    page.wait_for_timeout(300)  # the poster paints
    page.screenshot(path=screenshots / f"craft-review-{size}.png")
