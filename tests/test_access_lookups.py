"""Each object's access lookup is one query, whoever asks and whatever they may do: the object
comes back with the requester's role, a non-member gets 404 and a member whose role is too low
gets 403."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generations.models import Generation, Membership, Scene
from generations.views import access
from tests.conftest import make_image, make_scene
from tests.views_support import make_take

Role = Membership.Role


@pytest.fixture
def things(project, alice):
    image = make_image(project, alice)
    scene = make_scene(project, image, title="Opening shot")
    take = make_take(scene, alice, status=Generation.Status.READY)
    return {"project": project, "scene": scene, "take": take, "image": image}


def request_by(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


def lookups(things):
    """(name, call) for every helper: call(request, role) looks its object up."""
    return {
        "project": lambda r, role: access.get_project_for_user(r, things["project"].uuid, role),
        "project without account": lambda r, role: access.get_project_for_user(
            r, things["project"].uuid, role, with_account=False
        ),
        "scene": lambda r, role: access.get_scene_for_user(r, things["scene"].uuid, role),
        "take": lambda r, role: access.get_generation_for_user(r, things["take"].uuid, role),
        "image": lambda r, role: access.get_image_for_user(r, things["image"].uuid, role),
    }


def one_query(call):
    with CaptureQueriesContext(connection) as captured:
        try:
            result = call()
        except (Http404, PermissionDenied) as refusal:
            result = refusal
    assert len(captured) == 1, [q["sql"] for q in captured]
    return result


NAMES = ["project", "project without account", "scene", "take", "image"]


@pytest.mark.parametrize("name", NAMES)
def test_bob_gets_the_object_with_his_editor_role_in_one_query(things, bob, name):
    found, membership = one_query(lambda: lookups(things)[name](request_by(bob), Role.EDITOR))

    assert membership.role == Role.EDITOR
    assert membership.project.pk == things["project"].pk
    assert found.uuid == things["scene" if name == "scene" else name.split()[0]].uuid


@pytest.mark.parametrize("name", NAMES)
def test_charlie_who_is_no_member_gets_404_in_one_query(things, charlie, name):
    refusal = one_query(lambda: lookups(things)[name](request_by(charlie), None))

    assert isinstance(refusal, Http404)


@pytest.mark.parametrize("name", NAMES)
def test_carol_the_viewer_reads_but_gets_403_for_an_editors_action(things, carol, name):
    _, membership = one_query(lambda: lookups(things)[name](request_by(carol), None))
    refusal = one_query(lambda: lookups(things)[name](request_by(carol), Role.EDITOR))

    assert membership.role == Role.VIEWER
    assert isinstance(refusal, PermissionDenied)


def test_a_project_lookup_leaves_the_flow_account_unloaded_when_asked_to(things, bob):
    project, _ = access.get_project_for_user(
        request_by(bob), things["project"].uuid, with_account=False
    )

    assert not project._state.fields_cache.get("account")


def test_a_take_for_the_media_views_comes_with_its_download_names_in_one_query(things, carol):
    take = one_query(lambda: access.get_take_media_for_user(request_by(carol), things["take"].uuid))

    assert (take.scene_name, take.project_name) == ("Opening shot", "Poseidon")
    assert take.video == things["take"].video


def test_charlie_gets_404_for_a_take_in_media_but_a_superuser_reads_it(
    things, charlie, django_user_model
):
    admin = django_user_model.objects.create_superuser("root", "root@example.org", "x")

    refusal = one_query(
        lambda: access.get_take_media_for_user(request_by(charlie), things["take"].uuid)
    )
    take = one_query(lambda: access.get_take_media_for_user(request_by(admin), things["take"].uuid))

    assert isinstance(refusal, Http404)
    assert take.pk == things["take"].pk


# The page's token: none, before everything was made, or after it.
@pytest.mark.parametrize("token_minutes_from_now", [None, -60, 1])
def test_the_poll_state_is_one_query_for_a_member_and_404_for_charlie(
    things, alice, charlie, token_minutes_from_now
):
    since = (
        None
        if token_minutes_from_now is None
        else timezone.now() + timedelta(minutes=token_minutes_from_now)
    )
    uuid = things["project"].uuid

    state = one_query(lambda: access.get_poll_state_for_user(request_by(alice), uuid, since))
    refusal = one_query(lambda: access.get_poll_state_for_user(request_by(charlie), uuid, since))

    assert state.role == Role.OWNER
    assert state.changed is (token_minutes_from_now != 1)
    assert state.in_flight is False
    assert isinstance(refusal, Http404)


def test_the_poll_state_sees_a_take_in_flight_and_a_reordered_storyboard(things, alice):
    uuid = things["project"].uuid
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Generation.objects.filter(project=things["project"]).update(updated=an_hour_ago)
    Scene.objects.filter(project=things["project"]).update(updated=an_hour_ago)
    since = timezone.now() - timedelta(minutes=5)
    quiet = access.get_poll_state_for_user(request_by(alice), uuid, since)

    make_take(things["scene"], alice, status=Generation.Status.ACTIVE, updated=an_hour_ago)
    rendering = access.get_poll_state_for_user(request_by(alice), uuid, since)
    things["project"].mark_scenes_changed()
    moved = access.get_poll_state_for_user(request_by(alice), uuid, since)

    assert (quiet.changed, quiet.in_flight) == (False, False)
    assert (rendering.changed, rendering.in_flight) == (False, True)
    assert (moved.changed, moved.in_flight) == (True, True)
