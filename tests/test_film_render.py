"""Rendering the film on real MP4s from the emulator: lengths, sound, aspect, and crashes."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import av
import pytest
from django.utils import timezone

from generations import film, film_tasks, heartbeat
from generations.models import CannotGenerate, FilmRender, Generation, delete_takes
from tests.film_support import CLIP_SECONDS, FPS, decode_all, media_path, picked, ready_takes

FRAME = 1 / FPS


def render_now(project, user) -> FilmRender:
    """Ask for a render as the page does, and run the worker's task here."""
    render = film_tasks.start(project, user)
    assert film_tasks.run_render(render.pk) == "ready", FilmRender.objects.get(pk=render.pk).reason
    render.refresh_from_db()
    return render


def test_the_film_lasts_the_sum_of_the_trimmed_picks_and_plays_through_with_sound(
    emu, project, alice, task_queue
):
    picked(project, alice)
    picked(project, alice, trim_in=0.5)
    picked(project, alice, trim_in=0.25, trim_out=1.5)

    render = render_now(project, alice)

    expected = CLIP_SECONDS + (CLIP_SECONDS - 0.5) + (1.5 - 0.25)
    decoded = decode_all(media_path(render.video.name))
    assert abs(decoded["video_seconds"] - expected) <= 3 * FRAME, decoded
    assert abs(render.duration - expected) <= 3 * FRAME
    assert abs(decoded["audio_seconds"] - decoded["video_seconds"]) <= FRAME, decoded
    assert decoded["audio_gaps"] == []
    assert (decoded["width"], decoded["height"]) == (1280, 720)
    assert render.status == FilmRender.Status.READY and render.progress == 100
    assert [s["trim_in"] for s in render.segments] == [None, 0.5, 0.25]


def test_clips_that_allow_it_are_stream_copied_packet_for_packet(emu, project, alice, tmp_path):
    first, second = (picked(project, alice).take for _ in range(2))
    segments = [
        film.Segment(str(media_path(take.video.name)), f"take {take.take}")
        for take in (first, second)
    ]

    result = film.render_film(segments, tmp_path / "film.mp4")

    assert result.copied
    with av.open(str(tmp_path / "film.mp4")) as out:
        joined = [bytes(p) for p in out.demux(video=0) if p.size]
    originals = []
    for segment in segments:
        with av.open(segment.path) as clip:
            originals += [bytes(p) for p in clip.demux(video=0) if p.size]
    assert joined == originals
    assert abs(result.duration - 2 * CLIP_SECONDS) <= FRAME
    assert decode_all(tmp_path / "film.mp4")["audio_gaps"] == []


