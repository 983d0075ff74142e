"""Every field's aria-describedby (Django adds "<id>_helptext" for a help text and "<id>_error"
for its errors) names an element on the page, so a screen reader says the field's hint and
what is wrong with it, on each form, as first shown and as sent back refused."""

from __future__ import annotations

from html.parser import HTMLParser

from django.urls import reverse

from generations.models import AccountGrant, FlowAccount
from tests.conftest import make_scene
from tests.film_support import picked
from tests.views_support import client_for


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.described_by: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(attributes["id"])
        self.described_by.extend((attributes.get("aria-describedby") or "").split())


def descriptions(html: str) -> tuple[list[str], list[str]]:
    """The ids the page's aria-describedby name, and those of them no element carries."""
    page = _References()
    page.feed(html)
    return page.described_by, [id_ for id_ in page.described_by if id_ not in page.ids]


def test_alice_has_every_hint_and_error_of_the_project_and_scene_forms_on_the_page(
    project, alice, account
):
    # Two accounts granted: the new-project form asks which one pays (a field with a hint).
    AccountGrant.objects.create(
        account=FlowAccount.objects.create(label="Second", bearer_token="ya29.two"), user=alice
    )
    scene = make_scene(project, title="Harbour")
    client = client_for(alice)
    new_project = reverse("project-create")
    new_scene = reverse("scene-create", args=[project.uuid])
    settings = reverse("project-settings", args=[project.uuid])
    members = reverse("project-members", args=[project.uuid])
    pages = {
        "new project": client.get(new_project),
        "new project refused": client.post(new_project, {"name": "", "account": "nope"}),
        "new scene": client.get(new_scene),
        "new scene refused": client.post(new_scene, {"title": "x" * 500, "seed": "soon"}),
        "scene edit": client.get(reverse("scene-edit", args=[scene.uuid])),
        "settings": client.get(settings),
        "settings refused": client.post(settings, {"name": " "}),
        "accounts refused": client.post(
            reverse("project-accounts", args=[project.uuid]), {f"place-{account.uuid}": "9"}
        ),
        "delete refused": client.post(
            reverse("project-delete", args=[project.uuid]), {"confirm": "Nope"}
        ),
        "members": client.get(members),
        "members refused": client.post(members, {"action": "add", "username": "nobody"}),
        "invites": client.get(reverse("project-invites", args=[project.uuid])),
    }
    named = {}
    for name, response in pages.items():
        assert response.status_code in (200, 400), name
        named[name], missing = descriptions(response.content.decode())
        assert missing == [], name


def test_bob_has_what_is_wrong_with_his_refused_trim_on_the_film_page(emu, project, alice, bob):
    pick = picked(project, alice)
    prefix = f"s{pick.scene.uuid.hex[:8]}"
    refused = client_for(bob).post(
        reverse("scene-trim", args=[pick.scene.uuid]),
        {f"{prefix}-trim_in": "soon", f"{prefix}-trim_out": "9"},
    )
    assert refused.status_code == 400
    named, missing = descriptions(refused.content.decode())
    assert missing == []
