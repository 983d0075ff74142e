"""Scene options a Vertex AI account offers (duration, resolution, sound, negative prompt,
people): the form shows only what the account's engine can do, and the scene rules refuse the
rest in the same words on the page and in the CSV import."""

from __future__ import annotations

import html
import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image

from generations.models import FlowAccount, Generation, Project, Scene
from tests.conftest import make_scene
from tests.views_support import client_for, make_take, png_bytes

FAST = "veo-3.1-fast-generate-001"
OPTION_FIELDS = ("duration", "resolution", "audio", "negative_prompt", "person_generation")


@pytest.fixture
def on_vertex(project, account):
    account.kind = FlowAccount.Kind.VERTEX
    account.vertex_project = "flowsite-demo"
    account.save()
    return project


def post_scene(project: Project, user, **fields) -> str:
    data = {
        "title": "",
        "prompt": "A heron lifts off",
        "aspect": "landscape",
        "model_key": FAST,
        "seed": "",
        "takes": "1",
        "start_image_file": SimpleUploadedFile("start.png", png_bytes(), "image/png"),
        **fields,
    }
    response = client_for(user).post(reverse("scene-create", args=[project.uuid]), data)
    return "" if response.status_code == 302 else html.unescape(response.text)


def import_csv(folder: Path, header: list[str], row: list[str]) -> str:
    Image.new("RGB", (64, 36), (200, 80, 40)).save(folder / "harbour.png")
    path = folder / "board.csv"
    path.write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    out = io.StringIO()
    call_command(
        "storyboard", "import", str(path), "--project", "Poseidon", "--user", "bob", stdout=out
    )
    return out.getvalue()


def test_a_vertex_account_offers_the_clip_options_and_only_its_models(on_vertex, bob):
    page = client_for(bob).get(reverse("scene-create", args=[on_vertex.uuid])).text

    for name in OPTION_FIELDS:
        assert f'name="{name}"' in page
    assert '<option value="1080p">' in page and "1080p only at 8 s" in page
    # The value stays as the CSV and the README write it; the person reads 4K.
    assert '<option value="4k">4K</option>' in page and "4K only at 8 s" in page
    assert FAST in page and "veo_3_1_i2v_s_fast" not in page


def test_a_flow_account_offers_none_of_them(project, bob):
    page = client_for(bob).get(reverse("scene-create", args=[project.uuid])).text

    for name in OPTION_FIELDS:
        assert f'name="{name}"' not in page
    assert "veo-3.1" not in page


def test_bobs_scene_form_on_a_vertex_project_names_vertex_ai_without_a_tier_and_bills_dollars(
    on_vertex, bob
):
    page = html.unescape(client_for(bob).get(reverse("scene-create", args=[on_vertex.uuid])).text)

    assert "Models are listed for the project's Vertex AI account; pick one" in page
    assert "How many clips one Generate asks for (each is billed in US dollars)." in page
    assert "tier" not in page and "credits" not in page


def test_bobs_scene_form_on_a_flow_project_names_flow_its_tier_and_credits(project, bob):
    page = html.unescape(client_for(bob).get(reverse("scene-create", args=[project.uuid])).text)

    assert "Models are listed for the project's Flow account (Pro (tier one)); pick one" in page
    assert "How many clips one Generate asks for (each spends credits)." in page


def test_bobs_missing_or_long_prompt_on_a_vertex_project_does_not_name_flow(on_vertex, bob):
    assert "Write a prompt: it tells the model what happens in the clip." in post_scene(
        on_vertex, bob, prompt=""
    )
    assert (
        "The prompt is 2001 characters long, more than the 2000 a prompt may have; shorten it."
        in post_scene(on_vertex, bob, prompt="x" * 2001)
    )


