"""After Google refuses an account, its admin page says what happened in words, and the admin
tries it again in one step: "Check again now" (audited), new credentials, or another project
or region. The account's waiting takes then go to the worker at once."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from generations.models import AuditEvent, FlowAccount, Generation, Project
from generations.tasks import run_pass
from tests.conftest import vertex_scene
from tests.tasks_support import settle

S = Generation.Status


@pytest.fixture
def root(db) -> User:
    return User.objects.create_superuser("root", "root@example.org", "x")


@pytest.fixture
def admin_client(client, root):
    client.force_login(root)
    return client


@pytest.fixture
def refused(vertex_project, flow_emulator, alice):
    """alice's take waits because Google said the Vertex AI API is not enabled (once)."""
    [take] = vertex_scene(vertex_project, "[fault:api-disabled:once]").generate(alice)
    run_pass()
    take.refresh_from_db()
    assert take.status == S.QUEUED and "API is not enabled" in take.reason
    return take


def account_page(client, account) -> str:
    return client.get(reverse("admin:generations_flowaccount_change", args=[account.pk])).text


def change_form(account: FlowAccount, **fields) -> dict:
    return {
        "label": account.label,
        "kind": account.kind,
        "tier": account.tier,
        "vertex_project": account.vertex_project,
        "vertex_location": account.vertex_location,
        "storage_uri": account.storage_uri,
        "cool_down_until_0": "",
        "cool_down_until_1": "",
        "problem": account.problem,
        "new_bearer_token": "",
        "new_session_cookie": "",
        "grants-TOTAL_FORMS": "0",
        "grants-INITIAL_FORMS": "0",
        **fields,
    }


def test_an_admin_checks_a_refused_account_again_and_the_take_goes_on_by_itself(
    refused, admin_client, root, flow_emulator, django_capture_on_commit_callbacks
):
    account = refused.account
    problem = FlowAccount.objects.get(pk=account.pk).problem
    page = account_page(admin_client, account)
    assert "Vertex AI refused this account: Account Studio: " in page
    assert "press “Check again now”" in page and 'name="_check_again"' in page
    run_pass(now=timezone.now() + timedelta(hours=1))
    assert flow_emulator.stats["vertex_predict"] == 1, "not tried again by itself"

    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(
            reverse("admin:generations_flowaccount_changelist"),
            {"action": "check_again_now", "_selected_action": [account.pk]},
            follow=True,
        )

    assert "Checking Studio again now" in answer.text
    account = FlowAccount.objects.get(pk=account.pk)
    assert (account.problem, account.credential_refusals, account.cool_down_until) == ("", 0, None)
    refused.refresh_from_db()
    assert (refused.status, refused.reason) == (S.QUEUED, "")
    event = AuditEvent.objects.get(action=AuditEvent.Action.ACCOUNT_CHECKED)
    assert (event.actor, event.details) == (root, {"account": "Studio", "was": problem})
    assert "Working: Vertex AI has refused nothing" in account_page(admin_client, account)
    [take] = settle([refused], timeout=180)
    assert take.status == S.READY
    assert flow_emulator.stats["vertex_predict"] == 2


def test_the_account_pages_own_button_checks_it_again(
    refused, admin_client, django_capture_on_commit_callbacks
):
    account = FlowAccount.objects.get(pk=refused.account_id)

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:generations_flowaccount_change", args=[account.pk]),
            change_form(account, _check_again="Check again now"),
        )

    assert FlowAccount.objects.get(pk=account.pk).problem == ""
    refused.refresh_from_db()
    assert refused.reason == "" and refused.next_check_at is not None
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCOUNT_CHECKED).count() == 1


def test_moving_a_refused_account_to_another_region_tries_it_again(
    refused, admin_client, django_capture_on_commit_callbacks
):
    account = FlowAccount.objects.get(pk=refused.account_id)

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:generations_flowaccount_change", args=[account.pk]),
            change_form(account, vertex_location="europe-west4"),
        )

    account = FlowAccount.objects.get(pk=account.pk)
    assert (account.vertex_location, account.problem) == ("europe-west4", "")
    refused.refresh_from_db()
    assert refused.reason == ""


def test_saving_other_fields_of_a_refused_account_leaves_it_stopped(refused, admin_client):
    account = FlowAccount.objects.get(pk=refused.account_id)

    admin_client.post(
        reverse("admin:generations_flowaccount_change", args=[account.pk]),
        change_form(account, label="Cloud studio"),
    )

    assert FlowAccount.objects.get(pk=account.pk).problem == account.problem
    refused.refresh_from_db()
    assert "API is not enabled" in refused.reason


def test_the_page_says_when_flowsite_re_checks_refused_flow_credentials(admin_client, account):
    FlowAccount.objects.filter(pk=account.pk).update(
        credential_refusals=2, cool_down_until=timezone.now() + timedelta(minutes=4)
    )

    page = account_page(admin_client, account)

    assert "Flow refused this account&#x27;s credentials 2 times in a row" in page
    assert "re-checks them by itself at " in page
    assert 'name="_check_again"' in page


def test_checking_a_working_account_again_changes_nothing(admin_client, account):
    answer = admin_client.post(
        reverse("admin:generations_flowaccount_changelist"),
        {"action": "check_again_now", "_selected_action": [account.pk]},
        follow=True,
    )

    assert "Nothing to check again" in answer.text
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.ACCOUNT_CHECKED).exists()
    assert 'name="_check_again"' not in account_page(admin_client, account)


def test_staff_cannot_make_studio_a_vertex_ai_account_while_poseidon_spends_it(
    admin_client, project, account
):
    Project.objects.create(name="Triton", created_by=project.created_by).set_accounts(
        [FlowAccount.objects.create(label="Spare", bearer_token="ya29.spare"), account]
    )

    answer = admin_client.post(
        reverse("admin:generations_flowaccount_change", args=[account.pk]),
        change_form(account, kind=FlowAccount.Kind.VERTEX, vertex_project="studio-4821")
        | {"new_bearer_token": "ya29.cloud"},
    )

    assert answer.status_code == 200
    assert (
        "Poseidon and Triton spend Studio, and their scenes, prices and budgets are made for "
        "Google Flow. Add a new Vertex AI account and move the projects to it instead."
    ) in answer.text
    assert FlowAccount.objects.get(pk=account.pk).kind == FlowAccount.Kind.FLOW


def test_staff_may_make_an_account_no_project_spends_a_vertex_ai_one(admin_client, alice):
    spare = FlowAccount.objects.create(label="Spare", bearer_token="ya29.spare")

    answer = admin_client.post(
        reverse("admin:generations_flowaccount_change", args=[spare.pk]),
        change_form(spare, kind=FlowAccount.Kind.VERTEX, vertex_project="studio-4821")
        | {"new_bearer_token": "ya29.cloud"},
    )

    assert answer.status_code == 302, re.findall(r"errorlist.{0,300}", answer.text, re.S)
    assert FlowAccount.objects.get(pk=spare.pk).kind == FlowAccount.Kind.VERTEX
