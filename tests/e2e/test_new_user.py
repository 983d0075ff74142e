"""What a new user does, in a real Chromium against the live server.

Alice signs in, creates a project, adds a scene with a start image, asks for two takes and
watches the cards turn from queued to ready without the page reloading; then she plays a clip
in the gallery. Behind the page the background work really runs: the Flow emulator over HTTP
on loopback, and a worker thread running the pump — ``tasks.pump``, exactly the task a
django-q2 worker runs — against the same test database.

Why a thread and not a `manage.py qcluster` subprocess: the cluster would need the test
database, the emulator's port and the media folder passed to it through the environment, and
takes seconds to start on a 2-core machine; the thread sees this test's settings as they are
and starts at once. What the cluster adds (enqueueing, forking, the broker) is covered by the
background-work tests; this file is about what a person sees.

With the Content-Security-Policy on, the ``page`` fixture fails any test during which the
browser reported a violation or a script error.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from generations.engines.catalogue import TIER_ONE
from generations.models import AccountGrant, FlowAccount, Generation, Membership, Project
from tests.conftest import PASSWORD, make_image, make_scene

pytestmark = pytest.mark.browser

IN_FLIGHT_LABELS = re.compile(
    "|".join(re.escape(str(Generation.Status(s).label)) for s in Generation.IN_FLIGHT)
)


@pytest.fixture(autouse=True)
def _quick_page_polls(settings) -> None:
    settings.FLOWSITE_PAGE_POLL_SECONDS = 1


def start_image(folder: Path) -> Path:
    """A 16:9 JPEG with something to look at: sky, sea, a sun and a boat."""
    image = Image.new("RGB", (1280, 720), (126, 176, 222))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 430, 1280, 720), fill=(28, 86, 140))
    draw.ellipse((920, 90, 1060, 230), fill=(255, 214, 102))
    draw.polygon([(420, 520), (700, 520), (650, 580), (470, 580)], fill=(120, 60, 30))
    draw.polygon([(560, 300), (560, 510), (680, 510)], fill=(250, 250, 245))
    path = folder / "harbour.jpg"
    image.save(path, "JPEG", quality=88)
    return path


def settle_for_screenshot(page: Page) -> None:
    # Chromium draws its loading spinner over a clip for a moment after the element appears
    # (checked: gone a second later, with or without a poster); a picture for a person to
    # look at should show the page as it rests.
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)


def sign_in(page: Page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()


def test_alice_lays_out_a_scene_and_watches_two_takes_render_then_plays_one(
    page: Page, worker, flow_emulator, tmp_path, screenshots
):
    alice = User.objects.create_user("alice", "alice@example.org", PASSWORD)
    studio = FlowAccount.objects.create(
        label="Studio", tier=TIER_ONE, bearer_token=flow_emulator.token
    )
    # Staff let alice spend it; the new-project form then picks it for her.
    AccountGrant.objects.create(account=studio, user=alice)

    sign_in(page, "alice")
    page.get_by_role("link", name="New project").click()
    page.get_by_label("Name").fill("Harbour film")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Harbour film")).to_be_visible()
    # The storyboard is served with the policy the whole test runs under.
    assert "'nonce-" in page.evaluate(
        "fetch(location.href).then(r => r.headers.get('content-security-policy'))"
    )

    page.get_by_role("link", name="Add scene").click()
    page.get_by_label("Start image").set_input_files(start_image(tmp_path))
    # The preview appears before the upload (a data: URL, which the policy allows).
    preview = page.locator("[data-image-input]:has(input[name=start_image_file]) img")
    expect(preview).to_be_visible()
    assert preview.evaluate("img => img.src.startsWith('data:image/jpeg')")
    page.get_by_label("Title").fill("Harbour at dawn")
    page.get_by_label("Prompt").fill("The boat slips out of the harbour as the sun comes up")
    page.get_by_label("Takes").fill("2")
    page.screenshot(path=screenshots / "scene-form.png", full_page=True)
    page.get_by_role("button", name="Add scene").click()

    card = page.locator("article.card", has_text="Harbour at dawn")
    expect(card).to_be_visible()
    # Anything that reloads or navigates the page forgets this.
    page.evaluate("window.__sameDocument = 'never reloaded'")
    storyboard_url = page.url

    card.get_by_role("button", name="Generate 2 takes").click()
    statuses = card.locator(".take .status")
    expect(statuses).to_have_count(2)
    # First in flight (queued, submitting, waiting, rendering, downloading) ...
    expect(statuses.first).to_have_text(IN_FLIGHT_LABELS)
    expect(card.locator("video")).to_have_count(0)
    # ... then ready with a clip each, brought by the page's own polls.
    expect(statuses).to_have_text(["Ready", "Ready"], timeout=60_000)
    expect(card.locator("video")).to_have_count(2)
    assert page.evaluate("window.__sameDocument") == "never reloaded"
    assert page.url == storyboard_url
    settle_for_screenshot(page)
    page.screenshot(path=screenshots / "storyboard.png", full_page=True)

    page.get_by_role("link", name="Gallery").click()
    alice_section = page.locator(
        "section.gallery-section", has=page.get_by_role("heading", name=re.compile(r"^alice\b"))
    )
    expect(alice_section.locator(".count")).to_have_text("2 clips")
    clips = alice_section.locator("video")
    expect(clips).to_have_count(2)

    clip = clips.first
    clip.scroll_into_view_if_needed()
    # Chromium's own controls: the play button sits at the left of the bar along the bottom
    # (a click elsewhere on the picture does not start a clip that has not loaded yet).
    box = clip.bounding_box()
    clip.click(position={"x": 24, "y": box["height"] - 48})
    # Really playing: time moves on (the clip is 2 s; it may be over by the time we look, so
    # ask what was played), and the decoded frames are the emulator's 1280x720.
    page.wait_for_function(
        "video => video.played.length > 0 && video.played.end(0) > 0.3 && video.currentTime > 0",
        arg=clip.element_handle(),
    )
    assert clip.evaluate("video => [video.videoWidth, video.videoHeight]") == [1280, 720]
    settle_for_screenshot(page)
    page.screenshot(path=screenshots / "gallery.png", full_page=True)

    assert Generation.objects.filter(status=Generation.Status.READY).count() == 2


def test_carol_the_viewer_sees_the_storyboard_without_any_generate_button(
    page: Page, alice, carol, account, screenshots
):
    project = Project.objects.create(name="Poseidon", account=account, created_by=alice)
    project.add_member(alice, Membership.Role.OWNER)
    project.add_member(carol, Membership.Role.VIEWER)
    make_scene(project, make_image(project, alice), title="Trident", prompt="Waves crash")

    sign_in(page, "carol")
    page.get_by_role("link", name="Poseidon").click()
    expect(page.get_by_text("You are viewer.")).to_be_visible()
    card = page.locator("article.card", has_text="Trident")
    expect(card.get_by_text("Waves crash")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Generate"))).to_have_count(0)
    for name in ("Add scene", "Edit"):
        expect(page.get_by_role("link", name=name)).to_have_count(0)
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    page.screenshot(path=screenshots / "storyboard-viewer.png", full_page=True)


def test_the_page_fixture_would_catch_a_csp_violation(page: Page, page_problems, db):
    # The guard itself: an inline style, which the policy forbids, is reported.
    page.goto("/accounts/login/")
    page.evaluate(
        "document.body.insertAdjacentHTML('beforeend', '<p style=\"color: red\">inline</p>')"
    )
    page.wait_for_timeout(200)
    page.get_by_label("Username").focus()  # one more round trip for the report to arrive
    assert any("style-src" in problem for problem in page_problems), page_problems
    page_problems.clear()


def test_the_admin_runs_under_the_same_policy_without_a_violation(page: Page, project, alice):
    make_scene(project, make_image(project, alice), title="Trident", prompt="Waves crash")
    root = User.objects.create_superuser("root", "root@example.org", PASSWORD)
    # The media views serve members only, superusers included, so the thumbnail needs this.
    project.add_member(root, Membership.Role.VIEWER)
    page.goto("/admin/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto("/admin/generations/scene/")
    page.get_by_role("link", name="Trident").click()
    # The change page's scripts (inlines, the related-object widgets) have run.
    expect(page.get_by_role("heading", name="Change scene")).to_be_visible()
    preview = page.locator(".field-start_image_preview img")
    expect(preview).to_be_visible()
    # Served by the private media view, inside the policy's img-src, and really decoded.
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=preview.element_handle()
    )
    page.goto("/admin/generations/generation/")
    expect(
        page.get_by_role("heading", name=re.compile("Select take|Select generation"))
    ).to_be_visible()
