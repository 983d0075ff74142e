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
from django.utils import timezone
from playwright.sync_api import Page, expect

from generations.models import Comment, Generation, Pick
from tests.e2e.test_new_user import sign_in
from tests.film_support import ready_takes
from tests.views_support import add_scene_as, make_take

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


def test_alices_half_typed_prompt_and_comment_survive_bob_commenting_on_the_same_take(
    page: Page, live_server, transactional_db, emu, project, alice, bob
):
    [take] = ready_takes(project, alice, title="Harbour")
    open_storyboard(page, project, "alice")
    harbour = card(page, "Harbour")
    comments = harbour.locator(".comment__body")

    prompt = harbour.get_by_label("What happens next (extend take 1)")
    prompt.click()
    page.keyboard.type("the lighthouse beam sweeps")
    for _ in range(6):
        page.keyboard.press("ArrowLeft")
    Comment.post(take, bob, "Lovely light")
    # The poll brings bob's comment on a redrawn card: her words, focus and caret are kept.
    expect(comments).to_have_text(["Lovely light"])
    expect(prompt).to_have_value("the lighthouse beam sweeps")
    expect(prompt).to_be_focused()
    assert caret(page) == [20, 20]
    page.keyboard.type("slowly ")
    expect(prompt).to_have_value("the lighthouse beam slowly sweeps")

    note = harbour.get_by_label("Comment on take 1")
    note.click()
    page.keyboard.type("too dark at the end")
    page.keyboard.press("Shift+Home")
    Comment.post(take, bob, "Agreed")
    expect(comments).to_have_text(["Lovely light", "Agreed"])
    expect(note).to_have_value("too dark at the end")
    expect(note).to_be_focused()
    assert caret(page) == [0, 19]

    # Her own comment posted: its box comes back empty; the Extend prompt she left stays.
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    expect(comments).to_have_text(["Lovely light", "Agreed", "too dark at the end"])
    expect(harbour.locator(".card__notice")).to_have_text("Commented on take 1.")
    expect(note).to_have_value("")
    expect(prompt).to_have_value("the lighthouse beam slowly sweeps")
    assert page.evaluate("window.__sameDocument") == "never reloaded"


def test_alices_folded_takes_stay_open_with_her_comment_while_a_take_renders(
    page: Page, live_server, transactional_db, emu, project, alice, bob
):
    first, second = ready_takes(project, alice, title="Harbour", takes=2)
    Pick.choose(second, alice)
    open_storyboard(page, project, "alice")
    harbour = card(page, "Harbour")
    harbour.get_by_text("1 other take").click()
    note = harbour.get_by_label("Comment on take 1")
    note.fill("the better light")

    # Bob's Generate: a take on the same card changes state, the poll redraws it.
    rendering = make_take(second.scene, bob, status=Generation.Status.PENDING)
    expect(harbour.locator("li.take")).to_have_count(3)
    expect(note).to_be_visible()
    expect(note).to_have_value("the better light")
    expect(note).to_be_focused()
    Generation.objects.filter(pk=rendering.pk).update(
        status=Generation.Status.ACTIVE, updated=timezone.now()
    )
    expect(take_item(page, "Harbour", 3).locator(".status")).to_have_text("Rendering")
    expect(note).to_have_value("the better light")


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


def bobs_upscale_held(page: Page, project):
    """Bob's storyboard, with his Upscale of Harbour's take sent and its answer held back:
    Harbour's card and the held request."""
    open_storyboard(page, project, "bob")
    harbour = card(page, "Harbour")
    record_notices(page)
    held = hold(page, "**/upscale/")
    harbour.get_by_role("button", name="Upscale to 1080p").click()
    return harbour, waited_for(page, held)


def test_bobs_upscale_answered_after_a_poll_redrew_the_storyboard_shows_on_his_card(
    page: Page, live_server, transactional_db, emu, project, alice, bob, expected_refusals
):
    [take] = ready_takes(project, alice, title="Harbour")
    harbour, upscale = bobs_upscale_held(page, project)

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


