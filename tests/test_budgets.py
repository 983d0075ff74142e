"""What takes cost, the monthly budget and allowances that stop spending, and the spend page."""

from __future__ import annotations

import csv
import io
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from generations.budgets import CREDITS_PER_CLIP, month_start
from generations.engines.catalogue import FLOW_MODELS, TIER_ONE, TIER_TWO, flow_credits
from generations.models import (
    AuditEvent,
    FlowAccount,
    Generation,
    Membership,
    Project,
    Upscale,
)
from tests.conftest import make_image, make_scene
from tests.views_support import client_for, make_take, seen_settings, storyboard_seen


def generate(client: Client, scene, last_take: int = 0):
    return client.post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": str(last_take), "seen_settings": seen_settings(scene)},
        follow=True,
    )


def set_budget(project, limit: int | Decimal | None) -> None:
    Project.objects.filter(pk=project.pk).update(monthly_budget=limit)


def set_allowance(project, user, limit: int | Decimal | None) -> None:
    Membership.objects.filter(project=project, user=user).update(monthly_allowance=limit)


def spent(scene, user, credits: int, status=Generation.Status.READY, **fields):
    fields.setdefault("cost_unit", "credits")
    return make_take(scene, user, status=status, cost=credits, **fields)


def upscaled(take, user, credits: int, status=Upscale.Status.READY, **fields) -> Upscale:
    return Upscale.objects.create(
        project_id=take.project_id,
        take=take,
        requested_by=user,
        resolution=fields.pop("resolution", "1080p"),
        status=status,
        cost=credits,
        cost_unit=fields.pop("cost_unit", "credits"),
        **fields,
    )


@pytest.fixture
def scene(project, alice):
    # Veo 3.1 Fast: 20 credits a clip on tier one.
    return make_scene(project, make_image(project, alice), title="Harbour", takes=2)


def test_every_model_the_catalogue_offers_has_a_price():
    assert {model.key for model in FLOW_MODELS} == set(CREDITS_PER_CLIP)


def test_a_clip_costs_less_on_tier_two_where_flow_charges_less():
    assert flow_credits("veo_3_1_i2v_s_fast", TIER_ONE) == 20
    assert flow_credits("veo_3_1_i2v_s_fast", TIER_TWO) == 10
    assert flow_credits("veo_3_1_i2v_s", TIER_TWO) == 100


def test_each_take_records_its_cost_and_who_spent_it(scene, bob, queued):
    generate(client_for(bob), scene)

    assert list(Generation.objects.values_list("requested_by__username", "cost", "cost_unit")) == [
        ("bob", 20, "credits"),
        ("bob", 20, "credits"),
    ]


def test_the_card_says_what_generate_costs(scene, bob):
    page = client_for(bob).get(reverse("project-detail", args=[scene.project.uuid])).text

    assert "2 takes × 20 credits = 40 credits" in page


def test_generate_all_says_what_it_would_spend_at_most(project, scene, alice, bob, account):
    make_scene(project, make_image(project, alice), takes=1, model_key="veo_3_1_i2v_s")
    make_scene(project, None, takes=3)  # no start image: Generate all skips it

    page = client_for(bob).get(reverse("project-detail", args=[project.uuid])).text
    assert "up to 140 credits" in page
    account.tier = TIER_TWO
    account.save(update_fields=["tier"])
    page = client_for(bob).get(reverse("project-detail", args=[project.uuid])).text
    assert "up to 120 credits" in page


def test_the_poll_brings_generate_alls_new_cost(project, scene, alice, bob):
    from tests.views_support import htmx_client_for

    client = htmx_client_for(bob)
    poll = reverse("project-poll", args=[project.uuid])
    first = client.get(poll, {"live": "0"})
    assert "up to 40 credits" in first.text
    make_scene(project, make_image(project, alice), takes=1)
    later = client.get(poll, {"live": "0"})
    assert "up to 60 credits" in later.text


def test_a_click_past_the_projects_budget_is_refused_in_words(project, scene, alice, bob, queued):
    set_budget(project, 50)
    spent(scene, alice, 20)

    response = generate(client_for(bob), scene, last_take=1)

    assert (
        "This would spend 40 credits, but Poseidon has 30 credits left of its monthly budget "
        "of 50 credits." in response.text
    )
    assert Generation.objects.count() == 1 and queued == []


