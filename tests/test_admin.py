"""The Django admin: every model browsable at a constant query count, secrets never shown,
and the take actions doing what they say."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from generations.engines.catalogue import TIER_ONE
from generations.images import store_start_image
from generations.models import (
    AccountGrant,
    AuditEvent,
    FlowAccount,
    Generation,
    ImageUpload,
    Membership,
    Project,
    Scene,
    SignInFailure,
    Upscale,
    WorkerLease,
)
from tests.conftest import VERTEX_FAST, make_image, make_scene
from tests.test_budgets import DOLLARS_HINT, REFUSED_CREDITS
from tests.views_support import attach_clip, make_take

SECRET = "ya29.a0AfB_byC-very-long-secret-token-value-1234"
COOKIE = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..secret-cookie-value-XYZ9"


@pytest.fixture
def admin_client(client, db):
    admin = User.objects.create_superuser("root", "root@example.org", "x")
    client.force_login(admin)
    client.admin = admin
    return client


def png() -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (50, 90, 160)).save(buffer, "PNG")
    buffer.seek(0)
    return buffer


def populate(count: int, account: FlowAccount, owner: User) -> None:
    """``count`` projects, each with a member, a scene, an image, an upload and two takes."""
    for index in range(count):
        project = Project.objects.create(name=f"P{index}", account=account, created_by=owner)
        member = User.objects.create_user(f"member{index}-{Project.objects.count()}")
        project.add_member(owner, Membership.Role.OWNER)
        project.add_member(member, Membership.Role.EDITOR)
        AccountGrant.objects.create(account=account, project=project)
        SignInFailure.objects.create(username=f"guess{index}", address="10.0.0.1")
        image = store_start_image(project, png(), owner, name=f"i{index}.png")
        ImageUpload.objects.create(image=image, account=account, media_id=f"media-{index}")
        scene = Scene.objects.create(
            project=project, prompt="Waves", start_image=image, model_key="veo_3_1_i2v_s_fast"
        )
        for take, status in enumerate([Generation.Status.READY, Generation.Status.FAILED], 1):
            Generation.objects.create(
                scene=scene,
                project=project,
                requested_by=member,
                account=account,
                take=take,
                prompt="Waves",
                model_key="veo_3_1_i2v_s_fast",
                aspect="landscape",
                seed=7,
                status=status,
                start_image=image,
                poster=f"clips/{project.uuid}/poster.jpg" if take == 1 else "",
            )


CHANGELISTS = [
    "flowaccount",
    "project",
    "membership",
    "scene",
    "imageasset",
    "imageupload",
    "generation",
    "workerlease",
    "accountgrant",
    "signinfailure",
]


def changelist_queries(client, model: str) -> int:
    url = reverse(f"admin:generations_{model}_changelist")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("model", CHANGELISTS)
def test_each_changelist_loads_with_a_query_count_independent_of_its_rows(
    admin_client, account, model
):
    populate(1, account, admin_client.admin)
    few = changelist_queries(admin_client, model)

    populate(4, account, admin_client.admin)
    many = changelist_queries(admin_client, model)

    assert many == few


@pytest.mark.parametrize("model", ["project", "scene", "imageasset", "generation"])
def test_search_finds_by_text_or_by_uuid(admin_client, account, model):
    populate(2, account, admin_client.admin)
    wanted = apps.get_model("generations", model).objects.last()
    url = reverse(f"admin:generations_{model}_changelist")

    by_text = admin_client.get(url, {"q": "no such thing"})
    by_uuid = admin_client.get(url, {"q": str(wanted.uuid)})

    assert by_text.status_code == 200
    assert by_text.context["cl"].result_count == 0
    assert list(by_uuid.context["cl"].result_list) == [wanted]


def test_the_generation_list_shows_posters_through_the_private_media_view(admin_client, account):
    populate(1, account, admin_client.admin)
    ready = Generation.objects.get(status=Generation.Status.READY)

    response = admin_client.get(reverse("admin:generations_generation_changelist"))

    poster_url = reverse("media-take-poster", args=[ready.uuid])
    assert f'src="{poster_url}"'.encode() in response.content
    assert b"/media/clips/" not in response.content


def test_change_pages_open_with_their_inlines(admin_client, account):
    populate(1, account, admin_client.admin)
    project = Project.objects.get()
    scene = Scene.objects.get()
    take = Generation.objects.filter(status=Generation.Status.READY).get()

    project_page = admin_client.get(reverse("admin:generations_project_change", args=[project.pk]))
    scene_page = admin_client.get(reverse("admin:generations_scene_change", args=[scene.pk]))
    take_page = admin_client.get(reverse("admin:generations_generation_change", args=[take.pk]))

    assert project_page.status_code == scene_page.status_code == take_page.status_code == 200
    assert b"memberships-TOTAL_FORMS" in project_page.content
    assert b"scenes-TOTAL_FORMS" in project_page.content
    assert b"generations-TOTAL_FORMS" in scene_page.content
    assert str(take.uuid).encode() in take_page.content
    assert b'name="_save"' not in take_page.content
    # A take changes through the worker and the actions only: nothing on its page is a field.
    assert b'name="prompt"' not in take_page.content
    assert b'name="status"' not in take_page.content


@pytest.mark.parametrize("model", CHANGELISTS)
def test_every_change_page_opens_without_touching_a_public_media_url(admin_client, account, model):
    populate(1, account, admin_client.admin)
    WorkerLease.acquire("pump", "worker-1", 60)
    obj = apps.get_model("generations", model).objects.first()

    response = admin_client.get(reverse(f"admin:generations_{model}_change", args=[obj.pk]))

    assert response.status_code == 200
    assert b"/media/clips/" not in response.content
    assert b"/media/images/" not in response.content


def test_the_account_page_never_shows_the_secret(admin_client):
    account = FlowAccount.objects.create(label="Studio", bearer_token=SECRET)

    listing = admin_client.get(reverse("admin:generations_flowaccount_changelist"))
    page = admin_client.get(reverse("admin:generations_flowaccount_change", args=[account.pk]))

    for response in (listing, page):
        assert SECRET.encode() not in response.content
        assert SECRET[10:30].encode() not in response.content
        assert "ya29…1234".encode() in response.content


def account_form(**fields) -> dict[str, str]:
    return {
        "label": "Studio",
        "tier": "PAYGATE_TIER_ONE",
        "cool_down_until_0": "",
        "cool_down_until_1": "",
        "problem": "",
        "new_bearer_token": "",
        "new_session_cookie": "",
        # The "who may spend this account" inline, left empty.
        "grants-TOTAL_FORMS": "0",
        "grants-INITIAL_FORMS": "0",
        **fields,
    }


def test_an_admin_adds_an_account_by_pasting_a_token(admin_client):
    response = admin_client.post(
        reverse("admin:generations_flowaccount_add"),
        account_form(new_bearer_token=f"Bearer {SECRET}"),
    )

    assert response.status_code == 302
    assert FlowAccount.objects.get().bearer_token == SECRET


def test_adding_an_account_needs_exactly_one_secret(admin_client):
    url = reverse("admin:generations_flowaccount_add")

    neither = admin_client.post(url, account_form())
    both = admin_client.post(url, account_form(new_bearer_token=SECRET, new_session_cookie=COOKIE))

    assert b"Paste a bearer token or a session cookie." in neither.content
    assert b"not both" in both.content
    assert not FlowAccount.objects.exists()


def test_saving_with_empty_secret_boxes_keeps_the_secret(admin_client):
    account = FlowAccount.objects.create(label="Studio", bearer_token=SECRET)

    response = admin_client.post(
        reverse("admin:generations_flowaccount_change", args=[account.pk]),
        account_form(label="Renamed"),
    )

    assert response.status_code == 302
    account.refresh_from_db()
    assert account.label == "Renamed"
    assert account.bearer_token == SECRET


def test_pasting_a_new_cookie_replaces_the_credentials_and_clears_the_problem(admin_client):
    account = FlowAccount.objects.create(
        label="Studio", bearer_token=SECRET, access_token="minted", problem="Session expired."
    )

    admin_client.post(
        reverse("admin:generations_flowaccount_change", args=[account.pk]),
        account_form(new_session_cookie=COOKIE, problem="Session expired."),
    )

    account.refresh_from_db()
    assert account.session_cookie == COOKIE
    assert account.bearer_token == ""
    assert account.access_token == ""
    assert account.problem == ""


def take(project: Project, status: str, number: int = 1, **fields) -> Generation:
    scene = project.scenes.first() or Scene.objects.create(
        project=project,
        prompt="Waves",
        model_key="veo_3_1_i2v_s_fast",
        start_image=store_start_image(project, png(), None),
    )
    values = {
        "prompt": "Waves",
        "model_key": "veo_3_1_i2v_s_fast",
        "aspect": "landscape",
        "seed": 11,
        "start_image": scene.start_image,
        **fields,
    }
    # As create_generations does: the scene's counter has given this number.
    Scene.objects.filter(pk=scene.pk, last_take__lt=number).update(last_take=number)
    return Generation.objects.create(
        scene=scene, project=project, take=number, status=status, **values
    )


def act(client, action: str, takes: list[Generation]):
    return client.post(
        reverse("admin:generations_generation_changelist"),
        {"action": action, "_selected_action": [t.pk for t in takes]},
        follow=True,
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_cancel_stops_takes_in_flight_and_leaves_finished_ones(admin_client, project):
    running = take(project, Generation.Status.PENDING, 1)
    done = take(project, Generation.Status.READY, 2)

    response = act(admin_client, "cancel", [running, done])

    running.refresh_from_db()
    done.refresh_from_db()
    assert running.status == Generation.Status.CANCELLED
    assert "root" in running.reason
    assert done.status == Generation.Status.READY
    assert messages_of(response) == [
        "Cancelled 1 take. 1 had already finished and was left as they are."
    ]


def test_retry_makes_a_new_queued_take_with_the_same_request(
    admin_client, project, django_capture_on_commit_callbacks
):
    failed = take(project, Generation.Status.FAILED, 1, reason="Flow had an internal error.")

    with django_capture_on_commit_callbacks() as callbacks:
        response = act(admin_client, "retry_as_new_take", [failed])

    new = Generation.objects.exclude(pk=failed.pk).get()
    assert new.scene_id == failed.scene_id
    assert new.take == 2
    assert new.status == Generation.Status.QUEUED
    assert (new.prompt, new.model_key, new.seed) == (failed.prompt, failed.model_key, 11)
    assert new.requested_by == admin_client.admin
    assert len(callbacks) == 1
    assert messages_of(response) == ["Queued 1 new take."]


def test_retry_remakes_only_the_takes_the_card_would_and_says_why_it_left_the_others(
    admin_client, project, django_capture_on_commit_callbacks
):
    ready = [take(project, Generation.Status.READY, number) for number in range(1, 5)]
    rendering = take(project, Generation.Status.ACTIVE, 5)
    failed = take(project, Generation.Status.FAILED, 6, reason="Flow had an internal error.")

    with django_capture_on_commit_callbacks():
        response = act(admin_client, "retry_as_new_take", [*ready, rendering, failed])

    new = Generation.objects.get(status=Generation.Status.QUEUED)
    assert (new.take, new.requested_by) == (7, admin_client.admin)
    assert Generation.objects.count() == 7
    assert messages_of(response) == [
        "Queued 1 new take.",
        "Left 5 takes as they are (4 ready, 1 rendering). Only a failed, cancelled or "
        "uncertain take can be tried again.",
    ]


def test_retry_leaves_an_uncertain_take_to_the_action_that_says_it_may_pay_twice(
    admin_client, project, django_capture_on_commit_callbacks
):
    uncertain = take(project, Generation.Status.UNCERTAIN, 1)
    failed = take(project, Generation.Status.FAILED, 2, reason="Flow had an internal error.")

    with django_capture_on_commit_callbacks():
        response = act(admin_client, "retry_as_new_take", [uncertain, failed])

    uncertain.refresh_from_db()
    assert uncertain.tried_again_as is None
    assert Generation.objects.filter(status=Generation.Status.QUEUED).count() == 1
    assert messages_of(response) == [
        "Queued 1 new take.",
        "Left 1 take as they are (1 submission uncertain). An uncertain take may already be paid for: to "
        "make it anyway, use “Submit uncertain takes again (Flow may charge twice)”.",
    ]


def test_retry_explains_a_take_that_cannot_be_retried(admin_client, project):
    failed = take(project, Generation.Status.FAILED, 1, model_key="veo_0_retired")

    response = act(admin_client, "retry_as_new_take", [failed])

    assert Generation.objects.count() == 1
    assert any("no longer offered" in message for message in messages_of(response))


def test_poll_now_makes_waiting_takes_due_and_starts_the_worker(admin_client, project, task_queue):
    later = timezone.now() + timedelta(minutes=5)
    waiting = take(project, Generation.Status.PENDING, 1, next_check_at=later)
    done = take(project, Generation.Status.READY, 2)

    response = act(admin_client, "poll_now", [waiting, done])

    waiting.refresh_from_db()
    assert waiting.next_check_at <= timezone.now()
    assert task_queue.count() == 1
    assert messages_of(response) == [
        "Asked the worker to check 1 take now. 1 was not waiting on Flow."
    ]


def test_resubmit_only_touches_uncertain_takes(
    admin_client, project, django_capture_on_commit_callbacks
):
    uncertain = take(project, Generation.Status.UNCERTAIN, 1)
    failed = take(project, Generation.Status.FAILED, 2)

    with django_capture_on_commit_callbacks():
        response = act(admin_client, "resubmit", [uncertain, failed])

    uncertain.refresh_from_db()
    assert Generation.objects.filter(status=Generation.Status.QUEUED).count() == 1
    assert uncertain.tried_again_as == 3
    assert "Submitted 1 take again." in messages_of(response)
    assert any("Only a take whose submission is uncertain" in m for m in messages_of(response))


@pytest.mark.parametrize("action", ["resubmit", "retry_as_new_take"])
def test_an_uncertain_take_submitted_again_is_not_submitted_a_third_time(
    admin_client, project, action, django_capture_on_commit_callbacks
):
    uncertain = take(project, Generation.Status.UNCERTAIN, 1)
    with django_capture_on_commit_callbacks():
        act(admin_client, "resubmit", [uncertain])

    with django_capture_on_commit_callbacks() as callbacks:
        response = act(admin_client, action, [uncertain])

    assert list(Generation.objects.values_list("take", flat=True)) == [1, 2]
    assert callbacks == []
    assert messages_of(response) == [
        "Scene 1 · take 1: Take 1 was already submitted again as take 2."
    ]
    uncertain.refresh_from_db()
    assert (uncertain.status, uncertain.tried_again_as) == (Generation.Status.UNCERTAIN, 2)


def test_the_take_changelist_offers_no_submit_again_for_a_take_submitted_again(
    admin_client, project, django_capture_on_commit_callbacks
):
    uncertain = take(project, Generation.Status.UNCERTAIN, 1)
    with django_capture_on_commit_callbacks():
        act(admin_client, "resubmit", [uncertain])

    page = admin_client.get(
        reverse("admin:generations_generation_change", args=[uncertain.pk])
    ).text

    assert "Submitted again as take 2." in page


@pytest.mark.parametrize(
    "action, status, said",
    [
        (
            "resubmit",
            Generation.Status.UNCERTAIN,
            [
                "Submitted 1 take again.",
                "Scene 1 · take 2: Only a take whose submission is uncertain can be submitted "
                "again.",
            ],
        ),
        (
            "retry_as_new_take",
            Generation.Status.FAILED,
            [
                "Queued 1 new take.",
                "Left 1 take as they are (1 ready). Only a failed, cancelled or uncertain take "
                "can be tried again.",
            ],
        ),
    ],
)
def test_each_take_is_judged_as_it_is_now_not_as_the_changelist_read_it(
    admin_client, project, action, status, said, monkeypatch, django_capture_on_commit_callbacks
):
    first = take(project, status, 1)
    second = take(project, status, 2)
    make = Generation.retry_as_new_take

    def meanwhile(generation, user):
        # While the first is being made again, the worker finishes the second (Flow's late
        # answer for an uncertain one, a clip fetched again for a failed one).
        Generation.objects.filter(pk__in=[first.pk, second.pk]).exclude(pk=generation.pk).update(
            status=Generation.Status.READY
        )
        return make(generation, user)

    monkeypatch.setattr(Generation, "retry_as_new_take", meanwhile)

    with django_capture_on_commit_callbacks():
        response = act(admin_client, action, [first, second])

    assert Generation.objects.count() == 3
    ready = Generation.objects.get(status=Generation.Status.READY)
    assert ready.tried_again_as is None
    assert messages_of(response) == said


def test_images_cannot_be_added_around_the_checks(admin_client):
    response = admin_client.get(reverse("admin:generations_imageasset_add"))

    assert response.status_code == 403


def test_a_staff_member_without_permissions_cannot_run_actions(client, project):
    staff = User.objects.create_user("staff", password="x", is_staff=True)
    client.force_login(staff)
    running = take(project, Generation.Status.PENDING)

    response = client.post(
        reverse("admin:generations_generation_changelist"),
        {"action": "cancel", "_selected_action": [running.pk]},
    )

    running.refresh_from_db()
    assert response.status_code == 403
    assert running.status == Generation.Status.PENDING


# --- Open storyboards follow scene edits made here ---------------------------------------------


def admin_scene(project: Project, position: int) -> Scene:
    return Scene.objects.create(
        project=project, position=position, prompt="Waves", model_key="veo_3_1_i2v_s_fast"
    )


def test_deleting_scenes_in_the_admin_tells_open_storyboards(admin_client, project):
    scenes = [admin_scene(project, 0), admin_scene(project, 1)]

    admin_client.post(
        reverse("admin:generations_scene_changelist"),
        {"action": "delete_selected", "_selected_action": [scenes[0].pk], "post": "yes"},
    )

    project.refresh_from_db()
    assert not Scene.objects.filter(pk=scenes[0].pk).exists()
    assert project.scenes_changed is not None


def test_a_project_saved_from_a_copy_loaded_before_bob_added_a_scene_still_tells_storyboards(
    project,
):
    loaded_before = Project.objects.get(pk=project.pk)
    admin_scene(project, 0)
    project.mark_scenes_changed()
    stamped = Project.objects.get(pk=project.pk).scenes_changed

    loaded_before.name = "Triton"
    loaded_before.save()

    fresh = Project.objects.get(pk=project.pk)
    assert (fresh.name, fresh.scenes_changed) == ("Triton", stamped)
    assert stamped is not None


def test_moving_a_scene_in_the_admin_refreshes_its_card_and_the_list(admin_client, project):
    scene = admin_scene(project, 0)
    before = scene.updated
    form = {
        "project": project.pk,
        "position": 3,
        "title": "Moved",
        "prompt": "Waves",
        "aspect": "landscape",
        "mode": "image",
        "model_key": "veo_3_1_i2v_s_fast",
        "seed": "",
        "takes": 1,
        "start_image": "",
        "created_0": "2026-01-01",
        "created_1": "00:00:00",
        "generations-TOTAL_FORMS": 0,
        "generations-INITIAL_FORMS": 0,
    }

    response = admin_client.post(reverse("admin:generations_scene_change", args=[scene.pk]), form)

    assert response.status_code == 302, response.content[:2000]
    scene.refresh_from_db()
    project.refresh_from_db()
    assert scene.position == 3
    assert scene.updated > before
    assert project.scenes_changed is not None


# --- Budgets and allowances: the Spend page's rules, and the unit an account move changes ----


def project_page_form(
    project: Project, account: FlowAccount | None = None, **members: dict[str, str]
) -> dict[str, str]:
    """The project's change page as the admin sends it back, its members' and scenes' rows
    included; ``members`` changes a row's fields by username, e.g. ``bob={"role": "viewer"}``."""
    rows = list(project.memberships.select_related("user").order_by("user__username"))
    scenes = list(project.scenes.order_by("position"))
    form = {
        "name": project.name,
        "account": str((account or project.account).pk),
        "created_by": str(project.created_by_id or ""),
        "grant_account": "on",
        "memberships-TOTAL_FORMS": str(len(rows)),
        "memberships-INITIAL_FORMS": str(len(rows)),
        "later_accounts-TOTAL_FORMS": "0",
        "later_accounts-INITIAL_FORMS": "0",
        "scenes-TOTAL_FORMS": str(len(scenes)),
        "scenes-INITIAL_FORMS": str(len(scenes)),
    }
    for index, scene in enumerate(scenes):
        fields = {
            "id": str(scene.pk),
            "project": str(project.pk),
            "position": str(scene.position),
            "title": scene.title,
            "prompt": scene.prompt,
            "aspect": scene.aspect,
            "model_key": scene.model_key,
            "seed": "" if scene.seed is None else str(scene.seed),
            "takes": str(scene.takes),
        }
        form |= {f"scenes-{index}-{name}": value for name, value in fields.items()}
    for index, row in enumerate(rows):
        allowance = row.monthly_allowance
        fields = {
            "id": str(row.pk),
            "project": str(project.pk),
            "user": str(row.user_id),
            "role": row.role,
            "monthly_allowance": "" if allowance is None else str(allowance),
            **members.get(row.user.username, {}),
        }
        form |= {f"memberships-{index}-{name}": value for name, value in fields.items()}
    return form


