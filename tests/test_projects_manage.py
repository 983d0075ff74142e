"""Owners rename, archive, restore, duplicate and delete their projects; the list shows each
project's newest poster and its members at a constant cost."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from generations.models import (
    CannotGenerate,
    FilmRender,
    FlowAccount,
    Generation,
    ImageAsset,
    Membership,
    Project,
    Scene,
)
from tests.conftest import make_image, make_scene
from tests.views_support import attach_clip, client_for, make_take, storyboard_seen


def settings_url(project) -> str:
    return reverse("project-settings", args=[project.uuid])


# --- rename -----------------------------------------------------------------------------------


def test_alice_renames_her_project(project, alice):
    response = client_for(alice).post(settings_url(project), {"name": "  Neptune  "}, follow=True)

    assert "Renamed Poseidon to Neptune." in response.text
    project.refresh_from_db()
    assert project.name == "Neptune"


@pytest.mark.parametrize("name", ["   ", "\u200b", "\u200c\u200d"])
def test_a_blank_name_is_refused_in_words(project, alice, name):
    response = client_for(alice).post(settings_url(project), {"name": name})

    assert "Give the project a name." in response.text
    project.refresh_from_db()
    assert project.name == "Poseidon"


@pytest.mark.parametrize("name", ["project-settings", "project-archive", "project-duplicate"])
def test_bob_the_editor_cannot_manage_the_project(project, bob, name):
    refused = client_for(bob).post(reverse(name, args=[project.uuid]), {"name": "X"})

    assert refused.status_code == 403
    assert "Your role on this project does not let you do that." in refused.text
    assert "A project owner can change your role on the project&#x27;s Members page." in (
        refused.text
    )


def test_bob_the_editor_cannot_delete_it_even_typing_its_name(project, bob):
    response = client_for(bob).post(
        reverse("project-delete", args=[project.uuid]), {"confirm": "Poseidon"}
    )

    assert response.status_code == 403
    assert Project.objects.filter(pk=project.pk).exists()


# --- archive ----------------------------------------------------------------------------------


def archive(client, project, archived: bool = True):
    return client.post(
        reverse("project-archive", args=[project.uuid]),
        {"archive": "1" if archived else "0"},
        follow=True,
    )


def test_an_archived_project_leaves_the_list_until_alice_asks_for_archived_ones(project, alice):
    Project.objects.create(name="Triton", created_by=alice).add_member(alice, "owner")
    archive(client_for(alice), project)

    listed = client_for(alice).get(reverse("project-list")).text
    assert "Triton" in listed and "Poseidon" not in listed
    assert "Show archived (1)" in listed
    with_archived = client_for(alice).get(reverse("project-list") + "?archived=1").text
    assert "Poseidon" in with_archived and "archived</span>" in with_archived


def test_an_archived_project_is_read_only_for_everyone(project, alice, bob, queued):
    image = make_image(project, alice)
    scene = make_scene(project, image)
    archive(client_for(alice), project)

    page = client_for(bob).get(reverse("project-detail", args=[project.uuid])).text
    assert "Archived: read-only." in page
    assert "Generate all" not in page and "Add scene" not in page
    assert reverse("scene-generate", args=[scene.uuid]) not in page
    bob_client = client_for(bob)
    assert bob_client.post(reverse("scene-generate", args=[scene.uuid])).status_code == 403
    refused = bob_client.get(reverse("scene-edit", args=[scene.uuid]))
    assert refused.status_code == 403
    # The page says why: the archive, not bob's role.
    assert "Poseidon is archived, so it is read-only" in refused.text
    assert "Your role" not in refused.text
    assert bob_client.get(reverse("scene-create", args=[project.uuid])).status_code == 403
    generate_all = reverse("project-generate-all", args=[project.uuid])
    assert (
        bob_client.post(
            generate_all, {"last_generation": "0", "seen_settings": storyboard_seen(project)}
        ).status_code
        == 403
    )
    # Commands and the admin generate through the model, which refuses too.
    project.refresh_from_db()
    scene.refresh_from_db()
    with pytest.raises(CannotGenerate, match="archived"):
        scene.generate(bob)
    assert not Generation.objects.exists() and queued == []


def test_alice_restores_an_archived_project_and_it_can_be_generated_again(project, alice, bob):
    scene = make_scene(project, make_image(project, alice))
    archive(client_for(alice), project)

    response = archive(client_for(alice), project, archived=False)

    assert "Restored Poseidon" in response.text
    project.refresh_from_db()
    assert project.archived_at is None
    assert client_for(bob).get(reverse("scene-edit", args=[scene.uuid])).status_code == 200


def test_archiving_twice_says_it_already_was(project, alice):
    archive(client_for(alice), project)

    assert "Poseidon was already archived." in archive(client_for(alice), project).text


# --- delete -----------------------------------------------------------------------------------


def full_project(project, alice) -> list[Path]:
    """Two scenes with start images and three takes with clips; the files they stored."""
    files = []
    for n in range(2):
        scene = make_scene(project, make_image(project, alice, color=(n, 90, 200)))
        files.append(Path(scene.start_image.file.path))
    for _ in range(3):
        take = attach_clip(
            make_take(scene, alice, status=Generation.Status.READY), b"\x00" * 64, b"\xff" * 8
        )
        files += [Path(take.video.path), Path(take.poster.path)]
    return files


def test_the_settings_page_says_how_many_takes_go_with_the_project(project, alice):
    full_project(project, alice)

    page = client_for(alice).get(settings_url(project)).text

    assert "removes its 2 scenes and 3 takes" in page


def test_a_wrong_name_deletes_nothing_and_says_what_to_type(project, alice):
    full_project(project, alice)

    response = client_for(alice).post(
        reverse("project-delete", args=[project.uuid]), {"confirm": "poseidon"}
    )

    assert response.status_code == 400
    assert "Type the project&#x27;s name, Poseidon, exactly as shown" in response.text
    assert Project.objects.filter(pk=project.pk).exists()


def test_alice_deletes_a_project_with_start_images_and_its_files_go_too(
    project, alice, django_capture_on_commit_callbacks
):
    files = full_project(project, alice)
    film = FilmRender.objects.create(project=project, requested_by=alice)
    film.video.save("film.mp4", ContentFile(b"\x00" * 32))
    files.append(Path(film.video.path))
    media = Path(settings.MEDIA_ROOT)
    # An upscale a worker saved and died before recording: no row names it.
    stray = (
        media / Generation.objects.filter(project=project).first().media_dir() / "clip-1080p.mp4"
    )
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"a clip nobody recorded")
    files.append(stray)
    assert all(path.exists() for path in files)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(alice).post(
            reverse("project-delete", args=[project.uuid]), {"confirm": "Poseidon"}, follow=True
        )

    assert "Deleted Poseidon with its 2 scenes and 3 takes." in response.text
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Scene.objects.exists() and not Generation.objects.exists()
    assert not ImageAsset.objects.exists()
    assert not any(path.exists() for path in files)
    # Nor the folders its takes and films were kept in.
    assert not (media / "clips" / str(project.uuid)).exists()
    assert not (media / "films" / str(project.uuid)).exists()


# --- duplicate --------------------------------------------------------------------------------


def test_alice_duplicates_a_project_with_its_scenes_and_images_but_no_takes(project, alice):
    files = full_project(project, alice)
    make_scene(project, None, title="No picture yet", position=5)

    response = client_for(alice).post(
        reverse("project-duplicate", args=[project.uuid]), follow=True
    )

    copy = Project.objects.exclude(pk=project.pk).get()
    assert copy.name == "Poseidon (copy)" and copy.account_id == project.account_id
    assert "Made Poseidon (copy)" in response.text
    original = list(project.scenes.order_by("position").values_list("position", "prompt", "title"))
    assert list(copy.scenes.order_by("position").values_list("position", "prompt", "title")) == (
        original
    )
    assert not copy.generations.exists()
    copied_images = list(copy.images.all())
    assert len(copied_images) == 2
    for image in copied_images:
        assert Path(image.file.path) not in files
        assert image.file.read() == project.images.get(sha256=image.sha256).file.read()
    assert set(
        copy.scenes.exclude(start_image=None).values_list("start_image__project", flat=True)
    ) == {copy.pk}
    assert dict(copy.memberships.values_list("user__username", "role")) == {
        "alice": "owner",
        "bob": "editor",
        "carol": "viewer",
    }
    # The original is as it was.
    assert project.generations.count() == 3 and project.images.count() == 2


def test_a_duplicate_keeps_the_budget_and_allowances_so_bob_is_refused_there_too(
    project, alice, bob, carol
):
    Project.objects.filter(pk=project.pk).update(monthly_budget=150)
    Membership.objects.filter(project=project, user=bob).update(monthly_allowance=0)
    Membership.objects.filter(project=project, user=alice).update(monthly_allowance=100)
    make_scene(project, make_image(project, alice))

    response = client_for(alice).post(
        reverse("project-duplicate", args=[project.uuid]), follow=True
    )

    assert (
        "Made Poseidon (copy): the same members and scenes with their start images, and no "
        "takes. It keeps the monthly budget of 150 credits and the allowances of 2 members, "
        "counted on its own from nothing this month; an owner changes them on its Spend page."
    ) in response.text
    copy = Project.objects.exclude(pk=project.pk).get()
    assert copy.monthly_budget == 150
    assert dict(copy.memberships.values_list("user__username", "monthly_allowance")) == {
        "alice": 100,
        "bob": 0,
        "carol": None,
    }
    with pytest.raises(CannotGenerate, match="you have 0 credits left of your monthly allowance"):
        copy.scenes.get().generate(bob)
    assert not copy.generations.exists()


def test_a_duplicate_without_limits_says_nothing_of_them(project, alice):
    response = client_for(alice).post(
        reverse("project-duplicate", args=[project.uuid]), follow=True
    )

    assert "start images, and no takes." in response.text
    assert "It keeps" not in response.text


# --- the list ---------------------------------------------------------------------------------


def test_the_list_shows_each_projects_newest_poster_and_its_members(project, alice):
    scene = make_scene(project, make_image(project, alice))
    attach_clip(make_take(scene, alice, status=Generation.Status.READY), b"\x00" * 8, b"\xff" * 8)
    newest = attach_clip(
        make_take(scene, alice, status=Generation.Status.READY), b"\x00" * 8, b"\xff" * 8
    )
    make_take(scene, alice, status=Generation.Status.FAILED)

    page = client_for(alice).get(reverse("project-list")).text

    assert reverse("media-take-poster", args=[newest.uuid]) in page
    assert "alice, bob, carol" in page


def _list_queries(user) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client_for(user).get(reverse("project-list"))
    assert response.status_code == 200
    return len(queries.captured_queries)


def _projects(user, count: int) -> None:
    account = FlowAccount.objects.create(label=f"Studio of {user}")
    for n in range(count):
        project = Project.objects.create(name=f"Film {n}", account=account, created_by=user)
        project.add_member(user, Membership.Role.OWNER)
        project.add_member(User.objects.create_user(f"{user}-{n}"), Membership.Role.EDITOR)
        scene = make_scene(project, make_image(project, user))
        attach_clip(make_take(scene, user, status=Generation.Status.READY), b"\0", b"\xff")


def test_the_list_costs_the_same_queries_for_1_project_as_for_20(alice, bob):
    _projects(alice, 1)
    _projects(bob, 20)

    assert _list_queries(alice) == _list_queries(bob)


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "--project", "Poseidon", "--user", "bob"],
        ["import", "missing.csv", "--project", "Poseidon", "--user", "bob"],
    ],
)
def test_the_storyboard_command_leaves_an_archived_project_alone(project, bob, args):
    project.set_archived(True)

    with pytest.raises(CommandError, match="Poseidon is archived, so it is read-only"):
        call_command("storyboard", *args)
    assert not project.scenes.exists() and not project.generations.exists()