def test_a_portrait_clip_in_a_landscape_film_is_pillarboxed_not_stretched(
    emu, project, alice, tmp_path
):
    landscape = picked(project, alice).take
    portrait = picked(project, alice, portrait=True).take
    segments = [
        film.Segment(str(media_path(take.video.name)), f"take {take.take}")
        for take in (landscape, portrait)
    ]

    result = film.render_film(segments, tmp_path / "film.mp4")

    assert not result.copied
    with av.open(str(tmp_path / "film.mp4")) as out:
        frames = [frame.to_image() for frame in out.decode(video=0)]
    assert all(image.size == (1280, 720) for image in frames)
    middle = frames[round(FPS * CLIP_SECONDS * 1.5)]  # well inside the portrait clip
    # The portrait picture scaled to 720 high is 405 wide: black bars either side of it.
    bar = (1280 - 405) // 2
    for x in (0, 100, bar - 10, 1279, 1279 - (bar - 10)):
        assert max(middle.getpixel((x, 360))) < 24, (x, middle.getpixel((x, 360)))
    assert max(middle.getpixel((640, 360))) > 60, "the picture itself is in the middle"
    first = frames[FPS // 2]
    assert max(first.getpixel((5, 360))) > 60, "the landscape clip fills the frame"


def test_the_render_reports_its_progress_as_a_share_of_frames(emu, project, alice):
    picked(project, alice)
    picked(project, alice, trim_in=1.0)
    render = film_tasks.start(project, alice)
    seen = []
    original = film_tasks._Reporter.__call__

    def spy(self, done, total, step):
        original(self, done, total, step)
        seen.append((done, total, step))

    film_tasks._Reporter.__call__ = spy
    try:
        film_tasks.run_render(render.pk)
    finally:
        film_tasks._Reporter.__call__ = original

    totals = {total for _, total, _ in seen}
    assert totals == {round(CLIP_SECONDS * FPS) + round((CLIP_SECONDS - 1.0) * FPS)}
    dones = [done for done, _, _ in seen]
    assert dones == sorted(dones) and dones[-1] == max(totals)
    assert any(step.startswith("Encoding Scene 2") for _, _, step in seen)


def test_an_interrupted_render_leaves_no_file_and_the_row_can_be_reaped(
    emu, project, alice, settings
):
    picked(project, alice)
    picked(project, alice)
    render = film_tasks.start(project, alice)
    calls = []

    def interrupt(self, done, total, step):
        calls.append(done)
        if done > 10:
            assert film_tasks.part_path(render).exists(), "it writes a temporary file"
            raise KeyboardInterrupt  # the worker is stopped in the middle

    original = film_tasks._Reporter.__call__
    film_tasks._Reporter.__call__ = interrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            film_tasks.run_render(render.pk)
    finally:
        film_tasks._Reporter.__call__ = original

    films = media_path(f"films/{project.uuid}")
    assert list(films.iterdir()) == []
    render.refresh_from_db()
    assert render.status == FilmRender.Status.RENDERING
    with pytest.raises(CannotGenerate, match="already rendering"):
        film_tasks.start(project, alice)

    FilmRender.objects.filter(pk=render.pk).update(heartbeat=timezone.now() - timedelta(hours=1))
    again = film_tasks.start(project, alice)
    render.refresh_from_db()
    assert render.status == FilmRender.Status.FAILED and "stopped" in render.reason
    assert film_tasks.run_render(again.pk) == "ready"


REAPED = "The worker stopped in the middle of this render; nothing of it was kept."


def _reaped_by_the_watchdog(render) -> None:
    # What the watchdog writes over a render whose heartbeat stopped for longer than the limit.
    FilmRender.objects.filter(pk=render.pk).update(status=FilmRender.Status.FAILED, reason=REAPED)


def test_a_slow_render_the_watchdog_failed_stops_and_writes_nothing_over_its_failure(
    emu, project, alice, monkeypatch
):
    picked(project, alice)
    picked(project, alice)
    render = film_tasks.start(project, alice)
    original = film_tasks._Reporter.__call__

    def reaped_midway(self, done, total, step):
        if done > 10:
            _reaped_by_the_watchdog(render)
        original(self, done, total, step)

    monkeypatch.setattr(film_tasks._Reporter, "__call__", reaped_midway)

    assert film_tasks.run_render(render.pk) == "reaped"

    render.refresh_from_db()
    assert render.status == FilmRender.Status.FAILED and render.reason == REAPED
    assert not film_tasks.part_path(render).exists()
    assert not media_path(render.file_name()).exists()


def test_a_render_the_watchdog_failed_as_it_was_being_stored_stays_failed_and_keeps_no_file(
    emu, project, alice, monkeypatch
):
    picked(project, alice)
    render = film_tasks.start(project, alice)
    store_file = film_tasks.storage.store_file

    def reaped_while_storing(path, name):
        stored = store_file(path, name)
        _reaped_by_the_watchdog(render)
        return stored

    monkeypatch.setattr(film_tasks.storage, "store_file", reaped_while_storing)

    assert film_tasks.run_render(render.pk) == "reaped"

    render.refresh_from_db()
    assert render.status == FilmRender.Status.FAILED and render.reason == REAPED
    assert not render.video
    assert not media_path(render.file_name()).exists()


def test_a_long_render_beats_the_worker_heartbeat_as_the_pump_does(
    emu, project, alice, settings, monkeypatch
):
    # With both workers held by long renders the every-minute watchdog waits its turn; the
    # renders themselves must keep the cluster from looking stalled to flowsite_worker.
    settings.FLOWSITE_WORKER_STALE = 0.2
    picked(project, alice)
    picked(project, alice)
    render = film_tasks.start(project, alice)
    started = timezone.now()
    original = film_tasks._Reporter.__call__

    def slow(self, done, total, step):
        time.sleep(0.002)
        original(self, done, total, step)

    monkeypatch.setattr(film_tasks._Reporter, "__call__", slow)

    assert film_tasks.run_render(render.pk) == "ready"

    last = heartbeat.last_beat()
    assert last is not None and last > started


KILLABLE = textwrap.dedent(
    """
    import sys, time
    from generations import film
    paths, out = sys.argv[1:-1], sys.argv[-1]
    def slow(done, total, step):
        time.sleep(0.05)
    film.render_film([film.Segment(p, p) for p in paths], out, slow)
    """
)


def test_a_render_killed_outright_leaves_only_its_part_which_the_next_render_removes(
    emu, project, alice
):
    picked(project, alice)
    picked(project, alice, trim_in=0.5)
    render = film_tasks.start(project, alice)
    final = media_path(render.file_name())
    final.parent.mkdir(parents=True, exist_ok=True)
    part = film_tasks.part_path(render)
    clips = [
        str(media_path(s.take.video.name)) for s in render.project.scenes.all() for s in [s.pick]
    ]
    worker = subprocess.Popen(
        [sys.executable, "-c", KILLABLE, *clips, str(final)],
        cwd=os.getcwd(),
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    deadline = time.monotonic() + 30
    while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
        assert worker.poll() is None, "the render ended before it could be killed"
        time.sleep(0.02)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    FilmRender.objects.filter(pk=render.pk).update(
        status=FilmRender.Status.RENDERING, heartbeat=timezone.now() - timedelta(hours=1)
    )

    assert part.exists() and not final.exists(), "a killed render leaves no film, only its part"

    again = film_tasks.start(project, alice)

    assert not part.exists(), "the next render removed the leftover"
    assert film_tasks.run_render(again.pk) == "ready"
    assert sorted(p.name for p in final.parent.iterdir()) == [f"{again.uuid}.mp4"]


def test_a_render_of_a_take_whose_clip_is_gone_fails_in_words(emu, project, alice):
    pick = picked(project, alice)
    render = film_tasks.start(project, alice)
    media_path(pick.take.video.name).unlink()

    assert film_tasks.run_render(render.pk) == "failed"

    render.refresh_from_db()
    assert render.status == FilmRender.Status.FAILED
    assert render.reason == "Scene 1 take 1: its clip is missing from storage."
    films = media_path(f"films/{project.uuid}")
    assert not films.exists() or list(films.iterdir()) == []


@pytest.mark.parametrize("what", ["take", "scene"])
def test_a_take_bob_deletes_while_the_film_renders_fails_it_in_words_without_a_path(
    emu, project, alice, what, django_capture_on_commit_callbacks
):
    picked(project, alice)
    second = picked(project, alice)
    render = film_tasks.start(project, alice)
    original = film_tasks._Reporter.__call__

    def bob_deletes(self, done, total, step):
        # The render has probed every clip and reached scene 2: bob deletes it now, through
        # the same path as his Delete button.
        if "Scene 2" in step and Generation.objects.filter(pk=second.take_id).exists():
            with django_capture_on_commit_callbacks(execute=True):
                delete_takes([second.take])
                if what == "scene":
                    second.scene.delete()
        original(self, done, total, step)

    film_tasks._Reporter.__call__ = bob_deletes
    try:
        assert film_tasks.run_render(render.pk) == "failed"
    finally:
        film_tasks._Reporter.__call__ = original

    render.refresh_from_db()
    assert not media_path(second.take.video.name).exists()
    assert render.status == FilmRender.Status.FAILED
    assert render.reason == "Scene 2 take 1 was deleted while the film rendered; render again."
    assert "/" not in render.reason and "Errno" not in render.reason
    assert not film_tasks.part_path(render).exists()
    assert not media_path(render.file_name()).exists()


def test_a_clip_that_is_not_a_video_fails_the_render_in_words_without_its_path(emu, project, alice):
    pick = picked(project, alice)
    render = film_tasks.start(project, alice)
    media_path(pick.take.video.name).write_bytes(b"not a video at all" * 100)

    assert film_tasks.run_render(render.pk) == "failed"

    render.refresh_from_db()
    assert render.reason == "Scene 1 take 1: its clip cannot be read as a video."


def test_trims_outside_the_clip_are_refused_in_words(emu, project, alice, tmp_path):
    [take] = ready_takes(project, alice)
    path = str(media_path(take.video.name))
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()

    with pytest.raises(film.FilmError, match="starts at 5 s but the clip lasts only 2.00 s"):
        film.render_film([film.Segment(path, "Scene 1", trim_in=5)], tmp_path / "f.mp4")
    with pytest.raises(film.FilmError, match="must end after it starts"):
        film.render_film([film.Segment(path, "Scene 1", 1.0, 0.5)], tmp_path / "f.mp4")
    assert list(tmp_path.iterdir()) == []


def test_no_picks_no_render(project, alice):
    with pytest.raises(CannotGenerate, match="No scene has a picked take"):
        film_tasks.start(project, alice)


def clip_with_a_tone(path, seconds: float = 1.5) -> None:
    """A 1280x720 clip with a 440 Hz tone, as a Flow clip with sound would be."""
    import math
    from fractions import Fraction

    from PIL import Image

    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 1280, 720, "yuv420p"
        audio = out.add_stream("aac", rate=48000, layout="stereo")
        picture = Image.new("RGB", (1280, 720), (20, 160, 60))
        for index in range(round(seconds * FPS)):
            frame = av.VideoFrame.from_image(picture)
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        samples = round(seconds * 48000)
        for start in range(0, samples, 1024):
            count = min(1024, samples - start)
            frame = av.AudioFrame(format="fltp", layout="stereo", samples=count)
            wave = bytearray()
            import struct

            for n in range(count):
                wave += struct.pack("<f", 0.5 * math.sin(2 * math.pi * 440 * (start + n) / 48000))
            for plane in frame.planes:
                plane.update(bytes(wave) + bytes(plane.buffer_size - len(wave)))
            frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))


