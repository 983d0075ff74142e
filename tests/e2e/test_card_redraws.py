"""A card is redrawn whole, by the page's poll (a teammate's comment, a take changing state, a
new scene) and by the answer to its own actions. In a real Chromium: what alice is typing on a
card, and where her focus is, survive those redraws; an action's answer lands on the card on
screen even when a poll redrew the storyboard while it was on its way; after a card's action the
keyboard focus stays on the card.

No worker runs: takes stay where the test puts them; teammates act on the database as their own
pages would.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from generations.models import Comment
from tests.e2e.test_new_user import sign_in
from tests.film_support import ready_takes
from tests.views_support import add_scene_as

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _quick_polls(settings) -> None:
    settings.FLOWSITE_PAGE_POLL_SECONDS = 0.5
    settings.FLOWSITE_IDLE_POLL_SECONDS = 0.5


def card(page: Page, title: str):
    return page.locator("#scenes article.card", has=page.locator(".card__title", has_text=title))


def take_item(page: Page, title: str, number: int):
    return card(page, title).locator(
        "li.take", has=page.locator(".take__name", has_text=f"Take {number}")
    )


def titles(page: Page):
    return page.locator("#scenes article.card .card__title")


def caret(page: Page) -> list:
    return page.evaluate(
        "() => [document.activeElement.selectionStart, document.activeElement.selectionEnd]"
    )


def open_storyboard(page: Page, project, who: str) -> None:
    sign_in(page, who)
    page.goto(reverse("project-detail", args=[project.uuid]))
    page.evaluate("window.__sameDocument = 'never reloaded'")


def record_notices(page: Page) -> None:
    """Records in ``window.__notices`` every card notice or refusal shown on the page from now
    on (a card swapped into an element no longer on the page shows nothing)."""
    page.evaluate(
        """() => {
          const notices = window.__notices = [];
          new MutationObserver((changes) => changes.forEach((change) => change.addedNodes
            .forEach((node) => node.querySelectorAll && node.querySelectorAll(
              ".card__notice, .card__error").forEach((p) => notices.push(p.textContent.trim())))
          )).observe(document.body, { childList: true, subtree: true });
        }"""
    )


def record_polls(page: Page) -> None:
    page.evaluate(
        """() => {
          const polls = window.__polls = [];
          document.addEventListener("htmx:beforeOnLoad", (event) => {
            if (event.detail.elt.id === "poller") polls.push(event.detail.xhr.status);
          });
        }"""
    )


def hold(page: Page, pattern: str) -> list:
    """Keeps the next request to ``pattern`` waiting, for the test to let go."""
    held: list = []
    page.route(pattern, lambda route: held.append(route))
    return held


def waited_for(page: Page, held: list):
    # Playwright hands the route over between the test's own calls: wait for it.
    for _ in range(500):
        if held:
            return held.pop()
        page.wait_for_timeout(10)
    raise AssertionError("the request never left")


def test_bobs_upscale_answered_after_a_poll_redrew_the_storyboard_shows_on_his_card(
    page: Page, live_server, transactional_db, emu, project, alice, bob, expected_refusals
):
    [take] = ready_takes(project, alice, title="Harbour")
    open_storyboard(page, project, "bob")
    harbour = card(page, "Harbour")
    record_notices(page)
    held = hold(page, "**/upscale/")
    harbour.get_by_role("button", name="Upscale to 1080p").click()
    upscale = waited_for(page, held)

    # Meanwhile alice adds a scene: each poll now answers with the whole storyboard.
    add_scene_as(alice, project, "Open sea")
    record_polls(page)
    page.wait_for_function("() => window.__polls.filter((status) => status === 200).length >= 2")
    upscale.continue_()

    # The answer lands on the card on screen; alice's scene arrives with a later poll.
    page.wait_for_function("() => window.__notices.includes('Upscaling take 1 to 1080p.')")
    expect(titles(page)).to_have_text(["Harbour", "Open sea"])
    expect(harbour.locator(".take__upscaling")).to_have_text(re.compile("Upscaling to 1080p"))

    # An action that fails keeps nothing from arriving either.
    failing = reverse("take-pick", args=[take.uuid])
    expected_refusals.append(failing)
    page.route(f"**{failing}", lambda route: route.fulfill(status=500, body="Server error"))
    harbour.get_by_role("button", name="Pick for the film").click()
    expect(page.locator("#request-problem")).to_contain_text("error 500")
    Comment.post(take, alice, "Nice and sharp")
    expect(harbour.locator(".comment__body")).to_have_text(["Nice and sharp"])
    assert page.evaluate("window.__sameDocument") == "never reloaded"
