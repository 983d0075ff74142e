"""The Edit page of an extension (a scene made by Extend from a take): it changes what happens
next, the title, seed and takes, and the scene stays an extension of its take whatever is
posted; the scene form and the scene's rules refuse to make it another mode."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from generations import rules
from generations.forms import SceneForm
from generations.models import Generation, Scene
from tests.conftest import make_image, make_scene
from tests.views_support import client_for, edit_url, make_take, seen_settings

EXTEND_MODEL = "veo_3_1_extend_fast_landscape"


@pytest.fixture
def extension(project, alice) -> Scene:
    """alice's "Harbour" scene has a ready take 1; "Dive" extends it."""
    source_scene = make_scene(project, make_image(project), title="Harbour")
    take = make_take(
        source_scene, alice, status=Generation.Status.READY, media_generation_id="flow-media-1"
    )
    return make_scene(
        project,
        title="Dive",
        mode=Scene.Mode.EXTEND,
        source_take=take,
        model_key=EXTEND_MODEL,
        prompt="the seahorse dives",
    )


def test_bob_opens_the_edit_page_of_an_extension_and_is_offered_what_happens_next_not_a_mode(
    extension, bob
):
    response = client_for(bob).get(edit_url(extension))

    assert response.status_code == 200
    html = response.text
    assert "What happens next" in html
    assert "the seahorse dives" in html
    assert "This scene extends Take 1 of Harbour" in html
    assert "it stays an extension" in html
    assert 'name="mode"' not in html
    assert 'name="model_key"' not in html
    assert 'name="aspect"' not in html


def test_bob_saves_an_extension_with_a_new_prompt_and_it_stays_an_extension_of_its_take(
    extension, bob
):
    source = extension.source_take
    # What the probe's browser sent from the old page (the mode menu showing Text), and a
    # model and aspect for good measure: none of them is the page's to change.
    response = client_for(bob).post(
        edit_url(extension),
        {
            **{
                "title": "Deep dive",
                "prompt": "the seahorse dives to the wreck",
                "seed": "77",
                "takes": "2",
                "mode": "text",
                "model_key": "veo_3_1_t2v_fast",
                "aspect": "portrait",
            },
            "seen_settings": seen_settings(extension),
        },
    )

    assert response.status_code == 302
    extension.refresh_from_db()
    assert (extension.mode, extension.source_take_id) == (Scene.Mode.EXTEND, source.pk)
    assert (extension.title, extension.prompt, extension.seed, extension.takes) == (
        "Deep dive",
        "the seahorse dives to the wreck",
        77,
        2,
    )
    assert (extension.model_key, extension.aspect) == (EXTEND_MODEL, "landscape")
    # The next Generate continues the take, with the new words.
    snapshot = extension.take_snapshots()[0]
    assert (snapshot["mode"], snapshot["source_take_id"], snapshot["prompt"]) == (
        Scene.Mode.EXTEND,
        source.pk,
        "the seahorse dives to the wreck",
    )


@pytest.mark.parametrize("prompt", ["  ", "\u200b\u2060"])
def test_an_extension_saved_without_what_happens_next_is_refused_in_words(extension, bob, prompt):
    response = client_for(bob).post(
        edit_url(extension),
        {
            "title": "Dive",
            "prompt": prompt,
            "seed": "",
            "takes": "1",
            "seen_settings": seen_settings(extension),
        },
    )

    assert response.status_code == 200
    assert "Write what happens next" in response.text
    extension.refresh_from_db()
    assert extension.prompt == "the seahorse dives"


def test_an_extension_whose_take_was_deleted_can_still_be_edited_and_stays_an_extension(
    extension, bob
):
    Generation.objects.filter(pk=extension.source_take_id).delete()
    client = client_for(bob)

    html = client.get(edit_url(extension)).text
    response = client.post(
        edit_url(extension),
        {
            **{"title": "Dive", "prompt": "the seahorse surfaces", "seed": "", "takes": "1"},
            "seen_settings": seen_settings(extension),
        },
    )

    assert "extended a take that has since been deleted" in html
    assert response.status_code == 302
    extension.refresh_from_db()
    assert (extension.mode, extension.source_take_id, extension.prompt) == (
        Scene.Mode.EXTEND,
        None,
        "the seahorse surfaces",
    )


def test_bob_renames_an_extension_whose_model_and_duration_the_account_no_longer_offers(
    extension, bob
):
    # Nothing on the page can change what follows the source take; Generate says what is wrong
    # with it, so the words bob can change are saved.
    Scene.objects.filter(pk=extension.pk).update(model_key="veo_retired_extend", duration=4)

    response = client_for(bob).post(
        edit_url(extension),
        {
            **{"title": "Deep dive", "prompt": "the seahorse dives", "seed": "", "takes": "1"},
            "seen_settings": seen_settings(extension),
        },
    )

    assert response.status_code == 302
    extension.refresh_from_db()
    assert (extension.title, extension.model_key, extension.duration) == (
        "Deep dive",
        "veo_retired_extend",
        4,
    )


def test_the_scene_form_refuses_to_turn_an_extension_into_a_text_scene(extension, bob):
    form = SceneForm(
        extension.project,
        {
            "title": "Dive",
            "mode": "text",
            "prompt": "the seahorse dives",
            "aspect": "landscape",
            "model_key": "veo_3_1_t2v_fast",
            "seed": "",
            "takes": "1",
        },
        instance=extension,
        user=bob,
    )

    assert not form.is_valid()
    assert form.errors["mode"] == [rules.EXTENSION_STAYS]


def test_the_scenes_rules_refuse_another_mode_for_a_scene_that_continues_a_take(extension):
    extension.mode = Scene.Mode.TEXT
    extension.model_key = "veo_3_1_t2v_fast"

    with pytest.raises(ValidationError) as refused:
        extension.full_clean()

    assert refused.value.message_dict["mode"] == [rules.EXTENSION_STAYS]


def test_the_card_of_an_extension_offers_its_edit_page(extension, bob):
    html = client_for(bob).get(reverse("project-detail", args=[extension.project.uuid])).text

    assert f'href="{edit_url(extension)}"' in html
