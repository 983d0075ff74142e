"""Scene cards hold their content at desktop and phone widths: nothing spills out of a take or
a card, Google's raw code sits on its own small line, and a take's head (name, status, timer)
stays on one line even while it waits to render."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.e2e.studio_support import build_studio
from tests.e2e.test_new_user import sign_in
from tests.film_support import ready_takes

pytestmark = pytest.mark.browser

SIZES = {"desktop": (1440, 900), "tablet": (800, 1000), "phone": (390, 844)}

# Every descendant's edges against its take's, and the card's parts against the card's: what spills over shows as a positive overflow, in CSS pixels.
SPILLS = """() => {
  const out = [];
  const edge = (el) => el.getBoundingClientRect();
  document.querySelectorAll("article.card").forEach((card) => {
    const c = edge(card);
    // On a phone the takes form a row that scrolls sideways inside the card: the row itself
    // must fit, the takes in it may lie beyond the visible part.
    card.querySelectorAll(".card__body *, .card__head *, .takes").forEach((el) => {
      const r = edge(el);
      if (r.width && r.right > c.right + 1) out.push(`${el.className} leaves its card`);
    });
    card.querySelectorAll(".take").forEach((take) => {
      const t = edge(take);
      take.querySelectorAll("*").forEach((el) => {
        const r = edge(el);
        if (r.width && (r.right > t.right + 1 || r.left < t.left - 1))
          out.push(`${el.className || el.tagName} leaves its take`);
      });
    });
  });
  return out;
}"""


@pytest.mark.parametrize("size", SIZES)
def test_alices_cards_hold_long_reasons_codes_and_timers_at_every_width(
    page: Page, project, alice, bob, tmp_path, size
):
    studio = build_studio(project, alice, bob, tmp_path)
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, "alice")
    page.goto(reverse("project-detail", args=[studio.project.uuid]))
    storm = page.locator("article.card", has_text="Storm")
    failed = storm.locator(".take--failed")
    expect(failed.locator(".take__reason")).to_have_text(
        "Flow's safety filter refused the prompt or the start image."
    )
    expect(failed.locator(".take__code")).to_have_text(
        "Google's code: PUBLIC_ERROR_UNSAFE_GENERATION"
    )

    # Takes scroll sideways on a phone: each is measured where it lies.
    assert page.evaluate(SPILLS) == []
    for take in page.locator(".take").all():
        take.scroll_into_view_if_needed()
        head = take.locator(".take__head")
        name, timer = head.locator(".take__name"), head.locator(".take__time")
        assert name.bounding_box()["y"] == pytest.approx(timer.bounding_box()["y"], abs=4)
        assert timer.bounding_box()["height"] < 30  # one line, not wrapped
    waiting = storm.locator(".take--pending .status")
    expect(waiting).to_have_attribute("title", "Waiting to render")


def test_a_scene_with_many_takes_scrolls_its_strip_on_alices_phone_not_the_page(
    page: Page, project, alice, emu
):
    ready_takes(project, alice, takes=8, title="Harbour")
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, "alice")
    page.goto(reverse("project-detail", args=[project.uuid]))
    strip = page.locator("article.card .takes")
    expect(strip.locator(".take")).to_have_count(8)

    # The strip is wider than the phone and scrolls; the page does not.
    assert strip.evaluate("el => el.scrollWidth > el.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
