"""Two teammates on one scene: a save on an Edit page drawn before a teammate saved the scene
is refused in words, nothing saved over the teammate's edit and none of its images let go;
the page then shows the scene as it is beside what was typed, and a second save is a
knowing one."""

from __future__ import annotations

from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

from generations.forms import ExtensionForm, SceneForm
from generations.models import Generation, ImageAsset, Pick, Scene
from tests.conftest import make_scene, png_bytes
from tests.views_support import (
    attach_clip,
    client_for,
    edit_page_values,
    edit_url,
    make_take,
    open_edit_page,
    text_scene,
)

EDIT_REFUSED = "A teammate changed this scene after you opened this page"


def upload(name: str, colour: tuple) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes(colour=colour), "image/png")


def alice_adds_two_references(alice, scene: Scene, page: dict[str, str]):
    page.update(
        mode="ingredients",
        model_key="veo_3_1_r2v_fast_landscape",
        prompt="a dog with these refs",
        reference_1_file=upload("uniqB.png", (200, 30, 30)),
        reference_2_file=upload("uniqA.png", (30, 200, 30)),
    )
    saved = client_for(alice).post(edit_url(scene), page)
    assert saved.status_code == 302, saved.text[:2000]


# --- the Edit page --------------------------------------------------------------------------


def test_alices_edit_and_images_survive_bobs_save_from_a_page_opened_before_it(
    project, alice, bob, django_capture_on_commit_callbacks
):
    scene = text_scene(project, prompt="original prompt")
    alices_page, bobs_page = open_edit_page(alice, scene), open_edit_page(bob, scene)
    alice_adds_two_references(alice, scene, alices_page)
    scene.refresh_from_db()
    references = scene.references
    files = [Path(image.file.path) for image in references]

    bobs_page["seed"] = "11"
    with django_capture_on_commit_callbacks(execute=True):
        refused = client_for(bob).post(edit_url(scene), bobs_page)

    assert refused.status_code == 200
    assert EDIT_REFUSED in refused.text
    assert "your changes were not saved" in refused.text
    scene.refresh_from_db()
    assert (scene.mode, scene.prompt, scene.seed) == ("ingredients", "a dog with these refs", None)
    assert scene.references == references
    assert ImageAsset.objects.filter(pk__in=[image.pk for image in references]).count() == 2
    assert all(path.exists() for path in files)


def test_bob_is_told_and_finds_what_he_typed_beside_the_scene_as_alice_saved_it(
    project, alice, bob
):
    scene = text_scene(project, prompt="original prompt")
    alices_page, bobs_page = open_edit_page(alice, scene), open_edit_page(bob, scene)
    alice_adds_two_references(alice, scene, alices_page)

    bobs_page.update(seed="11", prompt="bob's own words")
    refused = client_for(bob).post(edit_url(scene), bobs_page)

    sent_back = edit_page_values(refused.text)
    assert (sent_back["seed"], sent_back["prompt"], sent_back["mode"]) == (
        "11",
        "bob's own words",
        "text",
    )
    now = refused.text[refused.text.index("The scene as it is now") :]
    assert "Ingredients" in now[: now.index("<form")]
    assert "a dog with these refs" in now[: now.index("<form")]


def test_the_image_bob_chose_on_his_refused_save_stays_chosen_and_saving_again_uses_it(
    project, alice, bob
):
    scene = text_scene(project, prompt="original prompt")
    alices_page, bobs_page = open_edit_page(alice, scene), open_edit_page(bob, scene)
    alice_adds_two_references(alice, scene, alices_page)

    bobs_page.update(mode="image", model_key="veo_3_1_i2v_s_fast", prompt="from bob's picture")
    refused = client_for(bob).post(
        edit_url(scene), {**bobs_page, "start_image_file": upload("bob.png", (10, 10, 250))}
    )

    assert EDIT_REFUSED in refused.text
    assert "Kept from your last try" in refused.text
    kept = ImageAsset.objects.get(original_name="bob.png")
    assert Scene.objects.get(pk=scene.pk).mode == "ingredients"

    # Having seen alice's scene, bob saves his on purpose: the page he got back is current.
    again = client_for(bob).post(edit_url(scene), edit_page_values(refused.text))

    assert again.status_code == 302, again.text[:2000]
    scene.refresh_from_db()
    assert (scene.mode, scene.prompt, scene.start_image_id) == (
        "image",
        "from bob's picture",
        kept.pk,
    )


