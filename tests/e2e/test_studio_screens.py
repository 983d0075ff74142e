"""Screenshots of the storyboard, the gallery and the project list at desktop and phone sizes,
for a person to look at (kept under test-results/, never committed)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.e2e.studio_support import build_studio
from tests.e2e.test_new_user import sign_in

pytestmark = pytest.mark.browser

SIZES = {"desktop": (1440, 900), "phone": (390, 844)}


@pytest.mark.parametrize("size", SIZES)
def test_alice_sees_her_storyboard_gallery_and_projects_at_desktop_and_phone_sizes(
    page: Page, project, alice, bob, tmp_path, screenshots, size
):
    studio = build_studio(project, alice, bob, tmp_path)
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, "alice")
    page.screenshot(path=screenshots / f"projects-{size}.png", full_page=True)
    page.goto(reverse("project-detail", args=[studio.project.uuid]))
    expect(page.locator("article.card")).to_have_count(3)
    page.screenshot(path=screenshots / f"storyboard-{size}.png", full_page=True)
    page.goto(reverse("project-gallery", args=[studio.project.uuid]))
    expect(page.locator("[data-review-clip]")).to_have_count(3)
    page.screenshot(path=screenshots / f"gallery-{size}.png", full_page=True)
