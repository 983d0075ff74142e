"""An owner brings a new person in by link, in a real Chromium against the live server."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from generations.models import Membership
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_alice_invites_dora_by_link_and_dora_signs_up_into_the_project_as_editor(
    page: Page, project, chromium, live_server, screenshots
):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/projects/{project.uuid}/members/")
    page.get_by_role("link", name="Invite by email or link").click()
    page.get_by_label("Role").select_option("editor")
    page.get_by_role("button", name="Make invite").click()
    link = page.get_by_role("textbox", name="Link").input_value()
    assert "/join/" in link
    page.screenshot(path=screenshots / "invite-link.png", full_page=True)

    # Dora has no login and her own browser.
    context = chromium.new_context(base_url=live_server.url)
    dora_page = context.new_page()
    dora_page.set_default_timeout(15_000)
    dora_page.goto(link)
    expect(dora_page.get_by_role("heading", name="Join Poseidon")).to_be_visible()
    dora_page.get_by_label("Username").fill("dora")
    dora_page.get_by_label("Password", exact=True).fill(PASSWORD)
    dora_page.get_by_label("Password confirmation").fill(PASSWORD)
    dora_page.get_by_role("button", name="Sign up and join").click()

    expect(dora_page.get_by_text("Welcome to Poseidon: you joined as editor.")).to_be_visible()
    expect(dora_page.get_by_text("You are editor.")).to_be_visible()
    expect(dora_page.get_by_role("link", name="Add scene")).to_be_visible()
    dora_page.screenshot(path=screenshots / "invite-joined.png", full_page=True)
    context.close()
    dora = User.objects.get(username="dora")
    assert Membership.objects.get(project=project, user=dora).role == "editor"


def test_dora_generates_within_her_allowance_is_refused_past_it_and_the_chart_shows_both(
    page: Page, project, alice, queued, screenshots
):
    from tests.conftest import make_image, make_scene
    from tests.views_support import make_take

    dora = User.objects.create_user("dora", "", PASSWORD)
    project.add_member(dora, Membership.Role.EDITOR)
    Membership.objects.filter(project=project, user=dora).update(monthly_allowance=30)
    scene = make_scene(project, make_image(project, alice), title="Harbour", takes=1)
    make_take(scene, alice, status="ready", cost=20, cost_unit="credits")

    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("dora")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/projects/{project.uuid}/")
    card = page.locator("article.card", has_text="Harbour")
    expect(card.get_by_text("1 take × 20 credits = 20 credits")).to_be_visible()
    card.get_by_role("button", name="Generate 1 take").click()
    expect(card.get_by_text("Queued 1 take.")).to_be_visible()
    card.get_by_role("button", name="Generate 1 take").click()
    expect(
        card.get_by_text(
            "This would spend 20 credits, but you have 10 credits left of your monthly "
            "allowance of 30 credits in Poseidon."
        )
    ).to_be_visible()
    assert project.generations.filter(requested_by=dora).count() == 1

    page.get_by_role("link", name="Spend").click()
    chart = page.locator("svg[role=img]")
    expect(chart.locator("rect.spend__bar")).to_have_count(2)
    legend = page.locator("figcaption")
    expect(legend).to_contain_text("alice")
    expect(legend).to_contain_text("dora")
    page.screenshot(path=screenshots / "spend.png", full_page=True)


def make_link_invite(page: Page, project) -> str:
    """Alice signs in and makes an invite link; returns the link."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/projects/{project.uuid}/invites/")
    page.get_by_role("button", name="Make invite").click()
    return page.get_by_role("textbox", name="Link").input_value()


def test_alice_copies_the_invite_link_with_the_copy_button(page: Page, project, live_server):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    link = make_link_invite(page, project)

    page.get_by_role("button", name="Copy").click()

    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Copied the link to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == link


def test_where_the_browser_refuses_the_clipboard_the_link_is_selected_instead(page: Page, project):
    # The browser says no, as one does when the person blocked clipboard access.
    page.add_init_script(
        "Object.defineProperty(navigator.clipboard, 'writeText', {value: () =>"
        " Promise.reject(new DOMException('Write permission denied.', 'NotAllowedError'))});"
    )
    link = make_link_invite(page, project)

    page.get_by_role("button", name="Copy").click()

    expect(page.get_by_role("status")).to_have_text(
        "Your browser did not let Flowsite copy: the link is selected, press Ctrl+C "
        "(⌘C on a Mac) to copy it."
    )
    field = page.get_by_role("textbox", name="Link")
    expect(field).to_be_focused()
    selected = field.evaluate(
        "input => input.value.slice(input.selectionStart, input.selectionEnd)"
    )
    assert selected == link
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
