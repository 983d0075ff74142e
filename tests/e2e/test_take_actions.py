"""A ready take is extended and upscaled from its card in a real Chromium; the storyboard and
the gallery show the extension and the take's resolutions.

The worker's passes run in this test's thread (as the pump would), between the clicks and the
page's own polls; every step waits on what the page shows, never on time.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from generations.models import Generation, Scene, Upscale
from tests.e2e.test_new_user import sign_in
from tests.film_support import ready_takes
from tests.tasks_support import settle
from tests.test_take_actions import settle_upscale

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _quick_polls(settings) -> None:
    settings.FLOWSITE_PAGE_POLL_SECONDS = 1
    settings.FLOWSITE_IDLE_POLL_SECONDS = 1


def test_bob_extends_and_upscales_a_ready_take_and_the_cards_and_gallery_show_them(
    page: Page, live_server, transactional_db, emu, project, alice, bob
):
    [take] = ready_takes(project, alice, title="Harbour")

    sign_in(page, "bob")
    page.goto(reverse("project-detail", args=[project.uuid]))
    harbour = page.locator("article.card", has_text="Harbour")
    expect(harbour.locator(".take-action--extend [data-cost]")).to_have_text("20 credits")

    # Extend: a new scene appears right after, in extend mode, with its take queued.
    harbour.get_by_label("What happens next (extend take 1)").fill("the lighthouse beam sweeps")
    harbour.get_by_role("button", name="Extend").click()
    expect(harbour.locator(".card__notice")).to_contain_text("extending take 1")
    extension = page.locator("article.card", has_text="the lighthouse beam sweeps")
    expect(extension).to_be_visible()
    expect(extension.locator(".facts")).to_contain_text("Extends")

    # Upscale to 1080p (free on tier one); the card says it is under way.
    harbour.get_by_role("button", name="Upscale to 1080p").click()
    expect(harbour.locator(".card__notice")).to_have_text("Upscaling take 1 to 1080p.")

    # The worker makes both; the open page shows them by itself.
    [extended] = settle(list(Generation.objects.filter(source_take=take)))
    assert extended.status == Generation.Status.READY, extended.reason
    upscale = settle_upscale(Upscale.objects.get(take=take))
    assert upscale.status == Generation.Status.READY, upscale.reason

    expect(harbour.locator(".badge--resolution")).to_have_text(["720p", "1080p"])
    expect(harbour.get_by_role("link", name="Download 1080p")).to_be_visible()
    expect(extension.locator("video.clip").first).to_be_visible()
    assert Scene.objects.get(source_take=take).position == take.scene.position + 1

    # The joined preview plays the source, then switches to the extension at the seam.
    extension.get_by_role("button", name="Preview joined with take 1").click()
    seam = extension.locator("[data-seam]")
    expect(seam).to_have_attribute("data-seam-part", "extension", timeout=15_000)

    # The gallery lists both clips with the resolutions each exists in.
    page.get_by_role("link", name="Gallery").click()
    harbour_clip = page.locator(".gallery__item", has_text="a red lighthouse").filter(
        has=page.get_by_role("link", name="Download 1080p")
    )
    expect(harbour_clip.locator(".gallery__resolutions")).to_have_text("720p, 1080p")
    expect(page.locator(".gallery__item", has_text="the lighthouse beam sweeps")).to_be_visible()
