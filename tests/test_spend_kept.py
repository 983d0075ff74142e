"""What a deleted take or upscale spent stays counted: deleting a clip does not give back its
credits, so the budget, the allowances, the Spend page, its CSV and the project list go on
counting it, on every path that deletes takes while their project lives."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from generations import take_actions
from generations.engines.catalogue import TIER_TWO
from generations.models import (
    FlowAccount,
    Generation,
    KeptSpend,
    Membership,
    Project,
    Scene,
    Upscale,
)
from tests.conftest import make_image, make_scene
from tests.views_support import attach_clip, client_for, htmx_client_for, make_take, seen_settings

S = Generation.Status


@pytest.fixture
def tier_two(account) -> FlowAccount:
    # Veo 3.1 Fast: 10 credits a clip on tier two, Quality 100; a 4K upscale 50.
    FlowAccount.objects.filter(pk=account.pk).update(tier=TIER_TWO)
    account.refresh_from_db()
    return account


@pytest.fixture
def harbour(project, alice, tier_two) -> Scene:
    return make_scene(project, make_image(project, alice), title="Harbour", takes=2)


def spent(scene, user, credits, status=S.READY, **fields) -> Generation:
    return make_take(scene, user, status=status, cost=credits, cost_unit="credits", **fields)


def upscaled(take, user, credits, status=S.READY, **fields) -> Upscale:
    return Upscale.objects.create(
        project_id=take.project_id,
        take=take,
        requested_by=user,
        resolution=fields.pop("resolution", "4k"),
        status=status,
        cost=credits,
        cost_unit="credits",
        created=take.created,
        **fields,
    )


def generate(user, scene):
    # As the card does: the last number the scene gave, deleted takes included.
    last = Scene.objects.values_list("last_take", flat=True).get(pk=scene.pk)
    return htmx_client_for(user).post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": str(last), "seen_settings": seen_settings(scene)},
    )


def delete_take(user, take):
    return htmx_client_for(user).post(reverse("take-delete", args=[take.uuid]))


def spend_page(user, project) -> str:
    return client_for(user).get(reverse("project-spend", args=[project.uuid])).text


def spend_csv(user, project) -> list[list[str]]:
    response = client_for(user).get(reverse("project-spend-csv", args=[project.uuid]))
    return list(csv.reader(io.StringIO(response.content.decode())))


def poseidon_spent_140(project, harbour, alice, bob) -> list[Generation]:
    """The probe's month: bob's two Fast takes (20 credits), alice's Quality and two Fast
    (120); bob's takes are returned."""
    bobs = [spent(harbour, bob, 10), spent(harbour, bob, 10)]
    spent(harbour, alice, 100, model_key="veo_3_1_i2v_s")
    spent(harbour, alice, 10)
    spent(harbour, alice, 10)
    return bobs


# --- the probe's steps ----------------------------------------------------------------------


def test_bob_deleting_his_two_takes_does_not_let_him_generate_past_poseidons_budget(
    project, harbour, alice, bob, queued
):
    Project.objects.filter(pk=project.pk).update(monthly_budget=150)
    Membership.objects.filter(project=project, user=bob).update(monthly_allowance=30)
    bobs = poseidon_spent_140(project, harbour, alice, bob)
    refused = "This would spend 20 credits, but Poseidon has 10 credits left of its monthly"
    assert refused in generate(bob, harbour).text

    for take in bobs:
        assert f"Deleted take {take.take}." in delete_take(bob, take).text
    answer = generate(bob, harbour)

    assert refused in answer.text
    assert "Queued" not in answer.text
    assert Generation.objects.count() == 3 and queued == []


def test_bobs_allowance_still_counts_the_takes_he_deleted(project, harbour, alice, bob, queued):
    Membership.objects.filter(project=project, user=bob).update(monthly_allowance=30)
    for take in poseidon_spent_140(project, harbour, alice, bob):
        delete_take(bob, take)

    answer = generate(bob, harbour)

    assert (
        "This would spend 20 credits, but you have 10 credits left of your monthly allowance "
        "of 30 credits in Poseidon." in answer.text
    )
    assert queued == []


