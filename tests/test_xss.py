"""Cross-site scripting: whatever a person (or Flow) puts in a name, title, prompt, username,
file name or failure reason is shown as text on every page and fragment that shows it.

Each page is checked two ways: the raw markup is absent, and its escaped form is present
(so the test cannot pass just because the value was not shown at all).
"""

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.html import escape

from generations.models import AccountGrant, FlowAccount, Generation, Membership, Project
from tests.conftest import PASSWORD, make_image, make_scene, png_bytes
from tests.views_support import attach_clip, client_for, htmx_client_for, make_take, seen_settings

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
PAYLOADS = [SCRIPT, BREAKOUT]
# What must never reach a page unescaped, whichever attribute or text it landed in.
RAW_MARKUP = ["<script>alert", "<img src=x", "onerror=alert(1)>"]


def assert_shown_escaped(html: str, *values: str) -> None:
    for raw in RAW_MARKUP:
        assert raw not in html, f"unescaped {raw!r} on the page"
    for value in values:
        assert escape(value) in html, f"{value!r} is not shown (escaped) at all"


@pytest.fixture
def evil(db):
    """A project where every free-text field holds markup, made by people whose usernames do.

    The usernames cannot be typed into Django's forms (its validator refuses them), but an
    account imported from elsewhere, or made in a shell, can have one.
    """
    owner = User.objects.create_user(SCRIPT, "owner@example.org", PASSWORD)
    editor = User.objects.create_user(BREAKOUT, "editor@example.org", PASSWORD)
    account = FlowAccount.objects.create(
        label=f"Studio {BREAKOUT}", bearer_token="ya29.test", problem=f"Flow said {SCRIPT}"
    )
    project = Project.objects.create(name=f"Launch {SCRIPT}", account=account, created_by=owner)
    project.add_member(owner, Membership.Role.OWNER)
    # Granted, so the project page shows the account's own problem.
    AccountGrant.objects.create(account=account, user=owner)
    project.add_member(editor, Membership.Role.EDITOR)
    image = make_image(project, editor)
    image.original_name = f"{BREAKOUT}.png"
    image.save(update_fields=["original_name"])
    scene = make_scene(project, image, title=f"Opening {BREAKOUT}", prompt=f"Waves {SCRIPT}")
    ready = make_take(scene, editor, status=Generation.Status.READY)
    attach_clip(ready, b"\x00\x00\x00\x18ftypmp42 not really a clip", b"\xff\xd8 poster")
    make_take(
        scene,
        owner,
        status=Generation.Status.FAILED,
        reason=f"Flow refused it: {BREAKOUT}",
    )
    make_take(scene, editor, status=Generation.Status.ACTIVE)
    return {"owner": owner, "editor": editor, "project": project, "scene": scene, "take": ready}


def test_the_project_list_shows_names_escaped(evil):
    html = client_for(evil["owner"]).get(reverse("project-list")).text
    assert_shown_escaped(html, evil["project"].name, evil["project"].account.label)


def test_the_storyboard_shows_every_field_escaped(evil):
    project = evil["project"]
    html = client_for(evil["owner"]).get(reverse("project-detail", args=[project.uuid])).text
    assert_shown_escaped(
        html,
        project.name,
        project.account.label,
        project.account.problem,
        evil["scene"].title,
        evil["scene"].prompt,
        evil["owner"].username,
        evil["editor"].username,
        "Flow refused it: " + BREAKOUT,
    )
    # In attributes too: the confirm text and the button labels carry the scene's title.
    assert f'data-confirm="Delete {escape(evil["scene"].title)}' in html
    assert f'aria-label="Move {escape(evil["scene"].title)} up"' in html


def test_the_card_returned_after_generate_shows_every_field_escaped(evil):
    scene = evil["scene"]
    # A stale press: the card comes back with its error, naming the scene, and the takes.
    response = htmx_client_for(evil["owner"]).post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "0", "seen_settings": seen_settings(scene)},
    )
    assert response.status_code == 200
    assert_shown_escaped(response.text, scene.title, scene.prompt, evil["editor"].username)


