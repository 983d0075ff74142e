"""Owners choose and order the accounts their project spends (one POST from the settings
page); each account's state shows there, on the project page and in the admin."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from generations.engines.catalogue import TIER_ONE, TIER_TWO
from generations.models import (
    AccountGrant,
    AuditEvent,
    FlowAccount,
    Membership,
    Project,
    ProjectAccount,
)
from tests.conftest import make_ready_scene, make_scene
from tests.views_support import button_disabled, client_for


@pytest.fixture
def backup(db, alice) -> FlowAccount:
    account = FlowAccount.objects.create(
        label="Backup", tier=TIER_TWO, bearer_token="ya29.backup", credits=340
    )
    AccountGrant.objects.create(account=account, user=alice)
    return account


@pytest.fixture
def spare(db, project) -> FlowAccount:
    """Granted to the project itself, not to a person."""
    account = FlowAccount.objects.create(label="Spare", tier=TIER_ONE, bearer_token="ya29.spare")
    AccountGrant.objects.create(account=account, project=project)
    return account


def accounts_url(project) -> str:
    return reverse("project-accounts", args=[project.uuid])


def post_places(user, project, *pairs: tuple[FlowAccount, str], follow: bool = False):
    data = {f"place-{account.uuid}": place for account, place in pairs}
    return client_for(user).post(accounts_url(project), data, follow=follow)


def order_of(project: Project) -> list[str]:
    project = Project.objects.select_related("account").get(pk=project.pk)
    return [account.label for account in project.accounts_in_order()]


def test_alice_puts_backup_first_and_studio_second(project, account, backup, spare, alice):
    response = post_places(alice, project, (backup, "1"), (account, "2"), (spare, ""), follow=True)

    assert "Poseidon now spends Backup, then Studio." in response.text
    assert order_of(project) == ["Backup", "Studio"]
    project.refresh_from_db()
    assert project.account == backup, "the first account is the one scenes are judged on"
    event = AuditEvent.objects.get(action=AuditEvent.Action.ACCOUNTS_ORDERED)
    assert event.details == {"accounts": ["Backup", "Studio"]}


def test_an_account_granted_to_the_project_itself_may_be_chosen(project, account, spare, alice):
    post_places(alice, project, (account, "2"), (spare, "1"))
    assert order_of(project) == ["Spare", "Studio"]


def test_two_accounts_in_the_same_place_are_refused_in_words(project, account, backup, alice):
    response = post_places(alice, project, (account, "1"), (backup, "1"))

    assert response.status_code == 400
    assert "Backup and Studio are both 1st; give each account its own place." in response.text
    assert order_of(project) == ["Studio"]


def test_choosing_no_account_at_all_is_refused(project, account, backup, alice):
    response = post_places(alice, project, (account, ""), (backup, ""))

    assert response.status_code == 400
    assert "Choose at least one account" in response.text
    assert order_of(project) == ["Studio"]


def test_an_account_granted_to_nobody_here_is_neither_offered_nor_taken(
    project, account, charlie, alice
):
    theirs = FlowAccount.objects.create(label="Theirs", bearer_token="ya29.theirs")
    AccountGrant.objects.create(account=theirs, user=charlie)

    page = client_for(alice).get(reverse("project-settings", args=[project.uuid])).text
    assert "Theirs" not in page
    post_places(alice, project, (theirs, "1"), (account, "2"))
    assert order_of(project) == ["Studio"]


def test_accounts_of_two_kinds_are_refused(project, account, alice):
    vertex = FlowAccount.objects.create(
        label="Cloud", kind=FlowAccount.Kind.VERTEX, vertex_project="studio-4821"
    )
    AccountGrant.objects.create(account=vertex, user=alice)

    response = post_places(alice, project, (account, "1"), (vertex, "2"))
    assert response.status_code == 400
    assert "Cloud is a Vertex AI account and Studio a Google Flow one" in response.text

    make_scene(project)
    response = post_places(alice, project, (vertex, "1"), (account, ""))
    assert response.status_code == 400
    assert "The scenes of Poseidon are made for Google Flow" in response.text
    assert order_of(project) == ["Studio"]


def limits_of(project: Project) -> dict[str, Decimal | None]:
    return {
        "budget": Project.objects.get(pk=project.pk).monthly_budget,
        **dict(
            Membership.objects.filter(project=project)
            .order_by("user__username")
            .values_list("user__username", "monthly_allowance")
        ),
    }


@pytest.fixture
def cloud(db, alice) -> FlowAccount:
    account = FlowAccount.objects.create(
        label="Cloud", kind=FlowAccount.Kind.VERTEX, vertex_project="studio-4821"
    )
    AccountGrant.objects.create(account=account, user=alice)
    return account


def test_moving_poseidon_to_vertex_ai_clears_its_credit_budget_and_allowances_saying_why(
    project, account, cloud, alice, bob, carol
):
    Project.objects.filter(pk=project.pk).update(monthly_budget=1000)
    Membership.objects.filter(user__in=[bob, carol]).update(monthly_allowance=50)

    response = post_places(alice, project, (cloud, "1"), (account, ""), follow=True)

    assert (
        "Poseidon now spends Cloud. The monthly budget of 1,000 credits and the allowances of "
        "2 members were cleared: Vertex AI accounts are paid in US dollars. Set them again on "
        "the Spend page." in response.text
    )
    assert limits_of(project) == {"budget": None, "alice": None, "bob": None, "carol": None}
    event = AuditEvent.objects.get(action=AuditEvent.Action.ACCOUNTS_ORDERED)
    assert event.details == {
        "accounts": ["Cloud"],
        "budget_cleared": "1,000 credits",
        "allowances_cleared": ["bob (50 credits)", "carol (50 credits)"],
    }


def test_moving_poseidon_back_to_flow_clears_its_dollar_allowance(
    project, account, cloud, alice, bob
):
    project.set_accounts([cloud])
    Membership.objects.filter(user=bob).update(monthly_allowance=Decimal("2.25"))

    response = post_places(alice, project, (account, "1"), (cloud, ""), follow=True)

    assert (
        "The allowance of bob ($2.25) was cleared: Flow accounts are paid in credits. Set it "
        "again on the Spend page." in response.text
    )
    assert limits_of(project)["bob"] is None


def test_reordering_flow_accounts_keeps_the_budget_and_allowances(
    project, account, backup, alice, bob
):
    Project.objects.filter(pk=project.pk).update(monthly_budget=1000)
    Membership.objects.filter(user=bob).update(monthly_allowance=50)

    response = post_places(alice, project, (backup, "1"), (account, "2"), follow=True)

    assert "cleared" not in response.text
    assert limits_of(project) == {"budget": 1000, "alice": None, "bob": 50, "carol": None}


def test_bob_the_editor_may_not_choose_the_accounts(project, account, backup, bob):
    response = post_places(bob, project, (backup, "1"), (account, "2"))
    assert response.status_code == 403
    assert order_of(project) == ["Studio"]


def test_an_order_is_kept_by_a_duplicate(project, account, backup, alice):
    project.set_accounts([account, backup])
    copy = project.duplicate(alice)
    assert order_of(copy) == ["Studio", "Backup"]


# --- each account's state -----------------------------------------------------------------


def test_the_settings_page_shows_each_accounts_credits_and_state(project, account, backup, alice):
    FlowAccount.objects.filter(pk=account.pk).update(
        cool_down_until=timezone.now() + timedelta(minutes=3)
    )
    page = client_for(alice).get(reverse("project-settings", args=[project.uuid])).text
    assert "Cooling down after Flow throttled it, until" in page
    assert "340" in page


def test_the_settings_page_of_a_vertex_ai_project_speaks_of_us_dollars_not_flow_credits(
    project, account, alice
):
    FlowAccount.objects.filter(pk=account.pk).update(kind=FlowAccount.Kind.VERTEX)

    page = client_for(alice).get(reverse("project-settings", args=[project.uuid])).text
    accounts = page[page.index('id="accounts"') :]

    assert "none: billed in US dollars" in accounts
    assert "not known yet" not in accounts
    assert "after Flow throttled" not in accounts


def test_the_project_page_shows_every_account_in_order_with_its_state(
    project, account, backup, alice
):
    project.set_accounts([account, backup])
    FlowAccount.objects.filter(pk=account.pk).update(
        problem="The Flow session for account Studio has expired — paste a new cookie."
    )
    page = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text
    studio = page.index("Flow account Studio")
    assert studio < page.index("then Backup") < page.index("340 credits")
    assert "The Flow session for account Studio has expired" in page


def test_once_the_granting_owner_leaves_bobs_page_shows_studio_unusable_and_no_price(
    project, account, backup, alice, bob
):
    project.set_accounts([account, backup])
    make_ready_scene(project, "a quiet pier")
    url = reverse("project-detail", args=[project.uuid])
    assert "up to 20 credits" in client_for(bob).get(url).text
    Membership.objects.filter(project=project, user=bob).update(role=Membership.Role.OWNER)
    Membership.objects.filter(project=project, user=alice).update(role=Membership.Role.EDITOR)

    page = client_for(bob).get(url).text

    facts = page[
        page.index('id="account-facts"') : page.index("</p>", page.index('id="account-facts"'))
    ]
    assert (
        "Not usable: staff have not granted it to Poseidon or to one of its owners. Ask an admin."
    ) in facts
    assert facts.count("Not usable") == 2, "Backup was granted to alice too"
    assert "up to 20 credits" not in page


REVOKED = (
    "This project may not spend the Flow account Studio: staff have not granted it to the "
    "project or to one of its owners. Ask an admin."
)


def test_once_studios_grant_is_revoked_bobs_scene_cards_say_so_instead_of_a_price(
    project, account, alice, bob
):
    make_ready_scene(project, "a quiet pier")
    client = client_for(bob)
    url = reverse("project-detail", args=[project.uuid])
    assert "1 take × 20 credits = 20 credits" in client.get(url).text
    AccountGrant.objects.filter(account=account, user=alice).delete()  # flow_account revoke

    page = client.get(url).text

    card = page[page.index('class="card__generate"') :]
    card = card[: card.index("</form>")]
    assert "credits" not in card, "no price for an account the project can no longer spend"
    assert REVOKED in card
    assert button_disabled(card), "Generate would be refused"


def test_the_project_page_costs_the_same_queries_for_two_accounts_as_for_five(
    project, account, backup, alice
):
    client = client_for(alice)
    url = reverse("project-detail", args=[project.uuid])
    project.set_accounts([account, backup])
    client.get(url)
    with CaptureQueriesContext(connection) as two:
        client.get(url)
    more = []
    for number in range(3):
        extra = FlowAccount.objects.create(label=f"Extra {number}", bearer_token="ya29.x")
        AccountGrant.objects.create(account=extra, user=alice)
        more.append(extra)
    project.set_accounts([account, backup, *more])
    with CaptureQueriesContext(connection) as five:
        page = client.get(url).text
    assert "then Extra 2" in page
    assert len(five) == len(two)


def test_the_admin_shows_each_accounts_state_and_a_projects_later_accounts(
    client, project, account, backup
):
    admin = User.objects.create_superuser("root", "root@example.org", "x")
    client.force_login(admin)
    project.set_accounts([account, backup])
    FlowAccount.objects.filter(pk=backup.pk).update(
        cool_down_until=timezone.now() + timedelta(minutes=3)
    )

    accounts = client.get(reverse("admin:generations_flowaccount_changelist")).text
    assert "Cooling down after Flow throttled it, until" in accounts
    change = client.get(reverse("admin:generations_project_change", args=[project.pk])).text
    assert "later accounts" in change.lower()
    assert ProjectAccount.objects.filter(project=project).count() == 1
    assert "Cooling down after Flow throttled it" in change
