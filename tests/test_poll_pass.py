"""The poll pass checks its signature once per process, and still expires and rotates out."""

import time

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from generations.models import Generation
from generations.views.access import POLL_PASS_MAX_AGE, poll_pass
from generations.views.projects import encode_since
from tests.conftest import make_image, make_scene
from tests.views_support import make_take

OLD_KEY = "flowsite-test-key-that-is-about-to-be-rotated-out-0123456789"
NEW_KEY = "flowsite-test-key-that-replaces-it-abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def rendering(project, alice):
    scene = make_scene(project, make_image(project, alice))
    make_take(scene, alice, status=Generation.Status.ACTIVE)
    return scene


def idle_poll(client, project, token):
    url = reverse("project-poll", args=[project.uuid])
    since = encode_since(timezone.now())
    return client.get(f"{url}?since={since}&pass={token}", headers={"HX-Request": "true"})


def sent_to_sign_in(response) -> bool:
    return response.status_code == 200 and response["HX-Redirect"].startswith(reverse("login"))


def test_alices_pass_answers_the_same_poll_after_poll_without_a_session(
    project, alice, rendering, client
):
    token = poll_pass(alice.pk, project.uuid)

    answers = [idle_poll(client, project, token).status_code for _ in range(3)]

    assert answers == [204, 204, 204]


def test_alices_pass_already_checked_still_expires_after_twelve_hours(
    project, alice, rendering, client, monkeypatch
):
    token = poll_pass(alice.pk, project.uuid)
    assert idle_poll(client, project, token).status_code == 204

    issued = time.time()
    monkeypatch.setattr(time, "time", lambda: issued + POLL_PASS_MAX_AGE + 60)

    assert sent_to_sign_in(idle_poll(client, project, token))


def test_alices_pass_already_checked_stops_working_once_its_key_is_rotated_out(
    project, alice, rendering, client
):
    with override_settings(SECRET_KEY=OLD_KEY):
        token = poll_pass(alice.pk, project.uuid)
        assert idle_poll(client, project, token).status_code == 204

    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY]):
        assert idle_poll(client, project, token).status_code == 204, "still a fallback key"

    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]):
        assert sent_to_sign_in(idle_poll(client, project, token))


def test_a_pass_with_a_tampered_timestamp_is_refused(project, alice, rendering, client):
    value, stamp, signature = poll_pass(alice.pk, project.uuid).rsplit(":", 2)
    forged = f"{value}:{stamp[:-1]}{'A' if stamp[-1] != 'A' else 'B'}:{signature}"

    assert sent_to_sign_in(idle_poll(client, project, forged))
