"""The scene form's image: a file, one of the project's images reused, or the upload kept from
a submit that failed, judged against the project and the person."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from generations.forms import SceneForm
from generations.image_choice import KEPT_GONE, MAX_OPTIONS, NOT_OF_PROJECT, PICKED_GONE
from generations.images import NOT_AN_IMAGE
from generations.models import Generation, ImageAsset, Membership, Project, Scene
from tests.conftest import make_image, make_scene, png_bytes
from tests.views_support import client_for, make_take, seen_settings


def scene_data(**overrides) -> dict:
    data = {
        "title": "Opening",
        "prompt": "A lighthouse at dusk, waves rolling in",
        "aspect": "landscape",
        "model_key": "veo_3_1_i2v_s_fast",
        "seed": "",
        "takes": "1",
    }
    data.update(overrides)
    return data


def upload(name="dawn.png", colour=(200, 120, 40)) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes(colour=colour), "image/png")


def create(user, project, **overrides):
    return client_for(user).post(
        reverse("scene-create", args=[project.uuid]), scene_data(**overrides)
    )


def kept_uuid(html: str) -> str:
    [value] = re.findall(r'name="start_image_kept" value="([0-9a-f-]+)"', html)
    return value


def other_project(alice, account) -> Project:
    other = Project.objects.create(name="Atlantis", account=account, created_by=alice)
    other.add_member(alice, Membership.Role.OWNER)
    return other


# --- the upload kept across a failed submit ----------------------------------------------


def test_bob_sends_the_form_again_after_an_empty_prompt_without_choosing_the_image_again(
    project, bob
):
    failed = create(bob, project, prompt="  ", start_image_file=upload("dawn.png"))
    assert "Write a prompt" in failed.text
    kept = kept_uuid(failed.text)
    # The form sent back shows the kept picture and says so.
    assert f'src="/media/image/{kept}"' in failed.text
    assert "Kept from your last try: dawn.png" in failed.text

    again = create(bob, project, start_image_kept=kept)

    scene = Scene.objects.get()
    assert again.status_code == 302
    assert str(scene.start_image.uuid) == kept
    assert ImageAsset.objects.count() == 1


def test_an_image_kept_through_two_failed_submits_is_still_the_one_used(project, bob):
    first = create(bob, project, prompt="", start_image_file=upload())
    kept = kept_uuid(first.text)

    second = create(bob, project, prompt="", takes="9", start_image_kept=kept)
    assert kept_uuid(second.text) == kept
    create(bob, project, start_image_kept=kept)

    assert str(Scene.objects.get().start_image.uuid) == kept
    assert ImageAsset.objects.count() == 1


def test_a_new_file_replaces_the_kept_image(project, bob):
    kept = kept_uuid(create(bob, project, prompt="", start_image_file=upload()).text)

    create(bob, project, start_image_kept=kept, start_image_file=upload("night.png", (5, 5, 60)))

    assert Scene.objects.get().start_image.original_name == "night.png"


def test_bob_cannot_send_back_an_image_alice_uploaded_in_her_own_failed_form(project, alice, bob):
    alices = kept_uuid(create(alice, project, prompt="", start_image_file=upload()).text)

    response = create(bob, project, start_image_kept=alices)

    assert response.status_code == 200
    assert escape(KEPT_GONE) in response.text
    assert not Scene.objects.exists()


def test_a_kept_image_of_another_project_is_refused(project, alice, account):
    elsewhere = other_project(alice, account)
    theirs = kept_uuid(create(alice, elsewhere, prompt="", start_image_file=upload()).text)

    response = create(alice, project, start_image_kept=theirs)

    assert escape(KEPT_GONE) in response.text
    assert not project.scenes.exists()


def test_editing_with_an_error_keeps_the_new_image_and_the_scene_unchanged(project, bob):
    old = make_image(project, bob)
    scene = make_scene(project, old, prompt="Original")
    url = reverse("scene-edit", args=[scene.uuid])

    failed = client_for(bob).post(
        url,
        {**scene_data(prompt="", start_image_file=upload()), "seen_settings": seen_settings(scene)},
    )
    scene.refresh_from_db()
    assert scene.start_image_id == old.pk
    kept = kept_uuid(failed.text)

    client_for(bob).post(
        url,
        {
            **scene_data(prompt="Changed", start_image_kept=kept),
            "seen_settings": seen_settings(scene),
        },
    )

    scene.refresh_from_db()
    assert (scene.prompt, str(scene.start_image.uuid)) == ("Changed", kept)


def test_a_kept_image_the_sweep_removed_meanwhile_is_asked_for_again(project, bob):
    kept = kept_uuid(create(bob, project, prompt="", start_image_file=upload()).text)
    ImageAsset.objects.filter(uuid=kept).delete()

    response = create(bob, project, start_image_kept=kept)

    assert escape(KEPT_GONE) in response.text
    assert not Scene.objects.exists()


def test_a_refused_file_with_an_empty_prompt_says_both_and_keeps_nothing(project, bob):
    response = create(
        bob, project, prompt="", start_image_file=SimpleUploadedFile("x.png", b"GIF89a no")
    )

    assert "Write a prompt" in response.text
    assert "not a JPEG, PNG or WebP image" in response.text
    assert "start_image_kept" not in response.text
    assert not ImageAsset.objects.exists()


def test_an_empty_file_is_refused_in_the_words_of_any_file_that_is_no_picture(project, bob):
    # The words the scene form's script says before the file is sent, not Django's own.
    response = create(bob, project, start_image_file=SimpleUploadedFile("empty.jpg", b""))

    assert escape(NOT_AN_IMAGE) in response.text
    assert "submitted file is empty" not in response.text
    assert not Scene.objects.exists()


# --- the picker of the project's images ---------------------------------------------------


def test_the_form_offers_the_images_the_projects_scenes_and_takes_use_once_each(
    project, alice, bob
):
    harbour = make_image(project, alice)
    make_scene(project, harbour)
    twin = ImageAsset.objects.create(
        project=project,
        file=harbour.file.name,
        mime_type=harbour.mime_type,
        width=harbour.width,
        height=harbour.height,
        size=harbour.size,
        sha256=harbour.sha256,
    )
    make_scene(project, twin)
    earlier = make_image(project, alice, color=(1, 2, 3))
    take = make_take(make_scene(project, make_image(project, bob, color=(9, 9, 9))), bob)
    Generation.objects.filter(pk=take.pk).update(start_image=earlier)
    unused = make_image(project, alice, color=(50, 50, 50))

    html = client_for(bob).get(reverse("scene-create", args=[project.uuid])).text

    offered = re.findall(r'name="start_image_pick" value="([0-9a-f-]+)"', html)
    assert len(offered) == 3
    assert str(earlier.uuid) in offered
    assert len({str(harbour.uuid), str(twin.uuid)} & set(offered)) == 1
    assert str(unused.uuid) not in offered


def test_bob_reuses_an_image_of_the_project_for_a_new_scene(project, alice, bob):
    harbour = make_image(project, alice)
    make_scene(project, harbour, title="Harbour")

    response = create(bob, project, title="Harbour again", start_image_pick=str(harbour.uuid))

    assert response.status_code == 302
    assert Scene.objects.get(title="Harbour again").start_image_id == harbour.pk
    assert ImageAsset.objects.count() == 1


def test_a_picked_image_survives_a_failed_submit_checked(project, alice, bob):
    harbour = make_image(project, alice)
    make_scene(project, harbour)

    response = create(bob, project, prompt="", start_image_pick=str(harbour.uuid))

    assert re.search(rf'value="{harbour.uuid}"[^>]*checked', response.text)
    assert "start_image_kept" not in response.text


def test_an_image_of_another_project_cannot_be_picked(project, alice, bob, account):
    elsewhere = other_project(alice, account)
    theirs = make_image(elsewhere, alice)
    make_scene(elsewhere, theirs)

    response = create(alice, project, start_image_pick=str(theirs.uuid))

    assert response.status_code == 200
    assert escape(NOT_OF_PROJECT) in response.text
    assert not project.scenes.exists()


def test_an_upload_another_member_left_in_a_failed_form_cannot_be_picked(project, alice, bob):
    alices = kept_uuid(create(alice, project, prompt="", start_image_file=upload()).text)

    response = create(bob, project, start_image_pick=alices)

    assert escape(NOT_OF_PROJECT) in response.text
    assert not Scene.objects.exists()


def test_a_file_takes_the_place_of_a_picked_image(project, alice, bob):
    harbour = make_image(project, alice)
    make_scene(project, harbour, title="Harbour")

    create(
        bob,
        project,
        title="New",
        start_image_pick=str(harbour.uuid),
        start_image_file=upload("fresh.png"),
    )

    assert Scene.objects.get(title="New").start_image.original_name == "fresh.png"


def test_a_picked_image_whose_scene_was_deleted_meanwhile_is_refused_in_words(project, alice, bob):
    harbour = make_image(project, alice)
    make_scene(project, harbour)

    form = SceneForm(project, scene_data(start_image_pick=str(harbour.uuid)), user=bob)
    assert form.is_valid(), form.errors
    Scene.objects.all().delete()
    ImageAsset.objects.filter(pk=harbour.pk).delete()

    assert form.save_scene(bob) is None
    assert form.errors["start_image_file"] == [PICKED_GONE]


# --- every image of the scene, not only the start image -------------------------------------

FRAMES = {"mode": "frames", "model_key": "veo_3_1_i2v_s_fast_fl"}
INGREDIENTS = {"mode": "ingredients", "model_key": "veo_3_1_r2v_fast_landscape"}


def kept_of(html: str, name: str) -> str | None:
    found = re.findall(rf'name="{name}_kept" value="([0-9a-f-]+)"', html)
    return found[0] if found else None


def field_html(html: str, name: str) -> str:
    """The markup of the image field ``name``, from its block's start to the next field's."""
    start = html.rindex('<div class="field', 0, html.index(f'name="{name}_file"'))
    following = html.find('<div class="field', start + 1)
    return html[start : following if following != -1 else len(html)]


def test_bob_sends_a_frames_scene_again_after_an_empty_prompt_without_choosing_either_image_again(
    project, bob
):
    failed = create(
        bob,
        project,
        **FRAMES,
        prompt="",
        start_image_file=upload("dawn.png"),
        end_image_file=upload("dusk.png", (10, 10, 90)),
    )
    assert "Write a prompt" in failed.text
    start, end = kept_of(failed.text, "start_image"), kept_of(failed.text, "end_image")
    assert start and end and start != end

    again = create(bob, project, **FRAMES, start_image_kept=start, end_image_kept=end)

    assert again.status_code == 302
    scene = Scene.objects.get()
    assert (str(scene.start_image.uuid), str(scene.end_image.uuid)) == (start, end)
    assert scene.end_image.original_name == "dusk.png"
    assert ImageAsset.objects.count() == 2


def test_bob_sends_an_ingredients_scene_again_and_its_references_keep_their_order(project, bob):
    failed = create(
        bob,
        project,
        **INGREDIENTS,
        prompt="",
        reference_1_file=upload("hero.png", (200, 0, 0)),
        reference_3_file=upload("harbour.png", (0, 0, 200)),
    )
    hero, harbour = kept_of(failed.text, "reference_1"), kept_of(failed.text, "reference_3")
    assert hero and harbour and kept_of(failed.text, "reference_2") is None

    again = create(bob, project, **INGREDIENTS, reference_1_kept=hero, reference_3_kept=harbour)

    assert again.status_code == 302
    scene = Scene.objects.get()
    assert [str(image.uuid) for image in scene.references] == [hero, harbour]
    assert [str(image) for image in scene.references] == ["hero.png", "harbour.png"]


def test_the_form_sent_back_shows_each_kept_image_in_its_own_field(project, bob):
    failed = create(
        bob,
        project,
        **FRAMES,
        prompt="",
        start_image_file=upload("dawn.png"),
        end_image_file=upload("dusk.png", (10, 10, 90)),
    ).text
    end = kept_of(failed, "end_image")
    field = field_html(failed, "end_image")

    assert "Kept from your last try: dusk.png (64 × 36)" in field
    # Shown in the end image's own preview.
    assert f'src="/media/image/{end}"' in field
    assert f'name="end_image_kept" value="{end}"' in field
    # The picture shown is one bob may see.
    picture = client_for(bob).get(f"/media/image/{end}")
    assert (picture.status_code, picture["Content-Type"]) == (200, "image/png")

    references = create(
        bob, project, **INGREDIENTS, prompt="", reference_2_file=upload("boat.png")
    ).text
    boat = kept_of(references, "reference_2")
    assert "Kept from your last try: boat.png" in field_html(references, "reference_2")
    assert f'src="/media/image/{boat}"' in field_html(references, "reference_2")
    assert "Kept from your last try" not in field_html(references, "reference_1")


def test_bob_cannot_send_back_as_his_end_image_or_reference_an_upload_alice_kept(
    project, alice, bob
):
    alices = kept_of(
        create(alice, project, **FRAMES, prompt="", end_image_file=upload()).text, "end_image"
    )
    assert alices

    as_end = create(bob, project, **FRAMES, start_image_file=upload(), end_image_kept=alices)
    as_reference = create(bob, project, **INGREDIENTS, reference_1_kept=alices)

    for response in (as_end, as_reference):
        assert response.status_code == 200
        assert escape(KEPT_GONE) in response.text
    assert not Scene.objects.exists()


def test_an_end_image_kept_in_another_project_is_refused(project, alice, account):
    elsewhere = other_project(alice, account)
    theirs = kept_of(
        create(alice, elsewhere, **FRAMES, prompt="", end_image_file=upload()).text, "end_image"
    )

    response = create(alice, project, **FRAMES, start_image_file=upload(), end_image_kept=theirs)

    assert escape(KEPT_GONE) in response.text
    assert not project.scenes.exists()


def test_editing_a_reference_with_an_error_keeps_the_new_one_and_the_others_stay(project, bob):
    hero = make_image(project, bob, color=(1, 1, 1))
    boat = make_image(project, bob, color=(2, 2, 2))
    scene = make_scene(project, **INGREDIENTS, reference_1=hero, reference_2=boat)
    url = reverse("scene-edit", args=[scene.uuid])

    failed = client_for(bob).post(
        url,
        {
            **scene_data(**INGREDIENTS, prompt="", reference_2_file=upload("ship.png")),
            "seen_settings": seen_settings(scene),
        },
    )
    scene.refresh_from_db()
    assert scene.reference_2_id == boat.pk
    ship = kept_of(failed.text, "reference_2")

    again = client_for(bob).post(
        url,
        {**scene_data(**INGREDIENTS, reference_2_kept=ship), "seen_settings": seen_settings(scene)},
    )

    assert again.status_code == 302
    scene.refresh_from_db()
    assert [str(image.uuid) for image in scene.references] == [str(hero.uuid), ship]


def test_references_the_mode_refuses_are_not_kept(project, bob):
    response = create(
        bob,
        project,
        **FRAMES,
        start_image_file=upload("dawn.png"),
        end_image_file=upload("dusk.png"),
        reference_2_file=upload("boat.png"),
    )

    assert "A Start and end frames clip takes no reference images" in response.text
    assert kept_of(response.text, "reference_2") is None
    assert "boat.png" not in {image.original_name for image in ImageAsset.objects.all()}


# --- the picker on every image: end frame and references too -------------------------------


def test_bob_reuses_a_picture_of_the_project_as_the_end_frame(project, alice, bob):
    dawn = make_image(project, alice, color=(200, 120, 40))
    dusk = make_image(project, alice, color=(10, 10, 90))
    make_scene(project, dawn, title="Dawn")
    make_scene(project, dusk, title="Dusk")

    response = create(
        bob,
        project,
        **FRAMES,
        title="Day to night",
        start_image_pick=str(dawn.uuid),
        end_image_pick=str(dusk.uuid),
    )

    assert response.status_code == 302
    scene = Scene.objects.get(title="Day to night")
    assert (scene.start_image_id, scene.end_image_id) == (dawn.pk, dusk.pk)
    assert ImageAsset.objects.count() == 2


def test_bob_reuses_a_picture_of_the_project_as_a_reference_beside_a_new_upload(
    project, alice, bob
):
    hero = make_image(project, alice, color=(200, 0, 0))
    make_scene(project, hero, title="Hero")

    response = create(
        bob,
        project,
        **INGREDIENTS,
        title="The crew",
        reference_1_pick=str(hero.uuid),
        reference_2_file=upload("boat.png", (0, 0, 200)),
    )

    assert response.status_code == 302
    scene = Scene.objects.get(title="The crew")
    assert [image.pk for image in scene.references[:1]] == [hero.pk]
    assert [str(image) for image in scene.references] == ["start.png", "boat.png"]


def test_editing_a_scene_a_picked_reference_replaces_the_second_and_the_first_stays(
    project, alice, bob
):
    hero, boat, ship = (make_image(project, alice, color=(n, n, n)) for n in (1, 2, 3))
    scene = make_scene(project, **INGREDIENTS, reference_1=hero, reference_2=boat)
    make_scene(project, ship, title="Ship")

    client_for(bob).post(
        reverse("scene-edit", args=[scene.uuid]),
        {
            **scene_data(**INGREDIENTS, reference_2_pick=str(ship.uuid)),
            "seen_settings": seen_settings(scene),
        },
    )

    scene.refresh_from_db()
    assert [image.pk for image in scene.references] == [hero.pk, ship.pk]


def test_a_picked_end_frame_survives_a_failed_submit_checked_in_its_own_field(project, alice, bob):
    dusk = make_image(project, alice, color=(10, 10, 90))
    make_scene(project, dusk)

    html = create(
        bob, project, **FRAMES, prompt="", start_image_file=upload(), end_image_pick=str(dusk.uuid)
    ).text

    end = field_html(html, "end_image")
    assert re.search(rf'name="end_image_pick" value="{dusk.uuid}"[^>]*checked', end)
    assert f'data-image-input-default="/media/image/{dusk.uuid}"' in end
    assert "checked" not in field_html(html, "start_image").split("image-input__picker")[-1]


@pytest.mark.parametrize(
    ("mode", "field"),
    [(FRAMES, "end_image"), (INGREDIENTS, "reference_1"), (INGREDIENTS, "reference_3")],
)
def test_an_image_of_another_project_cannot_be_picked_as_an_end_frame_or_a_reference(
    project, alice, account, mode, field
):
    elsewhere = other_project(alice, account)
    theirs = make_image(elsewhere, alice)
    make_scene(elsewhere, theirs)
    images = {"start_image_file": upload()} if field == "end_image" else {}

    response = create(alice, project, **mode, **images, **{f"{field}_pick": str(theirs.uuid)})

    assert response.status_code == 200
    assert escape(NOT_OF_PROJECT) in field_html(response.text, field)
    assert not project.scenes.exists()


def test_the_modes_rules_judge_a_picked_image_as_they_judge_an_upload(project, alice, bob):
    dusk = make_image(project, alice, color=(10, 10, 90))
    make_scene(project, dusk)

    as_end_of_a_start_image_scene = create(
        bob, project, start_image_file=upload(), end_image_pick=str(dusk.uuid)
    )
    as_reference_of_a_frames_scene = create(
        bob,
        project,
        **FRAMES,
        start_image_file=upload(),
        end_image_file=upload("dusk.png"),
        reference_2_pick=str(dusk.uuid),
    )
    no_end_frame = create(bob, project, **FRAMES, start_image_pick=str(dusk.uuid))

    assert "A Start image clip takes no end image" in field_html(
        as_end_of_a_start_image_scene.text, "end_image"
    )
    assert "A Start and end frames clip takes no reference images" in field_html(
        as_reference_of_a_frames_scene.text, "reference_1"
    )
    assert "Choose an end image" in field_html(no_end_frame.text, "end_image")
    assert project.scenes.count() == 1  # dusk's own


def test_without_javascript_a_file_overrides_a_picked_end_frame_and_remove_a_picked_reference(
    project, alice, bob
):
    dusk = make_image(project, alice, color=(10, 10, 90))
    make_scene(project, dusk, title="Dusk")
    hero, boat = (
        make_image(project, bob, color=(1, 1, 1)),
        make_image(project, bob, color=(2, 2, 2)),
    )
    crew = make_scene(project, **INGREDIENTS, title="Crew", reference_1=hero, reference_2=boat)

    create(
        bob,
        project,
        **FRAMES,
        title="New",
        start_image_file=upload(),
        end_image_pick=str(dusk.uuid),
        end_image_file=upload("night.png", (5, 5, 60)),
    )
    client_for(bob).post(
        reverse("scene-edit", args=[crew.uuid]),
        {
            **scene_data(
                **INGREDIENTS,
                title="Crew",
                reference_2_pick=str(dusk.uuid),
                **{"reference_2_file-clear": "on"},
            ),
            "seen_settings": seen_settings(crew),
        },
    )

    assert Scene.objects.get(title="New").end_image.original_name == "night.png"
    crew.refresh_from_db()
    assert [image.pk for image in crew.references] == [hero.pk]


def test_the_reference_preview_shows_the_picture_whole_and_claims_no_crop(project, alice, bob):
    hero = make_image(project, alice)
    scene = make_scene(project, **INGREDIENTS, reference_1=hero)

    html = client_for(bob).get(reverse("scene-edit", args=[scene.uuid])).text

    reference = field_html(html, "reference_1")
    assert "image-input__frame--whole" in reference
    assert "data-image-input-aspect" not in reference
    assert "cropped as the clip" not in reference and "data-image-input-crop" not in reference
    end = field_html(html, "end_image")
    assert 'data-image-input-aspect="scene"' in end and "data-image-input-crop" in end


# --- what the pickers cost ------------------------------------------------------------------

PICKERS = ("start_image", "end_image", "reference_1", "reference_2", "reference_3")


def page_queries(user, url: str) -> tuple[list[str], str]:
    with CaptureQueriesContext(connection) as queries:
        response = client_for(user).get(url)
    assert response.status_code == 200
    return [query["sql"] for query in queries.captured_queries], response.text


def reads_images_in_use(sql: str) -> bool:
    return sql.lstrip().upper().startswith("SELECT") and 'FROM "generations_imageasset"' in sql


def test_the_new_scene_page_reads_the_projects_images_once_for_its_five_pickers(
    project, alice, bob
):
    url = reverse("scene-create", args=[project.uuid])
    without_pickers, html = page_queries(bob, url)
    assert "Reuse an image of this project" not in html
    for n in range(30):
        make_scene(project, make_image(project, alice, color=(n, n, n)), title=f"Scene {n}")

    with_pickers, html = page_queries(bob, url)

    for name in PICKERS:
        assert len(re.findall(rf'name="{name}_pick"', html)) == MAX_OPTIONS
    # Five pickers showing 30 images cost what a page showing none does: one read of the list.
    assert len(with_pickers) == len(without_pickers)
    assert sum(map(reads_images_in_use, with_pickers)) == 1


def test_the_edit_page_costs_the_same_queries_for_one_reference_as_for_three(project, alice, bob):
    hero, boat, ship = (make_image(project, alice, color=(n, n, n)) for n in (1, 2, 3))
    one = make_scene(project, **INGREDIENTS, reference_1=hero)
    three = make_scene(project, **INGREDIENTS, reference_1=hero, reference_2=boat, reference_3=ship)

    for_one, _ = page_queries(bob, reverse("scene-edit", args=[one.uuid]))
    for_three, html = page_queries(bob, reverse("scene-edit", args=[three.uuid]))

    assert len(for_one) == len(for_three)
    for image in (hero, boat, ship):
        assert f'data-image-input-default="/media/image/{image.uuid}"' in html
