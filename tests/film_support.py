"""Ready takes with real clips from the emulator, picked for the film (tests/test_film_*.py)."""

from __future__ import annotations

from pathlib import Path

import av
from django.conf import settings

from generations import take_actions
from generations.models import Generation, Pick, Project
from tests.conftest import make_image, make_scene
from tests.tasks_support import settle

# The emulator's clips in these tests (tests/conftest.py starts it with 2 s clips at 24 fps).
CLIP_SECONDS = 2.0
FPS = 24


def ready_takes(project: Project, user, *, portrait: bool = False, takes: int = 1, title: str = ""):
    """A new scene at the end of the storyboard with ``takes`` ready takes rendered for real."""
    image = make_image(project, user, portrait=portrait, color=(200, 60, 40))
    scene = make_scene(
        project,
        image,
        title=title,
        aspect="portrait" if portrait else "landscape",
        model_key="veo_3_1_i2v_s_fast_portrait" if portrait else "veo_3_1_i2v_s_fast",
        takes=takes,
        prompt="a red lighthouse" if not portrait else "a tall red lighthouse",
    )
    done = settle(scene.generate(user))
    assert all(take.status == Generation.Status.READY for take in done), [t.reason for t in done]
    return done


def picked(project: Project, user, *, portrait: bool = False, trim_in=None, trim_out=None):
    [take] = ready_takes(project, user, portrait=portrait)
    pick = Pick.choose(take, user)
    if trim_in is not None or trim_out is not None:
        pick.trim_in, pick.trim_out = trim_in, trim_out
        pick.save(update_fields=["trim_in", "trim_out"])
    return pick


def extension_picked(source: Pick, user) -> Pick:
    """``user`` extends the source's take and picks the extension: the scene after it."""
    scene = take_actions.extend(source.take, user, "the lighthouse beam sweeps the sea")
    [extension] = settle(list(scene.generations.all()))
    return Pick.choose(extension, user)


def media_path(name: str) -> Path:
    return Path(settings.MEDIA_ROOT) / name


def decode_all(path) -> dict:
    """Everything a player would get from the file: frames, their size, audio seconds."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        width, height = video.codec_context.width, video.codec_context.height
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:
        audio_frames = list(container.decode(audio=0))
        samples = sum(frame.samples for frame in audio_frames)
        rate = audio_frames[0].sample_rate if audio_frames else 1
        quiet_gaps = _audio_gaps(audio_frames)
    return {
        "width": width,
        "height": height,
        "frames": frames,
        "video_seconds": frames / FPS,
        "audio_seconds": samples / rate,
        "audio_gaps": quiet_gaps,
    }


def _audio_gaps(frames) -> list[float]:
    """Where the audio track's timestamps jump (a hole a player would stall or skip over)."""
    gaps = []
    expected = None
    for frame in frames:
        if frame.pts is None:
            continue
        start = float(frame.pts * frame.time_base)
        if expected is not None and abs(start - expected) > 0.005:
            gaps.append(start)
        expected = start + frame.samples / frame.sample_rate
    return gaps