def test_the_poll_fragment_shows_every_field_escaped(evil):
    project = evil["project"]
    response = htmx_client_for(evil["owner"]).get(
        reverse("project-poll", args=[project.uuid]), {"since": "0"}
    )
    assert response.status_code == 200
    assert_shown_escaped(
        response.text,
        evil["scene"].title,
        evil["scene"].prompt,
        evil["owner"].username,
        "Flow refused it: " + BREAKOUT,
    )


def test_the_gallery_shows_every_field_escaped(evil):
    project = evil["project"]
    html = client_for(evil["owner"]).get(reverse("project-gallery", args=[project.uuid])).text
    # The section of the person who made the clip is headed by their username.
    assert_shown_escaped(
        html, project.name, evil["editor"].username, evil["scene"].title, evil["scene"].prompt
    )


def test_the_members_page_shows_usernames_escaped_in_text_and_attributes(evil):
    project = evil["project"]
    html = client_for(evil["owner"]).get(reverse("project-members", args=[project.uuid])).text
    assert_shown_escaped(html, project.name, evil["owner"].username, evil["editor"].username)
    assert f'value="{escape(evil["editor"].username)}"' in html


def test_adding_an_unknown_member_repeats_the_typed_name_escaped(evil):
    project = evil["project"]
    response = client_for(evil["owner"]).post(
        reverse("project-members", args=[project.uuid]),
        {"action": "add", "username": f"nobody{SCRIPT}", "role": "editor"},
    )
    assert_shown_escaped(response.text, f"nobody{SCRIPT}")


def test_the_scene_form_shows_the_title_and_prompt_escaped(evil):
    scene = evil["scene"]
    html = client_for(evil["owner"]).get(reverse("scene-edit", args=[scene.uuid])).text
    assert_shown_escaped(html, scene.title, scene.prompt, evil["project"].name)


def test_a_refused_prompt_is_echoed_escaped_in_the_form(evil):
    project = evil["project"]
    response = client_for(evil["owner"]).post(
        reverse("scene-create", args=[project.uuid]),
        {"title": BREAKOUT, "prompt": SCRIPT + "\x07", "aspect": "landscape", "takes": "1"},
    )
    assert response.status_code == 200
    assert_shown_escaped(response.text, BREAKOUT)


def test_the_sign_in_page_echoes_a_typed_username_escaped(client, db):
    response = client.post(reverse("login"), {"username": BREAKOUT, "password": "x"})
    assert_shown_escaped(response.text, BREAKOUT)


def test_the_flash_message_after_adding_a_scene_is_escaped(evil):
    project = evil["project"]
    response = client_for(evil["owner"]).post(
        reverse("scene-create", args=[project.uuid]),
        {
            "title": SCRIPT,
            "prompt": "Calm sea",
            "aspect": "landscape",
            "model_key": "veo_3_1_i2v_s_fast",
            "takes": "1",
            "start_image_file": SimpleUploadedFile("a.png", png_bytes(), "image/png"),
        },
        follow=True,
    )
    assert f"Added {escape(SCRIPT)}." in response.text
    assert_shown_escaped(response.text, SCRIPT)


@pytest.mark.parametrize(
    "changelist",
    [
        "admin:generations_project_changelist",
        "admin:generations_scene_changelist",
        "admin:generations_generation_changelist",
        "admin:generations_membership_changelist",
        "admin:generations_imageasset_changelist",
        "admin:generations_flowaccount_changelist",
        "admin:auth_user_changelist",
    ],
)
def test_admin_lists_show_every_field_escaped(evil, changelist):
    admin = User.objects.create_superuser("root", "root@example.org", PASSWORD)
    response = client_for(admin).get(reverse(changelist))
    assert response.status_code == 200
    assert_shown_escaped(response.text)
    assert escape(SCRIPT) in response.text or escape(BREAKOUT) in response.text


def test_admin_change_pages_show_thumbnails_with_escaped_alt_text(evil):
    admin = User.objects.create_superuser("root", "root@example.org", PASSWORD)
    client = client_for(admin)
    for url in [
        reverse("admin:generations_scene_change", args=[evil["scene"].pk]),
        reverse("admin:generations_generation_change", args=[evil["take"].pk]),
        reverse("admin:generations_project_change", args=[evil["project"].pk]),
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_shown_escaped(response.text)
        assert escape(evil["scene"].title) in response.text, url