def limits_of(project: Project) -> dict[str, object]:
    return {
        "budget": Project.objects.get(pk=project.pk).monthly_budget,
        **dict(
            project.memberships.order_by("user__username").values_list(
                "user__username", "monthly_allowance"
            )
        ),
    }


def cloud_account() -> FlowAccount:
    return FlowAccount.objects.create(
        label="Cloud", kind=FlowAccount.Kind.VERTEX, vertex_project="studio-4821"
    )


def type_bobs_allowance(admin_client, project, bob, typed: str):
    """Staff type ``typed`` as bob's allowance on the project's page, then on his membership's."""
    bobs = Membership.objects.get(project=project, user=bob)
    on_project = admin_client.post(
        reverse("admin:generations_project_change", args=[project.pk]),
        project_page_form(project, bob={"monthly_allowance": typed}),
    )
    on_project_limit = limits_of(project)["bob"]
    Membership.objects.filter(pk=bobs.pk).update(monthly_allowance=None)
    on_membership = admin_client.post(
        reverse("admin:generations_membership_change", args=[bobs.pk]),
        {"project": project.pk, "user": bob.pk, "role": bobs.role, "monthly_allowance": typed},
    )
    return on_project, on_project_limit, on_membership, limits_of(project)["bob"]


@pytest.mark.parametrize(
    "typed, told",
    [
        ("12.5", "Flow counts whole credits; type a whole number, or leave it empty for no limit."),
        ("3000000000", "That is more than Flowsite can count; type at most 2147483647."),
        *REFUSED_CREDITS,
    ],
)
def test_staff_typing_an_allowance_the_spend_page_would_refuse_are_told_the_same_words(
    admin_client, project, bob, typed, told
):
    on_project, then, on_membership, now = type_bobs_allowance(admin_client, project, bob, typed)

    assert on_project.status_code == on_membership.status_code == 200
    assert told in on_project.text
    assert told in on_membership.text
    assert then is None and now is None


