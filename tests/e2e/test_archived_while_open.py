"""Bob's storyboard stays open while alice archives Poseidon, in a real Chromium: a click he
makes before his page knows is refused in words he can see, and the next poll redraws the
page read-only. No worker runs here."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from generations.models import Generation
from tests.conftest import make_image, make_scene
from tests.e2e.test_new_user import sign_in
from tests.views_support import client_for

pytestmark = pytest.mark.browser

ARCHIVED = "Poseidon is archived, so it is read-only: nothing can be generated or edited."


def archive(project, owner) -> None:
    answer = client_for(owner).post(
        reverse("project-archive", args=[project.uuid]), {"archive": "1"}
    )
    assert answer.status_code == 302


def test_bobs_generate_after_alice_archived_says_why_instead_of_doing_nothing(
    page: Page, project, alice, bob, settings, expected_refusals
):
    # His page does not poll again during the test: only the click can tell him.
    settings.FLOWSITE_IDLE_POLL_SECONDS = 600
    scene = make_scene(project, make_image(project, alice), title="Harbour")
    expected_refusals.append(reverse("scene-generate", args=[scene.uuid]))
    sign_in(page, "bob")
    page.goto(reverse("project-detail", args=[project.uuid]))

    archive(project, alice)
    page.get_by_role("button", name="Generate 1 take").click()

    expect(page.get_by_role("alert")).to_contain_text(ARCHIVED)
    assert not Generation.objects.exists()


def test_bobs_open_page_turns_read_only_when_alice_archives_and_back_when_she_restores(
    page: Page, project, alice, bob, settings
):
    settings.FLOWSITE_IDLE_POLL_SECONDS = 1
    make_scene(project, make_image(project, alice), title="Harbour")
    sign_in(page, "bob")
    page.goto(reverse("project-detail", args=[project.uuid]))
    generate = page.get_by_role("button", name="Generate 1 take")
    expect(generate).to_be_visible()
    expect(page.get_by_role("button", name="Generate all")).to_be_visible()
    page.evaluate("window.__sameDocument = 'never reloaded'")

    archive(project, alice)

    # A poll or two (1 s here), with room for a busy 2-core machine.
    expect(page.get_by_text("Archived: read-only.")).to_be_visible(timeout=20_000)
    expect(generate).to_have_count(0)
    expect(page.get_by_role("button", name="Generate all")).to_have_count(0)

    assert project.set_archived(False)
    expect(generate).to_be_visible(timeout=20_000)
    expect(page.get_by_text("Archived: read-only.")).to_be_hidden()
    assert page.evaluate("window.__sameDocument") == "never reloaded"
