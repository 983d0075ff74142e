"""`manage.py storyboard`: import a CSV, generate, show status, export the clips."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone
from PIL import Image

from generations.engines.catalogue import TIER_TWO
from generations.images import store_start_image
from generations.management.commands import storyboard
from generations.models import (
    AccountGrant,
    AuditEvent,
    FlowAccount,
    Generation,
    ImageAsset,
    Membership,
    Project,
    Scene,
)

HEADER = ["image", "prompt", "aspect", "model", "seed", "takes"]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("storyboard", *args, stdout=out)
    return out.getvalue()


def write_image(path: Path, size=(64, 36), fmt="PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 80, 40)).save(path, fmt)
    return path


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def media_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def account(account, alice):
    """The studio account, granted to alice, who imports and owns the projects here."""
    AccountGrant.objects.get_or_create(account=account, user=alice)
    return account


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = tmp_path / "shots"
    write_image(folder / "harbour.png")
    write_image(folder / "tower.jpg", size=(36, 64), fmt="JPEG")
    write_image(folder / "beach.webp", fmt="WEBP")
    return folder


# --- import -------------------------------------------------------------------------------


def test_import_creates_the_project_owned_by_the_user_with_every_scene(
    alice, account, shots, settings
):
    path = write_csv(
        shots / "board.csv",
        [
            ["harbour.png", "Boats leave the harbour", "landscape", "", "", ""],
            ["tower.jpg", "Camera climbs the tower", "portrait", "", "77", "3"],
            ["beach.webp", "Waves roll in", "Landscape", "veo_3_1_i2v_s", "0", "1"],
        ],
    )

    output = run("import", str(path), "--project", "Launch", "--user", "alice")

    project = Project.objects.get(name="Launch")
    assert project.account == account
    assert project.created_by == alice
    assert project.memberships.get().role == Membership.Role.OWNER
    created = AuditEvent.objects.get(action=AuditEvent.Action.PROJECT_CREATED)
    assert (created.project, created.actor, created.details) == (
        project,
        alice,
        {"how": "import", "account": account.label},
    )
    scenes = list(project.scenes.order_by("position"))
    assert [s.position for s in scenes] == [0, 1, 2]
    assert [s.prompt for s in scenes] == [
        "Boats leave the harbour",
        "Camera climbs the tower",
        "Waves roll in",
    ]
    assert [s.aspect for s in scenes] == ["landscape", "portrait", "landscape"]
    # No model given: the account's default for the aspect.
    assert [s.model_key for s in scenes] == [
        "veo_3_1_i2v_s_fast",
        "veo_3_1_i2v_s_fast_portrait",
        "veo_3_1_i2v_s",
    ]
    assert [s.seed for s in scenes] == [None, 77, 0]
    assert [s.takes for s in scenes] == [1, 3, 1]
    assert [s.start_image.original_name for s in scenes] == [
        "harbour.png",
        "tower.jpg",
        "beach.webp",
    ]
    assert scenes[1].start_image.height == 64
    assert all(s.start_image.uploaded_by == alice for s in scenes)
    assert len(media_files(settings)) == 3
    assert "Created project 'Launch' (owner alice, account Studio)" in output
    assert "Imported 3 scenes into 'Launch' with 3 images" in output


def test_import_appends_after_the_existing_scenes(project, bob, shots):
    image = ImageAsset.objects.create(
        project=project, mime_type="image/png", width=1, height=1, size=1, sha256="x"
    )
    Scene.objects.create(project=project, position=4, prompt="Old", start_image=image)
    path = write_csv(
        shots / "more.csv",
        [["harbour.png", "New one", "landscape"], ["harbour.png", "New two", "landscape"]],
        header=["image", "prompt", "aspect"],
    )

    output = run("import", str(path), "--project", "Poseidon", "--user", "bob")

    scenes = list(project.scenes.order_by("position"))
    assert [(s.position, s.prompt) for s in scenes] == [(4, "Old"), (5, "New one"), (6, "New two")]
    # One file, used by both scenes, is stored once.
    assert scenes[1].start_image == scenes[2].start_image
    assert project.images.count() == 2
    assert Project.objects.count() == 1
    assert "with 1 image; the storyboard now has 3 scenes" in output


def test_a_csv_with_one_bad_row_changes_nothing_and_names_the_row(alice, account, shots, settings):
    path = write_csv(
        shots / "board.csv",
        [
            ["harbour.png", "One", "landscape", "", "", ""],
            ["tower.jpg", "Two", "portrait", "", "", ""],
            ["beach.webp", "Three", "landscape", "", "", "9"],
            ["harbour.png", "Four", "landscape", "", "", ""],
        ],
    )

    with pytest.raises(CommandError) as refused:
        run("import", str(path), "--project", "Launch", "--user", "alice")

    message = str(refused.value)
    assert "nothing was changed" in message
    assert message.splitlines()[1:] == ["row 4: Takes must be a whole number from 1 to 4."]
    assert not Project.objects.filter(name="Launch").exists()
    assert not Scene.objects.exists() and not ImageAsset.objects.exists()
    assert media_files(settings) == []


def test_a_prompt_or_a_project_name_of_invisible_characters_is_refused_as_blank(
    alice, account, shots
):
    path = write_csv(
        shots / "board.csv",
        [
            ["harbour.png", "Fine", "landscape", "", "", ""],
            ["harbour.png", "\u00a0\u200b\u3000", "landscape", "", "", ""],
        ],
    )

    with pytest.raises(CommandError) as refused:
        run("import", str(path), "--project", "Launch", "--user", "alice")
    assert str(refused.value).splitlines()[1:] == [
        "row 3: Write a prompt: it tells the model what happens in the clip."
    ]

    with pytest.raises(CommandError, match="The project name is empty."):
        run("import", str(path), "--project", "\u200b", "--user", "alice")
    assert not Project.objects.exists() and not Scene.objects.exists()


def test_every_bad_row_is_reported_with_its_row_number(alice, account, shots, tmp_path, settings):
    (shots / "notes.jpg").write_text("not a picture at all")
    write_image(shots / "anim.gif", fmt="GIF")
    path = write_csv(
        shots / "board.csv",
        [
            ["harbour.png", "Fine", "landscape", "", "", ""],
            ["missing.png", "No file", "landscape", "", "", ""],
            ["notes.jpg", "Text file", "landscape", "", "", ""],
            ["harbour.png", "", "landscape", "", "", ""],
            ["harbour.png", "Square", "square", "", "", ""],
            ["harbour.png", "Unknown model", "landscape", "veo_9", "", ""],
            ["harbour.png", "Ultra on tier one", "landscape", "veo_3_1_i2v_s_fast_ultra", "", ""],
            ["harbour.png", "Wrong aspect", "portrait", "veo_3_1_i2v_s_fast", "", ""],
            ["harbour.png", "Seed text", "landscape", "", "lucky", ""],
            ["harbour.png", "Seed too big", "landscape", "", str(2**31), ""],
            ["harbour.png", "Seed negative", "landscape", "", "-1", ""],
            ["harbour.png", "No takes", "landscape", "", "", "0"],
            ["anim.gif", "A gif", "landscape", "", "", "two"],
            ["", "No image: a text scene", "landscape", "veo_3_1_i2v_s_fast", "", ""],
            ["harbour.png", "Both wrong", "wide", "veo_9", "", ""],
        ],
    )

    with pytest.raises(CommandError) as refused:
        run("import", str(path), "--project", "Launch", "--user", "alice")

    lines = str(refused.value).splitlines()[1:]
    seed_rule = "The seed must be a whole number from 0 to 2147483647, or blank."
    assert lines == [
        "row 3: The image file missing.png does not exist.",
        "row 4: notes.jpg: That file is not a JPEG, PNG or WebP image.",
        "row 5: Write a prompt: it tells the model what happens in the clip.",
        "row 6: The aspect must be landscape (16:9) or portrait (9:16), not “square”.",
        "row 7: Unknown model “veo_9”; pick one of veo_3_1_i2v_s_fast, veo_3_1_i2v_s, "
        "veo_3_1_i2v_lite, veo_3_1_i2v_lite_low_priority.",
        "row 8: Veo 3.1 Fast (Ultra) (veo_3_1_i2v_s_fast_ultra) needs a higher Flow tier than "
        "Pro (tier one), which the account Studio has; pick another model.",
        "row 9: Veo 3.1 Fast (veo_3_1_i2v_s_fast) makes Landscape 16:9 clips, not Portrait 9:16; "
        "pick a model of that aspect or change the aspect.",
        f"row 10: {seed_rule}",
        f"row 11: {seed_rule}",
        f"row 12: {seed_rule}",
        "row 13: Takes must be a whole number from 1 to 4.",
        "row 14: anim.gif: That file is not a JPEG, PNG or WebP image. "
        "Takes must be a whole number from 1 to 4.",
        "row 15: Veo 3.1 Fast (veo_3_1_i2v_s_fast) does not make clips from the prompt alone; "
        "pick one of veo_3_1_t2v_fast, veo_3_1_t2v, veo_3_1_t2v_lite.",
        "row 16: The aspect must be landscape (16:9) or portrait (9:16), not “wide”. "
        "Unknown model “veo_9”; pick one of veo_3_1_i2v_s_fast, veo_3_1_i2v_s_fast_portrait, "
        "veo_3_1_i2v_s, veo_3_1_i2v_s_portrait, veo_3_1_i2v_lite, "
        "veo_3_1_i2v_lite_low_priority.",
    ]
    assert not Project.objects.exists()
    assert media_files(settings) == []


def test_an_image_path_that_is_absolute_or_leads_out_of_the_csvs_folder_is_refused_unread(
    alice, account, shots, tmp_path, settings
):
    # Real pictures outside the folder: they would be imported if only images were judged.
    outside = write_image(tmp_path / "outside.png")
    (shots / "cast").mkdir()
    (shots / "cast" / "linked.png").symlink_to(outside)
    path = write_csv(
        shots / "board.csv",
        [
            ["harbour.png", "Fine", "landscape", "", "", ""],
            ["../outside.png", "Up", "landscape", "", "", ""],
            [str(outside), "Absolute", "landscape", "", "", ""],
            ["../../../../../../etc/passwd", "Far up", "landscape", "", "", ""],
            ["/etc/hostname", "System file", "landscape", "", "", ""],
            ["cast/linked.png", "A link out", "landscape", "", "", ""],
            ["cast/../harbour.png", "Down and back: still inside", "landscape", "", "", ""],
        ],
    )

    with pytest.raises(CommandError) as refused:
        run("import", str(path), "--project", "Launch", "--user", "alice")

    outside_rule = "leads outside the CSV's folder; name a file in that folder or below it."
    absolute_rule = "is absolute; name the file by its path from the CSV's folder."
    assert str(refused.value).splitlines()[1:] == [
        f"row 3: The image path ../outside.png {outside_rule}",
        f"row 4: The image path {outside} {absolute_rule}",
        f"row 5: The image path ../../../../../../etc/passwd {outside_rule}",
        f"row 6: The image path /etc/hostname {absolute_rule}",
        f"row 7: The image path cast/linked.png {outside_rule}",
    ]
    assert not Project.objects.exists()
    assert media_files(settings) == []


def test_an_ultra_model_is_accepted_on_a_tier_two_account(alice, shots):
    ultra = FlowAccount.objects.create(label="Ultra", tier=TIER_TWO, bearer_token="ya29.t")
    AccountGrant.objects.create(account=ultra, user=alice)
    path = write_csv(
        shots / "b.csv", [["harbour.png", "Fast", "landscape", "veo_3_1_i2v_s_fast_ultra", "", ""]]
    )

    run("import", str(path), "--project", "Launch", "--user", "alice")

    assert Scene.objects.get().model_key == "veo_3_1_i2v_s_fast_ultra"


def test_missing_and_unknown_columns_are_reported_on_row_one(alice, account, shots):
    path = write_csv(
        shots / "b.csv", [["harbour.png", "x", "y"]], header=["image", "text", "aspect"]
    )

    with pytest.raises(CommandError) as refused:
        run("import", str(path), "--project", "Launch", "--user", "alice")

    assert str(refused.value).splitlines()[1] == (
        "row 1: missing column prompt; unknown column 'text' "
        "(the columns are image, prompt, aspect, mode, end_image, references, model, seed, "
        "takes, duration, resolution, audio, negative_prompt, person_generation)"
    )


def test_a_semicolon_separated_csv_as_european_excel_saves_it_is_imported(alice, account, shots):
    # As Excel saves "CSV" where the decimal mark is a comma: BOM, semicolons, CR LF, and a
    # cell with a comma, a line break or a quote in quotes.
    path = shots / "board.csv"
    path.write_bytes(
        "\ufeffimage;prompt;aspect\r\n"
        "harbour.png;A lake at dawn, mist rising;landscape\r\n"
        '"tower.jpg";"Line one\r\nLine two; with ""quotes""";portrait\r\n'.encode()
    )

    output = run("import", str(path), "--project", "Launch", "--user", "alice")

    assert "Imported 2 scenes" in output
    scenes = list(Scene.objects.order_by("position"))
    assert [(scene.prompt, scene.aspect, str(scene.start_image)) for scene in scenes] == [
        ("A lake at dawn, mist rising", "landscape", "harbour.png"),
        ('Line one\nLine two; with "quotes"', "portrait", "tower.jpg"),
    ]