@pytest.mark.parametrize("typed", ["1,000", " 1,000 ", "1000", "1,000.00"])
def test_staff_type_bobs_allowance_as_the_spend_page_takes_it(admin_client, project, bob, typed):
    on_project, then, on_membership, now = type_bobs_allowance(admin_client, project, bob, typed)

    assert on_project.status_code == on_membership.status_code == 302
    assert then == now == 1000


@pytest.mark.parametrize(
    "typed, told",
    [
        ("$1,250.50", None),
        ("7,5", "Type cents after a point, e.g. 7.50; a comma may only group thousands"),
        ("7.555", "Vertex AI counts cents: type at most two decimals, e.g. 7.50."),
        ("NaN", DOLLARS_HINT),
    ],
)
def test_staff_type_dollars_on_a_vertex_ai_project_as_its_spend_page_takes_them(
    admin_client, project, bob, typed, told
):
    FlowAccount.objects.filter(pk=project.account_id).update(
        kind=FlowAccount.Kind.VERTEX, vertex_project="demo"
    )

    on_project, then, on_membership, now = type_bobs_allowance(admin_client, project, bob, typed)

    if told is None:
        assert then == now == Decimal("1250.50")
    else:
        assert told in on_project.text and told in on_membership.text
        assert then is None and now is None