def test_the_spend_page_its_csv_and_the_project_list_still_say_140_after_bob_deletes(
    project, harbour, alice, bob
):
    Project.objects.filter(pk=project.pk).update(monthly_budget=150)
    for take in poseidon_spent_140(project, harbour, alice, bob):
        delete_take(bob, take)

    page = spend_page(alice, project)
    rows = spend_csv(bob, project)
    listed = client_for(bob).get(reverse("project-list")).text

    assert "140 credits spent this month, of a monthly budget of 150 credits." in page
    assert "<td>bob</td>\n        <td>2</td>\n        <td>0</td>\n        <td>20</td>" in page
    assert "These include 2 takes deleted since: deleting a clip does not give back" in page
    today = timezone.localdate().isoformat()
    assert rows[1:] == [[today, "alice", "3", "120", "0"], [today, "bob", "2", "20", "0"]]
    assert "140 credits this month of 150 credits" in listed


def test_after_bob_deletes_his_takes_and_alice_generates_more_the_spend_page_says_160(
    project, harbour, alice, bob, queued
):
    for take in poseidon_spent_140(project, harbour, alice, bob):
        delete_take(bob, take)

    assert "Queued 2 takes." in generate(alice, harbour).text

    assert "160 credits spent this month" in spend_page(alice, project)
    today = timezone.localdate().isoformat()
    assert spend_csv(alice, project)[1:] == [
        [today, "alice", "5", "140", "0"],
        [today, "bob", "2", "20", "0"],
    ]


# --- upscales ---------------------------------------------------------------------------------


def test_an_upscales_cost_stays_counted_after_its_take_is_deleted(project, harbour, alice, bob):
    take = spent(harbour, alice, 10)
    upscaled(take, bob, 50)
    upscaled(take, bob, 50, status=S.FAILED, resolution="1080p")  # failed: it cost nothing

    delete_take(alice, take)

    page = spend_page(alice, project)
    assert "60 credits spent this month" in page
    assert "<td>bob</td>\n        <td>0</td>\n        <td>1</td>\n        <td>50</td>" in page
    assert "These include 1 take and 1 upscale deleted since" in page
    kept = KeptSpend.objects.order_by("pk")
    assert list(kept.values_list("kind", "clip", "requested_by_name", "cost")) == [
        ("take", "Harbour · take 1", "alice", 10),
        ("upscale", "Harbour · take 1 at 4K", "bob", 50),
    ]


def test_asking_again_for_an_upscale_flow_cancelled_keeps_what_the_first_one_spent(
    project, harbour, alice, bob
):
    take = attach_clip(spent(harbour, alice, 10, media_generation_id="m-1"), b"\0")
    Generation.objects.filter(pk=take.pk).update(account=project.account)
    take.refresh_from_db()
    upscaled(take, bob, 50, status=S.CANCELLED, submitted_at=timezone.now())

    take_actions.request_upscale(take, bob, "4k")

    assert Upscale.objects.get().status == S.QUEUED
    assert "110 credits spent this month" in spend_page(alice, project)


# --- deleting a scene, clearing failed takes ------------------------------------------------


def paid_and_free_takes(scene, user) -> None:
    spent(scene, user, 10)
    # Cancelled after Flow had it: Flow may still render, and charge, it.
    spent(scene, user, 10, status=S.CANCELLED, submitted_at=timezone.now())
    spent(scene, user, 10, status=S.CANCELLED)  # cancelled before it was sent
    spent(scene, user, 10, status=S.FAILED)


def test_deleting_a_scene_keeps_what_its_paid_takes_spent_and_nothing_of_the_others(
    project, harbour, alice, bob
):
    paid_and_free_takes(harbour, bob)

    response = client_for(bob).post(reverse("scene-delete", args=[harbour.uuid]), follow=True)

    assert "Deleted Harbour and its 4 takes." in response.text
    assert not Generation.objects.exists()
    assert KeptSpend.objects.count() == 2
    assert "20 credits spent this month" in spend_page(alice, project)


