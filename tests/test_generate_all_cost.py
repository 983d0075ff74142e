"""Generate all says, before the click, what it would spend at most, in the unit of the
project's account: US dollars on Vertex AI (priced per second of each take, as each take
records its cost), credits on Flow."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from generations.models import Generation
from tests.conftest import VERTEX_FAST, make_image, make_scene
from tests.views_support import client_for, htmx_client_for, storyboard_seen

QUALITY = "veo-3.1-generate-001"


def hint(page: str) -> str:
    found = re.search(r'class="hint generate-all__cost">([^<]*)<', page)
    return found.group(1) if found else ""


def storyboard(user, project) -> str:
    return client_for(user).get(reverse("project-detail", args=[project.uuid])).text


def vertex_scene(project, **fields):
    fields.setdefault("model_key", VERTEX_FAST)
    return make_scene(project, make_image(project), **fields)


@pytest.fixture
def priced(settings):
    settings.VERTEX_PRICES = [
        f"{VERTEX_FAST}=0.15",
        f"{VERTEX_FAST}+audio=0.25",
        f"{QUALITY}=0.40",
        f"{QUALITY}@1080p=0.50",
    ]


def test_generate_all_on_a_vertex_project_says_its_total_in_dollars(
    vertex_project, priced, alice, bob
):
    scenes = [
        vertex_scene(vertex_project, duration=4, takes=2),  # 2 × 4 s × $0.15 = $1.20
        vertex_scene(vertex_project, duration=6, audio=True),  # 6 s × $0.25 = $1.50
        vertex_scene(vertex_project, model_key=QUALITY, resolution="1080p", duration=8),  # $4.00
        vertex_scene(vertex_project, model_key=QUALITY),  # 8 s at 720p by default: $3.20
    ]
    make_scene(vertex_project, None, model_key=VERTEX_FAST, takes=3)  # no start image: skipped

    page = storyboard(bob, vertex_project)

    assert hint(page) == "up to $9.90"
    # The same prices each take records when it is asked for.
    assert sum(scene.take_cost()[0] * scene.takes for scene in scenes) == Decimal("9.90")
    assert "billed to the account's Google Cloud project (up to $9.90)" in page
    assert "credit" not in hint(page)


def test_the_poll_brings_generate_alls_new_total_in_dollars(vertex_project, priced, bob):
    vertex_scene(vertex_project, duration=4)
    poll = reverse("project-poll", args=[vertex_project.uuid])
    client = htmx_client_for(bob)
    assert hint(client.get(poll, {"live": "0"}).text) == "up to $0.60"

    vertex_scene(vertex_project, duration=8, takes=4)

    assert hint(client.get(poll, {"live": "0"}).text) == "up to $5.40"


def test_a_vertex_model_without_a_price_counts_nothing(vertex_project, settings, bob):
    settings.VERTEX_PRICES = [f"{QUALITY}=0.40"]
    vertex_scene(vertex_project, duration=4)

    assert hint(storyboard(bob, vertex_project)) == ""
    vertex_scene(vertex_project, model_key=QUALITY, duration=4)
    assert hint(storyboard(bob, vertex_project)) == "up to $1.60"


def test_generate_all_on_a_flow_project_still_counts_credits(project, alice, bob):
    make_scene(project, make_image(project, alice), takes=2)

    page = storyboard(bob, project)

    assert hint(page) == "up to 40 credits"
    assert "Each take spends credits (up to 40 credits)." in page


def test_what_generate_all_said_is_what_the_click_records(vertex_project, priced, bob, queued):
    vertex_scene(vertex_project, duration=4, takes=2)
    vertex_scene(vertex_project, model_key=QUALITY, resolution="1080p", duration=8)
    said = hint(storyboard(bob, vertex_project))

    client_for(bob).post(
        reverse("project-generate-all", args=[vertex_project.uuid]),
        {"last_generation": "0", "seen_settings": storyboard_seen(vertex_project)},
    )

    takes = Generation.objects.filter(project=vertex_project)
    assert takes.count() == 3
    assert said == f"up to ${sum(take.cost for take in takes):.2f}" == "up to $5.20"
    assert {take.cost_unit for take in takes} == {"USD"}
