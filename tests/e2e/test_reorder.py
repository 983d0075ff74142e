"""Bob reorders the storyboard in Chromium: by dragging a card's handle, by the arrow keys on
the handle, and by ↑/↓; each move is one request, the page never reloads, and focus stays on
the control that moved the card. Moves made while one is saving, and polls answered meanwhile,
never undo a move on screen."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from generations.models import Project, Scene
from tests.conftest import make_scene
from tests.e2e.test_new_user import sign_in
from tests.views_support import add_scene_as

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


def hold_the_first_order(page: Page) -> list:
    """Keeps the first order request waiting (its route, for the test to let go) so the next
    moves are made while it is in flight, whatever the machine's speed; the others go."""
    held: list = []

    def route(order) -> None:
        if held:
            order.continue_()
        else:
            held.append(order)

    page.route("**/scenes/order/", route)
    return held


def let_go(page: Page, held: list) -> None:
    # Playwright hands the route over between the test's own calls: wait for it, then send.
    for _ in range(500):
        if held:
            break
        page.wait_for_timeout(10)
    held[0].continue_()


def orders_shown(page: Page) -> None:
    """Records every order the storyboard shows from now on in ``window.__shown``."""
    page.evaluate(
        """() => {
          const shown = window.__shown = [];
          const record = () => {
            const now = [...document.querySelectorAll("#scenes article.card .card__title")]
              .map((title) => title.textContent.trim()).join(", ");
            if (shown[shown.length - 1] !== now) shown.push(now);
          };
          record();
          new MutationObserver(record).observe(document.body, { childList: true, subtree: true });
        }"""
    )


def test_bobs_moves_made_while_his_first_is_saving_are_saved_after_it(board: Page, project):
    page = board
    ids = {scene.title: str(scene.uuid) for scene in project.scenes.all()}
    sent = []
    page.on("request", lambda r: sent.append(r) if "/scenes/order/" in r.url else None)
    held = hold_the_first_order(page)
    orders_shown(page)

    handle = page.get_by_role(
        "button", name="Reorder Harbour: drag, or press the up or down arrow key"
    )
    handle.focus()
    with page.expect_request("**/scenes/order/"):
        page.keyboard.press("ArrowDown")
    # While the first is in flight: the handle again, then another card's ↓.
    page.keyboard.press("ArrowDown")
    page.get_by_role("button", name="Move Lighthouse down").click()
    expect(titles(page)).to_have_text(["Storm", "Lighthouse", "Harbour"])
    assert len(sent) == 1
    let_go(page, held)

    expect(page.locator("#announcer")).to_have_text("Saved the order: Storm, Lighthouse, Harbour.")
    expect(titles(page)).to_have_text(["Storm", "Lighthouse", "Harbour"])
    assert saved_titles(project) == ["Storm", "Lighthouse", "Harbour"]
    expect(page.get_by_role("button", name="Move Lighthouse down")).to_be_focused()
    # The moves made meanwhile went as one request, from the order the first one saved.
    assert len(sent) == 2
    second = parse_qs(sent[1].post_data)
    assert second["seen"] == [ids[t] for t in ("Lighthouse", "Harbour", "Storm")]
    assert second["scene"] == [ids[t] for t in ("Storm", "Lighthouse", "Harbour")]
    # Never undone on screen while the first answer came back.
    assert page.evaluate("window.__shown") == [
        "Harbour, Lighthouse, Storm",
        "Lighthouse, Harbour, Storm",
        "Lighthouse, Storm, Harbour",
        "Storm, Lighthouse, Harbour",
    ]
    assert page.evaluate("window.__sameDocument") == "never reloaded"