def test_a_click_past_bobs_allowance_is_refused_while_alice_may_still_spend(
    project, scene, alice, bob, queued
):
    set_allowance(project, bob, 60)
    generate(client_for(bob), scene)  # 40 of 60

    refused = generate(client_for(bob), scene, last_take=2)
    assert (
        "This would spend 40 credits, but you have 20 credits left of your monthly allowance "
        "of 60 credits in Poseidon." in refused.text
    )
    assert Generation.objects.filter(requested_by=bob).count() == 2
    generate(client_for(alice), scene, last_take=2)
    assert Generation.objects.filter(requested_by=alice).count() == 2


def test_failed_clips_unsubmitted_cancels_and_last_month_cost_nothing(
    project, scene, alice, bob, queued
):
    set_budget(project, 40)
    spent(scene, alice, 100, status=Generation.Status.FAILED)
    spent(scene, alice, 100, status=Generation.Status.CANCELLED)
    last_month = timezone.now() - timedelta(days=40)
    old = spent(scene, alice, 100)
    Generation.objects.filter(pk=old.pk).update(created=last_month)
    # Cancelled after Flow had it: Flow may still render, and charge, it.
    spent(scene, alice, 0, status=Generation.Status.CANCELLED, submitted_at=timezone.now())

    generate(client_for(bob), scene, last_take=4)

    assert Generation.objects.filter(requested_by=bob).count() == 2


