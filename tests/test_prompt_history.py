"""A scene's earlier prompts, from its takes, offered on its edit form."""

from __future__ import annotations

from django.urls import reverse

from generations.models import Generation
from tests.conftest import make_scene
from tests.views_support import client_for, make_take


def test_bob_sees_the_scenes_earlier_prompts_newest_first_each_once(project, bob):
    scene = make_scene(project, prompt="Now: the boat at night")
    for prompt in ("First try", "Second try", "First try", "Now: the boat at night"):
        make_take(scene, bob, status=Generation.Status.READY, prompt=prompt)

    html = client_for(bob).get(reverse("scene-edit", args=[scene.uuid])).text

    assert "Earlier prompts of this scene (2)" in html
    assert html.count('data-use-prompt="First try"') == 1
    assert html.index('data-use-prompt="First try"') < html.index('data-use-prompt="Second try"')
    assert 'data-use-prompt="Now: the boat at night"' not in html


def test_a_scene_without_earlier_prompts_shows_no_history(project, bob):
    scene = make_scene(project)
    make_take(scene, bob, status=Generation.Status.READY)
    html = client_for(bob).get(reverse("scene-edit", args=[scene.uuid])).text
    assert "Earlier prompts" not in html