def test_a_header_mixing_semicolons_and_commas_says_so(alice, account, shots):
    path = shots / "board.csv"
    path.write_text("prompt;aspect,image\nA lake;landscape,harbour.png\n")

    with pytest.raises(CommandError) as refused:
        run("import", str(path), "--project", "Launch", "--user", "alice")

    assert "some columns are separated by semicolons (;) and others by commas" in str(refused.value)
    assert not Project.objects.exists()


def test_a_quote_never_closed_is_named_on_its_row_not_as_a_missing_aspect(alice, account, shots):
    path = shots / "board.csv"
    path.write_bytes(b'prompt,aspect\r\n"A lake,landscape\r\n')

    with pytest.raises(CommandError) as refused:
        run("import", str(path), "--project", "Launch", "--user", "alice")

    assert str(refused.value).splitlines()[1:] == [
        'row 2: a quote (") opened on line 2 of the file is never closed, so everything after '
        "it was read as one cell; close the quote at the end of its cell, or write a quote "
        'that is part of the text twice ("").'
    ]
    assert not Project.objects.exists()


def test_a_quote_left_open_until_a_later_rows_quote_is_named_on_its_row(
    alice, account, shots, settings
):
    path = shots / "board.csv"
    path.write_text(
        "image,prompt,aspect\n"
        "harbour.png,A lake,landscape\n"
        'harbour.png,"Dunes at noon,landscape\n'
        "harbour.png,Reeds,landscape\n"
        'tower.jpg,"Hills",portrait\n'
    )

    with pytest.raises(CommandError) as refused:
        run("import", str(path), "--project", "Launch", "--user", "alice")

    assert str(refused.value).splitlines()[1:] == [
        'row 3: a quote (") opened on line 3 of the file is not closed on that line: the next '
        "quote, on line 5, is followed by more text before the next comma, and everything "
        "between was read as one cell. A quoted cell ends with a quote right before its comma; "
        'write a quote that is part of the text twice ("").'
    ]
    assert not Project.objects.exists() and not Scene.objects.exists()
    assert media_files(settings) == []


