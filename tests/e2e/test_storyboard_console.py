"""Alice works a live storyboard in Chromium the way the issue's "htmx out-of-band error in the
console" was met: Generate, the page's polls bringing takes to ready, a keyboard reorder while a
take renders, a teammate's edit and new scene arriving by the poll, her own edit through the
form, a pick and a deletion on the cards. The ``page`` fixture fails the test on any error the
console shows (htmx's ``htmx:oobErrorNoTarget`` and ``htmx:swapError`` among them), any script
error and any CSP violation.

Behind the page the background work really runs, as in test_new_user: the Flow emulator over
HTTP on loopback and the pump in a worker thread.
"""

from __future__ import annotations

import re
import time

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from generations.models import Generation, Scene
from generations.views import projects
from tests.conftest import make_image, make_scene
from tests.e2e.test_new_user import sign_in
from tests.film_support import ready_takes
from tests.views_support import add_scene_as, client_for, seen_settings

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _short_cadences(settings) -> None:
    settings.FLOWSITE_PAGE_POLL_SECONDS = 0.5
    settings.FLOWSITE_IDLE_POLL_SECONDS = 1


def titles(page: Page):
    return page.locator("#scenes article.card .card__title")


def card(page: Page, title: str):
    return page.locator("#scenes article.card", has=page.locator(".card__title", has_text=title))


def test_alice_generates_reorders_and_edits_while_polls_run_without_a_console_error(
    page: Page,
    project,
    alice,
    bob,
    emu,
    worker,
):
    for name, colour in (("Harbour", (30, 90, 200)), ("Lighthouse", (200, 90, 30))):
        make_scene(project, make_image(project, alice, color=colour), title=name)
    make_scene(project, make_image(project, bob, color=(90, 200, 30)), title="Storm")

    sign_in(page, "alice")
    page.goto(reverse("project-detail", args=[project.uuid]))
    expect(titles(page)).to_have_text(["Harbour", "Lighthouse", "Storm"])
    page.evaluate("window.__sameDocument = 'never reloaded'")

    # Generate: the card comes back with its take and an out-of-band poller; the polls then
    # bring it to ready.
    harbour = card(page, "Harbour")
    harbour.get_by_role("button", name=re.compile(r"^Generate 1 take")).click()
    expect(harbour.locator(".take .status")).to_have_count(1)
    expect(harbour.locator(".take .status")).to_have_text(["Ready"], timeout=60_000)
    expect(harbour.locator("video")).to_have_count(1)

    # A second take renders while alice moves Storm up by keyboard: the storyboard, the poller
    # and the announcer come back out of band.
    lighthouse = card(page, "Lighthouse")
    lighthouse.get_by_role("button", name=re.compile(r"^Generate 1 take")).click()
    expect(lighthouse.locator(".take .status")).to_have_count(1)
    handle = page.get_by_role(
        "button", name="Reorder Storm: drag, or press the up or down arrow key"
    )
    handle.focus()
    page.keyboard.press("ArrowUp")
    expect(page.locator("#announcer")).to_have_text("Saved the order: Harbour, Storm, Lighthouse.")
    expect(handle).to_be_focused()

    # Bob renames a scene and adds one; alice's polls bring both.
    storm = Scene.objects.get(title="Storm")
    edited = client_for(bob).post(
        reverse("scene-edit", args=[storm.uuid]),
        {
            "title": "Storm at sea",
            "prompt": storm.prompt,
            "aspect": storm.aspect,
            "model_key": storm.model_key,
            "seed": "",
            "takes": "1",
            "seen_settings": seen_settings(storm),
        },
    )
    assert edited.status_code == 302
    add_scene_as(bob, project, "Open sea")
    expect(titles(page)).to_have_text(
        ["Harbour", "Storm at sea", "Lighthouse", "Open sea"], timeout=20_000
    )
    expect(card(page, "Lighthouse").locator(".take .status")).to_have_text(
        ["Ready"], timeout=60_000
    )

    # Card actions: pick a take for the film, then delete the other scene's take.
    harbour = card(page, "Harbour")
    harbour.get_by_role("button", name="Pick for the film").click()
    expect(harbour.locator(".badge--pick")).to_have_text("Picked for the film")
    lighthouse = card(page, "Lighthouse")
    page.once("dialog", lambda dialog: dialog.accept())
    lighthouse.get_by_role("button", name="Delete take").click()
    expect(lighthouse.locator(".take")).to_have_count(0)
    assert page.evaluate("window.__sameDocument") == "never reloaded"

    # Alice edits a scene herself through the form and comes back to the live storyboard.
    card(page, "Open sea").get_by_role("link", name="Edit").click()
    page.get_by_label("Prompt").fill("The boat reaches open water at dawn")
    page.get_by_role("button", name="Save scene").click()
    expect(page.get_by_text("Saved Open sea.")).to_be_visible()
    expect(titles(page)).to_have_text(["Harbour", "Storm at sea", "Lighthouse", "Open sea"])
    # A few idle polls of the page as it rests.
    poller = page.locator("#poller")
    expect(poller).to_have_attribute("hx-trigger", "every 1000ms")
    since = poller.locator("#poller-since").input_value()
    client_for(bob).post(reverse("scene-move", args=[storm.uuid]), {"direction": "down"})
    expect(titles(page)).to_have_text(
        ["Harbour", "Lighthouse", "Storm at sea", "Open sea"], timeout=20_000
    )
    expect(poller.locator("#poller-since")).not_to_have_value(since)
    assert Generation.objects.filter(status=Generation.Status.READY).count() == 1


