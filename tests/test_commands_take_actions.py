"""``storyboard extend`` and ``storyboard upscale``: the card's take actions from scripts, and
what the export manifest says of extensions and upscaled copies."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from generations.models import Generation, Scene, Upscale
from tests.conftest import make_ready_scene
from tests.tasks_support import settle
from tests.test_take_actions import settle_upscale

S = Generation.Status


def storyboard(*args: str) -> str:
    out = io.StringIO()
    call_command("storyboard", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def ready(emu, project, alice) -> Generation:
    make_ready_scene(project, "an opening shot")
    [take] = settle(make_ready_scene(project).generate(alice))
    assert take.status == S.READY, take.reason
    return take


def test_extend_adds_the_extension_after_the_scene_and_queues_its_take(ready, project, bob):
    printed = storyboard(
        "extend",
        "--project",
        "Poseidon",
        "--user",
        "bob",
        "--scene",
        "2",
        "--take",
        "1",
        "--prompt",
        "the seahorse dives",
    )

    assert printed == (
        "Added Scene 3 after scene 2, extending take 1; its take is queued (the worker sends "
        "it to Flow).\n"
    )
    extension = Scene.objects.get(source_take=ready)
    assert (extension.position, extension.mode, extension.prompt) == (
        2,
        "extend",
        "the seahorse dives",
    )
    [take] = extension.generations.all()
    assert take.requested_by == bob and take.status == S.QUEUED


def test_a_viewer_cannot_extend_or_upscale(ready, carol):
    for action, extra in (("extend", ["--prompt", "more"]), ("upscale", ["--resolution", "1080p"])):
        with pytest.raises(CommandError, match="carol is not an owner or editor"):
            storyboard(
                action,
                "--project",
                "Poseidon",
                "--user",
                "carol",
                "--scene",
                "2",
                "--take",
                "1",
                *extra,
            )
    assert not Scene.objects.filter(source_take=ready).exists()
    assert not Upscale.objects.exists()


def test_upscale_refuses_4k_on_tier_one_in_words(ready, alice):
    with pytest.raises(CommandError) as refused:
        storyboard(
            "upscale",
            "--project",
            "Poseidon",
            "--user",
            "alice",
            "--scene",
            "2",
            "--take",
            "1",
            "--resolution",
            "4k",
        )

    assert str(refused.value) == (
        "Scene 2 take 1: Upscaling to 4K needs a Flow Ultra (tier two) account; the account "
        "Studio is Pro (tier one). Upscale to 1080p instead."
    )


def test_upscale_asks_once_and_says_so_when_asked_again(ready, alice):
    args = (
        "upscale",
        "--project",
        "Poseidon",
        "--user",
        "alice",
        "--scene",
        "2",
        "--take",
        "1",
        "--resolution",
        "1080p",
    )

    first = storyboard(*args)
    second = storyboard(*args)

    assert first == "Scene 2: Upscaling take 1 to 1080p.\n"
    assert second == "Scene 2: Take 1 is already being upscaled to 1080p.\n"
    assert Upscale.objects.count() == 1


def test_a_missing_take_is_named(ready, alice):
    with pytest.raises(CommandError, match="Scene 2 has no take 7."):
        storyboard(
            "upscale",
            "--project",
            "Poseidon",
            "--user",
            "alice",
            "--scene",
            "2",
            "--take",
            "7",
            "--resolution",
            "1080p",
        )


def test_the_export_manifest_records_source_takes_and_resolutions(ready, alice, tmp_path):
    storyboard(
        "extend",
        "--project",
        "Poseidon",
        "--user",
        "alice",
        "--scene",
        "2",
        "--take",
        "1",
        "--prompt",
        "the seahorse dives",
    )
    [extension] = settle(list(Generation.objects.filter(source_take=ready)))
    storyboard(
        "upscale",
        "--project",
        "Poseidon",
        "--user",
        "alice",
        "--scene",
        "2",
        "--take",
        "1",
        "--resolution",
        "1080p",
    )
    settle_upscale(Upscale.objects.get())

    storyboard("export", "--project", "Poseidon", "--out", str(tmp_path / "out"))

    takes = json.loads((tmp_path / "out" / "manifest.json").read_text())["takes"]
    by_scene = {entry["scene"]: entry for entry in takes}
    assert by_scene[2]["source_take"] is None
    assert by_scene[2]["resolutions"] == ["720p", "1080p"]
    assert by_scene[3]["source_take"] == {"scene": 2, "take": 1}
    assert by_scene[3]["resolutions"] == ["720p"]
    assert extension.status == S.READY