def test_bob_saves_a_vertex_scene_with_its_options(on_vertex, bob):
    refusal = post_scene(
        on_vertex,
        bob,
        duration="8",
        resolution="1080p",
        audio="on",
        negative_prompt="text overlays",
        person_generation="dont_allow",
    )

    assert refusal == ""
    scene = Scene.objects.get()
    assert (scene.duration, scene.resolution, scene.audio) == (8, "1080p", True)
    assert (scene.negative_prompt, scene.person_generation) == ("text overlays", "dont_allow")


RULE_1080P = "1080p clips are made only 8 seconds long; pick 8 s or 720p."


def test_1080p_at_4_seconds_is_refused_in_the_same_words_on_the_page_and_in_the_csv(
    on_vertex, bob, tmp_path
):
    on_the_page = post_scene(on_vertex, bob, duration="4", resolution="1080p")
    with pytest.raises(CommandError) as refused:
        import_csv(
            tmp_path,
            ["image", "prompt", "aspect", "duration", "resolution"],
            ["harbour.png", "Waves", "landscape", "4", "1080p"],
        )

    assert RULE_1080P in on_the_page
    assert refused.value.args[0].splitlines()[1] == f"row 2: {RULE_1080P}"
    assert not Scene.objects.exists()


def test_a_duration_vertex_does_not_make_is_refused(on_vertex, bob):
    assert "A clip is 4, 6 or 8 s long, not 5 s." in post_scene(on_vertex, bob, duration="5")


def test_a_csv_asking_flow_for_a_4_second_clip_says_why_it_cannot(project, bob, tmp_path):
    with pytest.raises(CommandError) as refused:
        import_csv(
            tmp_path,
            ["image", "prompt", "aspect", "duration"],
            ["harbour.png", "Waves", "landscape", "4"],
        )

    assert (
        "Clips on the Google Flow account Studio are 8 seconds long; leave the duration blank."
        in str(refused.value)
    )


def test_a_csv_imports_vertex_options_and_the_default_vertex_model(on_vertex, bob, tmp_path):
    import_csv(
        tmp_path,
        ["image", "prompt", "aspect", "duration", "audio", "negative_prompt"],
        ["harbour.png", "Waves", "portrait", "6", "yes", "no text"],
    )

    scene = Scene.objects.get()
    assert (scene.model_key, scene.duration, scene.audio) == (FAST, 6, True)
    assert scene.negative_prompt == "no text"


def test_a_flow_model_on_a_vertex_account_is_refused_in_words(on_vertex, bob):
    refusal = post_scene(on_vertex, bob, model_key="veo_3_1_i2v_s_fast")

    assert "is a Google Flow model, and the account Studio is a Vertex AI account" in refusal


def test_takes_copy_the_scenes_options(on_vertex, bob, alice):
    from tests.conftest import make_image, make_scene

    scene = make_scene(
        on_vertex,
        make_image(on_vertex),
        model_key=FAST,
        duration=6,
        resolution="720p",
        audio=True,
        negative_prompt="rain",
        person_generation="allow_adult",
    )

    [take] = scene.generate(alice)

    assert (take.duration, take.resolution, take.audio) == (6, "720p", True)
    assert (take.negative_prompt, take.person_generation) == ("rain", "allow_adult")


# --- cost -------------------------------------------------------------------------------------


def test_a_vertex_take_records_its_price_and_the_button_says_what_a_click_costs(
    on_vertex, alice, settings
):
    from decimal import Decimal

    from tests.conftest import make_image, make_scene

    settings.VERTEX_PRICES = [
        "veo-3.1-fast-generate-001=0.15",
        "veo-3.1-fast-generate-001+audio=0.25",
    ]
    scene = make_scene(
        on_vertex, make_image(on_vertex), model_key=FAST, duration=4, takes=2, audio=True
    )

    page = client_for(alice).get(reverse("project-detail", args=[on_vertex.uuid])).text
    takes = scene.generate(alice)

    assert "2 takes × 4 s × $0.25/s = $2.00" in html.unescape(page)
    assert [(take.cost, take.cost_unit) for take in takes] == [(Decimal("1.00"), "USD")] * 2


