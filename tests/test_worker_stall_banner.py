"""While no worker has run for FLOWSITE_WORKER_STALE seconds, the project page (on load) and
the admin index say so in words, instead of cards that sit "Queued" with no reason; the page
poll is not asked (it stays as cheap as it is)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from generations import heartbeat, tasks
from generations.models import Generation
from generations.views.cards import encode_since
from tests.conftest import make_scene
from tests.views_support import client_for, make_take

S = Generation.Status
STALLED = re.compile(r'id="worker-stall"[^>]*>([^<]*)<')


def banner(response) -> str | None:
    found = STALLED.search(response.content.decode())
    return " ".join(found.group(1).split()) if found else None


def open_page(project, user):
    with CaptureQueriesContext(connection) as captured:
        response = client_for(user).get(reverse("project-detail", args=[project.uuid]))
    assert response.status_code == 200
    return response, len(captured)


@pytest.fixture
def root(db) -> User:
    return User.objects.create_superuser("root", "root@example.org", "x")


def admin_index(root):
    return client_for(root).get(reverse("admin:index"))


@pytest.fixture
def queued_take(project, alice) -> Generation:
    return make_take(make_scene(project, prompt="a lighthouse"), alice, status=S.QUEUED)


def test_alice_and_the_admin_read_since_when_the_worker_has_not_run_and_that_takes_wait(
    project, alice, root, queued_take, settings
):
    settings.TIME_ZONE = "UTC"
    settings.FLOWSITE_WORKER_STALE = 120
    beat = datetime(2026, 12, 1, 18, 13, tzinfo=ZoneInfo("UTC"))
    heartbeat.beat(beat)
    timezone_now = beat + timedelta(minutes=5, seconds=10)
    with mock.patch("django.utils.timezone.now", return_value=timezone_now):
        page, _ = open_page(project, alice)
        index = admin_index(root)

    expected = (
        "The worker has not run since 18:13 (5 minutes): takes wait until it is running "
        "again; an admin should check it."
    )
    assert banner(page) == expected
    assert banner(index) == expected


def test_no_banner_while_the_worker_beats_and_the_page_costs_no_extra_query(
    project, alice, root, queued_take, settings
):
    settings.FLOWSITE_WORKER_STALE = 120
    tasks.watchdog()  # what a worker runs every minute
    page, fresh_queries = open_page(project, alice)
    assert banner(page) is None
    assert banner(admin_index(root)) is None

    heartbeat.beat(timezone.now() - timedelta(minutes=3))
    page, stale_queries = open_page(project, alice)
    assert banner(page).startswith("The worker has not run since")
    assert stale_queries == fresh_queries


def test_the_banner_shows_on_load_only_and_the_page_poll_stays_as_cheap(
    project, alice, queued_take, settings
):
    settings.FLOWSITE_WORKER_STALE = 120
    heartbeat.beat(timezone.now() - timedelta(minutes=3))
    client = client_for(alice)
    client.get(reverse("project-detail", args=[project.uuid]))
    url = reverse("project-poll", args=[project.uuid]) + f"?since={encode_since(timezone.now())}"
    with CaptureQueriesContext(connection) as captured:
        poll = client.get(url)
    assert poll.status_code == 204
    assert len(captured) <= 3


def test_a_fresh_install_with_nothing_in_flight_shows_no_banner(project, alice, root):
    page, _ = open_page(project, alice)
    assert banner(page) is None
    assert banner(admin_index(root)) is None


def test_takes_queued_before_any_worker_ever_ran_say_the_worker_has_not_run_yet(
    project, alice, root, queued_take
):
    page, _ = open_page(project, alice)
    expected = (
        "The worker has not run yet: takes wait until it is running; an admin should start it."
    )
    assert banner(page) == expected
    assert banner(admin_index(root)) == expected
