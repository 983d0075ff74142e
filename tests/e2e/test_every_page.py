"""Every page of the site, listed from the URLconf, opened in Chromium at desktop and phone
sizes: no console error, no CSP violation, and every clip has an accessible name."""

from __future__ import annotations

import re
from uuid import uuid4

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from playwright.sync_api import Page, expect

from generations.models import Membership
from tests.e2e.studio_support import build_studio
from tests.e2e.test_new_user import sign_in

pytestmark = pytest.mark.browser

SIZES = {"desktop": (1440, 900), "phone": (390, 844)}
# A route's first segment says which of the studio's objects its one uuid names.
OBJECT_BY_SEGMENT = {"projects": "project", "scenes": "scene", "takes": "take"}
# Not pages: htmx asks for it (and a plain visit is answered 404); the storyboard polls it.
# Pieces htmx swaps into a page, not pages of their own.
FRAGMENTS = {"project-poll", "project-film-card"}


def site_routes() -> list[tuple[str, str]]:
    """(name, route) of every page with no parameter or one object uuid, admin aside."""

    def walk(patterns, prefix=""):
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                if not route.startswith("admin/"):
                    yield from walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern) and not route.startswith("admin/"):
                yield entry.name, route

    return [
        (name, route)
        for name, route in walk(get_resolver().url_patterns)
        if re.fullmatch(r"[^<]*(<uuid:uuid>[^<]*)?", route)
    ]


def address(route: str, objects: dict) -> str | None:
    if "<uuid:uuid>" not in route:
        return "/" + route
    kind = OBJECT_BY_SEGMENT.get(route.split("/")[0])
    if kind is None:  # media: not pages
        return None
    return "/" + route.replace("<uuid:uuid>", str(objects[kind].uuid))


def console_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


@pytest.mark.parametrize("size", SIZES)
def test_every_page_alice_opens_is_free_of_console_errors_and_names_its_clips(
    page: Page, project, alice, bob, tmp_path, size
):
    studio = build_studio(project, alice, bob, tmp_path)
    objects = {"project": project, "scene": studio.scenes[2], "take": studio.ready[0]}
    page.set_viewport_size(dict(zip(("width", "height"), SIZES[size], strict=True)))
    errors = console_errors(page)
    sign_in(page, "alice")
    opened = []
    for name, route in site_routes():
        url = address(route, objects)
        if url is None or name == "logout" or name in FRAGMENTS:
            continue
        # Asked first with the page's cookies: actions (POST only) answer 405 with no page.
        probe = page.request.get(url, max_redirects=0)
        if probe.status == 405:
            continue
        # Files to save (the spend CSV, the zip of takes) are downloads, not pages.
        if "attachment" in probe.headers.get("content-disposition", ""):
            continue
        assert probe.status in (200, 302), (name, probe.status)
        response = page.goto(url)
        assert response.status == 200, (name, response.status)
        opened.append(name)
        page.wait_for_load_state("networkidle")
        for video in page.locator("video").all():
            if video.is_visible():
                expect(video).to_have_accessible_name(re.compile(r"\w"))
            else:  # hidden (the gallery's review player until opened): no name is computed
                expect(video).to_have_attribute("aria-label", re.compile(r"\w"))
        assert errors == [], (name, errors)
        # Nothing widens the page past the screen: what is wider (a strip of takes, a table)
        # scrolls inside its own box.
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= SIZES[size][0], (name, wide)
    # The list really came from the URLconf and reached the studio's own pages.
    assert {"project-list", "project-detail", "project-gallery", "scene-edit"} <= set(opened)


@pytest.mark.parametrize("size", SIZES)
def test_carol_meets_a_styled_403_and_404_with_a_way_back(
    page: Page, project, alice, bob, carol, tmp_path, size
):
    studio = build_studio(project, alice, bob, tmp_path)
    assert project.memberships.get(user=carol).role == Membership.Role.VIEWER
    page.set_viewport_size(dict(zip(("width", "height"), SIZES[size], strict=True)))
    sign_in(page, "carol")
    response = page.goto(f"/scenes/{studio.scenes[0].uuid}/edit/")
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    page.get_by_role("link", name="Back to your projects").click()
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    response = page.goto(f"/projects/{uuid4()}/")
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.get_by_role("link", name="Back to your projects")).to_be_visible()