def test_a_resolution_priced_apart_is_used_and_a_model_without_a_price_shows_no_cost(
    on_vertex, settings
):
    from decimal import Decimal

    from tests.conftest import make_scene

    settings.VERTEX_PRICES = ["veo-3.1-generate-001=0.40", "veo-3.1-generate-001@1080p=0.50"]
    quality = make_scene(
        on_vertex, model_key="veo-3.1-generate-001", resolution="1080p", duration=8
    )
    lite = make_scene(on_vertex, model_key="veo-3.1-lite-generate-001")

    assert quality.take_cost() == (Decimal("4.00"), "USD")
    assert lite.take_cost() == (None, "USD") and lite.cost_words() == ""


def test_a_flow_take_records_its_credits_by_tier(project, alice, account):
    from decimal import Decimal

    from generations.engines.catalogue import TIER_TWO
    from tests.conftest import make_image, make_scene

    scene = make_scene(project, make_image(project), takes=2)
    assert scene.cost_words() == "2 takes × 20 credits = 40 credits"
    account.tier = TIER_TWO
    account.save()
    scene.project.refresh_from_db()

    takes = scene.generate(alice)

    assert [(take.cost, take.cost_unit) for take in takes] == [(Decimal(10), "credits")] * 2


def test_alices_vertex_take_waiting_upstream_says_so_without_naming_flow(vertex_project, alice):
    scene = make_scene(vertex_project, mode="text", model_key="veo-3.1-fast-generate-001")
    make_take(scene, alice, status=Generation.Status.PENDING)
    make_take(scene, alice, status=Generation.Status.SUBMITTING)

    page = client_for(alice).get(reverse("project-detail", args=[vertex_project.uuid])).text

    assert 'title="Waiting to render"' in page
    assert 'title="Submitting"' in page
    assert "Flow's queue" not in page
    assert "Submitting to Flow" not in page


def test_alices_vertex_project_names_its_account_as_vertex_ai_paid_in_dollars(
    vertex_project, alice
):
    page = client_for(alice).get(reverse("project-detail", args=[vertex_project.uuid])).text

    facts = page.split('id="account-facts"')[1].split("</p>")[0]
    assert f"Vertex AI account {vertex_project.account}:" in " ".join(facts.split())
    assert "paid in US dollars through its Google Cloud project." in facts
    assert "credit" not in facts
    assert "Flow" not in facts


def test_alices_unpriced_preview_model_is_refused_under_a_budget_instead_of_spending_uncounted(
    vertex_project, alice
):
    from generations.models import CannotGenerate

    scene = make_scene(vertex_project, mode="text", model_key="veo-3.1-lite-generate-001")
    vertex_project.monthly_budget = 8
    vertex_project.save(update_fields=["monthly_budget"])

    with pytest.raises(CannotGenerate) as refusal:
        scene.generate(alice)

    assert str(refusal.value) == (
        "Flowsite knows no price for Veo 3.1 Lite (preview), so it cannot keep these takes "
        f"within {vertex_project}'s monthly budget. Pick a priced model, or ask an admin to "
        "price this one."
    )
    assert not Generation.objects.filter(scene=scene).exists()
    vertex_project.monthly_budget = None
    vertex_project.save(update_fields=["monthly_budget"])
    assert len(scene.generate(alice)) == scene.takes


def test_alices_vertex_card_shows_the_clip_options_she_chose_and_a_flow_card_shows_none(
    vertex_project, alice
):
    make_scene(
        vertex_project,
        mode="text",
        model_key="veo-3.1-generate-001",
        duration=8,
        resolution="4k",
        audio=False,
        negative_prompt="no text on screen",
        person_generation="dont_allow",
    )
    page = client_for(alice).get(reverse("project-detail", args=[vertex_project.uuid])).text

    for fact in (
        "<dt>Length</dt><dd>8 s</dd>",
        "<dt>Resolution</dt><dd>4K</dd>",
        "<dt>Sound</dt><dd>Off</dd>",
        "<dt>Avoid</dt><dd>no text on screen</dd>",
        "<dt>People</dt><dd>No people</dd>",
    ):
        assert fact in page

    vertex_project.account.kind = FlowAccount.Kind.FLOW
    vertex_project.account.save(update_fields=["kind"])
    page = client_for(alice).get(reverse("project-detail", args=[vertex_project.uuid])).text
    assert "<dt>Length</dt>" not in page
    assert "<dt>Sound</dt>" not in page