def test_a_quote_closed_early_on_its_line_is_named_on_its_row(alice, account, shots):
    path = shots / "board.csv"
    path.write_text('image;prompt;aspect\nharbour.png;"A lake" at dawn;landscape\n')

    with pytest.raises(CommandError) as refused:
        run("import", str(path), "--project", "Launch", "--user", "alice")

    assert str(refused.value).splitlines()[1:] == [
        'row 2: a quote (") opened on line 2 of the file ends early: more text follows it '
        "before the next semicolon. A quoted cell ends with a quote right before its "
        'semicolon; write a quote that is part of the text twice ("").'
    ]
    assert not Project.objects.exists()


def test_a_quote_closed_early_on_the_last_line_without_a_line_break_is_named_on_its_row(
    alice, account, shots
):
    path = shots / "board.csv"
    path.write_text('image,prompt,aspect\nharbour.png,"A lake"x,landscape')

    with pytest.raises(CommandError) as refused:
        run("import", str(path), "--project", "Launch", "--user", "alice")

    assert 'row 2: a quote (") opened on line 2 of the file ends early' in str(refused.value)


def test_a_cell_past_the_csv_readers_limit_is_refused_in_words_naming_its_row(
    alice, account, shots
):
    path = shots / "board.csv"
    path.write_text(
        "image,prompt,aspect\nharbour.png,Dunes,landscape\nharbour.png,"
        + "a" * 200_000
        + ",landscape\n"
    )

    with pytest.raises(CommandError) as refused:
        run("import", str(path), "--project", "Launch", "--user", "alice")

    assert str(refused.value).splitlines()[1:] == [
        "row 3: a cell starting on line 3 of the file holds more than 131,072 characters, far "
        "more than any cell may (a prompt has at most 2,000); shorten it, or close a quote "
        "left open."
    ]
    assert "field limit" not in str(refused.value)
    assert not Project.objects.filter(name="Launch").exists()


