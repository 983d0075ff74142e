"""What a screen reader gets in a real Chromium: the words a card action answers with reach the
page's one live region (#announcer)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.e2e.studio_support import build_studio
from tests.e2e.test_new_user import sign_in

pytestmark = pytest.mark.browser

# Runs in the page: everything #announcer says, in order, so a later poll filling it again
# cannot hide what an action said.
LISTEN = """() => {
    window.__announced = [];
    const announcer = document.getElementById("announcer");
    new MutationObserver(() => window.__announced.push(announcer.textContent.trim()))
        .observe(announcer, {childList: true, characterData: true, subtree: true});
}"""


def card(page: Page, title: str):
    return page.locator("article.card").filter(
        has=page.get_by_role("heading", name=title, exact=True)
    )


def expect_announced(page: Page, text: str) -> None:
    page.wait_for_function("text => window.__announced.includes(text)", arg=text)


def test_alices_card_actions_are_said_by_the_pages_live_region(
    page: Page, project, alice, bob, tmp_path
):
    build_studio(project, alice, bob, tmp_path)
    sign_in(page, "alice")
    page.goto(reverse("project-detail", args=[project.uuid]))
    page.evaluate(LISTEN)

    harbour = card(page, "Harbour")
    harbour.locator("li.take", has_text="Take 1").get_by_role(
        "button", name="Pick for the film"
    ).click()
    expect(harbour.locator(".card__notice")).to_have_text("Take 1 is picked for the film.")
    expect_announced(page, "Harbour: Take 1 is picked for the film.")

    storm = card(page, "Storm")
    storm.get_by_role("button", name="Cancel", exact=True).click()
    expect(storm.locator(".card__notice")).to_have_text("Cancelled take 2.")
    expect_announced(page, "Storm: Cancelled take 2.")
    # Said once: the card's own line is no second live region arriving already filled.
    expect(storm.locator(".card__notice")).not_to_have_attribute("role", "status")