def test_staff_give_bob_7_50_on_a_vertex_ai_project(admin_client, project, bob):
    FlowAccount.objects.filter(pk=project.account_id).update(
        kind=FlowAccount.Kind.VERTEX, vertex_project="demo"
    )

    response = admin_client.post(
        reverse("admin:generations_project_change", args=[project.pk]),
        project_page_form(project, bob={"monthly_allowance": "7.50"}),
    )

    assert response.status_code == 302
    assert limits_of(project)["bob"] == Decimal("7.50")


def test_staff_moving_poseidon_to_vertex_ai_clear_its_credit_limits_and_are_told(
    admin_client, project, bob
):
    cloud = cloud_account()
    Project.objects.filter(pk=project.pk).update(monthly_budget=1000)
    Membership.objects.filter(user=bob).update(monthly_allowance=50)

    response = admin_client.post(
        reverse("admin:generations_project_change", args=[project.pk]),
        project_page_form(Project.objects.get(pk=project.pk), account=cloud),
        follow=True,
    )

    assert (
        "The monthly budget of 1,000 credits and the allowance of bob (50 credits) were cleared: "
        "Vertex AI accounts are paid in US dollars. Set them again on the Spend page."
        in response.text
    )
    assert limits_of(project) == {"budget": None, "alice": None, "bob": None, "carol": None}
    assert Project.objects.get(pk=project.pk).account == cloud
    # The project's owners read on its audit page who moved it, and what went with the unit.
    event = AuditEvent.objects.get(action=AuditEvent.Action.ACCOUNTS_ORDERED)
    assert (event.actor_name, event.project) == ("root", project)
    assert event.details == {
        "accounts": ["Cloud"],
        "budget_cleared": "1,000 credits",
        "allowances_cleared": ["bob (50 credits)"],
    }


