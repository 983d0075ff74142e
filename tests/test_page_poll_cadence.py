"""How often an open storyboard polls: FLOWSITE_PAGE_POLL_SECONDS while takes are in flight (2 s
by default) and FLOWSITE_IDLE_POLL_SECONDS otherwise (10 s), each a positive number of seconds,
rendered into the poller as whole milliseconds whatever the locale."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from generations.models import Generation
from tests.conftest import make_image, make_scene
from tests.test_security_settings import load_settings, production_environment, run_check_deploy
from tests.views_support import client_for, make_take


@pytest.fixture
def rendering(project, alice):
    return make_take(
        make_scene(project, make_image(project, alice)), alice, status=Generation.Status.ACTIVE
    )


def test_an_open_page_with_takes_in_flight_polls_every_two_seconds_by_default(
    monkeypatch, tmp_path
):
    prod = load_settings(monkeypatch, production_environment(tmp_path))

    assert prod.FLOWSITE_PAGE_POLL_SECONDS == 2.0


def test_an_idle_page_polls_every_ten_seconds_by_default(monkeypatch, tmp_path):
    prod = load_settings(monkeypatch, production_environment(tmp_path))

    assert prod.FLOWSITE_IDLE_POLL_SECONDS == 10.0


def test_an_idle_cadence_may_be_a_fraction_of_a_second_too(monkeypatch, tmp_path):
    prod = load_settings(
        monkeypatch, production_environment(tmp_path, FLOWSITE_IDLE_POLL_SECONDS="2.5")
    )

    assert prod.FLOWSITE_IDLE_POLL_SECONDS == 2.5


def test_a_fraction_of_a_second_is_a_valid_cadence(monkeypatch, tmp_path):
    prod = load_settings(
        monkeypatch, production_environment(tmp_path, FLOWSITE_PAGE_POLL_SECONDS="0.5")
    )

    assert prod.FLOWSITE_PAGE_POLL_SECONDS == 0.5


@pytest.mark.parametrize("name", ["FLOWSITE_PAGE_POLL_SECONDS", "FLOWSITE_IDLE_POLL_SECONDS"])
@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf", "1,5"])
def test_flowsite_refuses_a_cadence_that_is_not_a_positive_number_of_seconds(
    monkeypatch, tmp_path, name, value
):
    env = production_environment(tmp_path, **{name: value})

    with pytest.raises(ImproperlyConfigured) as refusal:
        load_settings(monkeypatch, env)

    assert f"{name} must be a number of seconds above 0" in str(refusal.value)
    assert repr(value) in str(refusal.value)


def test_manage_py_says_why_it_will_not_start_with_a_zero_cadence(tmp_path):
    result = run_check_deploy(production_environment(tmp_path, FLOWSITE_PAGE_POLL_SECONDS="0"))

    assert result.returncode != 0
    assert "FLOWSITE_PAGE_POLL_SECONDS must be a number of seconds above 0" in result.stderr


def test_alices_page_polls_at_the_configured_cadence_in_milliseconds(
    project, alice, rendering, settings
):
    settings.FLOWSITE_PAGE_POLL_SECONDS = 0.25

    html = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text

    assert html.count('hx-trigger="every 250ms"') == 1


def test_alices_idle_page_polls_at_the_configured_idle_cadence(project, alice, settings):
    make_scene(project, make_image(project, alice))
    settings.FLOWSITE_PAGE_POLL_SECONDS = 0.25
    settings.FLOWSITE_IDLE_POLL_SECONDS = 2.5

    html = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text

    assert html.count('hx-trigger="every 2500ms"') == 1
    assert "every 250ms" not in html


def test_the_cadence_stays_plain_digits_when_the_site_groups_thousands(
    project, alice, rendering, settings
):
    # "2,500ms" would read as 2 ms to htmx: every open page would hammer the server.
    settings.USE_THOUSAND_SEPARATOR = True
    settings.FLOWSITE_PAGE_POLL_SECONDS = 2.5

    html = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text

    assert 'hx-trigger="every 2500ms"' in html


def test_bobs_poll_answer_keeps_the_configured_cadence_while_takes_render(
    project, alice, bob, rendering, settings
):
    settings.FLOWSITE_PAGE_POLL_SECONDS = 0.5
    client = client_for(bob)

    # No token: every card comes back, with a poller that keeps polling at the same cadence.
    answer = client.get(reverse("project-poll", args=[project.uuid]), headers={"HX-Request": "1"})

    assert answer.status_code == 200
    assert 'hx-trigger="every 500ms"' in answer.text
