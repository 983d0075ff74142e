"""Bob reorders the storyboard in Chromium: by dragging a card's handle, by the arrow keys on
the handle, and by ↑/↓; each move is one request, the page never reloads, and focus stays on
the control that moved the card."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from generations.models import Project
from tests.conftest import make_scene
from tests.e2e.test_new_user import sign_in

pytestmark = pytest.mark.browser


def titles(page: Page):
    return page.locator("#scenes article.card .card__title")


def saved_titles(project: Project) -> list[str]:
    return list(project.scenes.order_by("position").values_list("title", flat=True))


@pytest.fixture
def board(page: Page, project, bob):
    for name in ("Harbour", "Lighthouse", "Storm"):
        make_scene(project, title=name)
    sign_in(page, "bob")
    page.goto(reverse("project-detail", args=[project.uuid]))
    expect(titles(page)).to_have_text(["Harbour", "Lighthouse", "Storm"])
    page.evaluate("window.__sameDocument = 'never reloaded'")
    return page


def order_requests(page: Page) -> list[str]:
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/scenes/order/" in r.url else None)
    return sent


def test_bob_drags_a_scene_to_the_top_without_a_reload_and_keeps_focus(board: Page, project):
    page = board
    # Tall enough for the whole storyboard: the pointer drags within what is on screen.
    page.set_viewport_size({"width": 1440, "height": 1400})
    sent = order_requests(page)
    storm = page.get_by_role(
        "button", name="Reorder Storm: drag, or press the up or down arrow key"
    )
    harbour = page.locator("article.card", has_text="Harbour")
    box, target = storm.bounding_box(), harbour.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    # In small steps, as a hand moves: SortableJS follows the pointer.
    page.mouse.move(target["x"] + 40, target["y"] + 10, steps=25)
    page.mouse.up()

    expect(titles(page)).to_have_text(["Storm", "Harbour", "Lighthouse"])
    expect(page.locator("#announcer")).to_have_text("Saved the order: Storm, Harbour, Lighthouse.")
    assert saved_titles(project) == ["Storm", "Harbour", "Lighthouse"]
    assert len(sent) == 1
    expect(
        page.get_by_role("button", name="Reorder Storm: drag, or press the up or down arrow key")
    ).to_be_focused()
    assert page.evaluate("window.__sameDocument") == "never reloaded"


def test_bob_moves_a_scene_by_keyboard_and_the_ends_cannot_move_further(board: Page, project):
    page = board
    sent = order_requests(page)
    expect(page.get_by_role("button", name="Move Harbour up")).to_be_disabled()
    expect(page.get_by_role("button", name="Move Storm down")).to_be_disabled()

    handle = page.get_by_role(
        "button", name="Reorder Harbour: drag, or press the up or down arrow key"
    )
    handle.focus()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#announcer")).to_have_text("Saved the order: Lighthouse, Harbour, Storm.")
    expect(handle).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#announcer")).to_have_text("Saved the order: Lighthouse, Storm, Harbour.")
    expect(handle).to_be_focused()
    page.keyboard.press("ArrowDown")  # already last: nothing is sent
    assert saved_titles(project) == ["Lighthouse", "Storm", "Harbour"]
    assert len(sent) == 2

    # ↑ by keyboard (Tab to it, Enter): the same single request, focus stays on ↑ until the
    # scene reaches the top, where ↑ is disabled and ↓ takes the focus.
    up = page.get_by_role("button", name="Move Storm up")
    up.focus()
    page.keyboard.press("Enter")
    expect(titles(page)).to_have_text(["Storm", "Lighthouse", "Harbour"])
    expect(page.locator("#announcer")).to_have_text("Saved the order: Storm, Lighthouse, Harbour.")
    expect(page.get_by_role("button", name="Move Storm up")).to_be_disabled()
    expect(page.get_by_role("button", name="Move Storm down")).to_be_focused()
    expect(page.get_by_role("button", name="Move Harbour down")).to_be_disabled()
    assert saved_titles(project) == ["Storm", "Lighthouse", "Harbour"]
    assert len(sent) == 3
    assert page.evaluate("window.__sameDocument") == "never reloaded"
