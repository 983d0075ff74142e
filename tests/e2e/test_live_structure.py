"""A teammate changes the list of scenes while alice's storyboard is open, in a real Chromium.

Alice's page polls because a take is rendering (no worker runs here, so it stays rendering).
Bob adds, moves and deletes scenes through the real views; alice's page follows each change
by itself: no reload, no navigation.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from generations.models import Generation, Scene
from tests.conftest import make_image, make_scene
from tests.e2e.test_new_user import sign_in
from tests.views_support import add_scene_as, client_for, make_take

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _quick_page_polls(settings) -> None:
    settings.FLOWSITE_PAGE_POLL_SECONDS = 1


def titles(page: Page):
    return page.locator("#scenes article.card .card__title")


def test_alice_sees_the_scenes_bob_adds_moves_and_deletes_without_reloading(
    page: Page, project, alice, bob, screenshots
):
    image = make_image(project, alice)
    first = make_scene(project, image, title="Harbour")
    second = make_scene(project, image, title="Lighthouse")
    make_take(first, alice, status=Generation.Status.ACTIVE)
    bobs = client_for(bob)

    sign_in(page, "alice")
    page.goto(reverse("project-detail", args=[project.uuid]))
    expect(page.get_by_text("Clips are rendering")).to_be_visible()
    expect(titles(page)).to_have_text(["Harbour", "Lighthouse"])
    # Anything that reloads or navigates the page forgets this.
    page.evaluate("window.__sameDocument = 'never reloaded'")

    add_scene_as(bob, project, "Open sea")
    # A couple of poll intervals (1 s here), with room for a busy 2-core machine.
    expect(titles(page)).to_have_text(["Harbour", "Lighthouse", "Open sea"], timeout=20_000)

    opened = Scene.objects.get(title="Open sea")
    bobs.post(reverse("scene-move", args=[opened.uuid]), {"direction": "up"})
    expect(titles(page)).to_have_text(["Harbour", "Open sea", "Lighthouse"], timeout=20_000)

    bobs.post(reverse("scene-delete", args=[second.uuid]))
    expect(titles(page)).to_have_text(["Harbour", "Open sea"], timeout=20_000)

    # The rendering take's card is still there and the page still polls.
    harbour = page.locator("article.card", has_text="Harbour")
    expect(harbour.locator(".take .status")).to_have_text(["Rendering"])
    expect(page.get_by_text("Clips are rendering")).to_be_visible()
    assert page.evaluate("window.__sameDocument") == "never reloaded"
    page.screenshot(path=screenshots / "storyboard-live-structure.png", full_page=True)