def test_bob_saves_his_seed_once_he_reloaded_the_page_and_alices_edit_stays(project, alice, bob):
    scene = text_scene(project, prompt="original prompt")
    alices_page, bobs_page = open_edit_page(alice, scene), open_edit_page(bob, scene)
    alice_adds_two_references(alice, scene, alices_page)
    bobs_page["seed"] = "11"
    client_for(bob).post(edit_url(scene), bobs_page)

    reloaded = open_edit_page(bob, scene)
    reloaded["seed"] = "11"
    saved = client_for(bob).post(edit_url(scene), reloaded)

    assert saved.status_code == 302
    scene.refresh_from_db()
    assert (scene.mode, scene.prompt, scene.seed, scene.reference_count) == (
        "ingredients",
        "a dog with these refs",
        11,
        2,
    )


def test_an_edit_alice_changed_back_is_no_conflict_for_bob(project, alice, bob):
    scene = text_scene(project, prompt="original prompt")
    bobs_page = open_edit_page(bob, scene)
    changed = open_edit_page(alice, scene)
    client_for(alice).post(edit_url(scene), {**changed, "prompt": "a cat instead"})
    back = open_edit_page(alice, scene)
    client_for(alice).post(edit_url(scene), {**back, "prompt": "original prompt"})

    saved = client_for(bob).post(edit_url(scene), {**bobs_page, "seed": "11"})

    assert saved.status_code == 302
    scene.refresh_from_db()
    assert (scene.prompt, scene.seed) == ("original prompt", 11)


def test_alices_pick_of_a_take_is_no_conflict_for_bobs_edit(project, alice, bob):
    scene = text_scene(project, prompt="original prompt")
    take = attach_clip(make_take(scene, alice, status=Generation.Status.READY), b"clip")
    bobs_page = open_edit_page(bob, scene)
    Pick.choose(take, alice)

    saved = client_for(bob).post(edit_url(scene), {**bobs_page, "seed": "11"})

    assert saved.status_code == 302
    assert Scene.objects.get(pk=scene.pk).seed == 11


def test_bobs_save_of_an_extension_from_a_stale_page_keeps_alices_prompt(project, alice, bob):
    source = make_take(text_scene(project), alice, status=Generation.Status.READY)
    scene = make_scene(
        project,
        mode="extend",
        source_take=source,
        model_key="veo_3_1_extend_landscape",
        prompt="the dog runs on",
    )
    alices_page, bobs_page = open_edit_page(alice, scene), open_edit_page(bob, scene)
    client_for(alice).post(edit_url(scene), {**alices_page, "prompt": "the dog sits down"})

    refused = client_for(bob).post(edit_url(scene), {**bobs_page, "takes": "3"})

    assert EDIT_REFUSED in refused.text
    scene.refresh_from_db()
    assert (scene.prompt, scene.takes) == ("the dog sits down", 1)


def test_bobs_save_checked_just_before_alice_saved_is_refused_and_keeps_his_image(
    project, alice, bob
):
    scene = text_scene(project, prompt="original prompt")
    bobs_page = open_edit_page(bob, scene)
    bobs_page.update(mode="image", model_key="veo_3_1_i2v_s_fast", prompt="from bob's picture")
    picture = upload("bob.png", (10, 10, 250))
    form = SceneForm(project, bobs_page, {"start_image_file": picture}, instance=scene, user=bob)
    assert form.is_valid(), form.errors
    # Alice's save commits between bob's checks and his save.
    Scene.objects.filter(pk=scene.pk).update(prompt="alice's prompt")

    assert form.save_scene(bob) is None

    assert any(EDIT_REFUSED in error for error in form.non_field_errors())
    scene.refresh_from_db()
    assert (scene.mode, scene.prompt, scene.start_image_id) == ("text", "alice's prompt", None)
    kept = ImageAsset.objects.get(original_name="bob.png")
    assert form.images["start_image"].chosen == kept


def test_every_setting_the_edit_pages_save_is_in_the_fingerprint_a_stale_page_is_judged_by():
    # A field a form saves but the fingerprint leaves out would let bob's stale page put its
    # old value back over alice's without a word.
    for form in (SceneForm, ExtensionForm):
        assert set(form.Meta.fields) <= set(Scene.SETTINGS_FIELDS), form.__name__
