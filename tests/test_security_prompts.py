"""Prompts hold text a person wrote: control characters and over-long prompts are refused in
words by the scene form and by the storyboard CSV import, and nothing is saved."""

import csv
import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image

from generations.models import AccountGrant, Project, Scene
from generations.rules import MAX_PROMPT_CHARACTERS, prompt_problem
from tests.conftest import png_bytes
from tests.views_support import client_for


def scene_data(prompt: str) -> dict:
    return {
        "title": "Opening",
        "prompt": prompt,
        "aspect": "landscape",
        "model_key": "veo_3_1_i2v_s_fast",
        "seed": "",
        "takes": "1",
        "start_image_file": SimpleUploadedFile("start.png", png_bytes(), "image/png"),
    }


def add_scene(project, user, prompt: str):
    return client_for(user).post(reverse("scene-create", args=[project.uuid]), scene_data(prompt))


def test_the_model_and_the_check_agree_on_the_longest_prompt():
    assert Scene._meta.get_field("prompt").max_length == MAX_PROMPT_CHARACTERS == 2000


@pytest.mark.parametrize(
    ("prompt", "code"),
    [
        ("Waves \x1b[31mroll\x1b[0m in", "U+001B"),
        ("A bell rings\x07", "U+0007"),
        ("Page one\x0cpage two", "U+000C"),
        ("Delete\x7f me", "U+007F"),
        ("A C1 control\x85here", "U+0085"),
        # Django's own "Null characters are not allowed." used to answer this one alone.
        ("A null\x00here", "U+0000"),
    ],
)
def test_the_scene_form_refuses_a_prompt_with_a_control_character(project, bob, prompt, code):
    response = add_scene(project, bob, prompt)
    assert response.status_code == 200
    assert f"The prompt contains an invisible control character ({code}) at character" in (
        response.text
    )
    assert "only line breaks and tabs may be in a prompt" in response.text
    assert not Scene.objects.exists()


def test_the_position_of_the_control_character_is_given(project, bob):
    response = add_scene(project, bob, "abc\x1bdef")
    assert "(U+001B) at character 4;" in response.text


def test_line_breaks_and_tabs_are_kept_and_crlf_becomes_one_line_break(project, bob):
    response = add_scene(project, bob, "First line\r\nSecond\tline\rThird line")
    assert response.status_code == 302
    assert Scene.objects.get().prompt == "First line\nSecond\tline\nThird line"


def test_a_prompt_of_2000_characters_is_accepted_and_2001_is_refused_in_words(project, bob):
    assert add_scene(project, bob, "x" * 2000).status_code == 302
    response = add_scene(project, bob, "y" * 2001)
    assert response.status_code == 200
    assert (
        "The prompt is 2001 characters long, more than the 2000 a prompt may have; shorten it."
        in response.text
    )
    assert Scene.objects.count() == 1


def test_browser_line_breaks_count_once_towards_the_limit(project, bob):
    # A textarea's maxlength counts a line break as one character; the browser sends CR LF.
    prompt = "\r\n".join(["z" * 99] * 20)  # 1980 + 19 line breaks = 1999 characters
    assert add_scene(project, bob, prompt).status_code == 302
    assert len(Scene.objects.get().prompt) == 1999


def test_prompt_problem_is_empty_for_ordinary_text_in_any_script():
    assert prompt_problem("Ein Leuchtturm 🌊 — 灯台, «vagues»\n\tand tabs") == ""


# --- the CSV import ------------------------------------------------------------------------


@pytest.fixture
def account(account, alice):
    """The studio account, granted to alice, who imports the boards here."""
    AccountGrant.objects.get_or_create(account=account, user=alice)
    return account


def write_board(folder: Path, prompts: list[str]) -> Path:
    Image.new("RGB", (64, 36), (200, 80, 40)).save(folder / "harbour.png")
    path = folder / "board.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "prompt", "aspect"])
        for prompt in prompts:
            writer.writerow(["harbour.png", prompt, "landscape"])
    return path


def import_board(path: Path) -> str:
    out = io.StringIO()
    call_command(
        "storyboard", "import", str(path), "--project", "Launch", "--user", "alice", stdout=out
    )
    return out.getvalue()


def test_the_csv_import_refuses_control_characters_and_long_prompts_by_row(
    alice, account, tmp_path
):
    path = write_board(tmp_path, ["Fine", "Bell\x07", "w" * 2001, "Escape \x1b[2J"])
    with pytest.raises(CommandError) as refused:
        import_board(path)
    assert str(refused.value).splitlines()[1:] == [
        "row 3: The prompt contains an invisible control character (U+0007) at character 5; "
        "remove it (only line breaks and tabs may be in a prompt).",
        "row 4: The prompt is 2001 characters long, more than the 2000 a prompt may have; shorten it.",
        "row 5: The prompt contains an invisible control character (U+001B) at character 8; "
        "remove it (only line breaks and tabs may be in a prompt).",
    ]
    assert not Project.objects.exists()


def test_the_csv_import_keeps_line_breaks_inside_a_quoted_prompt(alice, account, tmp_path):
    path = write_board(tmp_path, ["Boats leave\r\nthe harbour\tslowly"])
    import_board(path)
    assert Scene.objects.get().prompt == "Boats leave\nthe harbour\tslowly"