def test_a_clip_with_sound_keeps_it_and_the_silent_clips_get_silence(emu, project, alice, tmp_path):
    silent = picked(project, alice).take
    toned = tmp_path / "tone.mp4"
    clip_with_a_tone(toned)
    segments = [
        film.Segment(str(media_path(silent.video.name)), "silent"),
        film.Segment(str(toned), "with sound"),
        film.Segment(str(media_path(silent.video.name)), "silent again"),
    ]

    result = film.render_film(segments, tmp_path / "film.mp4")

    assert [s["audio"] for s in result.segments] == ["silence", "clip", "silence"]
    decoded = decode_all(tmp_path / "film.mp4")
    assert abs(decoded["video_seconds"] - (2 * CLIP_SECONDS + 1.5)) <= 2 * FRAME
    assert abs(decoded["audio_seconds"] - decoded["video_seconds"]) <= FRAME
    assert decoded["audio_gaps"] == []

    def loudness(start: float, end: float) -> float:
        with av.open(str(tmp_path / "film.mp4")) as container:
            peak = 0.0
            for frame in container.decode(audio=0):
                if start <= frame.time < end:
                    import array

                    peak = max(peak, max(abs(v) for v in array.array("f", bytes(frame.planes[0]))))
            return peak

    assert loudness(0.2, CLIP_SECONDS - 0.2) < 0.01, "silence where the clip has none"
    assert loudness(CLIP_SECONDS + 0.2, CLIP_SECONDS + 1.3) > 0.3, "the clip's own sound"
    assert loudness(CLIP_SECONDS + 1.7, 2 * CLIP_SECONDS + 1.3) < 0.01