def test_staff_moving_poseidon_back_to_flow_clear_dollar_allowances_even_in_a_row_they_edited(
    admin_client, project, account, bob, carol
):
    # $12.50 is no number of credits: the row must not be refused for it, nor written back.
    project.set_accounts([cloud_account()])
    Membership.objects.filter(user=bob).update(monthly_allowance=Decimal("12.50"))
    Membership.objects.filter(user=carol).update(monthly_allowance=Decimal("2.25"))

    response = admin_client.post(
        reverse("admin:generations_project_change", args=[project.pk]),
        project_page_form(project, account=account, bob={"role": "viewer"}),
        follow=True,
    )

    assert (
        "The allowances of 2 members were cleared: Flow accounts are paid in credits. Set them "
        "again on the Spend page." in response.text
    )
    assert limits_of(project) == {"budget": None, "alice": None, "bob": None, "carol": None}
    assert Membership.objects.get(project=project, user=bob).role == "viewer"
    assert Project.objects.get(pk=project.pk).account == account


def test_staff_moving_poseidon_to_another_flow_account_keep_its_limits(admin_client, project, bob):
    other = FlowAccount.objects.create(label="Other", tier=TIER_ONE, bearer_token="ya29.other")
    Project.objects.filter(pk=project.pk).update(monthly_budget=1000)
    Membership.objects.filter(user=bob).update(monthly_allowance=50)

    response = admin_client.post(
        reverse("admin:generations_project_change", args=[project.pk]),
        project_page_form(Project.objects.get(pk=project.pk), account=other),
        follow=True,
    )

    assert "cleared" not in response.text
    assert limits_of(project) == {"budget": 1000, "alice": None, "bob": 50, "carol": None}
    assert Project.objects.get(pk=project.pk).account == other


def test_staff_giving_an_account_to_a_project_without_one_keep_its_later_accounts(
    admin_client, project, account
):
    other = FlowAccount.objects.create(label="Other", tier=TIER_ONE, bearer_token="ya29.other")
    project.set_accounts([account, other])
    Project.objects.filter(pk=project.pk).update(account=None)

    response = admin_client.post(
        reverse("admin:generations_project_change", args=[project.pk]),
        project_page_form(project, account=account),
    )

    assert response.status_code == 302
    assert Project.objects.get(pk=project.pk).accounts_in_order() == [account, other]


# --- An account of the other engine: refused while the project has scenes, as in Settings -----


def test_staff_cannot_move_poseidon_with_vertex_ai_scenes_to_a_flow_account(
    admin_client, project, account
):
    project.set_accounts([cloud_account()])
    scene = make_scene(project, model_key=VERTEX_FAST, duration=4)

    response = admin_client.post(
        reverse("admin:generations_project_change", args=[project.pk]),
        project_page_form(project, account=account),
    )

    assert response.status_code == 200
    assert (
        "The scenes of Poseidon are made for Vertex AI; choose Vertex AI accounts, or start a "
        "new project for Google Flow." in response.text
    )
    assert Project.objects.get(pk=project.pk).account.label == "Cloud"
    scene.refresh_from_db()
    assert (scene.model_key, scene.duration) == (VERTEX_FAST, 4)
    assert not AuditEvent.objects.exists()


def test_staff_cannot_move_poseidon_with_flow_scenes_to_a_vertex_ai_account(
    admin_client, project, account
):
    make_scene(project)

    response = admin_client.post(
        reverse("admin:generations_project_change", args=[project.pk]),
        project_page_form(project, account=cloud_account()),
    )

    assert response.status_code == 200
    assert (
        "The scenes of Poseidon are made for Google Flow; choose Google Flow accounts, or "
        "start a new project for Vertex AI." in response.text
    )
    # The account's refusal alone: the scenes are judged on the account they were made for.
    assert "is a Google Flow model" not in response.text
    assert Project.objects.get(pk=project.pk).account == account


