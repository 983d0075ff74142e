"""Smaller hardening: the DEBUG error page hides Flowsite's secrets; the CSRF cookie is HttpOnly."""

import re
import secrets
import sys
from pathlib import Path

from django.test import RequestFactory
from django.views.debug import get_default_exception_reporter_filter, technical_500_response

from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parent.parent
# Drawn at run time: the page shows source lines around each frame, and must not be found to
# "contain" a value only because this file spells it out.
EMULATOR_COOKIE = "emulator-session-" + secrets.token_hex(8)
DATABASE_PASSWORD = "db-password-" + secrets.token_hex(8)


def error_page(settings) -> str:
    request = RequestFactory().get("/boom")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        return technical_500_response(request, *sys.exc_info()).content.decode()


def test_the_debug_error_page_hides_the_emulator_session_cookie_and_urls_with_passwords(
    settings,
):
    settings.DEBUG = True
    settings.FLOW_EMULATOR_SESSION_COOKIE = EMULATOR_COOKIE
    settings.DATABASE_URL = f"postgres://flowsite:{DATABASE_PASSWORD}@db:5432/flowsite"
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": f"redis://:{DATABASE_PASSWORD}@r/0"}

    page = error_page(settings)

    assert "FLOW_EMULATOR_SESSION_COOKIE" in page
    assert EMULATOR_COOKIE not in page
    assert DATABASE_PASSWORD not in page
    # Ordinary settings are still shown, so the page stays useful.
    assert "STATIC_URL" in page and "/static/" in page


def test_the_filter_hides_by_name_at_every_depth():
    cleansed = get_default_exception_reporter_filter().cleanse_setting
    hidden = "********************"

    assert cleansed("FLOW_EMULATOR_SESSION_COOKIE", "x") == hidden
    assert cleansed("CACHES", {"default": {"LOCATION": "redis://:pw@h/0"}}) == {
        "default": {"LOCATION": hidden}
    }
    assert cleansed("SESSION_COOKIE_NAME", "sessionid") == "sessionid"


def test_the_csrf_cookie_is_httponly(client, alice, project):
    client.force_login(alice)
    response = client.get(f"/projects/{project.uuid}/")

    cookie = response.cookies["csrftoken"]
    assert cookie["httponly"] is True


def test_htmx_gets_the_csrf_token_from_the_page_not_from_the_cookie(client, alice, project):
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    page = client.get(f"/projects/{project.uuid}/").text

    assert re.search(r"hx-headers='\{\"X-CSRFToken\": \"[A-Za-z0-9]{32,}\"\}'", page)
    for path in [*ROOT.glob("templates/**/*.html"), *ROOT.glob("static/js/*.js")]:
        assert "document.cookie" not in path.read_text(), path
