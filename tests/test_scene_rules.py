"""A scene rule reads the same wherever it refuses something: the scene form, the storyboard
CSV import and the admin say the same words, because the scene model says them."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image

from generations import rules
from generations.models import FlowAccount, Project, Scene
from tests.conftest import png_bytes
from tests.views_support import client_for

GOOD = {
    "prompt": "A lighthouse at dusk",
    "aspect": "landscape",
    "model": "veo_3_1_i2v_s_fast",
    "seed": "",
    "takes": "1",
}
SEED_RULE = "The seed must be a whole number from 0 to 2147483647, or blank."
TAKES_RULE = "Takes must be a whole number from 1 to 4."

RULES = [
    (
        "an empty prompt",
        {"prompt": ""},
        "Write a prompt: it tells the model what happens in the clip.",
    ),
    (
        "a bell in the prompt",
        {"prompt": "Bell\x07"},
        "The prompt contains an invisible control character (U+0007) at character 5; remove it "
        "(only line breaks and tabs may be in a prompt).",
    ),
    (
        "a bidi override in the prompt",
        {"prompt": "Left \u202eright"},
        "The prompt contains an invisible control character (U+202E) at character 6; remove it "
        "(only line breaks and tabs may be in a prompt).",
    ),
    (
        "a prompt too long",
        {"prompt": "w" * 2001},
        "The prompt is 2001 characters long, more than the 2000 a prompt may have; shorten it.",
    ),
    (
        "an unknown aspect",
        {"aspect": "square"},
        "The aspect must be landscape (16:9) or portrait (9:16), not “square”.",
    ),
    (
        "no aspect",
        {"aspect": ""},
        "Choose the aspect: landscape (16:9) or portrait (9:16).",
    ),
    (
        "a model of the other aspect",
        {"model": "veo_3_1_i2v_s_fast_portrait"},
        "Veo 3.1 Fast (veo_3_1_i2v_s_fast_portrait) makes Portrait 9:16 clips, not Landscape "
        "16:9; pick a model of that aspect or change the aspect.",
    ),
    (
        "a model above the account's tier",
        {"model": "veo_3_1_i2v_s_fast_ultra"},
        "Veo 3.1 Fast (Ultra) (veo_3_1_i2v_s_fast_ultra) needs a higher Flow tier than "
        "Pro (tier one), which the account Studio has; pick another model.",
    ),
    ("a seed that is not a number", {"seed": "lucky"}, SEED_RULE),
    ("a negative seed", {"seed": "-1"}, SEED_RULE),
    ("a seed past 32 bits", {"seed": "2147483648"}, SEED_RULE),
    ("no takes", {"takes": "0"}, TAKES_RULE),
    ("too many takes", {"takes": "5"}, TAKES_RULE),
    ("takes in words", {"takes": "two"}, TAKES_RULE),
]


def form_refusal(project: Project, user: User, scene: dict[str, str]) -> str:
    data = {
        "title": "",
        "prompt": scene["prompt"],
        "aspect": scene["aspect"],
        "model_key": scene["model"],
        "seed": scene["seed"],
        "takes": scene["takes"],
        "start_image_file": SimpleUploadedFile("start.png", png_bytes(), "image/png"),
    }
    response = client_for(user).post(reverse("scene-create", args=[project.uuid]), data)
    assert response.status_code == 200
    return html.unescape(response.text)


def csv_refusal(folder: Path, scene: dict[str, str]) -> str:
    Image.new("RGB", (64, 36), (200, 80, 40)).save(folder / "harbour.png")
    path = folder / "board.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "prompt", "aspect", "model", "seed", "takes"])
        writer.writerow(["harbour.png", *(scene[key] for key in GOOD)])
    with pytest.raises(CommandError) as refused:
        call_command(
            "storyboard",
            "import",
            str(path),
            "--project",
            "Poseidon",
            "--user",
            "bob",
            stdout=io.StringIO(),
        )
    return str(refused.value)


@pytest.mark.parametrize(("case", "change", "words"), RULES, ids=[rule[0] for rule in RULES])
def test_the_scene_form_and_the_csv_import_refuse_in_the_same_words(
    project, bob, tmp_path, case, change, words
):
    scene = {**GOOD, **change}

    on_the_page = form_refusal(project, bob, scene)
    in_the_terminal = csv_refusal(tmp_path, scene)

    assert words in on_the_page
    assert in_the_terminal.splitlines()[1] == f"row 2: {words}"
    assert not Scene.objects.exists()


def test_an_unknown_model_is_refused_naming_the_menus_models_on_the_page_and_their_keys_in_the_csv(
    project, bob, tmp_path
):
    scene = {**GOOD, "model": "veo_9"}

    on_the_page = form_refusal(project, bob, scene)
    in_the_terminal = csv_refusal(tmp_path, scene)

    # The names the form's model menu shows, where bob picks from it…
    assert (
        "Unknown model “veo_9”; pick one of Veo 3.1 Fast, Veo 3.1 Quality, Veo 3.1 Lite, "
        "Veo 3.1 Lite (low priority)." in on_the_page
    )
    assert "veo_3_1_i2v_s_fast," not in on_the_page
    # …and the keys the CSV's model column takes, where he types one.
    assert in_the_terminal.splitlines()[1] == (
        "row 2: Unknown model “veo_9”; pick one of veo_3_1_i2v_s_fast, veo_3_1_i2v_s, "
        "veo_3_1_i2v_lite, veo_3_1_i2v_lite_low_priority."
    )


def test_without_an_aspect_each_model_name_is_offered_once(project):
    assert rules.model_problem("veo_9", None, project.account, "text") == (
        "Unknown model “veo_9”; pick one of Veo 3.1 Fast, Veo 3.1 Quality, Veo 3.1 Lite."
    )


def test_bobs_title_too_long_is_refused_in_flowsites_words(project, bob):
    response = client_for(bob).post(
        reverse("scene-create", args=[project.uuid]),
        {
            "title": "Dawn" * 125,
            "prompt": GOOD["prompt"],
            "aspect": "landscape",
            "model_key": GOOD["model"],
            "takes": "1",
            "start_image_file": SimpleUploadedFile("start.png", png_bytes(), "image/png"),
        },
    )

    assert response.context["form"].errors == {
        "title": ["A title can be at most 120 characters; this one has 500."]
    }
    assert "Ensure this value" not in response.text
    assert not Scene.objects.exists()


def test_a_model_key_longer_than_its_column_is_refused_once_as_unknown(project, bob):
    key = "veo_" + "x" * 60
    response = client_for(bob).post(
        reverse("scene-create", args=[project.uuid]),
        {
            "prompt": GOOD["prompt"],
            "aspect": "landscape",
            "model_key": key,
            "takes": "1",
            "start_image_file": SimpleUploadedFile("start.png", png_bytes(), "image/png"),
        },
    )

    [refusal] = response.context["form"].errors["model_key"]
    assert refusal.startswith(f"Unknown model “{key}”; pick one of ")


def test_a_good_scene_passes_both(project, bob, tmp_path):
    response = client_for(bob).post(
        reverse("scene-create", args=[project.uuid]),
        {
            "prompt": GOOD["prompt"],
            "aspect": "landscape",
            "model_key": GOOD["model"],
            "seed": "7",
            "takes": "2",
            "start_image_file": SimpleUploadedFile("start.png", png_bytes(), "image/png"),
        },
    )
    assert response.status_code == 302
    Image.new("RGB", (64, 36)).save(tmp_path / "harbour.png")
    path = tmp_path / "board.csv"
    path.write_text("image,prompt,aspect,model,seed,takes\nharbour.png,Waves,landscape,,7,2\n")
    call_command(
        "storyboard",
        "import",
        str(path),
        "--project",
        "Poseidon",
        "--user",
        "bob",
        stdout=io.StringIO(),
    )
    assert list(Scene.objects.order_by("position").values_list("seed", "takes")) == [
        (7, 2),
        (7, 2),
    ]


def test_the_admin_refuses_a_scene_in_the_same_words(project, admin_client):
    scene = Scene.objects.create(
        project=project, prompt="A lighthouse", model_key="veo_3_1_i2v_s_fast"
    )

    response = admin_client.post(
        reverse("admin:generations_scene_change", args=[scene.pk]),
        {
            "project": project.pk,
            "position": 0,
            "title": "",
            "prompt": "A lighthouse",
            "aspect": "landscape",
            "model_key": "veo_3_1_i2v_s_fast_ultra",
            "seed": "",
            "takes": "9",
        },
    )

    text = html.unescape(response.text)
    assert TAKES_RULE in text
    assert (
        "needs a higher Flow tier than Pro (tier one), which the account Studio has; "
        "pick another model." in text
    )
    scene.refresh_from_db()
    assert (scene.model_key, scene.takes) == ("veo_3_1_i2v_s_fast", 1)


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root", "root@example.org", "x"))
    return client


# --- names --------------------------------------------------------------------------------


NAMES = [
    ("an escape sequence", "Launch\x1b[2J", "U+001B", 7),
    ("a bell", "Launch\x07", "U+0007", 7),
    ("a C1 control", "Launch\x9b31m", "U+009B", 7),
    ("a bidi override", "Launch\u202egpj.exe", "U+202E", 7),
    ("a bidi isolate", "Launch\u2066x", "U+2066", 7),
    ("a line break", "Launch\nDone", "U+000A", 7),
]


@pytest.mark.parametrize(("case", "name", "code", "at"), NAMES, ids=[n[0] for n in NAMES])
def test_a_project_name_with_a_control_character_is_refused_on_the_page_and_by_the_import(
    charlie, alice, account, tmp_path, case, name, code, at
):
    words = (
        f"The project name contains an invisible control character ({code}) at character "
        f"{at}; remove it."
    )
    response = client_for(charlie).post(reverse("project-create"), {"name": name})
    Image.new("RGB", (64, 36)).save(tmp_path / "a.png")
    (tmp_path / "b.csv").write_text("image,prompt,aspect\na.png,Waves,landscape\n")
    with pytest.raises(CommandError) as refused:
        call_command(
            "storyboard",
            "import",
            str(tmp_path / "b.csv"),
            "--project",
            name,
            "--user",
            "alice",
            stdout=io.StringIO(),
        )

    assert response.status_code == 200
    assert words in html.unescape(response.text)
    assert str(refused.value) == words
    assert not Project.objects.exists()


@pytest.mark.parametrize(
    ("title", "code"), [("Intro\x1b]0;pwned\x07", "U+001B"), ("Intro\x00 tail", "U+0000")]
)
def test_a_scene_title_with_an_escape_sequence_or_a_null_is_refused(project, bob, title, code):
    response = client_for(bob).post(
        reverse("scene-create", args=[project.uuid]),
        {
            "title": title,
            "prompt": "Waves",
            "aspect": "landscape",
            "model_key": "veo_3_1_i2v_s_fast",
            "takes": "1",
            "start_image_file": SimpleUploadedFile("start.png", png_bytes(), "image/png"),
        },
    )

    assert (
        f"The title contains an invisible control character ({code}) at character 6; remove it."
        in html.unescape(response.text)
    )
    assert not Scene.objects.exists()


def test_an_account_label_with_a_control_character_is_refused_by_the_command_and_the_admin(
    admin_client,
):
    words = "The label contains an invisible control character (U+001B) at character 7; remove it."
    with pytest.raises(CommandError) as refused:
        call_command(
            "flow_account",
            "add",
            "Studio\x1b[8m",
            "--bearer-token",
            "ya29.secret-token-1234",
            stdout=io.StringIO(),
        )
    response = admin_client.post(
        reverse("admin:generations_flowaccount_add"),
        {"label": "Studio\x1b[8m", "tier": "PAYGATE_TIER_ONE", "new_bearer_token": "ya29.t"},
    )

    assert str(refused.value) == words
    assert words in html.unescape(response.text)
    assert not FlowAccount.objects.exists()