def test_generate_all_is_refused_whole_past_the_budget(project, scene, alice, bob, queued):
    make_scene(project, make_image(project, alice), takes=1)
    set_budget(project, 50)

    response = client_for(bob).post(
        reverse("project-generate-all", args=[project.uuid]),
        {"last_generation": "0", "seen_settings": storyboard_seen(project)},
        follow=True,
    )

    assert "Nothing was generated: This would spend 60 credits" in response.text
    assert not Generation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_clicks_at_the_budget_line_cannot_both_slip_under(project, alice, bob, queued):
    image = make_image(project, alice)
    scenes = [make_scene(project, image, takes=1) for _ in range(2)]
    set_budget(project, 30)  # room for one 20-credit take, not two
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def click(user, scene) -> None:
        try:
            client = client_for(user)
            barrier.wait()
            generate(client, scene)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=click, args=(user, scene))
        for user, scene in zip((alice, bob), scenes, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Generation.objects.count() == 1


# --- the spend page ---------------------------------------------------------------------------


def test_the_spend_page_groups_alices_thousands_as_the_rest_of_flowsite_does(project, scene, alice):
    spent(scene, alice, 1250)

    page = client_for(alice).get(reverse("project-spend", args=[project.uuid])).text

    assert "1,250 credits spent this month" in page
    assert "<td>alice</td>\n        <td>1</td>\n        <td>0</td>\n        <td>1,250</td>" in page
    assert "<td>1</td><td>0</td><td>1,250</td>" in page  # today


def test_the_spend_page_shows_this_month_by_member_and_by_day(project, scene, alice, bob):
    spent(scene, alice, 20)
    spent(scene, bob, 10)
    spent(scene, bob, 10)

    page = client_for(bob).get(reverse("project-spend", args=[project.uuid])).text

    assert "40 credits spent this month" in page
    assert page.count('class="spend__bar spend__bar--') == 2  # today: alice's part, bob's part
    assert "<td>bob</td>\n        <td>2</td>\n        <td>0</td>\n        <td>20</td>" in page
    assert "<td>carol</td>\n        <td>0</td>" in page
    assert 'id="budget"' not in page  # bob is no owner


def test_the_csv_lists_each_day_and_member(project, scene, alice, bob):
    spent(scene, alice, 20)
    spent(scene, bob, 10)

    response = client_for(bob).get(reverse("project-spend-csv", args=[project.uuid]))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f"poseidon-spend-{timezone.localdate():%Y-%m}.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    today = timezone.localdate().isoformat()
    assert rows == [
        ["date", "member", "takes", "credits", "upscales"],
        [today, "alice", "1", "20", "0"],
        [today, "bob", "1", "10", "0"],
    ]


def test_alice_sets_the_budget_and_bobs_allowance(project, alice, bob):
    url = reverse("project-spend", args=[project.uuid])
    client = client_for(alice)

    client.post(url, {"action": "budget", "limit": "500", "was": ""})
    client.post(url, {"action": "allowance", "username": "bob", "limit": "100", "was": ""})

    project.refresh_from_db()
    assert project.monthly_budget == 500
    assert Membership.objects.get(project=project, user=bob).monthly_allowance == 100
    assert [e.details for e in AuditEvent.objects.order_by("id")] == [
        {"old": None, "new": 500, "unit": "credits"},
        {"member": "bob", "old": None, "new": 100, "unit": "credits"},
    ]
    # Read with its unit, whatever engine the project spends later.
    activity = client.get(reverse("project-audit", args=[project.uuid])).text
    assert "Changed the monthly budget from unlimited to 500 credits" in activity
    assert "Changed bob&#x27;s monthly allowance from unlimited to 100 credits" in activity


def test_two_owners_changing_the_budget_at_once_the_second_is_told(project, alice, bob):
    project.add_member(bob, Membership.Role.OWNER)
    url = reverse("project-spend", args=[project.uuid])
    # Both loaded the page while the budget was unset.
    client_for(alice).post(url, {"action": "budget", "limit": "500", "was": ""})
    response = client_for(bob).post(
        url, {"action": "budget", "limit": "900", "was": ""}, follow=True
    )

    assert "Another owner changed the budget meanwhile" in response.text
    project.refresh_from_db()
    assert project.monthly_budget == 500


def test_a_budget_that_is_not_a_number_is_refused_in_words(project, alice):
    response = client_for(alice).post(
        reverse("project-spend", args=[project.uuid]),
        {"action": "budget", "limit": "lots", "was": ""},
        follow=True,
    )

    assert CREDITS_HINT in response.text
    project.refresh_from_db()
    assert project.monthly_budget is None


def test_a_budget_or_allowance_past_what_flowsite_can_store_is_refused_in_words(
    project, alice, bob
):
    client = client_for(alice)
    url = reverse("project-spend", args=[project.uuid])
    for form in ({"action": "budget"}, {"action": "allowance", "username": "bob"}):
        response = client.post(
            url, {**form, "limit": "99999999999999999999", "was": ""}, follow=True
        )

        assert "That is more than Flowsite can count; type at most 2147483647." in response.text
    project.refresh_from_db()
    assert project.monthly_budget is None
    assert Membership.objects.get(project=project, user=bob).monthly_allowance is None


def test_the_project_list_says_what_each_project_spent_this_month(project, scene, alice, bob):
    set_budget(project, 500)
    spent(scene, alice, 20)
    spent(scene, bob, 10)
    spent(scene, bob, 100, status=Generation.Status.FAILED)

    page = client_for(bob).get(reverse("project-list")).text

    assert "30 credits this month of 500 credits" in page


def test_a_username_a_spreadsheet_would_run_is_written_as_text(project, scene, alice):
    mallory = User.objects.create_user("@SUM", "", "x")
    project.add_member(mallory, Membership.Role.EDITOR)
    spent(scene, mallory, 20)

    response = client_for(alice).get(reverse("project-spend-csv", args=[project.uuid]))

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[1][1] == "'@SUM"


@pytest.fixture
def on_vertex(project, scene, alice, bob):
    """alice's project billed in US dollars on Vertex AI: $0.50 spent by alice, $0.40 by bob,
    a budget of $8. The spend page calls no engine, so the account needs no emulator."""
    FlowAccount.objects.filter(pk=project.account_id).update(
        kind=FlowAccount.Kind.VERTEX, vertex_project="demo"
    )
    set_budget(project, 8)
    make_take(scene, alice, status=Generation.Status.READY, cost=Decimal("0.50"), cost_unit="USD")
    make_take(scene, bob, status=Generation.Status.READY, cost=Decimal("0.40"), cost_unit="USD")
    return project


def test_on_alices_vertex_ai_project_the_spend_page_counts_us_dollars(on_vertex, alice):
    page = client_for(alice).get(reverse("project-spend", args=[on_vertex.uuid])).text

    assert "$0.90 spent this month, of a monthly budget of $8.00." in page
    assert "takes cancelled before they reached Vertex AI cost nothing" in page
    assert "US dollars spent each day this month, by member (tallest day $0.90)" in page
    assert '<th scope="col">US dollars</th>' in page
    assert "<td>bob</td>\n        <td>1</td>\n        <td>0</td>\n        <td>0.40</td>" in page
    assert "US dollars the project may spend each month" in page
    assert "credit" not in page.lower()


def test_bob_downloads_alices_vertex_ai_spend_in_us_dollars(on_vertex, bob):
    response = client_for(bob).get(reverse("project-spend-csv", args=[on_vertex.uuid]))

    today = timezone.localdate().isoformat()
    assert list(csv.reader(io.StringIO(response.content.decode()))) == [
        ["date", "member", "takes", "usd", "upscales"],
        [today, "alice", "1", "0.50", "0"],
        [today, "bob", "1", "0.40", "0"],
    ]


def test_the_project_list_says_what_alices_vertex_ai_project_spent_in_us_dollars(on_vertex, bob):
    page = client_for(bob).get(reverse("project-list")).text

    assert "$0.90 this month of $8.00" in page
    assert "credit" not in page.lower()


def test_alice_sets_7_50_on_her_vertex_ai_project_and_the_page_shows_7_50(on_vertex, alice):
    url = reverse("project-spend", args=[on_vertex.uuid])
    client = client_for(alice)
    before = client.get(url).text

    response = client.post(url, {"action": "budget", "limit": "7.50", "was": "8.00"}, follow=True)

    assert 'name="was" value="8.00"' in before  # the form carries the budget as shown
    assert "The monthly budget is now $7.50." in response.text
    assert "$0.90 spent this month, of a monthly budget of $7.50." in response.text
    assert 'id="budget" name="limit" inputmode="decimal" value="7.50"' in response.text
    on_vertex.refresh_from_db()
    assert on_vertex.monthly_budget == Decimal("7.50")
    event = AuditEvent.objects.get(action=AuditEvent.Action.BUDGET_CHANGED)
    assert event.details == {"old": "8.00", "new": "7.50", "unit": "USD"}
    activity = client.get(reverse("project-audit", args=[on_vertex.uuid])).text
    assert "Changed the monthly budget from $8.00 to $7.50" in activity


def test_alice_gives_bob_an_allowance_in_dollars_and_cents(on_vertex, alice, bob):
    url = reverse("project-spend", args=[on_vertex.uuid])

    response = client_for(alice).post(
        url, {"action": "allowance", "username": "bob", "limit": "2.25", "was": ""}, follow=True
    )

    assert "bob&#x27;s monthly allowance is now $2.25." in response.text
    assert 'inputmode="decimal" size="6" value="2.25"' in response.text
    assert Membership.objects.get(project=on_vertex, user=bob).monthly_allowance == Decimal("2.25")
    assert AuditEvent.objects.get().details == {
        "member": "bob",
        "old": None,
        "new": "2.25",
        "unit": "USD",
    }


@pytest.mark.parametrize(
    "typed", ["7", "7.5", "7.50", "$7.50", " 7.50 ", "$ 7.50", "1,250.00", "0"]
)
def test_alice_may_type_a_vertex_ai_budget_as_people_write_dollars(on_vertex, alice, typed):
    client_for(alice).post(
        reverse("project-spend", args=[on_vertex.uuid]),
        {"action": "budget", "limit": typed, "was": "8.00"},
    )

    on_vertex.refresh_from_db()
    dollars = typed.strip().lstrip("$").strip().replace(",", "")
    assert on_vertex.monthly_budget == Decimal(dollars)


DOLLARS_HINT = "Type an amount in US dollars, e.g. 7.50, or leave it empty for no limit."
CREDITS_HINT = "Type a whole number of credits, e.g. 1,000, or leave it empty for no limit."
BELOW_ZERO = "A limit cannot be below 0 (0 stops all spending); type 0 or more, or leave it empty."
# Credit amounts refused wherever a limit is typed (the Spend page, the admin), and their words.
REFUSED_CREDITS = [
    ("-1,000", BELOW_ZERO),
    ("1,00", CREDITS_HINT),
    ("$5", CREDITS_HINT),
    ("NaN", CREDITS_HINT),
    ("1e3", CREDITS_HINT),
    ("lots", CREDITS_HINT),
]


@pytest.mark.parametrize(
    "typed, told",
    [
        ("7.555", "Vertex AI counts cents: type at most two decimals, e.g. 7.50."),
        (
            "7,5",
            "Type cents after a point, e.g. 7.50; a comma may only group thousands, e.g. 1,250.00.",
        ),
        ("-1", BELOW_ZERO),
        ("-$1,250", BELOW_ZERO),
        ("NaN", DOLLARS_HINT),
        ("Infinity", DOLLARS_HINT),
        ("1e3", DOLLARS_HINT),
        ("lots", DOLLARS_HINT),
        ("10000000000", "That is more than Flowsite can count; type at most $9,999,999,999.99."),
        # Past the 28 digits Python's decimals carry by default, where rounding to cents fails.
        ("1" * 40, "That is more than Flowsite can count; type at most $9,999,999,999.99."),
    ],
)
def test_alice_is_told_what_to_type_for_a_vertex_ai_budget(on_vertex, alice, bob, typed, told):
    client = client_for(alice)
    url = reverse("project-spend", args=[on_vertex.uuid])
    for form in ({"action": "budget"}, {"action": "allowance", "username": "bob"}):
        response = client.post(url, {**form, "limit": typed, "was": ""}, follow=True)

        assert told in response.text
    on_vertex.refresh_from_db()
    assert on_vertex.monthly_budget == 8
    assert Membership.objects.get(project=on_vertex, user=bob).monthly_allowance is None


@pytest.mark.parametrize("typed", ["1,000", " 1,000 ", "1000", "1,000.00"])
def test_alice_may_type_a_flow_budget_and_allowance_as_the_page_shows_credits(
    project, alice, bob, typed
):
    client = client_for(alice)
    url = reverse("project-spend", args=[project.uuid])

    client.post(url, {"action": "budget", "limit": typed, "was": ""})
    client.post(url, {"action": "allowance", "username": "bob", "limit": typed, "was": ""})

    project.refresh_from_db()
    assert project.monthly_budget == 1000
    assert Membership.objects.get(project=project, user=bob).monthly_allowance == 1000


@pytest.mark.parametrize(
    "typed, told",
    [
        ("-1", BELOW_ZERO),
        *REFUSED_CREDITS,
    ],
)
def test_alice_is_told_what_to_type_for_a_flow_budget(project, alice, bob, typed, told):
    client = client_for(alice)
    url = reverse("project-spend", args=[project.uuid])
    for form in ({"action": "budget"}, {"action": "allowance", "username": "bob"}):
        response = client.post(url, {**form, "limit": typed, "was": ""}, follow=True)

        assert told in response.text
    project.refresh_from_db()
    assert project.monthly_budget is None
    assert Membership.objects.get(project=project, user=bob).monthly_allowance is None


def test_on_flow_alice_types_12_5_and_is_told_flow_counts_whole_credits(project, alice):
    response = client_for(alice).post(
        reverse("project-spend", args=[project.uuid]),
        {"action": "budget", "limit": "12.5", "was": ""},
        follow=True,
    )

    assert (
        "Flow counts whole credits; type a whole number, or leave it empty for no limit."
        in response.text
    )
    project.refresh_from_db()
    assert project.monthly_budget is None


def test_a_flow_budget_or_allowance_of_12_5_is_refused_by_the_models_in_the_spend_pages_words(
    project, bob
):
    project.monthly_budget = Decimal("12.5")
    bobs = Membership.objects.get(project=project, user=bob)
    bobs.monthly_allowance = Decimal("3000000000")

    with pytest.raises(ValidationError) as budget:
        project.full_clean()
    with pytest.raises(ValidationError) as allowance:
        bobs.full_clean()

    assert budget.value.message_dict == {
        "monthly_budget": [
            "Flow counts whole credits; type a whole number, or leave it empty for no limit."
        ]
    }
    assert allowance.value.message_dict == {
        "monthly_allowance": ["That is more than Flowsite can count; type at most 2147483647."]
    }


@pytest.mark.parametrize("model", [Project, Membership])
def test_the_database_refuses_a_negative_budget_or_allowance_written_around_the_forms(
    project, model
):
    field = "monthly_budget" if model is Project else "monthly_allowance"
    rows = Project.objects.filter(pk=project.pk) if model is Project else project.memberships

    with pytest.raises(IntegrityError), transaction.atomic():
        rows.update(**{field: Decimal("-1")})

    assert not model.objects.filter(**{f"{field}__lt": 0}).exists()


def test_alices_flow_budget_is_shown_and_carried_in_whole_credits(project, alice):
    set_budget(project, 500)

    page = client_for(alice).get(reverse("project-spend", args=[project.uuid])).text

    assert 'name="was" value="500"' in page
    assert 'id="budget" name="limit" inputmode="numeric" value="500"' in page
    assert "in US dollars" not in page


def test_alices_vertex_ai_spend_page_hints_at_dollars_and_cents(on_vertex, alice):
    page = client_for(alice).get(reverse("project-spend", args=[on_vertex.uuid])).text

    assert "in US dollars, e.g. 7.50" in page
    assert 'inputmode="numeric"' not in page


@pytest.mark.parametrize("shown", ["7.50", "7.5"])
def test_a_budget_stored_as_7_5_matches_the_7_50_the_page_showed(on_vertex, alice, shown):
    set_budget(on_vertex, Decimal("7.5"))

    response = client_for(alice).post(
        reverse("project-spend", args=[on_vertex.uuid]),
        {"action": "budget", "limit": "9", "was": shown},
        follow=True,
    )

    assert "The monthly budget is now $9.00." in response.text
    on_vertex.refresh_from_db()
    assert on_vertex.monthly_budget == 9


def test_two_owners_changing_a_vertex_ai_allowance_at_once_the_second_is_told(
    on_vertex, alice, bob, carol
):
    on_vertex.add_member(bob, Membership.Role.OWNER)
    set_allowance(on_vertex, carol, Decimal("2.25"))
    url = reverse("project-spend", args=[on_vertex.uuid])
    form = {"action": "allowance", "username": "carol", "was": "2.25"}
    # Both loaded the page while carol's allowance was $2.25.
    client_for(alice).post(url, {**form, "limit": "3.10"})
    response = client_for(bob).post(url, {**form, "limit": "4"}, follow=True)

    assert "Another owner changed carol&#x27;s allowance meanwhile" in response.text
    assert Membership.objects.get(project=on_vertex, user=carol).monthly_allowance == Decimal(
        "3.10"
    )


@pytest.mark.parametrize(
    "spent_before, refused",
    [((Decimal("4.20"), Decimal("2.20")), True), ((Decimal("4.20"), Decimal("2.10")), False)],
)
def test_a_take_of_1_20_under_a_budget_of_7_50_is_refused_at_6_40_spent_and_passes_at_6_30(
    project, alice, bob, settings, spent_before, refused
):
    from generations.models import CannotGenerate

    settings.VERTEX_PRICES = ["veo-3.1-fast-generate-001=0.15"]  # 8 s: $1.20 a take
    FlowAccount.objects.filter(pk=project.account_id).update(
        kind=FlowAccount.Kind.VERTEX, vertex_project="demo"
    )
    set_budget(project, Decimal("7.50"))
    scene = make_scene(
        project, mode="text", model_key="veo-3.1-fast-generate-001", duration=8, takes=1
    )
    for cost in spent_before:  # two parts, so SQLite's float sum is 6.300000000000001
        make_take(scene, alice, status=Generation.Status.READY, cost=cost, cost_unit="USD")

    if refused:
        with pytest.raises(CannotGenerate) as refusal:
            Project.objects.get(pk=project.pk).scenes.get(pk=scene.pk).generate(bob)
        assert str(refusal.value).startswith(
            "This would spend $1.20, but Poseidon has $1.10 left of its monthly budget of $7.50."
        )
    else:
        [take] = Project.objects.get(pk=project.pk).scenes.get(pk=scene.pk).generate(bob)
        assert take.cost == Decimal("1.20")


def test_alices_flow_budget_reads_without_a_wrong_article(project, scene, alice):
    set_budget(project, 8)
    spent(scene, alice, 20)

    page = client_for(alice).get(reverse("project-spend", args=[project.uuid])).text

    assert "20 credits spent this month, of a monthly budget of 8 credits." in page
    assert "takes cancelled before they reached Flow cost nothing" in page


# --- takes and upscales, counted once -------------------------------------------------------


def test_bobs_upscale_shows_on_the_spend_page_in_the_csv_and_in_the_total(
    project, scene, alice, bob
):
    take = spent(scene, alice, 20)
    upscaled(take, bob, 10)
    upscaled(take, bob, 40, status=Upscale.Status.FAILED, resolution="4k")

    page = client_for(bob).get(reverse("project-spend", args=[project.uuid])).text
    response = client_for(bob).get(reverse("project-spend-csv", args=[project.uuid]))

    assert "30 credits spent this month" in page
    assert "<td>bob</td>\n        <td>0</td>\n        <td>1</td>\n        <td>10</td>" in page
    assert "<td>1</td><td>1</td><td>30</td>" in page  # today: 1 take, 1 upscale, 30 credits
    today = timezone.localdate().isoformat()
    assert list(csv.reader(io.StringIO(response.content.decode()))) == [
        ["date", "member", "takes", "credits", "upscales"],
        [today, "alice", "1", "20", "0"],
        [today, "bob", "0", "10", "1"],
    ]


def test_the_budget_check_refuses_on_the_total_the_spend_page_shows(
    project, scene, alice, bob, queued
):
    set_budget(project, 60)
    upscaled(spent(scene, alice, 20), alice, 10)

    page = client_for(alice).get(reverse("project-spend", args=[project.uuid])).text
    refused = generate(client_for(bob), scene, last_take=1)

    assert "30 credits spent this month, of a monthly budget of 60 credits." in page
    assert "Poseidon has 30 credits left of its monthly budget of 60 credits" in refused.text
    assert Generation.objects.count() == 1 and queued == []


def test_credits_spent_before_alices_project_moved_to_vertex_ai_are_said_not_added(
    on_vertex, scene, alice, bob
):
    upscaled(spent(scene, bob, 100), bob, 20)

    page = client_for(alice).get(reverse("project-spend", args=[on_vertex.uuid])).text
    response = client_for(alice).get(reverse("project-spend-csv", args=[on_vertex.uuid]))

    assert "$0.90 spent this month, of a monthly budget of $8.00." in page
    assert "Also spent this month before Poseidon moved to Vertex AI: 120 credits" in page
    assert "<td>bob</td>\n        <td>1</td>\n        <td>0</td>\n        <td>0.40</td>" in page
    today = timezone.localdate().isoformat()
    assert list(csv.reader(io.StringIO(response.content.decode())))[1:] == [
        [today, "alice", "1", "0.50", "0"],
        [today, "bob", "1", "0.40", "0"],
    ]


def test_the_project_list_counts_upscales_and_leaves_out_the_other_unit(
    on_vertex, scene, alice, bob
):
    upscaled(spent(scene, bob, 100), bob, 20)
    make_take(scene, bob, status=Generation.Status.READY, cost=Decimal("0.10"), cost_unit="USD")
    # Vertex AI has no upscaler today; one priced in dollars would count all the same.
    upscaled(Generation.objects.filter(cost_unit="USD").first(), bob, 1, cost_unit="USD")

    page = client_for(bob).get(reverse("project-list")).text

    assert "$2.00 this month of $8.00" in page


def test_a_month_in_one_unit_says_nothing_of_another(project, scene, alice):
    spent(scene, alice, 20)

    page = client_for(alice).get(reverse("project-spend", args=[project.uuid])).text

    assert "Also spent" not in page


def test_the_spend_page_costs_the_same_queries_for_more_members_days_and_upscales(
    project, scene, alice, bob, carol, charlie
):
    client = client_for(alice)
    url = reverse("project-spend", args=[project.uuid])
    spent(scene, alice, 20)
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)

    project.add_member(charlie, Membership.Role.EDITOR)
    # Another day, unless today is the month's first: the 1st, at noon or earlier today.
    earlier = min(timezone.now(), month_start() + timedelta(hours=12))
    for user in (bob, carol, charlie):
        take = spent(scene, user, 10, updated=earlier)
        upscaled(take, user, 10, created=take.created)
        upscaled(spent(scene, user, 10), user, 10)
    spent(scene, alice, Decimal("1.20"), cost_unit="USD")
    with CaptureQueriesContext(connection) as many:
        page = client.get(url).text

    assert "Also spent this month before Poseidon moved to Flow: $1.20" in page
    assert "<td>charlie</td>\n        <td>2</td>\n        <td>2</td>\n        <td>40</td>" in page
    assert len(many) == len(few)


@pytest.mark.django_db(transaction=True)
def test_on_upgrade_alices_whole_budget_and_bobs_allowance_carry_over_unchanged():
    from django.db.migrations.executor import MigrationExecutor

    before = [("generations", "0030_prompt_words_name_no_engine")]
    after = [("generations", "0031_budgets_and_allowances_in_cents")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    bob = old.get_model("auth", "User").objects.create(username="bob")
    poseidon = old.get_model("generations", "Project").objects.create(
        name="Poseidon", monthly_budget=500
    )
    old.get_model("generations", "Membership").objects.create(
        project=poseidon, user=bob, monthly_allowance=8
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    new = executor.loader.project_state(after).apps

    assert new.get_model("generations", "Project").objects.get().monthly_budget == Decimal("500")
    assert new.get_model("generations", "Membership").objects.get().monthly_allowance == Decimal(
        "8.00"
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
