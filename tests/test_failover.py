"""Several accounts per project: queued takes go out on the first account that can take them,
and a take that went out stays on its account (against the emulator over real HTTP)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from html import unescape
from uuid import uuid4

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from generations import failover, take_actions
from generations.engines.catalogue import TIER_ONE, TIER_TWO
from generations.models import AccountGrant, FlowAccount, Generation, Membership, Project
from generations.pipeline.passes import seconds_until_due
from generations.pipeline.policy import SUBMIT_ATTEMPTS
from generations.tasks import run_pass
from tests.conftest import make_ready_scene as make_scene
from tests.tasks_support import settle
from tests.views_support import client_for, make_take

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


def test_a_take_flow_refuses_for_credits_goes_out_on_the_next_account(
    emu, two_accounts, account, backup, alice
):
    [take] = make_scene(two_accounts, "quota test [fault:quota:once]").generate(alice)

    [take] = settle([take], timeout=15)

    assert (take.status, take.account_id, take.reason) == (S.READY, backup.pk, "")
    assert emu.stats["submit"] == 2, "refused on Studio, accepted on Backup"
    assert emu.stats["clips_submitted"] == 1, "one clip made, so paid once"
    account.refresh_from_db()
    assert account.credits == 0
    assert account.state_words(timezone.now()) == "Out of credits."

    [later] = settle(make_scene(two_accounts, "a ferry leaves").generate(alice), timeout=15)
    assert later.account_id == backup.pk, "Studio is skipped until Flow reports credits there"
    assert emu.stats["submit"] == 3


def test_a_take_flow_refuses_for_credits_on_every_account_fails_naming_them(
    emu, two_accounts, account, backup, alice
):
    [take] = make_scene(two_accounts, "quota test [fault:quota]").generate(alice)

    [take] = settle([take], timeout=15)

    assert (take.status, take.account_id) == (S.FAILED, backup.pk)
    assert take.reason == (
        "Not sent: the Flow accounts Studio and Backup have all run out of credits (Flow "
        "refused the take, so nothing was spent). Add credits, or ask an admin for another "
        "account (PUBLIC_ERROR_USER_QUOTA_REACHED)."
    )
    assert emu.stats["submit"] == 2, "each account asked once"
    assert emu.stats["clips_submitted"] == 0


def test_a_take_flow_refuses_for_credits_waits_for_the_next_account_to_rest(
    emu, two_accounts, account, backup, alice
):
    rested = timezone.now() + timedelta(minutes=1)
    FlowAccount.objects.filter(pk=backup.pk).update(cool_down_until=rested)
    [take] = make_scene(two_accounts, "quota test [fault:quota:once]").generate(alice)

    run_pass()

    take.refresh_from_db()
    assert (take.status, take.account_id, take.next_check_at) == (S.QUEUED, account.pk, rested)
    assert take.reason == (
        "The Flow account Studio has run out of credits (Flow refused the take, so nothing "
        "was spent); Flowsite sends it on the project's next account with credits."
    )
    [take] = settle([take], timeout=15, ahead=timedelta(minutes=1, seconds=1))
    assert (take.status, take.account_id) == (S.READY, backup.pk)
    assert emu.stats["clips_submitted"] == 1


def test_a_take_flow_refuses_for_credits_fails_when_the_project_has_no_other_account(
    emu, project, account, alice
):
    [take] = settle(make_scene(project, "quota test [fault:quota]").generate(alice), timeout=15)

    assert take.status == S.FAILED
    assert take.reason == (
        "Not sent: the Flow account Studio has run out of credits (Flow refused the take, so "
        "nothing was spent), and the project has no other account. Add credits, or ask an "
        "admin for another account (PUBLIC_ERROR_USER_QUOTA_REACHED)."
    )
    assert emu.stats["submit"] == 1


def test_alices_take_refused_for_credits_asks_each_account_once_though_they_report_credits_again(
    emu, two_accounts, account, backup, alice
):
    # Between passes, status checks of other takes report credits on both accounts again, so
    # neither counts as short: the take still never goes back to an account that refused it.
    [take] = make_scene(two_accounts, "quota test [fault:quota]").generate(alice)

    for _ in range(6):
        run_pass()
        take.refresh_from_db()
        if take.status in Generation.FINAL:
            break
        account.record_credits(500)
        backup.record_credits(500)

    assert (take.status, take.account_id) == (S.FAILED, backup.pk)
    assert take.reason == (
        "Not sent: the Flow accounts Studio and Backup have all run out of credits (Flow "
        "refused the take, so nothing was spent). Add credits, or ask an admin for another "
        "account (PUBLIC_ERROR_USER_QUOTA_REACHED)."
    )
    assert emu.stats["submit"] == 2, "each account asked once"
    assert emu.stats["clips_submitted"] == 0


def test_alices_take_refused_for_a_models_daily_quota_goes_out_on_the_next_account(
    emu, two_accounts, account, backup, alice
):
    account.record_credits(500)
    [take] = make_scene(two_accounts, "a gull [fault:model-quota:once]").generate(alice)

    [take] = settle([take], timeout=15)

    assert (take.status, take.account_id, take.reason) == (S.READY, backup.pk, "")
    assert emu.stats["submit"] == 2, "refused on Studio, accepted on Backup"
    assert emu.stats["clips_submitted"] == 1, "one clip made, so paid once"
    account.refresh_from_db()
    assert account.credits == 500, "Studio keeps its credits for the other models"
    assert account.state_words(timezone.now()) == ""


def test_alices_take_refused_for_a_models_daily_quota_on_every_account_fails_asking_each_once(
    emu, two_accounts, account, backup, alice
):
    [take] = make_scene(two_accounts, "a gull [fault:model-quota]").generate(alice)

    [take] = settle([take], timeout=15)

    assert (take.status, take.account_id) == (S.FAILED, backup.pk)
    assert take.reason == (
        "Not sent: the Flow accounts Studio and Backup have all used up today's quota of Veo "
        "3.1 Fast (Flow refused the take, so nothing was spent). Flow does not say when the "
        "quota resets: try again later, or pick another model "
        "(PUBLIC_ERROR_PER_MODEL_DAILY_QUOTA_REACHED)."
    )
    assert emu.stats["submit"] == 2, "each account asked once"
    assert emu.stats["clips_submitted"] == 0
    assert FlowAccount.objects.filter(credits=0).count() == 0


def test_bobs_take_refused_for_a_models_daily_quota_fails_when_the_project_has_no_other_account(
    emu, project, account, bob
):
    [take] = make_scene(project, "a gull [fault:model-quota]").generate(bob)

    [take] = settle([take], timeout=15)

    assert take.status == S.FAILED
    assert take.reason == (
        "Not sent: the Flow account Studio has used up today's quota of Veo 3.1 Fast (Flow "
        "refused the take, so nothing was spent), and the project has no other account. Flow "
        "does not say when the quota resets: try again later, or pick another model "
        "(PUBLIC_ERROR_PER_MODEL_DAILY_QUOTA_REACHED)."
    )
    assert emu.stats["submit"] == 1


def test_alices_take_refused_for_a_models_daily_quota_is_never_sent_back_to_that_account(
    emu, two_accounts, account, backup, alice
):
    # Backup rests for a minute; when it opens, Flow refuses it too, and Studio, open all along,
    # is not asked again.
    rested = timezone.now() + timedelta(minutes=1)
    FlowAccount.objects.filter(pk=backup.pk).update(cool_down_until=rested)
    [take] = make_scene(two_accounts, "a gull [fault:model-quota]").generate(alice)

    run_pass()
    run_pass()

    take.refresh_from_db()
    assert (take.status, take.account_id, take.next_check_at) == (S.QUEUED, account.pk, rested)
    assert take.reason == (
        "The Flow account Studio has used up today's quota of Veo 3.1 Fast (Flow refused the "
        "take, so nothing was spent); Flowsite sends it on the project's next account."
    )
    assert emu.stats["submit"] == 1
    [take] = settle([take], timeout=15, ahead=timedelta(minutes=1, seconds=1))
    assert (take.status, take.account_id) == (S.FAILED, backup.pk)
    assert emu.stats["submit"] == 2, "each account asked once"


def test_alices_take_refused_for_the_models_quota_on_studio_and_credits_on_backup_names_both(
    emu, two_accounts, account, backup, alice
):
    # Studio has used up today's quota of the model; Backup has run out of credits.
    scene = make_scene(two_accounts, "a gull [fault:model-quota:once] [fault:quota]")
    [take] = scene.generate(alice)

    [take] = settle([take], timeout=15)

    card = unescape(
        client_for(alice).get(reverse("project-detail", args=[scene.project.uuid])).text
    )
    assert (take.status, take.account_id) == (S.FAILED, backup.pk)
    assert (
        "Not sent: the Flow account Studio has used up today's quota of Veo 3.1 Fast, and "
        "Backup has run out of credits (Flow refused the take, so nothing was spent). Add "
        "credits to Backup, then generate it again; or, as Flow does not say when the quota "
        "resets, try again later, or pick another model.</p>"
    ) in card
    assert "Google's code: PUBLIC_ERROR_USER_QUOTA_REACHED" in card
    assert emu.stats["submit"] == 2, "each account asked once"
    assert emu.stats["clips_submitted"] == 0


def test_alices_extension_refused_for_a_models_daily_quota_fails_at_once(
    emu, two_accounts, account, backup, alice
):
    [source] = settle(make_scene(two_accounts, "a lighthouse at dusk").generate(alice))
    scene = take_actions.extend(source, alice, "the beam sweeps [fault:model-quota]")
    [extension] = scene.generations.all()

    [extension] = settle([extension], timeout=15)

    assert (extension.status, extension.account_id) == (S.FAILED, account.pk)
    assert extension.reason.startswith(
        "Not sent: the Flow account Studio has used up today's quota of Veo 3.1 Fast extend "
        "(Flow refused the take, so nothing was spent), and the clip it extends is known only "
        "there."
    )
    assert emu.stats["submit"] == 2, "the source, then the extension once"


def test_alices_extension_refused_for_credits_fails_at_once_though_backup_has_credits(
    emu, two_accounts, account, backup, alice
):
    backup.record_credits(500)
    [source] = settle(make_scene(two_accounts, "a lighthouse at dusk").generate(alice))
    scene = take_actions.extend(source, alice, "the beam sweeps [fault:quota]")
    [extension] = scene.generations.all()

    [extension] = settle([extension], timeout=15)

    assert (extension.status, extension.account_id) == (S.FAILED, account.pk)
    assert extension.reason == (
        "Not sent: the Flow account Studio has run out of credits (Flow refused the take, so "
        "nothing was spent), and the clip it extends is known only there. Add credits to "
        "Studio, then generate it again (PUBLIC_ERROR_USER_QUOTA_REACHED)."
    )
    assert emu.stats["submit"] == 2, "the source, then the extension once"


def test_alices_extension_throttled_on_its_account_waits_there_saying_when(
    emu, two_accounts, account, backup, alice
):
    [source] = settle(make_scene(two_accounts, "a lighthouse at dusk").generate(alice))
    scene = take_actions.extend(source, alice, "the beam sweeps [fault:throttle=60:once]")
    [extension] = scene.generations.all()

    run_pass()
    run_pass()

    extension.refresh_from_db()
    assert (extension.status, extension.account_id) == (S.QUEUED, account.pk)
    assert "next account" not in extension.reason, "its clip is known only on Studio"
    assert "Flowsite will try again in about 60 seconds" in extension.reason
    assert extension.next_check_at > timezone.now() + timedelta(seconds=50)
    [extension] = settle([extension], timeout=15, ahead=timedelta(minutes=1, seconds=2))
    assert (extension.status, extension.account_id) == (S.READY, account.pk)


def more_accounts(emu, alice, count: int) -> list[FlowAccount]:
    """``count`` more accounts granted to alice, signed in to the emulator."""
    accounts = [
        FlowAccount(label=f"Spare {number}", tier=TIER_ONE, bearer_token=emu.token)
        for number in range(1, count + 1)
    ]
    FlowAccount.objects.bulk_create(accounts)
    AccountGrant.objects.bulk_create([AccountGrant(account=a, user=alice) for a in accounts])
    return accounts


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (
            "quota",
            "have all run out of credits (Flow refused the take, so nothing was spent). Add "
            "credits, or ask an admin for another account (PUBLIC_ERROR_USER_QUOTA_REACHED).",
        ),
        (
            "model-quota",
            "have all used up today's quota of Veo 3.1 Fast (Flow refused the take, so nothing "
            "was spent). Flow does not say when the quota resets: try again later, or pick "
            "another model (PUBLIC_ERROR_PER_MODEL_DAILY_QUOTA_REACHED).",
        ),
    ],
)
def test_alices_take_refused_on_more_accounts_than_its_attempts_names_every_one(
    emu, project, account, alice, fault, said
):
    # Each account is asked once, so refusals that move the take are not counted as attempts.
    spares = more_accounts(emu, alice, SUBMIT_ATTEMPTS)
    project.set_accounts([account, *spares])
    [take] = make_scene(project, f"a gull [fault:{fault}]").generate(alice)

    [take] = settle([take], timeout=30)

    assert (take.status, take.account_id) == (S.FAILED, spares[-1].pk)
    names = ", ".join(str(spare) for spare in spares[:-1])
    assert take.reason == f"Not sent: the Flow accounts Studio, {names} and {spares[-1]} {said}"
    assert emu.stats["submit"] == SUBMIT_ATTEMPTS + 1, "each account asked once"
    assert emu.stats["clips_submitted"] == 0


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


def test_a_queued_take_never_goes_out_on_a_first_account_whose_grant_was_revoked(
    emu, two_accounts, account, backup, alice
):
    [take] = make_scene(two_accounts, "a quiet pier").generate(alice)
    AccountGrant.objects.filter(account=account, user=alice).delete()  # flow_account revoke

    [take] = settle([take], timeout=15)

    assert (take.status, take.account_id) == (S.READY, backup.pk)
    assert emu.stats["clips_submitted"] == 1


def test_a_take_whose_account_was_revoked_says_so_while_it_waits_for_the_next_account(
    emu, two_accounts, account, backup, alice
):
    FlowAccount.objects.filter(pk=backup.pk).update(
        cool_down_until=timezone.now() + timedelta(minutes=1)
    )
    [take] = make_scene(two_accounts, "a quiet pier").generate(alice)
    AccountGrant.objects.filter(account=account, user=alice).delete()

    run_pass()

    take.refresh_from_db()
    assert (take.status, take.account_id) == (S.QUEUED, account.pk)
    assert take.reason == (
        "Not sent yet: Poseidon may no longer spend the Flow account Studio (staff have not "
        "granted it to the project or to one of its owners), so it waits for another account "
        "of the project."
    )
    assert emu.stats["submit"] == 0
    [take] = settle([take], timeout=15, ahead=timedelta(minutes=1, seconds=1))
    assert (take.status, take.account_id, take.reason) == (S.READY, backup.pk, "")


def test_a_queued_take_fails_in_words_when_no_account_of_its_project_is_granted_any_more(
    emu, project, account, alice, bob
):
    [take] = make_scene(project, "a quiet pier").generate(bob)
    # The granting owner leaves: grants follow owners.
    Membership.objects.filter(project=project, user=alice).update(role=Membership.Role.EDITOR)

    [take] = settle([take], timeout=15)

    assert take.status == S.FAILED
    assert take.reason == (
        "Not sent: Poseidon may no longer spend the Flow account Studio (staff have not "
        "granted it to the project or to one of its owners), and no other account of the "
        "project can make this take. Ask an admin, then generate it again."
    )
    assert emu.stats["submit"] == 0, "nothing sent"


def test_an_extension_fails_in_words_once_its_accounts_grant_is_revoked(
    emu, two_accounts, account, backup, alice
):
    [source] = settle(make_scene(two_accounts, "a lighthouse at dusk").generate(alice))
    scene = take_actions.extend(source, alice, "the beam sweeps the sea")
    [extension] = scene.generations.all()
    AccountGrant.objects.filter(account=account, user=alice).delete()

    [extension] = settle([extension], timeout=15)

    assert extension.status == S.FAILED
    assert extension.reason == (
        "Not sent: Poseidon may no longer spend the Flow account Studio (staff have not "
        "granted it to the project or to one of its owners), and the clip it extends is known "
        "only there. Ask an admin, then generate it again."
    )
    assert emu.stats["clips_submitted"] == 1, "only the source went out"


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

    def order() -> list[FlowAccount]:
        [read] = failover.with_accounts(Project.objects.filter(pk=project.pk))
        return failover.accounts_by_project([read])[project.pk]

    assert order() == [account, backup]
    AccountGrant.objects.filter(account=backup).delete()
    assert order() == [account]
    AccountGrant.objects.filter(account=account).delete()
    assert order() == [], "the first account is checked like the later ones"


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


def test_alices_take_fails_when_assigned_once_every_account_left_refused_its_models_quota(
    project, account, backup, alice
):
    # Studio refused it for the model's daily quota; Backup, where it was queued to go, is
    # revoked meanwhile: it fails rather than go back to Studio.
    project.set_accounts([account, backup])
    [take] = make_scene(project, "a quiet pier").generate(alice)
    Generation.objects.filter(pk=take.pk).update(
        refused_accounts={str(account.pk): Generation.REFUSED_MODEL_QUOTA}
    )
    AccountGrant.objects.filter(account=backup).delete()
    token = uuid4()
    Generation.objects.filter(pk=take.pk).update(claim=token)

    assert failover.assign(token, timezone.now()) == 0

    take.refresh_from_db()
    assert (take.status, take.account_id, take.claim) == (S.FAILED, account.pk, None)
    assert take.reason == (
        "Not sent: the Flow account Studio has used up today's quota of Veo 3.1 Fast (Flow "
        "refused the take, so nothing was spent), and the project has no other account. Flow "
        "does not say when the quota resets: try again later, or pick another model."
    )


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


# --- a move never passes the budget or an allowance -----------------------------------------


@pytest.fixture
def dearer_backup(two_accounts, account) -> Project:
    """Studio on tier two (a Fast clip: 10 credits), Backup on tier one (the same: 20)."""
    account.tier = TIER_TWO
    account.save(update_fields=["tier"])
    return two_accounts


def spent_already(project, user, credits: int) -> None:
    make_take(
        make_scene(project, "spent earlier"),
        user,
        status=S.READY,
        cost=credits,
        cost_unit="credits",
    )


def test_a_throttled_take_is_not_moved_where_it_would_pass_the_budget(
    emu, dearer_backup, account, backup, alice
):
    Project.objects.filter(pk=dearer_backup.pk).update(monthly_budget=150)
    spent_already(dearer_backup, alice, 140)
    [take] = make_scene(dearer_backup, "[fault:throttle:once] a gull over the harbour").generate(
        alice
    )
    assert take.cost == 10, "10 credits left: Generate lets it through at Studio's price"

    run_pass()  # Studio is throttled
    run_pass()  # Backup would charge 20
    take.refresh_from_db()
    assert (take.status, take.account_id, take.cost) == (S.QUEUED, account.pk, 10)
    assert take.reason == (
        "Not sent on Backup: there it costs 20 credits, not 10 credits, and Poseidon has "
        "0 credits left of its monthly budget of 150 credits. It goes out on Studio once that "
        "account can take it; to send it on Backup now, an owner can raise the budget on the "
        "Spend page."
    )

    # Once Studio's rest is over (a few seconds), the take goes out there at its price.
    [take] = settle([take], timeout=15, ahead=timedelta(seconds=5))
    assert (take.status, take.account_id, take.cost) == (S.READY, account.pk, 10)
    assert take.reason == ""
    assert emu.stats["clips_submitted"] == 1
    spent = Generation.objects.filter(project=dearer_backup).values_list("cost", flat=True)
    assert sum(spent) == 150, "never past the budget of 150"


def test_a_throttled_take_is_not_moved_where_it_would_pass_bobs_allowance(
    emu, dearer_backup, account, backup, bob
):
    Membership.objects.filter(project=dearer_backup, user=bob).update(monthly_allowance=25)
    spent_already(dearer_backup, bob, 10)
    [take] = make_scene(dearer_backup, "[fault:throttle:once] a gull over the harbour").generate(
        bob
    )

    run_pass()
    run_pass()
    take.refresh_from_db()
    assert (take.status, take.account_id, take.cost) == (S.QUEUED, account.pk, 10)
    assert take.reason == (
        "Not sent on Backup: there it costs 20 credits, not 10 credits, and bob has 5 credits "
        "left of their monthly allowance of 25 credits in Poseidon. It goes out on Studio once "
        "that account can take it; to send it on Backup now, an owner can raise bob's "
        "allowance on the Spend page."
    )
    [take] = settle([take], timeout=15, ahead=timedelta(seconds=5))
    assert (take.status, take.account_id, take.cost) == (S.READY, account.pk, 10)


def test_raising_bobs_allowance_sends_his_waiting_take_on_the_dearer_account_at_the_next_pass(
    emu, dearer_backup, account, backup, alice, bob, client
):
    Membership.objects.filter(project=dearer_backup, user=bob).update(monthly_allowance=20)
    spent_already(dearer_backup, bob, 10)
    [take] = make_scene(dearer_backup, "[fault:throttle=40:once] a gull over the harbour").generate(
        bob
    )
    run_pass()  # Studio is throttled for 40 s
    run_pass()  # Backup would pass bob's allowance
    take.refresh_from_db()
    assert take.reason.startswith("Not sent on Backup: there it costs 20 credits")
    assert "bob has 0 credits left of their monthly allowance of 20 credits" in take.reason

    # alice follows the card's advice, well within Studio's rest.
    client.force_login(alice)
    client.post(
        reverse("project-spend", args=[dearer_backup.uuid]),
        {"action": "allowance", "username": "bob", "limit": "30", "was": "20"},
    )
    run_pass()

    take.refresh_from_db()
    assert (take.account_id, take.cost, take.reason) == (backup.pk, 20, "")
    [take] = settle([take], timeout=15)
    assert (take.status, take.account_id) == (S.READY, backup.pk)


def test_a_raised_limit_wakes_only_takes_waiting_for_their_account(two_accounts, account, alice):
    later = timezone.now() + timedelta(minutes=5)
    [resting, backing_off] = make_scene(two_accounts, "a quiet pier", takes=2).generate(alice)
    Generation.objects.filter(pk__in=[resting.pk, backing_off.pk]).update(next_check_at=later)
    assert two_accounts.wake_waiting_takes() == 0, "Studio is open: a backoff keeps its time"

    FlowAccount.objects.filter(pk=account.pk).update(cool_down_until=later)
    opened = FlowAccount.objects.create(label="Open", bearer_token="ya29.open")
    Generation.objects.filter(pk=backing_off.pk).update(account=opened)
    assert two_accounts.wake_waiting_takes("bob") == 0, "not bob's take"
    assert two_accounts.wake_waiting_takes("alice") == 1
    resting.refresh_from_db()
    backing_off.refresh_from_db()
    assert resting.next_check_at <= timezone.now() < backing_off.next_check_at


def test_a_throttled_take_moves_when_the_budget_has_room_for_the_dearer_account(
    emu, dearer_backup, account, backup, alice
):
    Project.objects.filter(pk=dearer_backup.pk).update(monthly_budget=150)
    spent_already(dearer_backup, alice, 120)
    [take] = make_scene(dearer_backup, "[fault:throttle=60:once] a gull over the harbour").generate(
        alice
    )

    [take] = settle([take], timeout=15)
    assert (take.status, take.account_id, take.cost) == (S.READY, backup.pk, 20)


@pytest.mark.django_db(transaction=True)
def test_a_generate_at_the_budget_line_and_a_move_are_counted_one_after_the_other(
    dearer_backup, account, backup, alice, bob
):
    Project.objects.filter(pk=dearer_backup.pk).update(monthly_budget=150)
    spent_already(dearer_backup, alice, 130)
    [take] = make_scene(dearer_backup, "a gull over the harbour").generate(bob)  # 140 of 150
    FlowAccount.objects.filter(pk=account.pk).update(
        cool_down_until=timezone.now() + timedelta(minutes=1)
    )
    token = uuid4()
    Generation.objects.filter(pk=take.pk).update(claim=token)
    scene = make_scene(dearer_backup, "a ferry leaves")
    locked = threading.Event()
    errors: list[BaseException] = []

    def click() -> None:
        # alice's Generate holds the budget's lock and commits a moment after the worker
        # started counting: the worker must count her take, not the month before it.
        try:
            with transaction.atomic():
                scene.generate(alice)  # the last 10 credits
                locked.set()
                time.sleep(0.5)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)
            locked.set()
        finally:
            connection.close()

    def move() -> None:
        try:
            locked.wait(10)
            failover.assign(token, timezone.now())
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=click), threading.Thread(target=move)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    take.refresh_from_db()
    assert (take.account_id, take.cost) == (account.pk, 10), "not moved to Backup at 20"
    assert "Poseidon has 0 credits left of its monthly budget of 150 credits" in take.reason
    spent = Generation.objects.filter(project=dearer_backup).values_list("cost", flat=True)
    assert sum(spent) == 150


def test_dearer_moves_share_what_the_budget_has_left_in_the_same_few_queries(
    dearer_backup, account, backup, alice, django_assert_num_queries
):
    Project.objects.filter(pk=dearer_backup.pk).update(monthly_budget=60)
    takes = make_scene(dearer_backup, "a quiet pier", takes=4).generate(alice)  # 40 of 60
    FlowAccount.objects.filter(pk=account.pk).update(problem="Signed out.")
    token = uuid4()
    Generation.objects.filter(pk__in=[take.pk for take in takes]).update(claim=token)

    # The takes, the later accounts; in one transaction (its savepoint and release): the
    # lock with the budgets, the allowances, the sums of takes, upscales and deleted ones'
    # kept spend, the moves, the rest.
    with django_assert_num_queries(11):
        assert failover.assign(token, timezone.now()) == 2

    rows = Generation.objects.order_by("take").values_list("account_id", "cost", "claim")
    # Two go out on Backup in this pass; the other two are let go, to wait for Studio.
    assert list(rows) == [(backup.pk, 20, token)] * 2 + [(account.pk, 10, None)] * 2
    assert sum(take.cost for take in Generation.objects.all()) == 60