def test_clearing_failed_takes_keeps_the_cancelled_one_flow_had_and_not_the_others(
    project, harbour, alice, bob
):
    paid_and_free_takes(harbour, bob)

    answer = htmx_client_for(bob).post(reverse("scene-clear-failed", args=[harbour.uuid]))

    assert "Cleared 3 failed or cancelled takes." in answer.text
    assert list(Generation.objects.values_list("status", flat=True)) == [S.READY]
    assert list(KeptSpend.objects.values_list("kind", "cost")) == [("take", 10)]
    page = spend_page(alice, project)
    assert "20 credits spent this month" in page
    assert "<td>bob</td>\n        <td>2</td>" in page


def test_a_take_made_last_month_and_deleted_now_counts_in_last_month_not_this_one(
    project, harbour, alice
):
    old = spent(harbour, alice, 100)
    made = timezone.now() - timedelta(days=40)
    Generation.objects.filter(pk=old.pk).update(created=made)
    spent(harbour, alice, 10)

    delete_take(alice, old)

    assert KeptSpend.objects.get().created == made
    assert "10 credits spent this month" in spend_page(alice, project)


def test_bobs_deleted_takes_still_show_under_his_name_after_his_login_is_deleted(
    project, harbour, alice, bob
):
    delete_take(bob, spent(harbour, bob, 10))
    User.objects.filter(pk=bob.pk).delete()

    page = spend_page(alice, project)

    assert "<td>bob</td>\n        <td>1</td>\n        <td>0</td>\n        <td>10</td>" in page
    assert KeptSpend.objects.get().requested_by is None


def test_deleting_poseidon_takes_what_its_deleted_takes_spent_with_it(project, harbour, alice):
    delete_take(alice, spent(harbour, alice, 10))

    client_for(alice).post(
        reverse("project-delete", args=[project.uuid]), {"confirm": project.name}
    )

    assert not Project.objects.exists()
    assert not KeptSpend.objects.exists()


# --- the admin ------------------------------------------------------------------------------


@pytest.fixture
def staff(db):
    client = client_for(User.objects.create_superuser("root", "root@example.org", "x"))
    return client


def test_staff_deleting_takes_in_the_admin_keep_what_they_spent_and_their_files_go(
    project, harbour, alice, bob, staff, django_capture_on_commit_callbacks
):
    one = attach_clip(spent(harbour, bob, 10), b"clip", b"poster")
    two = spent(harbour, bob, 10)
    never_sent = spent(harbour, bob, 10, status=S.QUEUED)
    storage = one.video.storage

    with django_capture_on_commit_callbacks(execute=True):
        staff.post(reverse("admin:generations_generation_delete", args=[one.pk]), {"post": "yes"})
    staff.post(
        reverse("admin:generations_generation_changelist"),
        {"action": "delete_selected", "_selected_action": [two.pk, never_sent.pk], "post": "yes"},
    )

    assert not Generation.objects.exists()
    assert not storage.exists(one.video.name)
    assert KeptSpend.objects.count() == 2  # the queued take was never sent: it cost nothing
    assert "20 credits spent this month" in spend_page(alice, project)


def test_staff_deleting_scenes_in_the_admin_keep_what_their_takes_spent(
    project, harbour, alice, bob, staff
):
    other = make_scene(project, harbour.start_image, title="Lighthouse")
    third = make_scene(project, harbour.start_image, title="Quay")
    spent(harbour, bob, 10)
    upscaled(spent(other, bob, 10), alice, 50)
    spent(third, alice, 100)

    staff.post(reverse("admin:generations_scene_delete", args=[harbour.pk]), {"post": "yes"})
    staff.post(
        reverse("admin:generations_scene_changelist"),
        {"action": "delete_selected", "_selected_action": [other.pk], "post": "yes"},
    )
    # A scene deleted from the project's page, in its inline.
    form = staff.get(reverse("admin:generations_project_change", args=[project.pk]))
    data = _form_data(form)
    data["scenes-0-DELETE"] = "on"

    response = staff.post(reverse("admin:generations_project_change", args=[project.pk]), data)

    assert response.status_code == 302, response.context["errors"]
    assert not Scene.objects.exists() and not Generation.objects.exists()
    assert KeptSpend.objects.count() == 4
    assert "170 credits spent this month" in spend_page(alice, project)


