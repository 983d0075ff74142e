"""Two teammates on one scene: a Generate, or Generate all, pressed on a page drawn before a
teammate's edit of a scene's settings spends nothing on settings the page did not show; the
answer shows them, with their price, and the next press is a knowing one."""

from __future__ import annotations

from django.urls import reverse

from generations.models import Generation, Scene
from generations.views.cards import encode_since
from tests.views_support import (
    client_for,
    edit_url,
    form_values,
    forms_to,
    htmx_client_for,
    open_edit_page,
    text_scene,
)

GENERATE_REFUSED = "This scene changed since your page showed it"
GENERATE_ALL_REFUSED = "Scenes were changed, added or deleted since this page showed them"


def card_generate_values(html: str, scene: Scene) -> dict[str, str]:
    [form] = forms_to(html, reverse("scene-generate", args=[scene.uuid]))
    return form_values(form)


# --- Generate on a card -----------------------------------------------------------------------


def test_alices_generate_on_a_card_drawn_before_bobs_edit_queues_nothing_and_shows_his_scene(
    project, alice, bob
):
    scene = text_scene(project, takes=1)
    board = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text
    alices_card = card_generate_values(board, scene)
    assert "1 take × 20 credits = 20 credits" in board

    bobs_page = open_edit_page(bob, scene)
    bobs_page.update(takes="4", model_key="veo_3_1_t2v", prompt="bob's dearer prompt")
    assert client_for(bob).post(edit_url(scene), bobs_page).status_code == 302

    card = (
        htmx_client_for(alice).post(reverse("scene-generate", args=[scene.uuid]), alices_card).text
    )

    assert not Generation.objects.exists()
    assert GENERATE_REFUSED in card
    assert "(4 takes of Veo 3.1 Quality)" in card
    assert "Generate 4 takes" in card and "bob&#x27;s dearer prompt" in card
    assert "4 takes × 100 credits = 400 credits" in card


def test_alice_generates_bobs_takes_from_the_card_the_refusal_brought(project, alice, bob):
    scene = text_scene(project, takes=1)
    board = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text
    alices_card = card_generate_values(board, scene)
    bobs_page = open_edit_page(bob, scene)
    client_for(bob).post(edit_url(scene), {**bobs_page, "takes": "4", "model_key": "veo_3_1_t2v"})
    refused = htmx_client_for(alice).post(reverse("scene-generate", args=[scene.uuid]), alices_card)

    htmx_client_for(alice).post(
        reverse("scene-generate", args=[scene.uuid]), card_generate_values(refused.text, scene)
    )

    takes = Generation.objects.filter(scene=scene)
    assert takes.count() == 4
    assert {take.model_key for take in takes} == {"veo_3_1_t2v"}


def test_alices_generate_on_a_fresh_card_queues_its_takes(project, alice):
    scene = text_scene(project, takes=2)
    board = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text

    answer = htmx_client_for(alice).post(
        reverse("scene-generate", args=[scene.uuid]), card_generate_values(board, scene)
    )

    assert "Queued 2 takes." in answer.text
    assert Generation.objects.filter(scene=scene).count() == 2


def test_a_generate_from_a_card_drawn_before_cards_said_their_settings_is_sent_back(project, alice):
    scene = text_scene(project, takes=2)

    card = (
        htmx_client_for(alice)
        .post(reverse("scene-generate", args=[scene.uuid]), {"last_take": "0"})
        .text
    )

    assert GENERATE_REFUSED in card
    assert not Generation.objects.exists()


# --- Generate all -----------------------------------------------------------------------------


def generate_all_values(html: str, project) -> dict[str, str]:
    [form] = forms_to(html, reverse("project-generate-all", args=[project.uuid]))
    return form_values(form)


def test_alices_generate_all_after_bobs_edit_queues_nothing_and_says_why(project, alice, bob):
    text_scene(project)
    second = text_scene(project, prompt="a cat")
    board = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text
    assert "up to 40 credits" in board
    bobs_page = open_edit_page(bob, second)
    client_for(bob).post(edit_url(second), {**bobs_page, "takes": "4", "model_key": "veo_3_1_t2v"})

    answer = client_for(alice).post(
        reverse("project-generate-all", args=[project.uuid]),
        generate_all_values(board, project),
        follow=True,
    )

    assert not Generation.objects.exists()
    assert GENERATE_ALL_REFUSED in answer.text
    assert "up to 420 credits" in answer.text
    again = client_for(alice).post(
        reverse("project-generate-all", args=[project.uuid]),
        generate_all_values(answer.text, project),
        follow=True,
    )
    assert "Queued 5 takes for 2 scenes." in again.text


def test_alices_page_that_polled_after_bobs_edit_generates_all(project, alice, bob):
    text_scene(project)
    second = text_scene(project, prompt="a cat")
    client = client_for(alice)
    board = client.get(reverse("project-detail", args=[project.uuid])).text
    seen = Scene.objects.get(pk=second.pk).updated
    bobs_page = open_edit_page(bob, second)
    client_for(bob).post(edit_url(second), {**bobs_page, "takes": "4"})

    poll = client.get(
        reverse("project-poll", args=[project.uuid]) + f"?since={encode_since(seen)}",
        headers={"HX-Request": "true"},
    ).text
    assert 'id="generate-all" class="generate-all" hx-swap-oob="true"' in poll
    values = {**generate_all_values(board, project), **generate_all_values(poll, project)}

    answer = client.post(reverse("project-generate-all", args=[project.uuid]), values, follow=True)

    assert "Queued 5 takes for 2 scenes." in answer.text