def test_bobs_moves_on_top_of_one_refused_after_alices_move_are_refused_in_words(
    board: Page, project
):
    page = board
    ids = {scene.title: str(scene.uuid) for scene in project.scenes.all()}
    sent = []
    page.on("request", lambda r: sent.append(r) if "/scenes/order/" in r.url else None)
    answered = []
    page.on("response", lambda r: answered.append(r) if "/scenes/order/" in r.url else None)
    held = hold_the_first_order(page)
    handle = page.get_by_role(
        "button", name="Reorder Harbour: drag, or press the up or down arrow key"
    )
    handle.focus()
    with page.expect_request("**/scenes/order/"):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(titles(page)).to_have_text(["Lighthouse", "Storm", "Harbour"])
    # Meanwhile alice puts Storm first, before bob's first move reaches the server.
    scenes = {scene.title: scene.uuid for scene in project.scenes.all()}
    with transaction.atomic():
        assert project.reorder_scenes(
            [scenes[t] for t in ("Storm", "Harbour", "Lighthouse")],
            seen=[scenes[t] for t in ("Harbour", "Lighthouse", "Storm")],
        )
    let_go(page, held)

    expect(page.locator("#scenes [role=alert]")).to_contain_text("the order was not saved")
    expect(titles(page)).to_have_text(["Storm", "Harbour", "Lighthouse"])
    assert saved_titles(project) == ["Storm", "Harbour", "Lighthouse"]
    # His second move was not dropped unsent with the first answer's redraw: it went once that
    # answer was in, from the order his screen showed, and the server refused it too; the
    # alert is that refusal's (the first answer, which it waited for, was not drawn).
    assert len(sent) == 2
    second = parse_qs(sent[1].post_data)
    assert second["seen"] == [ids[t] for t in ("Lighthouse", "Harbour", "Storm")]
    assert second["scene"] == [ids[t] for t in ("Lighthouse", "Storm", "Harbour")]
    assert len(answered) == 2
    assert page.evaluate("window.__sameDocument") == "never reloaded"


@pytest.fixture
def quick_polls(settings) -> None:
    # Before the page is drawn: its poller is rendered with the cadence.
    settings.FLOWSITE_IDLE_POLL_SECONDS = 0.5


def poll_answers(page: Page) -> None:
    """Records the status of every poll answer that reaches the page from now on in
    ``window.__polls``, as it is handled (drawn or dropped at once, in the same task)."""
    page.evaluate(
        """() => {
          const polls = window.__polls = [];
          document.addEventListener("htmx:beforeOnLoad", (event) => {
            if (event.detail.elt.id === "poller") polls.push(event.detail.xhr.status);
          });
        }"""
    )


def test_a_poll_answered_while_bobs_move_is_saving_does_not_undo_it(
    quick_polls, board: Page, project, alice
):
    page = board
    held = hold_the_first_order(page)
    orders_shown(page)
    handle = page.get_by_role(
        "button", name="Reorder Harbour: drag, or press the up or down arrow key"
    )
    handle.focus()
    with page.expect_request("**/scenes/order/"):
        page.keyboard.press("ArrowDown")
    # Meanwhile alice moves Storm to the top and back, and renames it: the order bob saw is
    # still the saved one, but the list changed since his page's token, so each poll now
    # answers with the whole storyboard, read before bob's move reached the server.
    scenes = {scene.title: scene.uuid for scene in project.scenes.all()}
    before = [scenes[t] for t in ("Harbour", "Lighthouse", "Storm")]
    storm_first = [scenes[t] for t in ("Storm", "Harbour", "Lighthouse")]
    with transaction.atomic():
        assert project.reorder_scenes(storm_first, seen=before)
    with transaction.atomic():
        assert project.reorder_scenes(before, seen=storm_first)
    Scene.objects.filter(uuid=scenes["Storm"]).update(title="Storm at sea", updated=timezone.now())
    poll_answers(page)
    # Two such answers come back while the move is out (the page keeps polling); neither
    # undoes bob's move on screen.
    page.wait_for_function("() => window.__polls.filter((status) => status === 200).length >= 2")
    expect(titles(page)).to_have_text(["Lighthouse", "Harbour", "Storm"])
    # Bob moves on before his first move's answer: from the order on his screen.
    page.keyboard.press("ArrowDown")
    let_go(page, held)

    expect(page.locator("#announcer")).to_have_text(
        "Saved the order: Lighthouse, Storm at sea, Harbour."
    )
    expect(titles(page)).to_have_text(["Lighthouse", "Storm at sea", "Harbour"])
    assert saved_titles(project) == ["Lighthouse", "Storm at sea", "Harbour"]
    expect(handle).to_be_focused()

    # The polls keep bringing alice's changes: a new scene.
    add_scene_as(alice, project, "Open sea")
    expect(titles(page)).to_have_text(["Lighthouse", "Storm at sea", "Harbour", "Open sea"])
    assert page.evaluate("window.__shown") == [
        "Harbour, Lighthouse, Storm",
        "Lighthouse, Harbour, Storm",
        "Lighthouse, Storm, Harbour",
        "Lighthouse, Storm at sea, Harbour",
        "Lighthouse, Storm at sea, Harbour, Open sea",
    ]
    assert page.evaluate("window.__sameDocument") == "never reloaded"