def test_staff_move_poseidon_without_scenes_to_vertex_ai(admin_client, project):
    cloud = cloud_account()

    response = admin_client.post(
        reverse("admin:generations_project_change", args=[project.pk]),
        project_page_form(project, account=cloud),
    )

    assert response.status_code == 302
    assert Project.objects.get(pk=project.pk).account == cloud


# --- Deleting a project here does what Settings › Delete does: its files go, the trail says so --


def project_with_files(project: Project, alice: User) -> list[Path]:
    """A scene with a start image, a take with its clip and poster, and an upscale of it; the
    files they stored."""
    scene = make_scene(project, make_image(project, alice))
    take = attach_clip(make_take(scene, alice, status=Generation.Status.READY), b"\0" * 64, b"\1")
    upscale = Upscale.objects.create(
        project=project, take=take, requested_by=alice, resolution="1080p", status="ready"
    )
    upscale.video.name = upscale.video.storage.save(
        f"{take.media_dir()}/upscale-1080p.mp4", ContentFile(b"\2" * 64)
    )
    upscale.save(update_fields=["video"])
    return [Path(field.path) for field in (scene.start_image.file, take.video, take.poster)] + [
        Path(upscale.video.path)
    ]


def test_staff_deleting_poseidon_on_its_delete_page_remove_its_files_and_record_it(
    admin_client, project, alice, django_capture_on_commit_callbacks
):
    files = project_with_files(project, alice)
    assert all(path.exists() for path in files)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:generations_project_delete", args=[project.pk]), {"post": "yes"}
        )

    assert response.status_code == 302
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not any(path.exists() for path in files)
    deleted = AuditEvent.objects.get(action=AuditEvent.Action.PROJECT_DELETED)
    assert (deleted.actor_name, deleted.project_name, deleted.details) == (
        "root",
        "Poseidon",
        {"scenes": 1, "takes": 1},
    )


def test_staff_deleting_two_projects_from_the_list_remove_the_files_of_both_and_record_each(
    admin_client, project, alice, account, django_capture_on_commit_callbacks
):
    triton = Project.objects.create(name="Triton", account=account, created_by=alice)
    files = project_with_files(project, alice) + project_with_files(triton, alice)
    kept = Project.objects.create(name="Kept", account=account, created_by=alice)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:generations_project_changelist"),
            {
                "action": "delete_selected",
                "_selected_action": [project.pk, triton.pk],
                "post": "yes",
            },
        )

    assert response.status_code == 302
    assert list(Project.objects.all()) == [kept]
    assert not any(path.exists() for path in files)
    events = AuditEvent.objects.filter(action=AuditEvent.Action.PROJECT_DELETED)
    assert sorted(events.values_list("actor_name", "project_name")) == [
        ("root", "Poseidon"),
        ("root", "Triton"),
    ]


# --- Staff's changes to grants and members are in the trail, as the owners' pages record them --


def trail(*actions: str) -> list[tuple[str, str, str, dict]]:
    """The events of ``actions``, oldest first: who, what, in which project, the details."""
    return [
        (event.actor_name, event.action, event.project_name, event.details)
        for event in AuditEvent.objects.filter(action__in=actions).order_by("id")
    ]


GRANTS = (AuditEvent.Action.ACCOUNT_GRANTED, AuditEvent.Action.ACCOUNT_REVOKED)
MEMBERS = (
    AuditEvent.Action.MEMBER_ADDED,
    AuditEvent.Action.MEMBER_ROLE,
    AuditEvent.Action.MEMBER_REMOVED,
    AuditEvent.Action.ALLOWANCE_CHANGED,
)


def test_staff_moving_alices_grant_to_charlie_record_it_revoked_and_granted(
    admin_client, project, account, alice, charlie
):
    grant = AccountGrant.objects.get(account=account, user=alice)

    response = admin_client.post(
        reverse("admin:generations_accountgrant_change", args=[grant.pk]),
        {"account": account.pk, "user": charlie.pk, "project": ""},
    )

    assert response.status_code == 302
    assert AccountGrant.objects.get(pk=grant.pk).user == charlie
    assert trail(*GRANTS) == [
        ("root", AuditEvent.Action.ACCOUNT_REVOKED, "", {"account": "Studio", "to": "alice"}),
        ("root", AuditEvent.Action.ACCOUNT_GRANTED, "", {"account": "Studio", "to": "charlie"}),
    ]


def test_staff_saving_a_grant_unchanged_record_nothing(admin_client, project, account, alice):
    grant = AccountGrant.objects.get(account=account, user=alice)

    admin_client.post(
        reverse("admin:generations_accountgrant_change", args=[grant.pk]),
        {"account": account.pk, "user": alice.pk, "project": ""},
    )

    assert trail(*GRANTS) == []


def test_staff_moving_a_grant_to_poseidon_on_the_accounts_page_record_it(
    admin_client, project, account, alice
):
    grant = AccountGrant.objects.get(account=account, user=alice)

    response = admin_client.post(
        reverse("admin:generations_flowaccount_change", args=[account.pk]),
        account_form(
            **{
                "grants-TOTAL_FORMS": "1",
                "grants-INITIAL_FORMS": "1",
                "grants-0-id": str(grant.pk),
                "grants-0-account": str(account.pk),
                "grants-0-user": "",
                "grants-0-project": str(project.pk),
            }
        ),
    )

    assert response.status_code == 302
    assert AccountGrant.objects.get(pk=grant.pk).project == project
    assert trail(*GRANTS) == [
        ("root", AuditEvent.Action.ACCOUNT_REVOKED, "", {"account": "Studio", "to": "alice"}),
        (
            "root",
            AuditEvent.Action.ACCOUNT_GRANTED,
            "Poseidon",
            {"account": "Studio", "to": "project Poseidon"},
        ),
    ]


