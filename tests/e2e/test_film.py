"""Two members pick takes, the film renders with its progress bar moving, and it plays, in a
real Chromium.

The takes are real clips from the emulator. The render runs in a thread of this test as the
django-q2 worker would run it (``film_tasks.run_render``), slowed a little per frame so that the
page's own poll can be seen moving the bar.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from generations import film_tasks
from generations.models import FilmRender, Pick
from tests.e2e.test_new_user import sign_in
from tests.film_support import ready_takes

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _quick_polls(settings) -> None:
    settings.FLOWSITE_PAGE_POLL_SECONDS = 1
    settings.FLOWSITE_IDLE_POLL_SECONDS = 1
    settings.FLOWSITE_FILM_POLL_SECONDS = 0.5


def test_alice_and_bob_pick_then_the_film_renders_with_progress_and_plays(
    page: Page, chromium, live_server, transactional_db, emu, project, alice, bob, screenshots
):
    [harbour_take] = ready_takes(project, alice, title="Harbour")
    storm_takes = ready_takes(project, alice, title="Storm", takes=2)

    # Alice picks take 1 of the first scene on her storyboard.
    sign_in(page, "alice")
    page.goto(reverse("project-detail", args=[project.uuid]))
    harbour = page.locator("article.card", has_text="Harbour")
    harbour.get_by_role("button", name="Pick for the film").click()
    expect(harbour.locator(".badge--pick")).to_be_visible()

    # Bob picks take 2 of the second scene in his own browser; alice's page shows it by itself.
    bobs_context = chromium.new_context(base_url=live_server.url)
    try:
        bobs = bobs_context.new_page()
        sign_in(bobs, "bob")
        bobs.goto(reverse("project-detail", args=[project.uuid]))
        storm_on_bobs = bobs.locator("article.card", has_text="Storm")
        storm_on_bobs.locator("li.take", has_text="Take 2").get_by_role(
            "button", name="Pick for the film"
        ).click()
        expect(storm_on_bobs.locator(".badge--pick")).to_be_visible()
    finally:
        bobs_context.close()
    storm = page.locator("article.card", has_text="Storm")
    expect(storm.locator(".takes--pick")).to_contain_text("Take 2", timeout=20_000)
    assert Pick.objects.get(scene=storm_takes[1].scene).take == storm_takes[1]
    assert Pick.objects.get(scene=harbour_take.scene).take == harbour_take

    # Alice renders the film; a worker picks the task up.
    page.get_by_role("link", name="Film").click()
    expect(page.get_by_role("heading", name="Picks")).to_be_visible()
    page.get_by_role("button", name="Render film").click()
    expect(page.locator("progress.film-card__progress")).to_be_visible()
    # The page's live region (there from the start) says what the card shows.
    announcer = page.locator("#film-announcer")
    expect(announcer).to_have_text("Queued: waiting for a worker")
    render = FilmRender.objects.get()

    original = film_tasks._Reporter.__call__

    def slowly(self, done, total, step):
        time.sleep(0.02)  # a render long enough for the page to watch
        original(self, done, total, step)

    film_tasks._Reporter.__call__ = slowly
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(film_tasks.run_render(render.pk)))
    try:
        worker.start()
        seen: set[int] = set()
        deadline = time.monotonic() + 30
        while worker.is_alive() and time.monotonic() < deadline:
            value = page.evaluate(
                "() => { const bar = document.querySelector('progress.film-card__progress');"
                " return bar ? Number(bar.value) : -1; }"
            )
            if value >= 0:
                seen.add(value)
            time.sleep(0.1)
        worker.join(30)
    finally:
        film_tasks._Reporter.__call__ = original
    assert outcome == ["ready"]
    assert len([v for v in seen if 0 < v < 100]) >= 2, f"the bar moved: {sorted(seen)}"

    # The finished film replaces the bar and plays.
    film = page.locator("video.film-card__video")
    expect(film).to_be_visible(timeout=20_000)
    expect(page.locator("progress.film-card__progress")).to_have_count(0)
    expect(announcer).to_have_text("The film is ready.")
    film.evaluate("video => { video.muted = true; return video.play(); }")
    page.wait_for_function(
        "video => video.currentTime > 0.5", arg=film.element_handle(), timeout=20_000
    )
    assert film.evaluate("video => [video.videoWidth, video.videoHeight]") == [1280, 720]
    assert film.evaluate("video => Math.round(video.duration)") == 4
    page.screenshot(path=screenshots / "film.png", full_page=True)


def test_carol_plays_and_pauses_the_takes_of_a_scene_together(
    page: Page, transactional_db, emu, project, alice, carol
):
    takes = ready_takes(project, alice, title="Storm", takes=2)

    sign_in(page, "carol")
    page.goto(reverse("scene-compare", args=[takes[0].scene.uuid]))
    videos = page.locator("video[data-compare-clip]")
    expect(videos).to_have_count(2)
    page.get_by_role("button", name="Play all").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('video[data-compare-clip]')]"
        ".every(v => !v.paused && v.currentTime > 0.2)"
    )
    page.get_by_role("button", name="Pause all").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('video[data-compare-clip]')].every(v => v.paused)"
    )


def test_alice_renders_the_film_from_the_keyboard_and_keeps_her_place_through_its_polls(
    page: Page, transactional_db, emu, project, alice
):
    for title in ("Harbour", "Storm"):
        [take] = ready_takes(project, alice, title=title)
        Pick.choose(take, alice)
    sign_in(page, "alice")
    page.goto(reverse("project-film", args=[project.uuid]))
    card = page.locator("#film-card")
    heading = card.get_by_role("heading", name="Render")

    def next_poll() -> None:
        # The queued render (no worker here) keeps the card polling; wait for one redraw.
        page.evaluate("() => { window.__card = document.getElementById('film-card'); }")
        page.wait_for_function("() => document.getElementById('film-card') !== window.__card")

    page.get_by_role("button", name="Render film").focus()
    page.keyboard.press("Enter")
    expect(card.locator("progress.film-card__progress")).to_be_visible()
    # Render film is disabled while the render runs: the focus goes to the card's heading.
    expect(heading).to_be_focused()
    next_poll()
    expect(heading).to_be_focused()

    # A control still on the redrawn card keeps the focus: the new version's list of takes,
    # opened from the keyboard, stays open through the polls too.
    takes = card.locator(".film-version summary", has_text="Takes")
    takes.focus()
    page.keyboard.press("Enter")
    expect(card.locator(".film-version details")).to_have_attribute("open", "")
    next_poll()
    expect(takes).to_be_focused()
    expect(card.locator(".film-version details")).to_have_attribute("open", "")

    # The card's polls never take the focus from the rest of the page.
    trim_in = page.get_by_label("Trim in (s)").first
    trim_in.focus()
    next_poll()
    next_poll()
    expect(trim_in).to_be_focused()
