"""Alice's storyboard with nothing in flight, in a real Chromium: it still polls (slowly), so a
teammate's changes reach it without a reload, and a clip she is watching survives the swaps.

No worker runs here: takes stay where the test puts them. Both cadences are short so the test
does not wait on the 10 s default; what is checked is the switch between them.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from generations.emulator.render import render_clip
from generations.models import Generation, Scene
from tests.conftest import make_image, make_scene, png_bytes
from tests.e2e.test_new_user import sign_in
from tests.views_support import add_scene_as, attach_clip, client_for, make_take, seen_settings

pytestmark = pytest.mark.browser

RENDERING = "Clips are rendering; this page updates by itself."


@pytest.fixture(autouse=True)
def _short_cadences(settings) -> None:
    settings.FLOWSITE_PAGE_POLL_SECONDS = 0.3
    settings.FLOWSITE_IDLE_POLL_SECONDS = 1


def titles(page: Page):
    return page.locator("#scenes article.card .card__title")


def test_alice_sees_bobs_new_scene_and_takes_on_her_idle_page_without_reloading(
    page: Page, project, alice, bob, screenshots
):
    hour_ago = timezone.now() - timedelta(hours=1)
    harbour = make_scene(project, make_image(project, alice), title="Harbour", updated=hour_ago)
    make_take(harbour, alice, status=Generation.Status.FAILED, updated=hour_ago)

    sign_in(page, "alice")
    page.goto(reverse("project-detail", args=[project.uuid]))
    expect(titles(page)).to_have_text(["Harbour"])
    poller = page.locator("#poller")
    expect(poller).to_have_attribute("hx-trigger", "every 1000ms")
    expect(page.get_by_text(RENDERING)).to_have_count(0)
    # Anything that reloads or navigates the page forgets this.
    page.evaluate("window.__sameDocument = 'never reloaded'")

    add_scene_as(bob, project, "Open sea")
    # An idle poll or two (1 s here), with room for a busy 2-core machine.
    expect(titles(page)).to_have_text(["Harbour", "Open sea"], timeout=20_000)
    expect(poller).to_have_attribute("hx-trigger", "every 1000ms")
    expect(page.get_by_text(RENDERING)).to_have_count(0)

    # Bob presses Generate: alice's next idle poll brings the queued take and speeds up.
    open_sea = Scene.objects.get(title="Open sea")
    client_for(bob).post(
        reverse("scene-generate", args=[open_sea.uuid]),
        {"last_take": "0", "seen_settings": seen_settings(open_sea)},
    )
    card = page.locator("article.card", has_text="Open sea")
    expect(card.locator(".take .status")).to_have_text(["Queued"], timeout=20_000)
    expect(page.get_by_text(RENDERING)).to_be_visible()
    expect(poller).to_have_attribute("hx-trigger", "every 300ms")

    # Bob cancels it: nothing is in flight, and the page slows down again.
    take = open_sea.generations.get()
    client_for(bob).post(reverse("take-cancel", args=[take.uuid]))
    expect(card.locator(".take .status")).to_have_text(["Cancelled"], timeout=20_000)
    expect(page.get_by_text(RENDERING)).to_have_count(0)
    expect(poller).to_have_attribute("hx-trigger", "every 1000ms")
    assert page.evaluate("window.__sameDocument") == "never reloaded"
    page.screenshot(path=screenshots / "storyboard-idle-teammate.png", full_page=True)

    # Bob's take reached alice's page, so her Generate all counts it as seen and goes ahead.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Generate all").click()
    expect(page.get_by_text(re.compile(r"Queued \d+ takes? for \d+ scenes?\."))).to_be_visible()
    expect(page.get_by_text("New takes appeared")).to_have_count(0)


@pytest.fixture
def long_clip(tmp_path) -> tuple[bytes, bytes]:
    """A real 20 s H.264 clip and its poster, long enough to still be playing after a swap."""
    clip = render_clip(
        png_bytes(320, 180),
        "Waves roll in",
        portrait=False,
        clip_seconds=20,
        fps=5,
        out_dir=tmp_path,
        name="long",
    )
    return clip.video_path.read_bytes(), clip.poster_path.read_bytes()


def test_the_clip_alice_is_watching_keeps_playing_through_the_swaps_bobs_changes_bring(
    page: Page, project, alice, bob, long_clip
):
    hour_ago = timezone.now() - timedelta(hours=1)
    harbour = make_scene(project, make_image(project, alice), title="Harbour", updated=hour_ago)
    take = make_take(harbour, alice, status=Generation.Status.READY, updated=hour_ago)
    attach_clip(take, *long_clip)

    sign_in(page, "alice")
    page.goto(reverse("project-detail", args=[project.uuid]))
    clip_id = f"clip-{take.uuid}"
    expect(page.locator(f"#{clip_id}")).to_be_visible()
    page.evaluate(
        """id => {
            window.__watched = document.getElementById(id);
            window.__board = document.getElementById("scenes");
            window.__watched.muted = true;
            return window.__watched.play();
        }""",
        clip_id,
    )
    page.wait_for_function("() => window.__watched.currentTime > 1")
    before = page.evaluate("() => window.__watched.currentTime")

    add_scene_as(bob, project, "Open sea")
    expect(titles(page)).to_have_text(["Harbour", "Open sea"], timeout=20_000)

    after = page.evaluate(
        """id => ({
            boardSwapped: document.getElementById("scenes") !== window.__board,
            sameElement: document.getElementById(id) === window.__watched,
            playing: !window.__watched.paused && !window.__watched.ended,
            currentTime: window.__watched.currentTime,
        })""",
        clip_id,
    )
    assert after["boardSwapped"], "the whole storyboard came in a poll answer"
    assert after["sameElement"], "the clip is the very element alice started"
    assert after["playing"]
    assert after["currentTime"] >= before > 1

    # Bob generates another take of the same scene: this time only its card is swapped.
    page.evaluate("() => { window.__card = window.__watched.closest('article'); }")
    client_for(bob).post(
        reverse("scene-generate", args=[harbour.uuid]),
        {"last_take": "1", "seen_settings": seen_settings(harbour)},
    )
    card = page.locator("article.card", has_text="Harbour")
    expect(card.locator(".take .status")).to_have_text(["Queued", "Ready"], timeout=20_000)

    again = page.evaluate(
        """id => ({
            cardSwapped: window.__watched.closest("article") !== window.__card,
            sameElement: document.getElementById(id) === window.__watched,
            playing: !window.__watched.paused && !window.__watched.ended,
            currentTime: window.__watched.currentTime,
        })""",
        clip_id,
    )
    assert again["cardSwapped"], "the card came in a poll answer"
    assert again["sameElement"] and again["playing"]
    assert again["currentTime"] >= after["currentTime"]
    # And it plays on from there.
    page.wait_for_function("t => window.__watched.currentTime > t + 0.5", arg=again["currentTime"])