def test_staff_granting_the_account_on_poseidons_page_record_it(admin_client, project):
    other = FlowAccount.objects.create(label="Other", tier=TIER_ONE, bearer_token="ya29.other")

    response = admin_client.post(
        reverse("admin:generations_project_change", args=[project.pk]),
        project_page_form(project, account=other),
    )

    assert response.status_code == 302
    assert trail(*GRANTS) == [
        (
            "root",
            AuditEvent.Action.ACCOUNT_GRANTED,
            "Poseidon",
            {"account": "Other", "to": "project Poseidon"},
        )
    ]
    # Saved again with the box still ticked: the grant exists, nothing new is recorded.
    admin_client.post(
        reverse("admin:generations_project_change", args=[project.pk]),
        project_page_form(project, account=other),
    )
    assert len(trail(*GRANTS)) == 1


def test_staff_changing_bobs_role_and_allowance_on_his_membership_page_record_both(
    admin_client, project, bob
):
    bobs = Membership.objects.get(project=project, user=bob)

    response = admin_client.post(
        reverse("admin:generations_membership_change", args=[bobs.pk]),
        {"project": project.pk, "user": bob.pk, "role": "viewer", "monthly_allowance": "50"},
    )

    assert response.status_code == 302
    assert trail(*MEMBERS) == [
        (
            "root",
            AuditEvent.Action.MEMBER_ROLE,
            "Poseidon",
            {"member": "bob", "old": "editor", "new": "viewer"},
        ),
        (
            "root",
            AuditEvent.Action.ALLOWANCE_CHANGED,
            "Poseidon",
            {"member": "bob", "old": None, "new": 50, "unit": "credits"},
        ),
    ]


def test_staff_adding_charlie_and_removing_carol_on_the_membership_pages_record_both(
    admin_client, project, carol, charlie
):
    added = admin_client.post(
        reverse("admin:generations_membership_add"),
        {"project": project.pk, "user": charlie.pk, "role": "viewer", "monthly_allowance": ""},
    )
    carols = Membership.objects.get(project=project, user=carol)
    removed = admin_client.post(
        reverse("admin:generations_membership_delete", args=[carols.pk]), {"post": "yes"}
    )

    assert added.status_code == removed.status_code == 302
    assert trail(*MEMBERS) == [
        (
            "root",
            AuditEvent.Action.MEMBER_ADDED,
            "Poseidon",
            {"member": "charlie", "role": "viewer"},
        ),
        (
            "root",
            AuditEvent.Action.MEMBER_REMOVED,
            "Poseidon",
            {"member": "carol", "role": "viewer"},
        ),
    ]


def test_staff_removing_bob_and_carol_from_the_membership_list_record_each(
    admin_client, project, bob, carol
):
    response = admin_client.post(
        reverse("admin:generations_membership_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": list(
                project.memberships.filter(user__in=[bob, carol]).values_list("pk", flat=True)
            ),
            "post": "yes",
        },
    )

    assert response.status_code == 302
    assert sorted(details["member"] for *_, details in trail(*MEMBERS)) == ["bob", "carol"]
    assert {action for _, action, *_ in trail(*MEMBERS)} == {AuditEvent.Action.MEMBER_REMOVED}


def test_staff_editing_members_on_poseidons_page_record_each_change(
    admin_client, project, carol, charlie
):
    FlowAccount.objects.filter(pk=project.account_id).update(
        kind=FlowAccount.Kind.VERTEX, vertex_project="demo"
    )
    form = project_page_form(project, bob={"role": "viewer", "monthly_allowance": "7.50"})
    carols = next(key for key, value in form.items() if value == str(carol.pk))
    form[carols.replace("-user", "-DELETE")] = "on"
    form |= {
        "memberships-TOTAL_FORMS": "4",
        "memberships-3-project": str(project.pk),
        "memberships-3-user": str(charlie.pk),
        "memberships-3-role": "editor",
        "memberships-3-monthly_allowance": "",
    }

    response = admin_client.post(
        reverse("admin:generations_project_change", args=[project.pk]), form
    )

    assert response.status_code == 302, response.text[:3000]
    assert trail(*MEMBERS) == [
        (
            "root",
            AuditEvent.Action.MEMBER_ADDED,
            "Poseidon",
            {"member": "charlie", "role": "editor"},
        ),
        (
            "root",
            AuditEvent.Action.MEMBER_ROLE,
            "Poseidon",
            {"member": "bob", "old": "editor", "new": "viewer"},
        ),
        (
            "root",
            AuditEvent.Action.ALLOWANCE_CHANGED,
            "Poseidon",
            {"member": "bob", "old": None, "new": "7.50", "unit": "USD"},
        ),
        (
            "root",
            AuditEvent.Action.MEMBER_REMOVED,
            "Poseidon",
            {"member": "carol", "role": "viewer"},
        ),
    ]


def test_staff_cannot_demote_alice_the_only_owner_on_her_membership_page(admin_client, project):
    alices = Membership.objects.get(project=project, role=Membership.Role.OWNER)

    response = admin_client.post(
        reverse("admin:generations_membership_change", args=[alices.pk]),
        {"project": project.pk, "user": alices.user_id, "role": "editor", "monthly_allowance": ""},
    )

    assert response.status_code == 200
    assert "alice is the only owner of Poseidon; make someone else an owner first." in (
        response.text
    )
    alices.refresh_from_db()
    assert alices.role == Membership.Role.OWNER
    assert trail(*MEMBERS) == []


def test_staff_can_demote_alice_once_bob_is_an_owner_too(admin_client, project, bob):
    Membership.objects.filter(project=project, user=bob).update(role=Membership.Role.OWNER)
    alices = Membership.objects.get(project=project, user__username="alice")

    response = admin_client.post(
        reverse("admin:generations_membership_change", args=[alices.pk]),
        {"project": project.pk, "user": alices.user_id, "role": "editor", "monthly_allowance": ""},
    )

    assert response.status_code == 302
    alices.refresh_from_db()
    assert alices.role == Membership.Role.EDITOR


