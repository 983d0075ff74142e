"""`manage.py flowsite_demo`: `make run` sets up a working demo on every start, idempotently."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from PIL import Image

from generations.engines.catalogue import TIER_TWO
from generations.models import FlowAccount, Membership, Project, Scene


@pytest.fixture(autouse=True)
def _demo_settings(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.DEBUG = True
    settings.FLOWSITE_EMULATOR = True
    settings.FLOW_EMULATOR_TOKEN = "ya29.emulator-token"


def run() -> str:
    out = io.StringIO()
    call_command("flowsite_demo", stdout=out)
    return out.getvalue()


def test_the_first_run_creates_the_login_account_and_project(db, settings):
    output = run()

    user = authenticate(username="demo", password="flowsite-demo")
    assert user is not None and user.is_staff
    account = FlowAccount.objects.get(label="Local emulator")
    assert account.tier == TIER_TWO
    assert account.bearer_token == "ya29.emulator-token"
    project = Project.objects.get(name="Demo")
    assert project.account == account
    assert project.memberships.get().user == user
    assert project.memberships.get().role == Membership.Role.OWNER
    scene = Scene.objects.get(project=project)
    assert scene.generation_problem() == ""
    # The demo login may spend the emulator account: Generate works out of the box.
    assert project.spending_problem() == ""
    vertex = FlowAccount.objects.get(label="Local emulator (Vertex AI)")
    assert list(FlowAccount.objects.granted_to(user)) == [account, vertex]
    assert scene.start_image.uploaded_by == user
    assert (scene.start_image.width, scene.start_image.height) == (1280, 720)
    with scene.start_image.file.open("rb") as handle:
        assert Image.open(handle).size == (1280, 720)
    assert "http://127.0.0.1:8000/" in output
    assert "demo / flowsite-demo" in output
    assert "Created project 'Demo'" in output


def test_a_second_run_changes_nothing_and_prints_the_login_again(db):
    run()
    password = User.objects.get(username="demo").password

    output = run()

    assert User.objects.count() == 1
    assert User.objects.get(username="demo").password == password
    assert FlowAccount.objects.count() == 2
    assert Project.objects.count() == 2 and Scene.objects.count() == 2
    assert "Sign in as demo / flowsite-demo" in output
    assert "Created" not in output


def test_the_emulator_account_follows_a_changed_emulator_token(db, settings):
    run()
    settings.FLOW_EMULATOR_TOKEN = "ya29.another"

    run()

    assert {account.bearer_token for account in FlowAccount.objects.all()} == {"ya29.another"}


def test_the_demo_offers_a_vertex_account_with_a_scene_it_can_generate(db):
    output = run()

    vertex = FlowAccount.objects.get(label="Local emulator (Vertex AI)")
    assert vertex.is_vertex and vertex.vertex_project == "flowsite-demo"
    assert vertex.vertex_location == "us-central1"
    project = Project.objects.get(name="Demo on Vertex AI")
    assert project.account == vertex and project.spending_problem() == ""
    scene = Scene.objects.get(project=project)
    assert scene.model_key == "veo-3.1-fast-generate-001"
    assert (scene.duration, scene.audio) == (6, True)
    assert scene.generation_problem() == ""
    assert "Vertex AI account 'Local emulator (Vertex AI)'" in output


def test_without_the_emulator_no_account_is_made(db, settings):
    settings.FLOWSITE_EMULATOR = False

    run()

    assert not FlowAccount.objects.exists()
    assert Project.objects.get(name="Demo").account is None


def test_with_the_emulator_off_after_a_run_with_it_the_demo_accounts_are_not_spent(db, settings):
    from django.utils import timezone

    run()
    settings.FLOWSITE_EMULATOR = False

    output = run()

    demo = User.objects.get(username="demo")
    assert list(FlowAccount.objects.granted_to(demo)) == []
    for name in ("Demo", "Demo on Vertex AI"):
        assert "may not spend" in Project.objects.get(name=name).spending_problem()
    # The worker calls no account with a problem: queued takes wait, saying it.
    assert not FlowAccount.objects.filter(FlowAccount.open_q(timezone.now())).exists()
    for account in FlowAccount.objects.all():
        assert "the local emulator is off" in account.problem
    assert "it is granted to demo" not in output
    assert "'Local emulator' spends the local emulator, which is off" in output
    assert "no longer granted to demo" in output


def test_the_demo_accounts_come_back_when_the_emulator_does(db, settings):
    run()
    settings.FLOWSITE_EMULATOR = False
    run()
    settings.FLOWSITE_EMULATOR = True

    output = run()

    demo = User.objects.get(username="demo")
    assert FlowAccount.objects.granted_to(demo).count() == 2
    assert set(FlowAccount.objects.values_list("problem", flat=True)) == {""}
    assert Project.objects.get(name="Demo").spending_problem() == ""
    assert "it is granted to demo" in output


def test_it_refuses_to_run_on_a_real_deployment(db, settings):
    settings.DEBUG = False
    settings.FLOWSITE_EMULATOR = False

    with pytest.raises(CommandError, match="published password"):
        run()

    assert not User.objects.exists()
