"""Scene modes: what each needs, which models do it, the scene form that follows the mode
(and refuses in words what does not fit), the card that shows every image, and the take that
records what it was made from."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from generations import rules
from generations.engines.base import EngineKind, Mode
from generations.engines.catalogue import TIER_ONE, TIER_TWO, models_for
from generations.models import FlowAccount, Generation, ImageAsset, Scene
from tests.conftest import make_image, make_scene, png_bytes
from tests.views_support import client_for, seen_settings

RED, GREEN, BLUE = (220, 30, 30), (30, 200, 40), (30, 40, 220)


def upload(name: str, colour=(30, 90, 200)) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes(colour=colour), "image/png")


def form_data(**overrides) -> dict:
    data = {
        "title": "Opening",
        "prompt": "A lighthouse at dusk, waves rolling in",
        "aspect": "landscape",
        "mode": "image",
        "model_key": "veo_3_1_i2v_s_fast",
        "seed": "",
        "takes": "1",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def post_scene(user, project, data, scene: Scene | None = None):
    url = (
        reverse("scene-edit", args=[scene.uuid])
        if scene
        else reverse("scene-create", args=[project.uuid])
    )
    if scene:
        data = {**data, "seen_settings": seen_settings(scene)}
    return client_for(user).post(url, data)


# --- the rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "have", "missing"),
    [
        ("text", {}, {}),
        ("image", {}, {"start_image"}),
        ("frames", {"start": True}, {"end_image"}),
        ("frames", {}, {"start_image", "end_image"}),
        ("ingredients", {}, {"reference_1"}),
        ("ingredients", {"references": 3}, set()),
    ],
)
def test_each_mode_needs_its_own_images(mode, have, missing):
    values = {"start": False, "end": False, "references": 0, **have}

    assert set(rules.mode_input_problems(mode, **values)) == set(missing)


def test_images_a_mode_does_not_use_and_a_fourth_reference_are_refused_in_words():
    assert rules.mode_input_problems("text", start=True, end=False, references=0) == {
        "start_image": "A Text clip takes no start image; choose Start image or Start and end "
        "frames, or leave the start image empty."
    }
    assert (
        "takes no end image"
        in rules.mode_input_problems("image", start=True, end=True, references=0)["end_image"]
    )
    assert rules.mode_input_problems("ingredients", start=False, end=False, references=4) == {
        "reference_1": "An Ingredients clip takes 1 to 3 reference images, not 4."
    }


@pytest.mark.parametrize("tier", [TIER_ONE, TIER_TWO])
def test_quality_is_never_offered_for_ingredients_on_flow(tier):
    offered = models_for(tier, None, EngineKind.FLOW, Mode.INGREDIENTS)

    assert offered
    assert not [model for model in offered if "Quality" in model.label]
    assert {model.key for model in models_for(tier, "portrait", EngineKind.FLOW, Mode.FRAMES)} >= {
        "veo_3_1_i2v_s_fast_portrait_fl",
        "veo_3_1_i2v_s_portrait_fl",
    }


def test_each_flow_model_does_one_mode_and_the_vertex_lite_preview_only_text_and_image():
    assert {
        model.key for model in models_for(TIER_ONE, "landscape", EngineKind.FLOW, Mode.TEXT)
    } == {
        "veo_3_1_t2v_fast",
        "veo_3_1_t2v",
        "veo_3_1_t2v_lite",
    }
    vertex = {model.key for model in models_for("", None, EngineKind.VERTEX, Mode.INGREDIENTS)}
    assert vertex == {"veo-3.1-fast-generate-001", "veo-3.1-generate-001"}


def test_a_scene_with_a_model_of_another_mode_is_refused_naming_those_that_fit(project):
    scene = make_scene(project, mode="ingredients", model_key="veo_3_1_i2v_s")
    scene.reference_1 = make_image(project)

    with pytest.raises(ValidationError) as refused:
        scene.full_clean()

    assert refused.value.message_dict["model_key"] == [
        "Veo 3.1 Quality (veo_3_1_i2v_s) does not make clips from reference images "
        "(ingredients); pick one of Veo 3.1 Fast, Veo 3.1 Lite."
    ]


def test_ingredients_on_vertex_are_8_seconds_long(project, account):
    account.kind = FlowAccount.Kind.VERTEX
    account.vertex_project = "flowsite-demo"
    account.save()
    scene = make_scene(
        project, mode="ingredients", model_key="veo-3.1-fast-generate-001", duration=4
    )
    scene.reference_1 = make_image(project)

    with pytest.raises(ValidationError) as refused:
        scene.full_clean()

    assert refused.value.message_dict["duration"] == [
        "Clips from reference images are made only 8 seconds long, not 4 s."
    ]


def test_generate_says_which_image_a_frames_scene_still_needs(project, alice):
    scene = make_scene(
        project, make_image(project), mode="frames", model_key="veo_3_1_i2v_s_fast_fl"
    )

    assert scene.generation_problem() == rules.MISSING_INPUT["end_image"]
    scene.end_image = make_image(project, color=BLUE)
    assert scene.generation_problem() == ""


# --- the form -------------------------------------------------------------------------------


def test_bob_adds_a_text_scene_without_any_image(project, bob):
    response = post_scene(bob, project, form_data(mode="text", model_key="veo_3_1_t2v_fast"))

    assert response.status_code == 302
    scene = Scene.objects.get(project=project)
    assert (scene.mode, scene.start_image_id) == ("text", None)
    assert scene.generation_problem() == ""


def test_bob_adds_a_frames_scene_with_its_start_and_end_images(project, bob):
    response = post_scene(
        bob,
        project,
        form_data(
            mode="frames",
            model_key="veo_3_1_i2v_s_fast_fl",
            start_image_file=upload("dawn.png", RED),
            end_image_file=upload("dusk.png", BLUE),
        ),
    )

    assert response.status_code == 302
    scene = Scene.objects.get(project=project)
    assert (scene.start_image.original_name, scene.end_image.original_name) == (
        "dawn.png",
        "dusk.png",
    )


def test_a_frames_scene_without_its_end_image_is_refused_and_only_its_start_image_is_kept(
    project, bob
):
    response = post_scene(
        bob,
        project,
        form_data(
            mode="frames",
            model_key="veo_3_1_i2v_s_fast_fl",
            start_image_file=upload("dawn.png", RED),
        ),
    )

    assert response.status_code == 200
    assert rules.MISSING_UPLOAD["end_image"] in response.text
    assert not Scene.objects.exists()
    # The good start image is kept for the next try, so bob need not choose it again.
    [kept] = ImageAsset.objects.all()
    assert kept.original_name == "dawn.png" and kept.uploaded_by == bob
    assert f'value="{kept.uuid}"' in response.text


def test_bob_adds_the_missing_end_image_and_the_kept_start_image_opens_the_frames_scene(
    project, bob
):
    first = dict(mode="frames", model_key="veo_3_1_i2v_s_fast_fl")
    post_scene(bob, project, form_data(**first, start_image_file=upload("dawn.png", RED)))
    [kept] = ImageAsset.objects.all()

    response = post_scene(
        bob,
        project,
        form_data(
            **first, start_image_kept=str(kept.uuid), end_image_file=upload("dusk.png", BLUE)
        ),
    )

    assert response.status_code == 302
    scene = Scene.objects.get()
    assert scene.start_image == kept
    assert scene.end_image.original_name == "dusk.png"


def test_an_end_image_chosen_for_a_start_image_scene_is_refused_in_words(project, bob):
    response = post_scene(
        bob,
        project,
        form_data(start_image_file=upload("dawn.png"), end_image_file=upload("dusk.png", BLUE)),
    )

    assert response.status_code == 200
    assert "A Start image clip takes no end image" in response.text
    assert not Scene.objects.exists()


def test_the_model_must_do_the_mode(project, bob):
    response = post_scene(bob, project, form_data(mode="text", model_key="veo_3_1_i2v_s_fast"))

    assert response.status_code == 200
    assert (
        "Veo 3.1 Fast (veo_3_1_i2v_s_fast) does not make clips from the prompt alone; pick one "
        "of Veo 3.1 Fast, Veo 3.1 Quality, Veo 3.1 Lite." in response.text
    )


@pytest.mark.parametrize("mode", ["zzz", "extend"])
def test_a_mode_the_form_does_not_offer_is_the_only_refusal_whatever_the_model(project, bob, mode):
    response = post_scene(bob, project, form_data(mode=mode, model_key="veo_3_1_t2v_fast"))

    assert response.status_code == 200
    assert response.context["form"].errors.get_json_data() == {
        "mode": [{"message": rules.MODE_REQUIRED, "code": ""}]
    }
    assert "does not make clips from" not in response.text
    assert not Scene.objects.exists()


def test_with_a_bad_mode_the_model_is_still_judged_on_its_aspect(project, bob):
    response = post_scene(
        bob, project, form_data(mode="zzz", model_key="veo_3_1_t2v_fast_portrait")
    )

    assert rules.MODE_REQUIRED in response.text
    assert "makes Portrait 9:16 clips, not Landscape 16:9" in response.text


def test_an_ingredients_scene_keeps_its_references_in_order_and_a_removed_one_closes_the_gap(
    project, bob, django_capture_on_commit_callbacks
):
    post_scene(
        bob,
        project,
        form_data(
            mode="ingredients",
            model_key="veo_3_1_r2v_fast_landscape",
            reference_1_file=upload("hero.png", RED),
            reference_2_file=upload("boat.png", GREEN),
            reference_3_file=upload("harbour.png", BLUE),
        ),
    )
    scene = Scene.objects.get(project=project)
    assert [str(image) for image in scene.references] == ["hero.png", "boat.png", "harbour.png"]
    boat = scene.reference_2

    with django_capture_on_commit_callbacks(execute=True):
        response = post_scene(
            bob,
            project,
            form_data(
                mode="ingredients",
                model_key="veo_3_1_r2v_fast_landscape",
                **{"reference_1_file-clear": "on"},
            ),
            scene,
        )

    assert response.status_code == 302
    scene.refresh_from_db()
    assert [str(image) for image in scene.references] == ["boat.png", "harbour.png"]
    assert scene.reference_1 == boat
    # Nothing else used the removed image: it is gone.
    assert not ImageAsset.objects.filter(original_name="hero.png").exists()


def test_turning_a_start_image_scene_into_a_text_scene_lets_its_image_go(
    project, bob, django_capture_on_commit_callbacks
):
    post_scene(bob, project, form_data(start_image_file=upload("dawn.png")))
    scene = Scene.objects.get(project=project)

    with django_capture_on_commit_callbacks(execute=True):
        response = post_scene(
            bob, project, form_data(mode="text", model_key="veo_3_1_t2v_fast"), scene
        )

    assert response.status_code == 302
    scene.refresh_from_db()
    assert (scene.mode, scene.start_image_id) == ("text", None)
    assert not ImageAsset.objects.exists()


def test_turning_a_frames_scene_into_ingredients_asks_only_for_the_references(project, bob):
    red, blue = make_image(project, color=RED), make_image(project, color=BLUE)
    scene = make_scene(
        project, red, mode="frames", end_image=blue, model_key="veo_3_1_i2v_s_fast_fl"
    )

    response = post_scene(
        bob, project, form_data(mode="ingredients", model_key="veo_3_1_r2v_fast_landscape"), scene
    )

    assert response.status_code == 200
    # The frames the scene holds are nothing bob sent nor can act on: no word about them.
    assert response.context["form"].errors.get_json_data() == {
        "reference_1_file": [{"message": rules.MISSING_UPLOAD["reference_1"], "code": ""}]
    }
    scene.refresh_from_db()
    assert (scene.mode, scene.start_image, scene.end_image) == ("frames", red, blue)


def test_turning_an_ingredients_scene_into_frames_asks_only_for_the_frames(project, bob):
    scene = make_scene(
        project,
        mode="ingredients",
        reference_1=make_image(project, color=GREEN),
        model_key="veo_3_1_r2v_fast_landscape",
    )

    response = post_scene(
        bob, project, form_data(mode="frames", model_key="veo_3_1_i2v_s_fast_fl"), scene
    )

    assert response.status_code == 200
    assert response.context["form"].errors.get_json_data() == {
        "start_image_file": [{"message": rules.MISSING_UPLOAD["start_image"], "code": ""}],
        "end_image_file": [{"message": rules.MISSING_UPLOAD["end_image"], "code": ""}],
    }


def test_turning_a_frames_scene_into_ingredients_with_references_lets_the_frames_go(
    project, bob, django_capture_on_commit_callbacks
):
    scene = make_scene(
        project,
        make_image(project, color=RED),
        mode="frames",
        end_image=make_image(project, color=BLUE),
        model_key="veo_3_1_i2v_s_fast_fl",
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = post_scene(
            bob,
            project,
            form_data(
                mode="ingredients",
                model_key="veo_3_1_r2v_fast_landscape",
                reference_1_file=upload("hero.png", GREEN),
            ),
            scene,
        )

    assert response.status_code == 302
    scene.refresh_from_db()
    assert (scene.mode, scene.start_image_id, scene.end_image_id) == ("ingredients", None, None)
    assert [str(image) for image in scene.references] == ["hero.png"]
    assert [image.original_name for image in ImageAsset.objects.all()] == ["hero.png"]


def test_a_refusal_names_the_mode_with_its_article():
    problems = rules.mode_input_problems("ingredients", start=True, end=True, references=1)

    assert problems["start_image"].startswith("An Ingredients clip takes no start image;")
    assert problems["end_image"].startswith("An Ingredients clip takes no end image;")
    assert rules.mode_input_problems("frames", start=True, end=True, references=1)[
        "reference_1"
    ].startswith("A Start and end frames clip takes no reference images;")


def test_the_form_marks_each_image_field_with_the_modes_that_use_it(project, bob):
    html = client_for(bob).get(reverse("scene-create", args=[project.uuid])).text

    assert 'data-modes="image frames"' in html
    assert 'data-modes="frames"' in html
    assert html.count('data-modes="ingredients"') == 3
    assert '<select name="mode"' in html
    assert 'value="extend"' not in html


# --- the card and the take ------------------------------------------------------------------


def test_the_card_shows_every_image_of_the_scene_and_its_mode(project, alice):
    red, green, blue = (make_image(project, color=c) for c in (RED, GREEN, BLUE))
    make_scene(project, red, mode="frames", end_image=blue, model_key="veo_3_1_i2v_s_fast_fl")
    make_scene(
        project,
        mode="ingredients",
        reference_1=green,
        reference_2=red,
        model_key="veo_3_1_r2v_fast_landscape",
    )
    make_scene(project, mode="text", model_key="veo_3_1_t2v_fast")

    html = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text

    for image in (red, green, blue):
        assert f'src="/media/image/{image.uuid}"' in html
    assert 'alt="End image of Scene 1"' in html
    assert 'alt="Reference 2 of Scene 2"' in html
    assert "Made from the prompt alone" in html
    for label in ("Start and end frames", "Ingredients", "Text"):
        assert f'<dd class="card__mode">{label}</dd>' in html


def test_a_take_records_the_mode_and_images_it_was_made_from_and_a_retry_keeps_them(project, alice):
    red, green = make_image(project, color=RED), make_image(project, color=GREEN)
    scene = make_scene(
        project,
        mode="ingredients",
        reference_1=red,
        reference_2=green,
        model_key="veo_3_1_r2v_fast_landscape",
    )
    [take] = scene.generate(alice)
    # The scene moves on; the take keeps what it was made from.
    scene.mode, scene.model_key = "text", "veo_3_1_t2v_fast"
    scene.set_references([])
    scene.save()
    Generation.objects.filter(pk=take.pk).update(status="failed")
    take.refresh_from_db()

    again = take.retry_as_new_take(alice)

    for made in (take, again):
        assert (made.mode, made.reference_1, made.reference_2) == ("ingredients", red, green)
        assert made.start_image_id is None
    assert [(role, image) for role, image in again.input_images()] == [
        ("reference", red),
        ("reference", green),
    ]
    # The images stay while a take was made from them.
    assert ImageAsset.objects.filter(pk__in=[red.pk, green.pk]).count() == 2


def test_a_duplicated_project_copies_every_image_of_its_scenes(project, alice):
    red, green, blue = (make_image(project, color=c) for c in (RED, GREEN, BLUE))
    make_scene(project, red, mode="frames", end_image=blue, model_key="veo_3_1_i2v_s_fast_fl")
    make_scene(
        project,
        mode="ingredients",
        reference_1=green,
        reference_2=red,
        model_key="veo_3_1_r2v_fast_landscape",
    )

    copy = project.duplicate(alice)

    frames, ingredients = copy.scenes.order_by("position")
    images = [frames.start_image, frames.end_image, *ingredients.references]
    assert {image.project_id for image in images} == {copy.pk}
    assert [image.sha256 for image in images] == [
        red.sha256,
        blue.sha256,
        green.sha256,
        red.sha256,
    ]
    # red serves both scenes of the copy as one image, as it did in the original.
    assert ingredients.reference_2 == frames.start_image
    assert copy.images.count() == 3


def test_generate_all_counts_the_scenes_that_hold_their_modes_images(project, alice):
    make_scene(project, mode="text", model_key="veo_3_1_t2v_fast")
    make_scene(project, make_image(project), mode="frames", model_key="veo_3_1_i2v_s_fast_fl")
    make_scene(project, mode="ingredients", model_key="veo_3_1_r2v_fast_landscape")

    html = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text

    # The text scene (20 credits) only: the others still lack an image.
    assert "up to 20 credits" in html
