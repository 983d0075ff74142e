"""The film page previews the picks in order, each within its trims, in a real Chromium.

Every step waits on what the page shows (the announced scene, the video's own state), never on
time; the trims are short so the sequence plays through in about a second.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from generations.take_actions import SEAM_SECONDS
from tests.e2e.test_new_user import sign_in
from tests.film_support import CLIP_SECONDS, extension_picked, picked

pytestmark = pytest.mark.browser


# Runs in the page: what played, as [announced scene, clip address, position] at each
# timeupdate while playing, and which clips played to their very end, so the test reads the
# whole sequence back at its end instead of racing to see each moment.
WATCH = """video => {
  window.__played = [];
  window.__ended = [];
  video.addEventListener("ended", () => window.__ended.push(video.src));
  const label = document.getElementById("film-preview-label");
  video.muted = true;
  video.addEventListener("timeupdate", () => {
    if (!video.paused) window.__played.push([label.textContent, video.src, video.currentTime]);
  });
}"""


def test_carol_previews_two_scenes_in_order_within_their_trims(
    page: Page, transactional_db, emu, project, alice, carol
):
    first = picked(project, alice, trim_in=0.5, trim_out=1.0)
    second = picked(project, alice, trim_in=1.0)  # to the clip's end
    first_url = reverse("media-take-video", args=[first.take.uuid])
    second_url = reverse("media-take-video", args=[second.take.uuid])
    sign_in(page, "carol")
    page.goto(reverse("project-film", args=[project.uuid]))

    preview = page.locator("[data-film-preview]")
    label = preview.locator("#film-preview-label")
    video = preview.locator("video")
    expect(preview).to_be_visible()
    expect(preview.get_by_role("button", name="Previous scene")).to_be_disabled()

    # Next and Previous, from the keyboard, move between the scenes without playing.
    preview.get_by_role("button", name="Next scene").focus()
    page.keyboard.press("Enter")
    expect(label).to_have_text(f"Scene 2 of 2: {second.scene}, take 1 (1 s to the end) (paused)")
    expect(preview.get_by_role("button", name="Next scene")).to_be_disabled()
    preview.get_by_role("button", name="Previous scene").focus()
    page.keyboard.press("Space")
    expect(label).to_have_text(f"Scene 1 of 2: {first.scene}, take 1 (0.5 s to 1 s) (paused)")

    # Play: the first clip from its trim in to its trim out, then the second from its trim in
    # to its end, by themselves.
    video.evaluate(WATCH)
    preview.get_by_role("button", name="Play").click()
    expect(label).to_have_text(
        "End of the film: 2 scenes played. Press Play to watch again.", timeout=15_000
    )
    expect(preview.get_by_role("button", name="Play")).to_be_visible()
    assert video.evaluate("video => video.paused")
    played = page.evaluate("() => window.__played")
    scenes = [text.split(":")[0] for text, _, _ in played]
    assert scenes == sorted(scenes) and set(scenes) == {"Scene 1 of 2", "Scene 2 of 2"}, scenes
    ones = [t for text, src, t in played if text.startswith("Scene 1") and src.endswith(first_url)]
    twos = [t for text, src, t in played if text.startswith("Scene 2") and src.endswith(second_url)]
    assert len(ones) + len(twos) == len(played), played
    # Within the trims: timeupdate comes about every quarter second, so the first clip is left
    # a little after 1.0 s, but well before its end (2 s) would have moved on by itself.
    assert ones and min(ones) >= 0.5 - 0.01 and max(ones) < 1.9, ones
    assert twos and min(twos) >= 1.0 - 0.01, twos
    # The first clip was left at its trim out; only the second, untrimmed, ran to its end.
    assert [src[-len(second_url) :] for src in page.evaluate("() => window.__ended")] == [
        second_url
    ]

    # Play again starts over from scene 1; a Pause at once leaves it paused once loaded.
    page.evaluate(
        "() => { const play = document.querySelector('[data-preview=play]');"
        " play.click(); play.click(); }"
    )
    expect(label).to_have_text(f"Scene 1 of 2: {first.scene}, take 1 (0.5 s to 1 s) (paused)")
    page.wait_for_function("video => video.readyState >= 1", arg=video.element_handle())
    assert video.evaluate("video => video.paused")
    expect(preview.get_by_role("button", name="Play")).to_be_visible()


def test_bob_watches_a_film_of_copied_and_re_encoded_clips_play_to_its_end(
    page: Page, transactional_db, emu, project, alice, bob, task_queue
):
    from generations import film, film_mix, film_tasks
    from generations.models import FilmRender

    picked(project, alice)
    picked(project, alice, trim_in=0.5, trim_out=1.5)
    render = film_tasks.start(project, alice)
    with film_tasks.clip_files(render.segments) as segments:
        probes = [film.probe(segment) for segment in segments]
        assert film_mix.copy_plan(segments, probes) == [True, False]  # a mixed film
    assert film_tasks.run_render(render.pk) == "ready", FilmRender.objects.get().reason

    sign_in(page, "bob")
    page.goto(reverse("project-film", args=[project.uuid]))
    video = page.locator("video.film-card__video")
    expect(video).to_be_visible()
    video.evaluate(
        "video => { window.__errors = []; video.addEventListener('error', () =>"
        " window.__errors.push(video.error && video.error.message)); video.muted = true;"
        " video.playbackRate = 2; return video.play(); }"
    )
    page.wait_for_function("video => video.ended", arg=video.element_handle(), timeout=20_000)
    assert page.evaluate("() => window.__errors") == []
    # Chromium decoded both groups of parameter sets: every frame was shown, none dropped.
    quality = video.evaluate(
        "video => { const q = video.getVideoPlaybackQuality();"
        " return [q.totalVideoFrames, q.corruptedVideoFrames, video.duration]; }"
    )
    assert quality[1] == 0 and abs(quality[2] - 3.0) < 0.1, quality


def test_carol_previews_a_take_and_its_extension_with_the_repeated_second_played_once(
    page: Page, transactional_db, emu, project, alice, bob, carol
):
    source = picked(project, alice)
    extension = extension_picked(source, bob)
    source_url = reverse("media-take-video", args=[source.take.uuid])
    extension_url = reverse("media-take-video", args=[extension.take.uuid])
    sign_in(page, "carol")
    page.goto(reverse("project-film", args=[project.uuid]))
    preview = page.locator("[data-film-preview]")
    video = preview.locator("video")
    expect(preview).to_be_visible()

    video.evaluate(WATCH)
    preview.get_by_role("button", name="Play").click()
    expect(preview.locator("#film-preview-label")).to_have_text(
        "End of the film: 2 scenes played. Press Play to watch again.", timeout=15_000
    )

    played = page.evaluate("() => window.__played")
    sources = [t for _, src, t in played if src.endswith(source_url)]
    extensions = [t for _, src, t in played if src.endswith(extension_url)]
    assert len(sources) + len(extensions) == len(played), played
    # The source (2 s) is left where the film cuts it, at 1 s (timeupdate comes about every
    # quarter second), not at its end: the extension starts with that second again.
    assert sources and max(sources) < CLIP_SECONDS - SEAM_SECONDS + 0.4, sources
    assert extensions and min(extensions) < 0.3, extensions
    ended = page.evaluate("() => window.__ended")
    assert not [src for src in ended if src.endswith(source_url)], ended