def test_a_poll_answered_after_alices_pick_replaced_its_poller_is_dropped_quietly(
    page: Page, live_server, transactional_db, emu, project, alice, monkeypatch
):
    ready_takes(project, alice, title="Harbour")
    make_scene(project, make_image(project, alice), title="Storm")
    sign_in(page, "alice")
    page.goto(reverse("project-detail", args=[project.uuid]))
    expect(titles(page)).to_have_text(["Harbour", "Storm"])

    # From now on a poll takes a second and a half to answer, and the next one brings a change.
    answer_poll = projects.get_poll_state_for_user

    def slowly(*args, **kwargs):
        time.sleep(1.5)
        return answer_poll(*args, **kwargs)

    monkeypatch.setattr(projects, "get_poll_state_for_user", slowly)
    Scene.objects.filter(title="Storm").update(title="Storm at sea", updated=timezone.now())
    with page.expect_request(lambda request: "/poll/" in request.url):
        pass
    # While that poll is out, alice's pick brings its card back with a new poller.
    harbour = card(page, "Harbour")
    harbour.get_by_role("button", name="Pick for the film").click()
    expect(harbour.locator(".badge--pick")).to_have_text("Picked for the film")

    # The old poller's answer has no poller left to land on: dropped, without htmx reporting
    # its out-of-band parts missing (the page fixture fails the test on any console error).
    # The new poller asks from the page's own token, so the change still arrives.
    expect(titles(page)).to_have_text(["Harbour", "Storm at sea"], timeout=20_000)
    expect(card(page, "Harbour").locator(".badge--pick")).to_have_text("Picked for the film")


def test_the_page_fixture_would_catch_an_htmx_out_of_band_error(
    page: Page, page_problems, project, alice
):
    # The guard itself: htmx reports an out-of-band element with nowhere to go on the console.
    make_scene(project, make_image(project, alice), title="Harbour")
    sign_in(page, "alice")
    page.goto(reverse("project-detail", args=[project.uuid]))
    expect(titles(page)).to_have_text(["Harbour"])
    with page.expect_console_message(lambda message: "oobErrorNoTarget" in message.text):
        page.evaluate(
            """htmx.swap("#announcer", '<p id="nowhere" hx-swap-oob="true">lost</p>',
                         {swapStyle: "innerHTML"})"""
        )
    assert any("htmx:oobErrorNoTarget" in problem for problem in page_problems), page_problems
    page_problems.clear()