def test_a_4k_take_reads_4k_on_its_card_and_in_the_gallery(on_vertex, alice):
    from tests.views_support import attach_clip

    scene = make_scene(on_vertex, mode="text", model_key=FAST, duration=8, resolution="4k")
    attach_clip(make_take(scene, alice, status=Generation.Status.READY, resolution="4k"), b"clip")
    client = client_for(alice)

    card = client.get(reverse("project-detail", args=[on_vertex.uuid])).text
    gallery = client.get(reverse("project-gallery", args=[on_vertex.uuid])).text

    assert '<span class="badge badge--resolution">4K</span>' in card
    assert '<dd class="gallery__resolutions">4K</dd>' in gallery
    assert ">4k<" not in card + gallery


def test_4k_at_4_seconds_is_refused_naming_4k_as_a_person_reads_it(on_vertex, bob):
    assert form_errors(on_vertex, bob, duration="4", resolution="4k") == {
        "resolution": ["4K clips are made only 8 seconds long; pick 8 s or 720p."]
    }


def form_errors(project: Project, user, **fields) -> dict[str, list[str]]:
    data = {
        "prompt": "A heron lifts off",
        "aspect": "landscape",
        "model_key": FAST,
        "takes": "1",
        "start_image_file": SimpleUploadedFile("start.png", png_bytes(), "image/png"),
        **fields,
    }
    response = client_for(user).post(reverse("scene-create", args=[project.uuid]), data)
    assert response.status_code == 200
    return dict(response.context["form"].errors)


@pytest.mark.parametrize("duration", ["-8", "1" * 30])
def test_a_duration_out_of_any_range_is_refused_once_with_the_engines_choices_on_the_page_and_in_the_csv(
    on_vertex, bob, tmp_path, duration
):
    words = f"A clip is 4, 6 or 8 s long, not {duration} s."

    on_the_page = form_errors(on_vertex, bob, duration=duration)
    with pytest.raises(CommandError) as refused:
        import_csv(
            tmp_path,
            ["image", "prompt", "aspect", "duration"],
            ["harbour.png", "Waves", "landscape", duration],
        )

    assert on_the_page == {"duration": [words]}
    assert refused.value.args[0].splitlines()[1] == f"row 2: {words}"
    assert not Scene.objects.exists()


def test_a_duration_that_is_not_a_number_is_refused_once(on_vertex, bob, tmp_path):
    rule = "The duration is a whole number of seconds, or blank."

    on_the_page = form_errors(on_vertex, bob, duration="abc", resolution="1080p")
    with pytest.raises(CommandError) as refused:
        import_csv(
            tmp_path,
            ["image", "prompt", "aspect", "duration"],
            ["harbour.png", "Waves", "landscape", "abc"],
        )

    assert on_the_page == {"duration": [rule]}
    assert refused.value.args[0].splitlines()[1] == f"row 2: {rule}"


def test_options_longer_than_their_columns_are_refused_once_naming_the_choices(on_vertex, bob):
    errors = form_errors(on_vertex, bob, resolution="8k-ultra-hd", person_generation="x" * 21)

    assert errors == {
        "resolution": ["The resolution is 720p, 1080p or 4k, not “8k-ultra-hd”."],
        "person_generation": [
            f"Who may appear is one of allow_adult, dont_allow or allow_all, not “{'x' * 21}”."
        ],
    }
