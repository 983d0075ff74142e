"""Scene modes in a real Chromium: alice adds a text scene, a start-and-end-frames scene and an
ingredients scene through the scene form (whose fields and model list follow the chosen
mode), generates each against the emulator with the worker running, and watches each card
turn ready with its clip and every image it was made from; the gallery filters by mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from PIL import Image
from playwright.sync_api import Page, expect

from generations.engines.catalogue import TIER_ONE
from generations.models import AccountGrant, FlowAccount, Generation, Membership, Project, Scene
from tests.conftest import PASSWORD
from tests.e2e.test_new_user import sign_in

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _quick_page_polls(settings) -> None:
    settings.FLOWSITE_PAGE_POLL_SECONDS = 1


def picture(folder: Path, name: str, colour: tuple[int, int, int]) -> Path:
    path = folder / name
    Image.new("RGB", (640, 360), colour).save(path, "PNG")
    return path


def add_scene(page: Page, project: Project, title: str, mode: str, files: dict[str, Path]):
    page.goto(f"/projects/{project.uuid}/scenes/new/")
    page.get_by_label("Made from").select_option(label=mode)
    for label, path in files.items():
        page.get_by_label(label, exact=True).set_input_files(path)
    page.get_by_label("Title").fill(title)
    page.get_by_label("Prompt").fill(f"{title}: the harbour at first light")
    page.get_by_role("button", name="Add scene").click()
    card = page.locator("article.card", has_text=title)
    expect(card).to_be_visible()
    return card


def test_alice_makes_a_text_a_frames_and_an_ingredients_scene_and_each_renders(
    page: Page,
    worker,
    flow_emulator,
    tmp_path,
):
    alice = User.objects.create_user("alice", "alice@example.org", PASSWORD)
    studio = FlowAccount.objects.create(
        label="Studio", tier=TIER_ONE, bearer_token=flow_emulator.token
    )
    AccountGrant.objects.create(account=studio, user=alice)
    project = Project.objects.create(name="Harbour film", account=studio, created_by=alice)
    project.add_member(alice, Membership.Role.OWNER)
    red = picture(tmp_path, "red.png", (210, 40, 40))
    blue = picture(tmp_path, "blue.png", (40, 60, 210))
    green = picture(tmp_path, "green.png", (40, 190, 60))
    sign_in(page, "alice")

    # The form follows the mode: only its image fields show, only its models are offered.
    page.goto(f"/projects/{project.uuid}/scenes/new/")
    models = page.get_by_label("Model")
    expect(page.get_by_label("Start image", exact=True)).to_be_visible()
    expect(page.get_by_label("End image", exact=True)).to_be_hidden()
    page.get_by_label("Made from").select_option(label="Text")
    expect(page.get_by_label("Start image", exact=True)).to_be_hidden()
    expect(models).to_have_value("veo_3_1_t2v_fast")
    page.get_by_label("Made from").select_option(label="Ingredients")
    expect(page.get_by_label("Reference image 3", exact=True)).to_be_visible()
    expect(models).to_have_value("veo_3_1_r2v_fast_landscape")
    expect(models.locator("option:not([disabled])", has_text="Quality")).to_have_count(0)

    text = add_scene(page, project, "Gulls", "Text", {})
    frames = add_scene(
        page,
        project,
        "Day to night",
        "Start and end frames",
        {"Start image": red, "End image": blue},
    )
    ingredients = add_scene(
        page,
        project,
        "The crew",
        "Ingredients",
        {"Reference image 1": red, "Reference image 2": green},
    )
    assert [(scene.mode, scene.model_key) for scene in Scene.objects.order_by("position")] == [
        ("text", "veo_3_1_t2v_fast"),
        ("frames", "veo_3_1_i2v_s_fast_fl"),
        ("ingredients", "veo_3_1_r2v_fast_landscape"),
    ]

    for card in (text, frames, ingredients):
        card.get_by_role("button", name="Generate 1 take").click()
        expect(card.locator(".take .status")).to_have_count(1)
    for card in (text, frames, ingredients):
        expect(card.locator(".take .status")).to_have_text("Ready", timeout=90_000)
        expect(card.locator("video")).to_have_count(1)

    expect(text.get_by_text("Made from the prompt alone")).to_be_visible()
    expect(frames.locator(".card__mode")).to_have_text("Start and end frames")
    expect(frames.get_by_role("img", name="End image of Day to night")).to_be_visible()
    expect(ingredients.locator(".card__images img")).to_have_count(2)
    for image in ingredients.locator(".card__images img").all():
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
        )
    assert Generation.objects.filter(status=Generation.Status.READY).count() == 3

    page.goto(f"/projects/{project.uuid}/gallery/")
    expect(page.locator(".gallery video")).to_have_count(3)
    page.get_by_label("Made from").select_option(label="Start and end frames")
    expect(page.locator(".gallery video")).to_have_count(1)
    expect(page.locator(".gallery")).to_contain_text("Day to night")