def test_bobs_upscale_answered_after_his_own_move_redrew_the_storyboard_shows_on_his_card(
    page: Page, live_server, transactional_db, emu, project, alice, bob
):
    ready_takes(project, alice, title="Harbour")
    add_scene_as(alice, project, "Storm")
    harbour, upscale = bobs_upscale_held(page, project)

    # Meanwhile bob moves Storm up: the order's answer redraws the whole storyboard.
    page.get_by_role("button", name="Move Storm up").click()
    expect(page.locator("#announcer")).to_have_text("Saved the order: Storm, Harbour.")
    upscale.continue_()

    # The upscale's answer lands on Harbour's card as it is now, in its new place.
    page.wait_for_function("() => window.__notices.includes('Upscaling take 1 to 1080p.')")
    expect(titles(page)).to_have_text(["Storm", "Harbour"])
    expect(harbour.locator(".take__upscaling")).to_have_text(re.compile("Upscaling to 1080p"))
    assert page.evaluate("window.__sameDocument") == "never reloaded"


def press(page: Page, control) -> None:
    control.focus()
    page.keyboard.press("Enter")


def test_bobs_focus_stays_on_the_card_after_each_of_its_actions(
    page: Page, live_server, transactional_db, emu, project, alice, bob
):
    ready_takes(project, alice, title="Harbour", takes=2)
    [storm_take] = ready_takes(project, alice, title="Storm")
    storm = storm_take.scene
    make_take(storm, alice, status=Generation.Status.FAILED, reason="Flow refused the prompt.")
    make_take(storm, alice, status=Generation.Status.PENDING)
    page.on("dialog", lambda dialog: dialog.accept())
    open_storyboard(page, project, "bob")
    harbour, storm_card = card(page, "Harbour"), card(page, "Storm")
    heading = {title: card(page, title).locator(".card__title") for title in ("Harbour", "Storm")}

    # Pick: the same form's button, now Unpick.
    press(page, take_item(page, "Harbour", 1).get_by_role("button", name="Pick for the film"))
    expect(harbour.locator(".badge--pick")).to_have_count(1)
    expect(take_item(page, "Harbour", 1).get_by_role("button", name="Unpick")).to_be_focused()

    # Comment: the Comment button again.
    take_item(page, "Harbour", 1).get_by_label("Comment on take 1").fill("keep this one")
    comment = take_item(page, "Harbour", 1).get_by_role("button", name="Comment", exact=True)
    press(page, comment)
    expect(harbour.locator(".comment__body")).to_have_text(["keep this one"])
    expect(comment).to_be_focused()

    # Extend and Last frame: the same button, on the card and after the storyboard (a new
    # scene each) is redrawn by the poll.
    take_item(page, "Harbour", 1).get_by_label("What happens next").fill("the beam sweeps")
    extend = take_item(page, "Harbour", 1).get_by_role("button", name="Extend")
    press(page, extend)
    expect(titles(page)).to_have_count(3)
    expect(extend).to_be_focused()
    last_frame = take_item(page, "Harbour", 1).get_by_role("button", name="Last frame")
    press(page, last_frame)
    expect(titles(page)).to_have_count(4)
    expect(last_frame).to_be_focused()

    # Upscale: its button is gone (the upscale is under way): the card's heading.
    press(page, take_item(page, "Harbour", 1).get_by_role("button", name="Upscale to 1080p"))
    expect(harbour.locator(".card__notice")).to_have_text("Upscaling take 1 to 1080p.")
    expect(heading["Harbour"]).to_be_focused()

    # Cancel (its take is cancelled: the heading), Retry (a take is retried once, so its
    # button goes: the heading), Delete take (the card).
    press(page, take_item(page, "Storm", 3).get_by_role("button", name="Cancel"))
    expect(take_item(page, "Storm", 3).locator(".status")).to_have_text("Cancelled")
    expect(heading["Storm"]).to_be_focused()
    retry = take_item(page, "Storm", 2).get_by_role("button", name="Retry as a new take")
    press(page, retry)
    expect(storm_card.locator("li.take")).to_have_count(4)
    expect(retry).to_have_count(0)
    expect(heading["Storm"]).to_be_focused()
    press(page, take_item(page, "Storm", 3).get_by_role("button", name="Delete take"))
    expect(storm_card.locator("li.take")).to_have_count(3)
    expect(heading["Storm"]).to_be_focused()
    assert page.evaluate("window.__sameDocument") == "never reloaded"
