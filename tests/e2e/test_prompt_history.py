"""Bob brings an earlier prompt of a scene back into its form with one click."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from generations.models import Generation
from tests.conftest import make_scene
from tests.e2e.test_new_user import sign_in
from tests.views_support import make_take

pytestmark = pytest.mark.browser


def test_bob_brings_back_an_earlier_prompt_in_one_click(page: Page, project, bob):
    scene = make_scene(project, title="Harbour", prompt="The boat at night")
    make_take(scene, bob, status=Generation.Status.READY, prompt="The boat at dawn, mist rising")
    sign_in(page, "bob")
    page.goto(reverse("scene-edit", args=[scene.uuid]))
    page.get_by_text("Earlier prompts of this scene (1)").click()
    page.get_by_role("button", name="Use this prompt").click()
    expect(page.get_by_label("Prompt")).to_have_value("The boat at dawn, mist rising")
    expect(page.get_by_label("Prompt")).to_be_focused()
