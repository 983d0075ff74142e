"""`manage.py storyboard` and scene modes: the CSV's mode, end_image and references columns
(paths relative to the CSV, every bad row told with its number, nothing imported if one is
bad), and the export manifest naming what each take was made from."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.core.management import CommandError
from PIL import Image

from generations.models import AccountGrant, Generation, ImageAsset, Project, Scene
from tests.test_commands_storyboard import media_files, run, write_csv, write_image

HEADER = ["image", "prompt", "aspect", "mode", "end_image", "references", "model"]


@pytest.fixture
def account(account, alice):
    AccountGrant.objects.get_or_create(account=account, user=alice)
    return account


@pytest.fixture
def shots(tmp_path):
    folder = tmp_path / "shots"
    (folder / "cast").mkdir(parents=True)
    for name, colour in [("dawn.png", (200, 60, 40)), ("dusk.png", (40, 60, 200))]:
        Image.new("RGB", (64, 36), colour).save(folder / name, "PNG")
    write_image(folder / "cast" / "boat.png", size=(48, 48))
    return folder


def test_import_makes_a_scene_of_each_mode_with_its_images(alice, account, shots):
    path = write_csv(
        shots / "board.csv",
        [
            ["dawn.png", "The harbour wakes", "landscape", "", "", "", ""],
            ["", "Gulls over open water", "landscape", "", "", "", ""],
            ["dawn.png", "Day turns to night", "landscape", "frames", "dusk.png", "", ""],
            ["", "The crew boards", "landscape", "ingredients", "", "cast/boat.png; dawn.png", ""],
        ],
        header=HEADER,
    )

    output = run("import", str(path), "--project", "Launch", "--user", "alice")

    scenes = list(Scene.objects.order_by("position"))
    assert [(scene.mode, scene.model_key) for scene in scenes] == [
        ("image", "veo_3_1_i2v_s_fast"),
        ("text", "veo_3_1_t2v_fast"),
        ("frames", "veo_3_1_i2v_s_fast_fl"),
        ("ingredients", "veo_3_1_r2v_fast_landscape"),
    ]
    image, text, frames, ingredients = scenes
    assert text.start_image_id is None
    assert (frames.start_image, str(frames.end_image)) == (image.start_image, "dusk.png")
    assert [str(ref) for ref in ingredients.references] == ["boat.png", "dawn.png"]
    # dawn.png serves three scenes in two roles and is stored once.
    assert ingredients.reference_2 == image.start_image
    assert ImageAsset.objects.count() == 3
    assert "with 3 images" in output
    assert all(scene.generation_problem() == "" for scene in scenes)


def test_every_bad_mode_row_is_told_with_its_number_and_nothing_is_imported(
    alice, account, shots, settings
):
    path = write_csv(
        shots / "board.csv",
        [
            ["dawn.png", "Fine", "landscape", "frames", "dusk.png", "", ""],
            ["dawn.png", "Odd mode", "landscape", "collage", "", "", ""],
            ["dawn.png", "No end", "landscape", "frames", "", "", ""],
            ["", "No references", "landscape", "ingredients", "", "", ""],
            ["", "Four", "landscape", "ingredients", "", "dawn.png;dusk.png;dawn.png;dusk.png", ""],
            ["dawn.png", "Text with a picture", "landscape", "text", "", "", ""],
            ["dawn.png", "End without frames", "landscape", "image", "dusk.png", "", ""],
            ["", "Missing reference", "landscape", "ingredients", "", "cast/nobody.png", ""],
            ["", "Quality", "landscape", "ingredients", "", "dawn.png", "veo_3_1_i2v_s"],
            ["dawn.png", "Crew at dawn", "landscape", "ingredients", "", "dusk.png", ""],
            ["dawn.png", "Out", "landscape", "frames", "/etc/hostname", "", ""],
            ["", "Up", "landscape", "ingredients", "", "cast/boat.png; ../../etc/passwd", ""],
        ],
        header=HEADER,
    )

    with pytest.raises(CommandError) as refused:
        run("import", str(path), "--project", "Launch", "--user", "alice")

    assert str(refused.value).splitlines()[1:] == [
        "row 3: The mode is text, image, frames or ingredients, not “collage”.",
        "row 4: The end_image cell is empty; name the end image file (a frames clip moves from "
        "the image to it).",
        "row 5: The references cell is empty; name 1 to 3 image files separated by “;”.",
        "row 6: An Ingredients clip takes 1 to 3 reference images, not 4.",
        "row 7: A Text clip takes no start image; choose Start image or Start and end frames, "
        "or leave the start image empty.",
        "row 8: A Start image clip takes no end image; choose Start and end frames, or leave "
        "the end image empty.",
        "row 9: The image file cast/nobody.png does not exist.",
        "row 10: Veo 3.1 Quality (veo_3_1_i2v_s) does not make clips from reference images "
        "(ingredients); pick one of veo_3_1_r2v_fast_landscape, veo_3_1_r2v_lite.",
        "row 11: An Ingredients clip takes no start image; choose Start image or Start and end "
        "frames, or leave the start image empty.",
        "row 12: The image path /etc/hostname is absolute; name the file by its path from the "
        "CSV's folder.",
        "row 13: The image path ../../etc/passwd leads outside the CSV's folder; name a file in "
        "that folder or below it.",
    ]
    assert not Project.objects.exists()
    assert media_files(settings) == []


def test_a_row_cannot_make_an_extension_and_says_how_one_is_made(alice, account, shots):
    path = write_csv(
        shots / "board.csv",
        [["", "The boat dives", "landscape", "Extend", "", "", ""]],
        header=HEADER,
    )

    with pytest.raises(CommandError) as refused:
        run("import", str(path), "--project", "Launch", "--user", "alice")

    assert str(refused.value).splitlines()[1:] == [
        "row 2: An extension is made from a ready take, not from a CSV row: import the scene "
        "it continues, generate it, then run storyboard extend --scene N --take N --prompt TEXT."
    ]
    assert not Project.objects.exists()


def test_the_export_manifest_names_each_takes_mode_and_images_with_their_sha256(
    alice, account, shots, tmp_path
):
    path = write_csv(
        shots / "board.csv",
        [
            ["dawn.png", "Day turns to night", "landscape", "frames", "dusk.png", "", ""],
            ["", "Gulls", "landscape", "", "", "", ""],
        ],
        header=HEADER,
    )
    run("import", str(path), "--project", "Launch", "--user", "alice")
    frames, text = Scene.objects.order_by("position")
    frames.generate(alice)
    text.generate(alice)

    run("export", "--project", "Launch", "--out", str(tmp_path / "out"))

    takes = json.loads((tmp_path / "out" / "manifest.json").read_text())["takes"]
    assert [(take["mode"], take["status"]) for take in takes] == [
        ("frames", Generation.Status.QUEUED),
        ("text", Generation.Status.QUEUED),
    ]
    assert takes[0]["inputs"] == [
        {
            "role": "start",
            "file": "dawn.png",
            "sha256": hashlib.sha256(frames.start_image.file.read()).hexdigest(),
        },
        {
            "role": "end",
            "file": "dusk.png",
            "sha256": hashlib.sha256(frames.end_image.file.read()).hexdigest(),
        },
    ]
    assert takes[1]["inputs"] == []
