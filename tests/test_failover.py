"""Several accounts per project: queued takes go out on the first account that can take them,
and a take that went out stays on its account (against the emulator over real HTTP)."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from django.utils import timezone

from generations import failover, take_actions
from generations.engines.catalogue import TIER_ONE, TIER_TWO
from generations.models import AccountGrant, FlowAccount, Generation, Project
from generations.pipeline.passes import seconds_until_due
from generations.tasks import run_pass
from tests.conftest import make_ready_scene as make_scene
from tests.tasks_support import settle

S = Generation.Status


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.FLOWSITE_POLL_INTERVAL = 0.1


@pytest.fixture
def backup(db, alice) -> FlowAccount:
    account = FlowAccount.objects.create(label="Backup", tier=TIER_ONE, bearer_token="ya29.backup")
    AccountGrant.objects.create(account=account, user=alice)
    return account


@pytest.fixture
def two_accounts(emu, project, account, backup) -> Project:
    """Poseidon spends Studio first, then Backup; both signed in to the emulator."""
    backup.bearer_token = emu.token
    backup.save(update_fields=["bearer_token"])
    project.set_accounts([account, backup])
    return project


def test_takes_go_out_on_the_second_account_while_the_first_is_throttled(
    emu, two_accounts, account, backup, alice
):
    # Flow answers the first submit with a 429 asking for a minute's rest.
    scene = make_scene(two_accounts, "[fault:throttle=60:once] a gull over the harbour", takes=2)
    takes = scene.generate(alice)
    assert {take.account_id for take in takes} == {account.pk}

    takes = settle(takes, timeout=15)

    assert [take.status for take in takes] == [S.READY, S.READY]
    assert {take.account_id for take in takes} == {backup.pk}, "sent on the second account"
    assert emu.stats["submit"] == 2, "one call refused on Studio, one on Backup"
    assert emu.stats["clips_submitted"] == 2
    account.refresh_from_db()
    assert account.cool_down_until > timezone.now() + timedelta(seconds=50), "Studio rests"


def test_a_take_sent_on_the_first_account_stays_there_when_it_later_cools_down(
    emu, two_accounts, account, backup, alice
):
    [first] = make_scene(two_accounts, "a lighthouse at dusk").generate(alice)
    run_pass()
    first.refresh_from_db()
    assert first.status in (S.PENDING, S.ACTIVE)
    assert first.account_id == account.pk
    FlowAccount.objects.filter(pk=account.pk).update(
        cool_down_until=timezone.now() + timedelta(hours=1)
    )

    [second] = make_scene(two_accounts, "a ferry leaves").generate(alice)
    [second] = settle([second])
    assert second.account_id == backup.pk, "a new take goes to the account that is open"
    first.refresh_from_db()
    assert first.account_id == account.pk, "the take already sent stays on its account"
    assert first.status in (S.PENDING, S.ACTIVE), "and waits for it"
    assert emu.stats["clips_submitted"] == 2, "nothing was sent twice"

    FlowAccount.objects.filter(pk=account.pk).update(cool_down_until=None)
    [first] = settle([first])
    assert first.status == S.READY
    assert first.account_id == account.pk
    assert emu.stats["clips_submitted"] == 2


def test_an_extension_waits_for_the_account_that_made_its_source_clip(
    emu, two_accounts, account, backup, alice
):
    [source] = settle(make_scene(two_accounts, "a lighthouse at dusk").generate(alice))
    assert (source.status, source.account_id) == (S.READY, account.pk)
    FlowAccount.objects.filter(pk=account.pk).update(
        cool_down_until=timezone.now() + timedelta(hours=1)
    )

    scene = take_actions.extend(source, alice, "the beam sweeps the sea")
    [extension] = scene.generations.all()
    run_pass()
    run_pass()

    extension.refresh_from_db()
    assert extension.account_id == account.pk, "Backup does not know the source clip"
    assert extension.status == S.QUEUED
    assert emu.stats["clips_submitted"] == 1, "only the source went out"

    # An hour on, Studio's rest is over and the extension goes out there.
    [extension] = settle([extension], ahead=timedelta(hours=1, minutes=1))
    assert (extension.status, extension.account_id) == (S.READY, account.pk)


def test_a_take_waiting_for_refused_credentials_goes_out_on_the_next_account(
    emu, two_accounts, account, backup, alice
):
    FlowAccount.objects.filter(pk=account.pk).update(
        problem="The Flow session for account Studio has expired — paste a new cookie."
    )
    [take] = settle(make_scene(two_accounts, "a quiet pier").generate(alice))
    assert take.status == S.READY
    assert take.account_id == backup.pk
    assert take.reason == ""


def test_the_worker_is_due_at_once_when_another_account_can_take_a_waiting_take(
    two_accounts, account, alice
):
    [take] = make_scene(two_accounts, "a quiet pier").generate(alice)
    Generation.objects.filter(pk=take.pk).update(next_check_at=None)
    FlowAccount.objects.filter(pk=account.pk).update(problem="Signed out.")
    assert seconds_until_due() == 0


# --- which account: one question per account, asked in order -----------------------------


def accounts(*specs: dict) -> list[FlowAccount]:
    return [
        FlowAccount(label=f"A{index}", **{"tier": TIER_ONE, **spec})
        for index, spec in enumerate(specs)
    ]


def test_the_first_open_account_able_to_make_the_model_is_chosen():
    now = timezone.now()
    cooling, signed_out, rechecking, low_tier, good, later = accounts(
        {"cool_down_until": now + timedelta(seconds=30), "tier": TIER_TWO},
        {"problem": "Signed out.", "tier": TIER_TWO},
        {"credential_refusals": 1, "tier": TIER_TWO},
        {},
        {"tier": TIER_TWO},
        {"tier": TIER_TWO},
    )
    order = [cooling, signed_out, rechecking, low_tier, good, later]
    assert failover.first_usable(order, "veo_3_1_i2v_s_fast_ultra", now) is good
    assert failover.first_usable(order, "veo_3_1_i2v_s_fast", now) is low_tier


def test_an_account_short_of_credits_is_passed_over_unless_every_account_is():
    now = timezone.now()
    poor, rich = accounts({"credits": 15}, {"credits": 500})
    assert failover.first_usable([poor, rich], "veo_3_1_i2v_s_fast", now) is rich
    also_poor = accounts({"credits": 3})[0]
    assert failover.first_usable([poor, also_poor], "veo_3_1_i2v_s_fast", now) is poor
    assert failover.first_usable([poor, rich], "veo_3_1_i2v_lite", now) is poor, (
        "a lite take costs 10"
    )


def test_no_account_is_chosen_while_none_is_open():
    now = timezone.now()
    order = accounts({"cool_down_until": now + timedelta(seconds=5)}, {"problem": "Refused."})
    assert failover.first_usable(order, "veo_3_1_i2v_s_fast", now) is None


def test_an_account_whose_grant_was_revoked_is_no_longer_used(project, account, backup, alice):
    project.set_accounts([account, backup])
    project = Project.objects.select_related("account").get(pk=project.pk)
    assert failover.accounts_by_project([project])[project.pk] == [account, backup]
    AccountGrant.objects.filter(account=backup).delete()
    assert failover.accounts_by_project([project])[project.pk] == [account]


def test_a_moved_take_costs_what_the_new_accounts_tier_charges(project, account, backup, alice):
    FlowAccount.objects.filter(pk=backup.pk).update(tier=TIER_TWO)
    project.set_accounts([account, backup])
    [take] = make_scene(project, "a quiet pier").generate(alice)
    assert take.cost == 20
    FlowAccount.objects.filter(pk=account.pk).update(problem="Signed out.")
    token = uuid4()
    Generation.objects.filter(pk=take.pk).update(claim=token)
    assert failover.assign(token, timezone.now()) == 1
    take.refresh_from_db()
    assert (take.account_id, take.cost) == (backup.pk, 10)


def test_choosing_accounts_for_many_takes_costs_the_same_few_queries(
    project, account, backup, alice, django_assert_num_queries
):
    third = FlowAccount.objects.create(label="Third", tier=TIER_ONE, bearer_token="ya29.third")
    AccountGrant.objects.create(account=third, user=alice)
    project.set_accounts([account, backup, third])
    other = Project.objects.create(name="Atlas", account=account, created_by=alice)
    other.add_member(alice, "owner")
    other.set_accounts([account, third])
    lonely = Project.objects.create(name="Hermes", account=account, created_by=alice)
    lonely.add_member(alice, "owner")
    takes = [
        *make_scene(project, "one", takes=4).generate(alice),
        *make_scene(other, "two", takes=3).generate(alice),
        *make_scene(lonely, "three", takes=2).generate(alice),
    ]
    rested = timezone.now() + timedelta(minutes=5)
    FlowAccount.objects.filter(pk=account.pk).update(cool_down_until=rested)
    token = uuid4()
    Generation.objects.filter(pk__in=[take.pk for take in takes]).update(claim=token)
    # The takes, the projects' later accounts, one UPDATE for the moves, one for the rest.
    with django_assert_num_queries(4):
        assert failover.assign(token, timezone.now()) == 7
    moved = dict(Generation.objects.values_list("project_id", "account_id").distinct())
    assert moved == {project.pk: backup.pk, other.pk: third.pk, lonely.pk: account.pk}
    waiting = Generation.objects.filter(project=lonely)
    assert set(waiting.values_list("claim", "next_check_at")) == {(None, rested)}
