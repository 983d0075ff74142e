"""The small words and pages a person meets: plurals, times, error pages, the credits line the
poll keeps fresh, and the live region it fills for screen readers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django.views.defaults import server_error

from generations.models import Generation
from generations.templatetags.studio import ago, reason_parts
from tests.conftest import make_image, make_scene
from tests.views_support import client_for, htmx_client_for, make_take


@pytest.mark.parametrize(
    ("takes", "message"),
    [
        (0, "Deleted Throwaway."),
        (1, "Deleted Throwaway and its 1 take."),
        (2, "Deleted Throwaway and its 2 takes."),
    ],
)
def test_bob_deleting_a_scene_is_told_how_many_takes_went_with_it_in_plain_words(
    project, bob, takes, message
):
    scene = make_scene(project, title="Throwaway")
    for _ in range(takes):
        make_take(scene, bob, status=Generation.Status.FAILED)

    response = client_for(bob).post(reverse("scene-delete", args=[scene.uuid]), follow=True)

    assert [str(m) for m in response.context["messages"]] == [message]


def test_a_moment_under_a_minute_ago_reads_just_now_and_later_ones_in_minutes():
    now = timezone.now()
    assert ago(now - timedelta(seconds=20)) == "just now"
    assert ago(now - timedelta(minutes=3, seconds=5)) == "3\xa0minutes ago"
    assert ago(None) == ""


def test_alice_sees_her_accounts_tier_without_nested_brackets(project, alice):
    html = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text
    assert "Flow account Studio, Pro (tier one):" in html
    assert "(Pro (tier one))" not in html


def test_the_poll_brings_the_credits_flow_reported_with_a_finished_clip(project, alice):
    scene = make_scene(project, make_image(project, alice))
    take = make_take(scene, alice, status=Generation.Status.PENDING)
    page = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text
    assert "credits not known yet" in page
    since = page.split('name="since" value="')[1].split('"')[0]

    project.account.record_credits(9980)
    take.status = Generation.Status.READY
    take.updated = timezone.now() + timedelta(seconds=1)
    take.save(update_fields=["status", "updated"])
    poll = htmx_client_for(alice).get(
        reverse("project-poll", args=[project.uuid]), {"since": since, "live": "1"}
    )

    assert poll.status_code == 200
    facts = poll.text.split('id="account-facts"')[1].split("</p>")[0]
    assert 'hx-swap-oob="true"' in facts
    assert "9,980 credits" in facts and "as of just now" in facts
    # The page's one live region is filled in place (innerHTML) with the news.
    assert (
        '<p id="announcer" class="visually-hidden" aria-live="polite" hx-swap-oob="innerHTML">'
        "Scene 1, take 1: Ready. </p>"
    ) in poll.text


def test_the_storyboard_has_exactly_one_polite_live_region_and_a_skip_link(project, alice):
    html = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text
    assert html.count('aria-live="polite"') == 1
    assert '<a class="skip-link" href="#main">Skip to content</a>' in html
    assert '<main class="page" id="main" tabindex="-1">' in html


def test_carol_a_viewer_meets_a_styled_403_with_a_way_back(project, carol):
    scene = make_scene(project)
    response = client_for(carol).get(reverse("scene-edit", args=[scene.uuid]))
    assert response.status_code == 403
    assert "<h1>Not allowed</h1>" in response.text
    assert f'href="{reverse("project-list")}">Back to your projects' in response.text


def test_charlie_outside_the_project_meets_a_styled_404_with_a_way_back(project, charlie):
    response = client_for(charlie).get(reverse("project-detail", args=[project.uuid]))
    assert response.status_code == 404
    assert "<h1>Not found</h1>" in response.text
    assert "Back to your projects" in response.text


def test_the_500_page_renders_without_a_request_context_and_offers_a_way_back(db):
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "<h1>Something went wrong</h1>" in html
    assert "Back to your projects" in html
    assert 'href="/static/css/app.css"' in html or "app.css" in html


@pytest.mark.parametrize(
    ("reason", "text", "code"),
    [
        (
            "Flow's safety filter refused the prompt (PUBLIC_ERROR_UNSAFE_GENERATION).",
            "Flow's safety filter refused the prompt.",
            "PUBLIC_ERROR_UNSAFE_GENERATION",
        ),
        ("Cancelled by bob.", "Cancelled by bob.", ""),
        (
            "Flow refused the request (submit, HTTP 400): bad",
            "Flow refused the request (submit, HTTP 400): bad",
            "",
        ),
    ],
)
def test_a_takes_reason_is_split_into_words_for_people_and_flows_code(reason, text, code):
    assert reason_parts(reason) == {"text": text, "code": code}
