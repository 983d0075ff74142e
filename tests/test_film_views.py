"""The film page: picks in order, missing scenes, trims, Render film, its live card, downloads."""

import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from generations import film_tasks, tasks
from generations.models import FilmRender, Pick
from tests.conftest import make_image, make_scene
from tests.film_support import picked
from tests.views_support import client_for, htmx_client_for


def film_page(project) -> str:
    return reverse("project-film", args=[project.uuid])


def test_the_film_page_lists_picks_in_scene_order_and_links_the_missing_scenes(
    emu, project, alice, carol
):
    first = picked(project, alice)
    gap = make_scene(project, make_image(project, alice), title="The storm")
    third = picked(project, alice)

    html = client_for(carol).get(film_page(project)).text

    assert html.index(f"pick-{first.scene.uuid}") < html.index(f"pick-{third.scene.uuid}")
    assert "Scene 2: The storm" in html and "has no picked take" in html
    assert f"{reverse('project-detail', args=[project.uuid])}#scene-{gap.uuid}" in html
    assert "Render film" not in html, "carol watches; she does not render"
    assert 'name="s' not in html, "nor trims"


def test_bob_sets_trims_and_wrong_ones_are_refused_in_words(emu, project, alice, bob):
    pick = picked(project, alice)
    url = reverse("scene-trim", args=[pick.scene.uuid])
    prefix = f"s{pick.scene.uuid.hex[:8]}"
    client = client_for(bob)

    saved = client.post(
        url, {f"{prefix}-trim_in": "0.5", f"{prefix}-trim_out": "1.75"}, follow=True
    )
    assert "trims saved" in saved.text
    pick.refresh_from_db()
    assert (float(pick.trim_in), float(pick.trim_out)) == (0.5, 1.75)

    for trim_in, trim_out, words in [
        ("1.5", "1", "Trim out (1 s) must come after trim in (1.5 s)."),
        ("abc", "", "Trim in is a number of seconds, like 1.5."),
        ("-1", "", "Trim in cannot be before the clip&#x27;s start (0 s)."),
        ("", "9", "Trim out (9 s) is past the clip&#x27;s end; it lasts 2.00 s."),
        ("3", "", "Trim in (3 s) must be inside the clip, which lasts 2.00 s."),
        ("99999", "", "Trim in is too large to be seconds into a clip."),
        ("", "99999", "Trim out is too large to be seconds into a clip."),
        ("1234567.5", "", "Trim in is too large to be seconds into a clip."),
    ]:
        refused = client.post(
            url, {f"{prefix}-trim_in": trim_in, f"{prefix}-trim_out": trim_out}, follow=True
        )
        assert words in refused.text, (trim_in, trim_out, refused.text[-3000:])
    pick.refresh_from_db()
    assert (float(pick.trim_in), float(pick.trim_out)) == (0.5, 1.75)


def test_render_film_queues_one_task_and_the_card_polls_until_it_is_done(
    emu, project, alice, bob, carol, task_queue, django_capture_on_commit_callbacks
):
    picked(project, alice)
    picked(project, alice)

    with django_capture_on_commit_callbacks(execute=True):
        card = htmx_client_for(bob).post(reverse("project-film-render", args=[project.uuid]))

    assert task_queue.count() == 1
    render = FilmRender.objects.get()
    assert render.requested_by == bob and render.status == FilmRender.Status.QUEUED
    poll = reverse("project-film-card", args=[project.uuid])
    assert f'hx-get="{poll}?said=' in card.text and "every 1000ms" in card.text
    assert "<progress" in card.text

    again = htmx_client_for(alice).post(reverse("project-film-render", args=[project.uuid]))
    assert "already rendering" in again.text
    assert FilmRender.objects.count() == 1

    assert film_tasks.run_render(render.pk) == "ready"
    done = htmx_client_for(carol).get(poll).text
    assert "hx-get" not in done, "a finished render stops the polling"
    video = reverse("media-film-video", args=[render.uuid])
    assert f'src="{video}"' in done
    assert f"{video}?download=1" in done


