"""What a screen reader gets in a real Chromium: the words a card action answers with reach the
page's one live region (#announcer), every video on the film and compare pages is named
after its scene and take, and a form's fields are described by their hints."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from playwright.sync_api import Page, expect

from generations.models import AccountGrant, FlowAccount, Pick
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


def test_carol_hears_which_scene_and_take_each_video_of_the_film_and_compare_pages_plays(
    page: Page, project, alice, bob, carol, tmp_path
):
    studio = build_studio(project, alice, bob, tmp_path)
    harbour_1, harbour_2, lighthouse = studio.ready
    Pick.choose(harbour_2, bob)
    Pick.choose(lighthouse, bob)
    sign_in(page, "carol")

    page.goto(reverse("project-film", args=[project.uuid]))
    picks = page.locator(".film-picks video")
    expect(picks.nth(0)).to_have_accessible_name("Scene 1: Harbour, take 2")
    expect(picks.nth(1)).to_have_accessible_name("Scene 2: Lighthouse, take 1")
    preview = page.locator("[data-film-preview]")
    video = preview.locator("video")
    expect(video).to_have_accessible_name("Scene 1 of 2: Harbour, take 2")
    preview.get_by_role("button", name="Next scene").click()
    expect(video).to_have_accessible_name("Scene 2 of 2: Lighthouse, take 1")

    page.goto(reverse("scene-compare", args=[harbour_1.scene.uuid]))
    videos = page.locator("video[data-compare-clip]")
    expect(videos.nth(0)).to_have_accessible_name("Harbour, take 1 by alice")
    expect(videos.nth(1)).to_have_accessible_name("Harbour, take 2 by bob")


def test_alice_hears_the_hint_of_each_field_of_the_new_project_and_scene_forms(
    page: Page, transactional_db, project, alice
):
    # Two accounts granted: the new-project form asks which one pays.
    AccountGrant.objects.create(
        account=FlowAccount.objects.create(label="Second", bearer_token="ya29.two"), user=alice
    )
    sign_in(page, "alice")

    page.goto(reverse("project-create"))
    expect(page.get_by_label("Account")).to_have_accessible_description(
        "Who pays for the project's clips."
    )

    page.goto(reverse("scene-create", args=[project.uuid]))
    expect(page.get_by_label("Seed")).to_have_accessible_description(
        "Leave blank for a fresh random seed on every take."
    )
    expect(page.get_by_label("Takes")).to_have_accessible_description(
        "How many clips one Generate asks for (each spends credits)."
    )
    expect(page.get_by_label("Start image")).to_have_accessible_description(
        "JPEG, PNG or WebP. The clip starts from this picture (Start image, Start and end frames)."
    )


def test_alice_hears_the_password_rules_as_the_hint_of_her_new_password(
    page: Page, transactional_db, alice
):
    # Django's hint here is a list (<ul>): inside a <p> the browser would close the paragraph
    # before it, leaving the element the field points at empty.
    uid = urlsafe_base64_encode(force_bytes(alice.pk))
    page.goto(
        reverse("password_reset_confirm", args=[uid, default_token_generator.make_token(alice)])
    )
    expect(page.get_by_label("New password", exact=True)).to_have_accessible_description(
        re.compile(r"can.t be too similar to your other personal information")
    )
