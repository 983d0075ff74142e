"""The people and project lists cost the same queries however long they get (issue 5)."""

from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from generations.models import FlowAccount, Membership, Project
from tests.conftest import make_image, make_scene
from tests.views_support import client_for


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries.captured_queries)


def _projects_for(user, count: int) -> list[Project]:
    account = FlowAccount.objects.create(label=f"Studio of {user}")
    projects = []
    for n in range(count):
        project = Project.objects.create(name=f"Film {n}", account=account, created_by=user)
        project.add_member(user, Membership.Role.EDITOR)
        make_scene(project, make_image(project, user))
        projects.append(project)
    return projects


def test_alices_project_list_costs_the_same_queries_for_2_projects_as_for_15(alice, bob):
    _projects_for(alice, 2)
    _projects_for(bob, 15)

    few = _queries(client_for(alice), reverse("project-list"))
    many = _queries(client_for(bob), reverse("project-list"))

    assert few == many


def test_the_members_page_costs_the_owner_the_same_queries_for_2_members_as_for_15(alice):
    small, large = _projects_for(alice, 2)
    for project, count in ((small, 1), (large, 14)):
        Membership.objects.bulk_create(
            Membership(
                project=project,
                user=User.objects.create_user(f"{project.pk}-member-{n}"),
                role=Membership.Role.VIEWER,
            )
            for n in range(count)
        )
    for project in (small, large):
        project.memberships.filter(user=alice).update(role=Membership.Role.OWNER)
    client = client_for(alice)

    few = _queries(client, reverse("project-members", args=[small.uuid]))
    many = _queries(client, reverse("project-members", args=[large.uuid]))

    assert few == many
    assert large.memberships.count() == 15