def test_a_render_whose_worker_was_killed_reads_failed_and_the_watchdog_fails_it_without_a_press(
    emu, project, alice, bob, carol, task_queue
):
    picked(project, alice)
    render = film_tasks.start(project, bob)
    # The worker got to 9 % and was killed: its partial file stays behind.
    part = film_tasks.part_path(render)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"the first seconds of the film")
    FilmRender.objects.filter(pk=render.pk).update(
        status=FilmRender.Status.RENDERING,
        progress=9,
        step="Encoding Scene 1 take 1",
        heartbeat=timezone.now() - timedelta(seconds=30),
    )
    poll = reverse("project-film-card", args=[project.uuid])
    stopped = (
        "The last render failed: The worker stopped in the middle of this render; nothing of it "
        "was kept. Render the film again."
    )

    tasks.watchdog()
    assert FilmRender.objects.get().status == FilmRender.Status.RENDERING, "a live render stays"
    assert "Rendering: Encoding Scene 1 take 1" in htmx_client_for(carol).get(poll).text

    # Nothing from the worker for 2 min 50 s: past the render's limit, before any reaper ran.
    FilmRender.objects.filter(pk=render.pk).update(
        heartbeat=timezone.now() - timedelta(minutes=2, seconds=50)
    )
    card = htmx_client_for(carol).get(poll).text
    assert stopped in card
    assert "Rendering: Encoding" not in card and "hx-get" not in card, "no frozen 9 % polled"

    tasks.watchdog()  # the every-minute schedule; nobody pressed Render film
    render.refresh_from_db()
    assert render.status == FilmRender.Status.FAILED
    assert stopped in htmx_client_for(carol).get(poll).text
    assert not part.exists(), "its partial file is removed"
    assert film_tasks.run_render(film_tasks.start(project, bob).pk) == "ready"


def announced(html: str) -> str | None:
    """What an answer puts in the film page's live region (None: it leaves it alone)."""
    found = re.search(r'<p id="film-announcer"[^>]*hx-swap-oob="innerHTML"[^>]*>(.*?)</p>', html)
    return found.group(1) if found else None