def test_staff_cannot_delete_alice_the_only_owner_alone_or_in_the_bulk_action(
    admin_client, project, bob
):
    alices = Membership.objects.get(project=project, user__username="alice")
    bobs = Membership.objects.get(project=project, user=bob)
    refusal = "alice is the only owner of Poseidon; make someone else an owner first."

    alone = admin_client.post(
        reverse("admin:generations_membership_delete", args=[alices.pk]), {"post": "yes"}
    )
    bulk = admin_client.post(
        reverse("admin:generations_membership_changelist"),
        {"action": "delete_selected", "_selected_action": [alices.pk, bobs.pk], "post": "yes"},
    )

    assert alone.status_code == bulk.status_code == 200
    assert refusal in alone.text and refusal in bulk.text
    assert project.memberships.filter(pk__in=[alices.pk, bobs.pk]).count() == 2
    assert trail(*MEMBERS) == []


def test_staff_cannot_leave_poseidon_ownerless_on_its_page_unless_someone_becomes_owner(
    admin_client, project
):
    url = reverse("admin:generations_project_change", args=[project.pk])

    ownerless = admin_client.post(url, project_page_form(project, alice={"role": "viewer"}))
    handed_over = admin_client.post(
        url, project_page_form(project, alice={"role": "viewer"}, bob={"role": "owner"})
    )

    assert ownerless.status_code == 200
    assert "alice is the only owner of Poseidon; make someone else an owner first." in (
        ownerless.text
    )
    assert handed_over.status_code == 302
    roles = dict(project.memberships.values_list("user__username", "role"))
    assert roles["alice"] == "viewer" and roles["bob"] == "owner"


# --- Deleting a person never leaves a project with members but no owner ------------------------


def delete_people(client, *users: User):
    """Delete ``users`` in the admin: on the one's delete page, several with the bulk action."""
    if len(users) == 1:
        url = reverse("admin:auth_user_delete", args=[users[0].pk])
        return client.post(url, {"post": "yes"}, follow=True)
    return client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [u.pk for u in users], "post": "yes"},
        follow=True,
    )


def test_staff_cannot_delete_alice_the_only_owner_of_poseidon_alone_or_in_the_bulk_action(
    admin_client, project, charlie
):
    refusal = (
        "alice is the only owner of Poseidon; make someone else an owner first, or delete "
        "the project."
    )

    alone = delete_people(admin_client, project.created_by)
    bulk = delete_people(admin_client, project.created_by, charlie)

    assert refusal in alone.text and refusal in bulk.text
    assert User.objects.filter(username__in=["alice", "charlie"]).count() == 2
    assert project.memberships.filter(role=Membership.Role.OWNER).exists()


def test_staff_cannot_delete_alice_and_bob_who_own_poseidon_together_while_carol_stays(
    admin_client, project, bob
):
    Membership.objects.filter(project=project, user=bob).update(role=Membership.Role.OWNER)

    response = delete_people(admin_client, project.created_by, bob)

    assert "alice, bob are the only owners of Poseidon; make someone else an owner first" in (
        response.text
    )
    assert User.objects.filter(username__in=["alice", "bob"]).count() == 2


def test_staff_delete_alice_once_bob_is_an_owner_too(admin_client, project, bob):
    Membership.objects.filter(project=project, user=bob).update(role=Membership.Role.OWNER)

    response = delete_people(admin_client, project.created_by)

    assert messages_of(response) == ["The user “alice” was deleted successfully."]
    assert list(project.memberships.values_list("user__username", "role")) == [
        ("bob", "owner"),
        ("carol", "viewer"),
    ]


def test_staff_deleting_charlie_the_only_member_of_his_project_are_told_it_is_left_to_them(
    admin_client, charlie
):
    zeus = Project.objects.create(name="Zeus", created_by=charlie)
    zeus.add_member(charlie, Membership.Role.OWNER)

    response = delete_people(admin_client, charlie)

    assert messages_of(response) == [
        "Nobody is a member of Zeus now, so only staff reach it, here in the admin: give it an "
        "owner on its page, or delete it.",
        "The user “charlie” was deleted successfully.",
    ]
    assert Project.objects.filter(name="Zeus").exists()


def test_staff_deleting_everyone_in_poseidon_at_once_leave_it_without_members(
    admin_client, project, bob, carol
):
    response = delete_people(admin_client, project.created_by, bob, carol)

    assert messages_of(response)[0].startswith("Nobody is a member of Poseidon now")
    assert not project.memberships.exists()
    assert Project.objects.filter(pk=project.pk).exists()


def test_staff_deleting_bob_are_recorded_by_name_and_read_in_the_trail(admin_client, project, bob):
    response = delete_people(admin_client, bob)

    assert messages_of(response) == ["The user “bob” was deleted successfully."]
    assert trail(AuditEvent.Action.USER_DELETED) == [
        ("root", "user.deleted", "", {"user": "bob", "projects": ["Poseidon"]})
    ]
    listing = admin_client.get(reverse("admin:generations_auditevent_changelist")).text
    assert "User deleted" in listing
    assert "Deleted the user bob, who was in Poseidon" in listing


def test_staff_deleting_three_people_at_once_record_each_of_them_once(
    admin_client, project, bob, carol, charlie
):
    delete_people(admin_client, bob, carol, charlie)

    assert trail(AuditEvent.Action.USER_DELETED) == [
        ("root", "user.deleted", "", {"user": "bob", "projects": ["Poseidon"]}),
        ("root", "user.deleted", "", {"user": "carol", "projects": ["Poseidon"]}),
        ("root", "user.deleted", "", {"user": "charlie"}),
    ]


def test_a_refused_delete_of_alice_records_nothing(admin_client, project, charlie):
    delete_people(admin_client, project.created_by)
    delete_people(admin_client, project.created_by, charlie)

    assert trail(AuditEvent.Action.USER_DELETED) == []


def test_staff_deleting_their_own_user_are_still_named_in_the_trail(admin_client, bob):
    delete_people(admin_client, admin_client.admin, bob)

    assert not User.objects.filter(username="root").exists()
    assert trail(AuditEvent.Action.USER_DELETED) == [
        ("root", "user.deleted", "", {"user": "bob"}),
        ("root", "user.deleted", "", {"user": "root"}),
    ]
    assert not AuditEvent.objects.filter(actor__isnull=False).exists()