def test_a_quote_left_open_past_the_csv_readers_limit_is_refused_in_words(alice, account, shots):
    path = shots / "board.csv"
    rows = "".join(f"harbour.png,Scene {n},landscape\n" for n in range(5000))
    path.write_text(f'image,prompt,aspect\nharbour.png,"Dunes,landscape\n{rows}')

    with pytest.raises(CommandError) as refused:
        run("import", str(path), "--project", "Launch", "--user", "alice")

    assert "row 2: a cell starting on line 2 of the file holds more than 131,072" in str(
        refused.value
    )
    assert "close a quote left open" in str(refused.value)


def test_a_csv_with_only_a_header_is_refused(alice, account, shots):
    path = write_csv(shots / "b.csv", [])

    with pytest.raises(CommandError, match="has a header but no scenes"):
        run("import", str(path), "--project", "Launch", "--user", "alice")


def test_a_missing_csv_file_is_refused(alice, account, tmp_path):
    with pytest.raises(CommandError, match="There is no file"):
        run("import", str(tmp_path / "nope.csv"), "--project", "Launch", "--user", "alice")


def test_a_csv_that_is_not_utf8_is_refused(alice, account, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("image,prompt,aspect\nx.png,caf\xe9,landscape\n".encode("latin-1"))

    with pytest.raises(CommandError, match="is not UTF-8 text"):
        run("import", str(path), "--project", "Launch", "--user", "alice")


def test_a_row_with_more_cells_than_the_header_is_refused(alice, account, shots):
    path = write_csv(shots / "b.csv", [["harbour.png", "x", "landscape", "", "", "", "extra"]])

    with pytest.raises(CommandError, match="row 2: 7 cells but the header names 6 columns"):
        run("import", str(path), "--project", "Launch", "--user", "alice")


def test_an_unknown_user_is_refused(account, shots):
    path = write_csv(shots / "b.csv", [["harbour.png", "x", "landscape", "", "", ""]])

    with pytest.raises(CommandError, match="No user is called 'zed'"):
        run("import", str(path), "--project", "Launch", "--user", "zed")


@pytest.mark.parametrize(
    ("username", "why"),
    [("carol", r"'Poseidon' \(only a viewer\)\.$"), ("charlie", r"'Poseidon'\.$")],
)
def test_a_user_who_cannot_edit_the_project_is_refused(
    project, charlie, shots, settings, username, why
):
    path = write_csv(shots / "b.csv", [["harbour.png", "x", "landscape", "", "", ""]])

    with pytest.raises(CommandError, match=f"is not an owner or editor of project {why}"):
        run("import", str(path), "--project", "Poseidon", "--user", username)

    assert not project.scenes.exists()
    assert media_files(settings) == []


def test_an_account_must_be_chosen_when_several_are_granted(alice, account, shots):
    backup = FlowAccount.objects.create(label="Backup", bearer_token="ya29.b")
    AccountGrant.objects.create(account=backup, user=alice)
    path = write_csv(shots / "b.csv", [["harbour.png", "x", "landscape", "", "", ""]])

    with pytest.raises(
        CommandError, match=r"Several accounts are granted to alice \('Backup', 'Studio'\)"
    ):
        run("import", str(path), "--project", "Launch", "--user", "alice")

    run("import", str(path), "--project", "Launch", "--user", "alice", "--account", "Backup")
    assert Project.objects.get(name="Launch").account.label == "Backup"


def test_an_unknown_account_or_no_account_is_refused(alice, shots):
    path = write_csv(shots / "b.csv", [["harbour.png", "x", "landscape", "", "", ""]])

    with pytest.raises(CommandError, match="No Flow or Vertex AI account is granted to alice"):
        run("import", str(path), "--project", "Launch", "--user", "alice")
    with pytest.raises(CommandError, match="No Flow or Vertex AI account is labelled 'Nope'"):
        run("import", str(path), "--project", "Launch", "--user", "alice", "--account", "Nope")


@pytest.mark.parametrize(("kind", "words"), [("flow", "Flow"), ("vertex", "Vertex AI")])
def test_an_account_not_granted_is_named_by_its_engine(alice, shots, kind, words):
    FlowAccount.objects.create(label="Cloud", kind=kind, bearer_token="ya29.c")
    path = write_csv(shots / "b.csv", [["harbour.png", "x", "landscape", "", "", ""]])

    with pytest.raises(CommandError, match=f"^The {words} account 'Cloud' is not granted to alice"):
        run("import", str(path), "--project", "Launch", "--user", "alice", "--account", "Cloud")


def test_an_existing_project_keeps_its_account(project, shots):
    FlowAccount.objects.create(label="Backup", bearer_token="ya29.b")
    path = write_csv(shots / "b.csv", [["harbour.png", "x", "landscape", "", "", ""]])

    with pytest.raises(CommandError, match="spends account Studio, not 'Backup'"):
        run("import", str(path), "--project", "Poseidon", "--user", "alice", "--account", "Backup")


def test_importing_into_a_project_without_an_account_moves_it_like_any_account_change(
    project, alice, bob, shots
):
    # Staff took Poseidon's Flow account away; its limits, set in credits, stayed.
    backup = FlowAccount.objects.create(label="Backup", bearer_token="ya29.b")
    project.set_accounts([project.account, backup])
    Project.objects.filter(pk=project.pk).update(account=None, monthly_budget=500)
    project.memberships.filter(user=bob).update(monthly_allowance=100)
    cloud = FlowAccount.objects.create(label="Cloud", kind="vertex", bearer_token="ya29.c")
    AccountGrant.objects.create(account=cloud, user=alice)
    path = write_csv(shots / "b.csv", [["harbour.png", "x", "landscape", "", "", ""]])

    out = run("import", str(path), "--project", "Poseidon", "--user", "alice", "--account", "Cloud")

    project.refresh_from_db()
    assert project.account == cloud
    # 500 credits are not $500: cleared, and whoever imported is told so.
    assert project.monthly_budget is None
    assert project.memberships.filter(monthly_allowance__isnull=False).count() == 0
    assert (
        "The monthly budget of 500 credits and the allowance of bob (100 credits) were "
        "cleared: Vertex AI accounts are paid in US dollars." in out
    )
    assert project.accounts_in_order() == [cloud, backup]
    event = AuditEvent.objects.get(action=AuditEvent.Action.ACCOUNTS_ORDERED)
    assert (event.actor_name, event.details["accounts"]) == ("alice", ["Cloud", "Backup"])


def test_stored_images_are_removed_when_the_import_fails_while_saving(
    alice, account, shots, settings, monkeypatch
):
    path = write_csv(
        shots / "b.csv",
        [["harbour.png", "One", "landscape"], ["tower.jpg", "Two", "portrait"]],
        header=["image", "prompt", "aspect"],
    )
    calls = []

    def store_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return store_start_image(*args, **kwargs)

    monkeypatch.setattr(storyboard, "store_start_image", store_then_fail)

    with pytest.raises(CommandError, match="row 3: .*tower.jpg: disk full"):
        run("import", str(path), "--project", "Launch", "--user", "alice")

    assert len(calls) == 2
    assert media_files(settings) == []
    assert not Project.objects.exists() and not ImageAsset.objects.exists()


# --- generate -----------------------------------------------------------------------------


@pytest.fixture
def board(project, alice) -> list[Scene]:
    image = store_start_image(project, io.BytesIO(_png_bytes()), alice, name="still.png")
    return [
        Scene.objects.create(
            project=project,
            position=index,
            prompt=f"Scene prompt {index + 1}",
            start_image=image,
            model_key="veo_3_1_i2v_s_fast",
            takes=takes,
        )
        for index, takes in enumerate([2, 1, 1, 1])
    ]


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def make_take(scene: Scene, take: int, status: str, **fields) -> Generation:
    # As create_generations does: the scene's counter has given this number.
    Scene.objects.filter(pk=scene.pk, last_take__lt=take).update(last_take=take)
    return Generation.objects.create(
        scene=scene,
        project=scene.project,
        take=take,
        prompt=scene.prompt,
        model_key=scene.model_key,
        aspect=scene.aspect,
        seed=fields.pop("seed", 1234),
        status=status,
        **fields,
    )


def test_generate_queues_every_scene_without_a_ready_or_running_take(
    board, bob, django_capture_on_commit_callbacks
):
    make_take(board[1], 1, Generation.Status.READY)
    make_take(board[2], 1, Generation.Status.PENDING)
    make_take(board[3], 1, Generation.Status.FAILED, reason="Unsafe prompt.")

    with django_capture_on_commit_callbacks() as callbacks:
        output = run("generate", "--project", "Poseidon", "--user", "bob")

    queued = Generation.objects.filter(status=Generation.Status.QUEUED, requested_by=bob)
    assert sorted((t.scene_id, t.take) for t in queued) == [
        (board[0].pk, 1),
        (board[0].pk, 2),
        (board[3].pk, 2),
    ]
    assert len(callbacks) == 2  # one submission per generated scene, after commit
    assert "Queued scene 1, takes 1, 2: Scene prompt 1" in output
    assert "Queued scene 4, take 2: Scene prompt 4" in output
    assert "Queued 3 takes for 2 scenes. Skipped 2 scenes" in output


def test_generate_with_nothing_to_do_says_so(board, bob):
    for scene in board:
        make_take(scene, 1, Generation.Status.READY)

    assert "Nothing to queue" in run("generate", "--project", "Poseidon", "--user", "bob")
    assert Generation.objects.count() == 4


def test_generate_queues_nothing_when_any_scene_cannot_be_generated(board, bob):
    board[2].model_key = "veo_3_1_i2v_s_fast_ultra"
    board[2].save(update_fields=["model_key"])
    board[3].start_image = None
    board[3].save(update_fields=["start_image"])

    with pytest.raises(CommandError) as refused:
        run("generate", "--project", "Poseidon", "--user", "bob")

    assert str(refused.value).splitlines() == [
        "Nothing was queued. Fix these scenes first:",
        "scene 3: Veo 3.1 Fast (Ultra) (veo_3_1_i2v_s_fast_ultra) needs a higher Flow tier than "
        "Pro (tier one), which the account Studio has; pick another model.",
        "scene 4: Add a start image before generating.",
    ]
    assert not Generation.objects.exists()


def test_generate_is_refused_to_a_viewer(board):
    with pytest.raises(CommandError, match="carol is not an owner or editor"):
        run("generate", "--project", "Poseidon", "--user", "carol")

    assert not Generation.objects.exists()


def test_generate_for_an_unknown_project_is_refused(alice):
    with pytest.raises(CommandError, match="No project is named 'Atlantis'"):
        run("generate", "--project", "Atlantis", "--user", "alice")


def test_several_projects_with_the_same_name_are_refused(project, alice):
    Project.objects.create(name="Poseidon")

    with pytest.raises(CommandError, match="Several projects are named 'Poseidon'"):
        run("status", "--project", "Poseidon")


# --- status -------------------------------------------------------------------------------


def test_status_shows_each_scene_and_take(board, alice, bob):
    make_take(board[0], 1, Generation.Status.READY, requested_by=alice)
    make_take(
        board[0],
        2,
        Generation.Status.FAILED,
        requested_by=bob,
        reason="Flow refused the prompt as unsafe; rephrase it.",
    )
    make_take(board[1], 1, Generation.Status.ACTIVE, requested_by=bob)
    board[2].title = "The long walk home"
    board[2].save(update_fields=["title"])

    output = run("status", "--project", "Poseidon")

    lines = output.splitlines()
    assert lines[0] == (
        "Project 'Poseidon' · account Studio · 4 scenes, 3 takes (1 ready, 1 in flight, 1 failed)"
    )
    assert lines[1].split() == ["SCENE", "TAKE", "STATUS", "BY", "PROMPT", "REASON"]
    rows = [line.split(None, 4) for line in lines[3:]]
    assert rows[0][:5] == ["1", "1", "Ready", "alice", "Scene prompt 1"]
    assert lines[4].split()[:3] == ["2", "Failed", "bob"]
    assert "Flow refused the prompt as unsafe; rephrase it." in lines[4]
    assert rows[2][:4] == ["2", "1", "Rendering", "bob"]
    assert lines[6].split()[:2] == ["3", "-"] and "no takes yet" in lines[6]
    assert "The long walk home" in lines[6]


def test_status_of_an_empty_project(project):
    assert "has no scenes yet" in run("status", "--project", "Poseidon")


def test_status_prints_names_stored_before_the_rule_as_escapes_not_as_terminal_commands(
    board, account
):
    # Written straight to the database, as rows from before the rule (or an upstream) would be.
    account.label = "Studio\x1b]0;owned\x07"
    account.save(update_fields=["label"])
    mallory = User.objects.create(username="mallory\x1b[2J")
    board[0].title = "Intro\x1b[31m red \u202eevil"
    board[0].save(update_fields=["title"])
    board[1].prompt = "Bell\x07 and C1\x9b31m"
    board[1].save(update_fields=["prompt"])
    make_take(board[0], 1, Generation.Status.FAILED, requested_by=mallory, reason="No\x1b[5m")

    output = run("status", "--project", "Poseidon")

    assert [char for char in output if char != "\n" and not char.isprintable()] == []
    assert "account Studio\\x1b]0;owned\\x07 ·" in output
    assert "mallory\\x1b[2J" in output
    assert "Intro\\x1b[31m red \\u202eevil" in output
    assert "Bell\\x07 and C1\\x9b31m" in output
    assert "No\\x1b[5m" in output


def test_generate_prints_titles_and_refusals_as_escapes(board, bob, account):
    account.label = "Studio\x1b[2J"
    account.save(update_fields=["label"])
    board[2].title = "Finale\x07"
    board[2].model_key = "veo_3_1_i2v_s_fast_ultra"
    board[2].save(update_fields=["title", "model_key"])

    with pytest.raises(CommandError) as refused:
        run("generate", "--project", "Poseidon", "--user", "bob")

    assert "which the account Studio\\x1b[2J has" in str(refused.value)
    assert "\x1b" not in str(refused.value)


# --- export -------------------------------------------------------------------------------


def ready_take(scene: Scene, take: int, data: bytes, user: User) -> Generation:
    generation = make_take(scene, take, Generation.Status.READY, requested_by=user, seed=42)
    name = default_storage.save(f"{generation.media_dir()}/video.mp4", ContentFile(data))
    generation.video = name
    generation.video_size = len(data)
    generation.video_sha256 = hashlib.sha256(data).hexdigest()
    generation.finished_at = timezone.now()
    generation.save(update_fields=["video", "video_size", "video_sha256", "finished_at"])
    return generation


def test_export_copies_every_ready_clip_and_lists_every_take(board, alice, bob, tmp_path):
    first = b"\x00\x00\x00\x18ftypmp42 first clip"
    second = b"\x00\x00\x00\x18ftypmp42 second clip"
    ready_take(board[0], 1, first, alice)
    make_take(board[0], 2, Generation.Status.FAILED, requested_by=bob, reason="Unsafe prompt.")
    ready_take(board[1], 3, second, bob)
    make_take(board[2], 1, Generation.Status.PENDING, requested_by=bob)
    out = tmp_path / "export" / "poseidon"

    output = run("export", "--project", "Poseidon", "--out", str(out))

    assert (out / "scene-01-take-1.mp4").read_bytes() == first
    assert (out / "scene-02-take-3.mp4").read_bytes() == second
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "scene-01-take-1.mp4",
        "scene-02-take-3.mp4",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["project"] == "Poseidon"
    assert manifest["takes"] == [
        {
            "scene": 1,
            "take": 1,
            "prompt": "Scene prompt 1",
            "model": "veo_3_1_i2v_s_fast",
            "aspect": "landscape",
            "mode": "image",
            "inputs": [],
            "seed": 42,
            "status": "ready",
            "reason": "",
            "requested_by": "alice",
            "file": "scene-01-take-1.mp4",
            "sha256": hashlib.sha256(first).hexdigest(),
            "source_take": None,
            "resolutions": ["720p"],
        },
        {
            "scene": 1,
            "take": 2,
            "prompt": "Scene prompt 1",
            "model": "veo_3_1_i2v_s_fast",
            "aspect": "landscape",
            "mode": "image",
            "inputs": [],
            "seed": 1234,
            "status": "failed",
            "reason": "Unsafe prompt.",
            "requested_by": "bob",
            "file": None,
            "sha256": None,
            "source_take": None,
            "resolutions": [],
        },
        {
            "scene": 2,
            "take": 3,
            "prompt": "Scene prompt 2",
            "model": "veo_3_1_i2v_s_fast",
            "aspect": "landscape",
            "mode": "image",
            "inputs": [],
            "seed": 42,
            "status": "ready",
            "reason": "",
            "requested_by": "bob",
            "file": "scene-02-take-3.mp4",
            "sha256": hashlib.sha256(second).hexdigest(),
            "source_take": None,
            "resolutions": ["720p"],
        },
        {
            "scene": 3,
            "take": 1,
            "prompt": "Scene prompt 3",
            "model": "veo_3_1_i2v_s_fast",
            "aspect": "landscape",
            "mode": "image",
            "inputs": [],
            "seed": 1234,
            "status": "pending",
            "reason": "",
            "requested_by": "bob",
            "file": None,
            "sha256": None,
            "source_take": None,
            "resolutions": [],
        },
    ]
    assert "Exported 2 clips of 4 takes" in output


def test_export_refuses_when_a_ready_clip_is_missing_from_storage(board, alice, tmp_path):
    take = ready_take(board[0], 1, b"clip", alice)
    default_storage.delete(take.video.name)
    out = tmp_path / "out"

    with pytest.raises(CommandError, match="the stored clip is missing for scene 1 take 1"):
        run("export", "--project", "Poseidon", "--out", str(out))

    assert not out.exists()


def test_export_refuses_a_clip_that_does_not_match_its_checksum(board, alice, tmp_path):
    ready_take(board[0], 1, b"good clip", alice)
    damaged = ready_take(board[1], 1, b"clip", alice)
    with default_storage.open(damaged.video.name, "wb") as handle:
        handle.write(b"clip, but changed")
    out = tmp_path / "out"

    with pytest.raises(CommandError, match="scene-02-take-1.mp4 does not match the checksum"):
        run("export", "--project", "Poseidon", "--out", str(out))

    assert list(out.iterdir()) == []


def test_export_into_a_file_is_refused(project, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")

    with pytest.raises(CommandError, match="exists and is not a folder"):
        run("export", "--project", "Poseidon", "--out", str(target))


def test_commands_reject_a_missing_subcommand(db):
    with pytest.raises(CommandError, match="required: ACTION"):
        call_command("storyboard")
