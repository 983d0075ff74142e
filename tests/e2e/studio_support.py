"""A lived-in project for the layout and accessibility browser tests: scenes of both aspects,
ready clips with posters, a failed take with Flow's long reason and code, a take waiting in
Flow's queue. Nothing runs a worker: the takes stay as built."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from generations.emulator.render import render_clip
from generations.models import Generation, Project, Scene
from tests.conftest import make_image, make_scene, png_bytes
from tests.views_support import attach_clip, make_take

UNSAFE_REASON = (
    "Flow's safety filter refused the prompt or the start image (PUBLIC_ERROR_UNSAFE_GENERATION)."
)


@dataclass
class Studio:
    project: Project
    scenes: list[Scene]
    ready: list[Generation]


def short_clip(tmp_path: Path, *, portrait: bool, name: str) -> tuple[bytes, bytes]:
    size = (180, 320) if portrait else (320, 180)
    clip = render_clip(
        png_bytes(*size),
        "A short test clip",
        portrait=portrait,
        clip_seconds=1,
        fps=5,
        out_dir=tmp_path,
        name=name,
    )
    return clip.video_path.read_bytes(), clip.poster_path.read_bytes()


def build_studio(project: Project, alice, bob, tmp_path: Path) -> Studio:
    hour_ago = timezone.now() - timedelta(hours=1)
    landscape = short_clip(tmp_path, portrait=False, name="wide")
    portrait = short_clip(tmp_path, portrait=True, name="tall")
    harbour = make_scene(
        project, make_image(project, alice), title="Harbour", updated=hour_ago, takes=2
    )
    lighthouse = make_scene(
        project,
        make_image(project, alice, portrait=True, color=(200, 90, 30)),
        title="Lighthouse",
        aspect="portrait",
        model_key="veo_3_1_i2v_s_fast_portrait",
        updated=hour_ago,
    )
    storm = make_scene(
        project,
        make_image(project, bob, color=(90, 200, 30)),
        title="Storm",
        prompt="A storm breaks over the harbour; " * 6,
        updated=hour_ago,
    )
    ready = []
    for scene, user, clip in (
        (harbour, alice, landscape),
        (harbour, bob, landscape),
        (lighthouse, bob, portrait),
    ):
        take = make_take(scene, user, status=Generation.Status.READY, updated=hour_ago)
        ready.append(attach_clip(take, *clip))
    make_take(storm, alice, status=Generation.Status.FAILED, updated=hour_ago, reason=UNSAFE_REASON)
    # Touched before the page opens, like the rest: a take changed within the poll token's margin
    # comes again with the first poll, which would swap its card while a test measures it.
    make_take(storm, bob, status=Generation.Status.PENDING, updated=hour_ago)
    return Studio(project, [harbour, lighthouse, storm], ready)