def poller_of(html: str) -> str:
    return re.search(r'id="film-card"[^>]* hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")


def test_carols_film_page_announces_each_state_of_bobs_render_once(
    emu, project, alice, bob, carol, task_queue
):
    picked(project, alice)
    page = client_for(carol).get(film_page(project)).text
    # The live region is on the page from the start, empty; the card's own lines are not
    # live regions (swapped in whole, they arrive already filled and are often not read).
    assert '<p id="film-announcer" class="visually-hidden" aria-live="polite"></p>' in page

    started = htmx_client_for(bob).post(reverse("project-film-render", args=[project.uuid])).text
    assert announced(started) == "Queued: waiting for a worker"
    assert 'role="status"' not in started

    carols = htmx_client_for(carol)
    first = carols.get(reverse("project-film-card", args=[project.uuid])).text
    assert announced(first) == "Queued: waiting for a worker", "her page had not said it yet"
    assert announced(carols.get(poller_of(first)).text) is None, "said once, not every poll"

    render = FilmRender.objects.get()
    render.status, render.step = FilmRender.Status.RENDERING, "Joining scene 1 of 1"
    render.save(update_fields=["status", "step"])
    moved = carols.get(poller_of(first)).text
    assert announced(moved) == "Rendering: Joining scene 1 of 1"
    assert announced(carols.get(poller_of(moved)).text) is None

    # (Put back in the queue for the worker to take and finish.)
    FilmRender.objects.filter(pk=render.pk).update(status=FilmRender.Status.QUEUED)
    assert film_tasks.run_render(render.pk) == "ready"
    assert announced(carols.get(poller_of(moved)).text) == "The film is ready."


def test_carol_watches_and_downloads_the_film_with_ranges_charlie_gets_404(
    emu, project, alice, carol, charlie
):
    picked(project, alice)
    render = film_tasks.start(project, alice)
    film_tasks.run_render(render.pk)
    render.refresh_from_db()
    url = reverse("media-film-video", args=[render.uuid])

    whole = client_for(carol).get(url + "?download=1")
    assert whole.status_code == 200 and whole["Content-Type"] == "video/mp4"
    assert "attachment" in whole["Content-Disposition"]
    body = b"".join(whole.streaming_content)
    assert len(body) == render.video_size
    part = client_for(carol).get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(b"".join(part.streaming_content)) == 100
    assert client_for(charlie).get(url).status_code == 404
    assert client_for(charlie).get(film_page(project)).status_code == 404


def test_without_javascript_render_film_redirects_to_the_film_page(emu, project, alice, task_queue):
    picked(project, alice)

    response = client_for(alice).post(reverse("project-film-render", args=[project.uuid]))

    assert response.status_code == 302 and response["Location"] == film_page(project)


def test_render_film_with_nothing_picked_says_so(project, alice):
    html = htmx_client_for(alice).post(reverse("project-film-render", args=[project.uuid])).text

    assert "No scene has a picked take yet" in html
    assert not FilmRender.objects.exists()


@pytest.mark.parametrize("user", ["carol"])
def test_carol_may_not_render_or_trim(emu, project, alice, carol, user):
    pick = picked(project, alice)
    client = client_for(carol)

    assert client.post(reverse("project-film-render", args=[project.uuid])).status_code == 403
    trim = reverse("scene-trim", args=[pick.scene.uuid])
    assert client.post(trim, {"trim_in": "1"}).status_code == 403
    assert not FilmRender.objects.exists()
    assert Pick.objects.get().trim_in is None


def test_the_storyboard_command_renders_the_film_and_prints_its_segments(
    emu, project, alice, tmp_path
):
    from io import StringIO

    from django.core.management import call_command

    picked(project, alice)
    make_scene(project, make_image(project, alice), title="Unmade")
    out, err = StringIO(), StringIO()

    call_command(
        "storyboard",
        "film",
        "--project",
        "Poseidon",
        "--out",
        str(tmp_path / "films" / "f.mp4"),  # a folder made for it, as export makes its own
        stdout=out,
        stderr=err,
    )

    text = out.getvalue()
    assert re.search(r"Wrote .*f\.mp4: 2\.00 s, 1280x720, 1 segment \(stream copy\)", text), text
    assert "Scene 1 take 1" in text and "silence" in text
    assert "Scene 2 (Unmade) has no pick" in err.getvalue()
    assert (tmp_path / "films" / "f.mp4").stat().st_size > 0


def test_all_latest_fills_unpicked_scenes_with_their_newest_ready_take(
    emu, project, alice, tmp_path
):
    from io import StringIO

    from django.core.management import call_command

    from tests.film_support import ready_takes

    picked(project, alice)
    ready_takes(project, alice, takes=2)
    out = StringIO()

    call_command(
        "storyboard",
        "film",
        "--project",
        "Poseidon",
        "--out",
        str(tmp_path / "f.mp4"),
        "--all-latest",
        stdout=out,
    )

    assert "4.00 s" in out.getvalue() and "Scene 2 take 2" in out.getvalue()


def test_two_renders_of_the_same_minute_read_apart_and_the_newest_is_marked(project, alice, bob):
    minute = timezone.now().replace(second=0, microsecond=0)
    renders = [
        FilmRender.objects.create(
            project=project,
            requested_by=alice,
            status=FilmRender.Status.READY,
            video=default_storage.save(f"films/{project.uuid}/{second}.mp4", ContentFile(b"mp4")),
            segments=[{"scene": 1, "scene_name": "Scene 1", "take": 1}],
            created=minute.replace(second=second),
        )
        for second in (5, 40)
    ]
    client = client_for(bob)

    html = client.get(film_page(project)).text
    downloads = [
        client.get(reverse("media-film-video", args=[render.uuid]) + "?download=1")
        for render in renders
    ]

    versions = re.findall(r'<li class="film-version[^>]*>(.*?)<details[ >]', html, re.S)
    lines = [" ".join(version.split()) for version in versions]
    local = timezone.localtime(minute)
    assert lines[0].startswith(
        f"<strong>Version 2</strong> (newest: the film above) · "
        f"{local:%Y-%m-%d %H:%M}:40 by alice · 1 scene · Ready"
    )
    assert lines[1].startswith(
        f"<strong>Version 1</strong> · {local:%Y-%m-%d %H:%M}:05 by alice · 1 scene · Ready"
    )
    assert [download["Content-Disposition"].split("filename=")[1] for download in downloads] == [
        f'"poseidon-film-{local:%Y%m%d-%H%M}05.mp4"',
        f'"poseidon-film-{local:%Y%m%d-%H%M}40.mp4"',
    ]