def test_staff_delete_poseidon_in_the_admin_with_what_its_deleted_takes_spent(
    project, harbour, alice, staff
):
    delete_take(alice, spent(harbour, alice, 10))
    url = reverse("admin:generations_project_delete", args=[project.pk])

    confirm = staff.get(url)
    response = staff.post(url, {"post": "yes"})

    assert "Spend of a deleted clip: <a" in confirm.text  # listed among what goes with it
    assert "permission" not in confirm.text
    assert response.status_code == 302
    assert not Project.objects.exists() and not KeptSpend.objects.exists()


def test_staff_read_what_deleted_takes_spent_in_the_admin_and_cannot_change_it(
    project, harbour, alice, staff
):
    delete_take(alice, spent(harbour, alice, 10))
    kept = KeptSpend.objects.get()

    listed = staff.get(reverse("admin:generations_keptspend_changelist"))
    deleted = staff.post(
        reverse("admin:generations_keptspend_delete", args=[kept.pk]), {"post": "yes"}
    )

    assert "Harbour · take 1" in listed.text
    assert deleted.status_code == 403
    assert KeptSpend.objects.exists()


def _form_data(response) -> dict:
    """What the admin's change form would send back as it is."""
    data = {}
    for form in [response.context["adminform"].form, *response.context["inline_admin_formsets"]]:
        forms = getattr(form, "formset", None)
        if forms is None:
            for name, field in form.fields.items():
                value = form.initial.get(name, field.initial)
                if value is not None:
                    data[form.add_prefix(name)] = getattr(value, "pk", value)
            continue
        for name, value in forms.management_form.initial.items():
            data[forms.management_form.add_prefix(name)] = value
        for inline in forms.forms:
            for name, field in inline.fields.items():
                value = inline.initial.get(name, field.initial)
                if value is not None and value is not False:
                    data[inline.add_prefix(name)] = getattr(value, "pk", value)
    return data


# --- queries ----------------------------------------------------------------------------------


def test_clearing_failed_takes_costs_the_same_queries_for_1_paid_take_as_for_8(
    project, harbour, alice, bob
):
    def clear(scene) -> int:
        with CaptureQueriesContext(connection) as queries:
            htmx_client_for(bob).post(reverse("scene-clear-failed", args=[scene.uuid]))
        return len(queries)

    other = make_scene(project, harbour.start_image, title="Lighthouse")
    upscaled(spent(harbour, bob, 10, status=S.CANCELLED, submitted_at=timezone.now()), bob, 50)
    for _ in range(8):
        take = spent(other, bob, 10, status=S.CANCELLED, submitted_at=timezone.now())
        upscaled(take, bob, 50)

    assert clear(harbour) == clear(other)
    assert KeptSpend.objects.count() == 18


def test_the_spend_page_and_the_list_cost_the_same_queries_with_deleted_takes_as_without(
    project, harbour, alice, bob
):
    def queries(url) -> int:
        with CaptureQueriesContext(connection) as captured:
            client_for(alice).get(url)
        return len(captured)

    pages = [reverse("project-spend", args=[project.uuid]), reverse("project-list")]
    spent(harbour, alice, 10)
    before = [queries(url) for url in pages]
    for user in (alice, bob):
        take = spent(harbour, user, 10)
        upscaled(take, user, 50)
        delete_take(user, take)

    assert [queries(url) for url in pages] == before
    assert "130 credits spent this month" in spend_page(alice, project)


def test_generate_costs_the_same_queries_with_deleted_takes_as_without(
    project, harbour, alice, bob, queued
):
    Project.objects.filter(pk=project.pk).update(monthly_budget=1000)
    Membership.objects.filter(project=project, user=bob).update(monthly_allowance=500)

    def generate_queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert "Queued 2 takes." in generate(bob, harbour).text
        return len(captured)

    first = generate_queries()
    Generation.objects.update(status=S.READY, submitted_at=timezone.now())
    for take in list(Generation.objects.all()):
        delete_take(bob, take)

    assert generate_queries() == first
    assert KeptSpend.objects.count() == 2
