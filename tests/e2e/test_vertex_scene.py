"""One scene on a Vertex AI account, end to end, in a real Chromium against the live server.

Alice's project spends a Vertex AI account that signs in with a service-account key the
emulator handed out (a real RS256 JWT traded at the emulator's token endpoint, over HTTP on
loopback). She lays out a scene with what only Vertex AI offers (length, resolution, sound,
a negative prompt, who may appear), sees what Generate and Generate all would cost in dollars
before she clicks, and watches the worker (``tasks.pump`` in a thread, as in
test_new_user.py) bring a ready clip of the length and size she asked for.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import av
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from generations.engines.vertex import clean_service_account_key
from generations.models import AccountGrant, FlowAccount, Generation
from tests.conftest import PASSWORD, VERTEX_FAST
from tests.e2e.test_new_user import IN_FLIGHT_LABELS, sign_in, start_image

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _vertex_on_the_emulator(settings, flow_emulator) -> None:
    settings.FLOWSITE_PAGE_POLL_SECONDS = 1
    settings.VERTEX_API_BASE_URL = flow_emulator.url
    settings.GOOGLE_STORAGE_BASE_URL = flow_emulator.url
    settings.VERTEX_PRICES = [f"{VERTEX_FAST}=0.15", f"{VERTEX_FAST}+audio=0.25"]


def test_alice_generates_a_scene_on_a_vertex_account_knowing_its_price_in_dollars(
    page: Page, worker, flow_emulator, tmp_path
):
    alice = User.objects.create_user("alice", "alice@example.org", PASSWORD)
    cloud = FlowAccount(label="Cloud", kind=FlowAccount.Kind.VERTEX, vertex_project="flowsite-demo")
    cloud.replace_credentials(
        service_account_key=clean_service_account_key(
            json.dumps(flow_emulator.service_account_key())
        )
    )
    cloud.save()
    AccountGrant.objects.create(account=cloud, user=alice)

    sign_in(page, "alice")
    page.get_by_role("link", name="New project").click()
    page.get_by_label("Name").fill("Heron film")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Heron film")).to_be_visible()

    page.get_by_role("link", name="Add scene").click()
    page.get_by_label("Start image").set_input_files(start_image(tmp_path))
    page.get_by_label("Title").fill("Heron at dawn")
    page.get_by_label("Prompt", exact=True).fill("A heron lifts off the reeds as the mist clears")
    # A Vertex AI model does several modes, so it is listed under each; the list leaves only
    # the chosen mode's entries enabled, and that is the one picked.
    models = page.get_by_label("Model")
    index = models.evaluate(
        "(select, key) => [...select.options].findIndex(o => o.value === key && !o.disabled)",
        VERTEX_FAST,
    )
    assert index >= 0
    models.select_option(index=index)
    # What Flow's lane cannot do is offered here, and only as Vertex AI allows it.
    page.get_by_label("Duration").select_option("4")
    page.get_by_label("Resolution").select_option("720p")
    page.get_by_label("Sound track").check()
    page.get_by_label("Negative prompt").fill("text overlays")
    page.get_by_label("People").select_option("dont_allow")
    page.get_by_role("button", name="Add scene").click()

    card = page.locator("article.card", has_text="Heron at dawn")
    expect(card).to_be_visible()
    # Before the click: what it costs, in dollars (4 s with sound at $0.25 a second).
    expect(card.locator("[data-cost]")).to_have_text("1 take × 4 s × $0.25/s = $1.00")
    expect(page.locator("#generate-all .generate-all__cost")).to_have_text("up to $1.00")

    card.get_by_role("button", name="Generate 1 take").click()
    status = card.locator(".take .status")
    expect(status).to_have_count(1)
    expect(status).to_have_text(IN_FLIGHT_LABELS)
    # A clip of 4 s is really rendered (and encoded with its sound) on a busy machine.
    expect(status).to_have_text("Ready", timeout=240_000)

    clip = card.locator("video")
    expect(clip).to_have_count(1)
    # The card's clip loads nothing until asked (preload="none"); its metadata is enough.
    clip.evaluate("video => { video.preload = 'metadata'; video.load(); }")
    page.wait_for_function("video => video.readyState >= 1", arg=clip.element_handle())
    width, height, seconds = clip.evaluate(
        "video => [video.videoWidth, video.videoHeight, video.duration]"
    )
    assert (width, height) == (1280, 720)
    assert round(seconds) == 4

    take = Generation.objects.get()
    assert (take.status, take.duration, take.resolution, take.audio) == (
        Generation.Status.READY,
        4,
        "720p",
        True,
    )
    assert (take.negative_prompt, take.person_generation) == ("text overlays", "dont_allow")
    assert (take.cost, take.cost_unit) == (Decimal("1.00"), "USD")
    with av.open(str(Path(django_settings.MEDIA_ROOT) / take.video.name)) as container:
        assert container.streams.audio, "the clip has the sound track she asked for"
    assert flow_emulator.stats["vertex_predict"] == 1
    assert flow_emulator.stats["vertex_token"] >= 1, "signed in with the key"
