"""Extend, upscale and last frame → next scene through the studio and the worker: one POST
each, refused in words, never paid twice, counted against budgets, kept beside the take."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from html import unescape

import av
import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from generations import take_actions
from generations.engines.catalogue import TIER_TWO
from generations.film import Segment, probe, render_film
from generations.film_tasks import clip_files, plan, snapshot
from generations.models import (
    AccountGrant,
    CannotGenerate,
    FlowAccount,
    Generation,
    Pick,
    Scene,
    Upscale,
)
from generations.tasks import run_pass
from tests.conftest import make_ready_scene, make_scene
from tests.tasks_support import UNCERTAIN_WORDS, settle
from tests.test_faults import closed_port_url
from tests.views_support import (
    assert_take_offers_refused,
    button_disabled,
    client_for,
    forms_to,
    htmx_client_for,
    make_take,
)

S = Generation.Status


def ready_take(project, alice, prompt="a seahorse trots along the harbour wall") -> Generation:
    [take] = settle(make_ready_scene(project, prompt).generate(alice))
    assert take.status == S.READY, take.reason
    return take


def settle_upscale(upscale: Upscale, *, ahead=timedelta(0), timeout: float = 30.0) -> Upscale:
    deadline = time.monotonic() + timeout
    while True:
        run_pass(now=timezone.now() + ahead)
        upscale.refresh_from_db()
        if upscale.status in (S.READY, S.FAILED, S.UNCERTAIN, S.CANCELLED):
            return upscale
        if time.monotonic() > deadline:
            raise AssertionError(f"upscale did not settle: {upscale.status} {upscale.reason}")
        time.sleep(0.05)


# --- A project whose account was removed ----------------------------------------------------

NO_ACCOUNT = "The project has no Flow or Vertex AI account to spend; ask an admin to set one."


def test_every_action_of_a_project_without_an_account_names_both_engines(project, alice):
    scene = make_ready_scene(project)
    take = Generation.objects.create(
        scene=scene,
        project=project,
        take=1,
        prompt=scene.prompt,
        model_key=scene.model_key,
        aspect=scene.aspect,
        seed=1,
        status=S.READY,
    )
    project.account = None
    project.save(update_fields=["account"])
    project.refresh_from_db()
    scene.refresh_from_db()
    take.refresh_from_db()

    # Nothing says which engine the project was meant for, so no sentence names only Flow.
    assert project.spending_problem() == NO_ACCOUNT
    assert scene.generation_problem() == NO_ACCOUNT
    assert take_actions.extend_problem(take, None) == NO_ACCOUNT
    assert take_actions.upscale_problem(take, None, "1080p") == NO_ACCOUNT
    # Only a failed (cancelled, uncertain) take can be tried again at all.
    take.status = S.FAILED
    assert take.retry_problem() == NO_ACCOUNT


# --- A project that may no longer spend its account ------------------------------------------

REVOKED = (
    "This project may not spend the Flow account Studio: staff have not granted it to the "
    "project or to one of its owners. Ask an admin."
)


def ready_and_failed_takes(project, alice) -> tuple[Generation, Generation]:
    """A scene with a ready take Flow made on the project's account and a failed one."""
    scene = make_ready_scene(project)
    ready = make_take(
        scene,
        alice,
        status=S.READY,
        media_generation_id="CAUSmade",
        video=f"clips/{project.uuid}/ready.mp4",
    )
    failed = make_take(scene, alice, status=S.FAILED, reason="Flow refused the prompt.")
    return ready, failed


def test_once_studios_grant_is_revoked_bobs_takes_offer_no_extend_upscale_or_retry_at_a_price(
    project, account, alice, bob
):
    ready, failed = ready_and_failed_takes(project, alice)
    uncertain = make_take(ready.scene, alice, status=S.UNCERTAIN)
    client = client_for(bob)
    url = reverse("project-detail", args=[project.uuid])
    [extend] = forms_to(client.get(url).text, reverse("take-extend", args=[ready.uuid]))
    assert "20 credits" in extend
    AccountGrant.objects.filter(account=account, user=alice).delete()  # flow_account revoke

    page = client.get(url).text

    assert_take_offers_refused(page, ready, failed, REVOKED)
    [submit_again] = forms_to(page, reverse("take-retry", args=[uncertain.uuid]))
    assert "Submit again" in submit_again and REVOKED in submit_again
    assert button_disabled(submit_again), "submitting it again would be refused too"


def test_bobs_card_after_a_refused_upscale_offers_nothing_at_a_price_once_studio_is_revoked(
    project, account, alice, bob
):
    ready, failed = ready_and_failed_takes(project, alice)
    AccountGrant.objects.filter(account=account, user=alice).delete()  # flow_account revoke

    card = htmx_client_for(bob).post(
        reverse("take-upscale", args=[ready.uuid]), {"resolution": "1080p"}
    )

    assert f'<p class="card__error" role="alert">{REVOKED}</p>' in card.text
    assert_take_offers_refused(card.text, ready, failed, REVOKED)
    assert not Upscale.objects.exists()


# --- Extend ---------------------------------------------------------------------------------


def test_bob_extends_a_ready_take_into_a_new_scene_right_after_it(emu, project, alice, bob):
    source = ready_take(project, alice)
    later = make_ready_scene(project, "a later shot")

    response = client_for(bob).post(
        reverse("take-extend", args=[source.uuid]),
        {"prompt": "the seahorse dives", "extensions_seen": "0"},
    )

    assert response.status_code == 302
    extension = Scene.objects.get(source_take=source)
    assert (extension.mode, extension.prompt, extension.position) == (
        Scene.Mode.EXTEND,
        "the seahorse dives",
        1,
    )
    assert extension.model_key == "veo_3_1_extend_fast_landscape"
    later.refresh_from_db()
    assert later.position == 2, "the scenes after it move down one place"
    [take] = settle(list(extension.generations.all()))
    assert take.status == S.READY, take.reason
    assert take.source_take_id == source.pk
    assert take.cost == 20 and take.cost_unit == "credits"


def test_a_double_click_on_extend_makes_one_extension(emu, project, alice, bob):
    source = ready_take(project, alice)
    client = htmx_client_for(bob)
    url = reverse("take-extend", args=[source.uuid])
    form = {"prompt": "the seahorse dives", "extensions_seen": "0"}

    client.post(url, form)
    second = client.post(url, form)

    assert Scene.objects.filter(source_take=source).count() == 1
    assert Generation.objects.filter(source_take=source).count() == 1
    assert "This take was extended since the page was loaded" in second.text


def test_extending_shows_its_cost_before_the_click(emu, project, alice, bob):
    source = ready_take(project, alice)

    html = client_for(bob).get(reverse("project-detail", args=[project.uuid])).content.decode()

    extend_form = html.split(f'action="{reverse("take-extend", args=[source.uuid])}"')[1]
    assert '<span class="hint" data-cost>20 credits</span>' in extend_form.split("</form>")[0]
    upscale_part = html.split(f'action="{reverse("take-upscale", args=[source.uuid])}"')[1]
    assert '<span class="hint" data-cost>free</span>' in upscale_part.split("</form>")[0]


def test_an_extension_is_refused_by_the_budget_like_generate(emu, project, alice, bob):
    source = ready_take(project, alice)
    project.monthly_budget = 30  # 20 spent on the source; an extension costs 20 more
    project.save(update_fields=["monthly_budget"])

    response = client_for(bob).post(
        reverse("take-extend", args=[source.uuid]),
        {"prompt": "the seahorse dives", "extensions_seen": "0"},
        follow=True,
    )

    assert "This would spend 20 credits, but Poseidon has 10 credits left" in response.text
    assert not Scene.objects.filter(source_take=source).exists(), "nothing half-made"


def test_bobs_refused_extension_comes_back_with_his_words_in_a_box_as_long_as_the_rule(
    emu, project, alice, bob
):
    source = ready_take(project, alice)
    project.monthly_budget = 30
    project.save(update_fields=["monthly_budget"])

    card = htmx_client_for(bob).post(
        reverse("take-extend", args=[source.uuid]),
        {"prompt": "the seahorse dives & surfaces", "extensions_seen": "0"},
    )

    assert "This would spend 20 credits, but Poseidon has 10 credits left" in card.text
    box = card.text.split(f'id="extend-{source.uuid}"')[1].split("</textarea>")[0]
    assert 'maxlength="2000"' in box
    assert box.endswith(">the seahorse dives &amp; surfaces")


def test_a_lost_extend_answer_is_uncertain_and_never_sent_again(emu, project, alice, settings):
    source = ready_take(project, alice)
    settings.FLOW_READ_TIMEOUT = 0.3
    scene = take_actions.extend(source, alice, "[fault:slow=1] the seahorse dives")
    [take] = scene.generations.all()

    run_pass()

    take.refresh_from_db()
    assert take.status == S.UNCERTAIN
    assert take.reason.startswith(UNCERTAIN_WORDS)
    submits = emu.stats["submit"]
    for _ in range(3):
        run_pass(now=timezone.now() + timedelta(hours=1))
    assert emu.stats["submit"] == submits
    take.refresh_from_db()
    assert take.status == S.UNCERTAIN


def test_an_extension_of_a_take_deleted_before_it_was_sent_fails_in_words(
    emu, project, alice, queued
):
    source = ready_take(project, alice)
    scene = take_actions.extend(source, alice, "the seahorse dives")
    [take] = scene.generations.all()
    Generation.objects.filter(pk=source.pk).delete()

    [take] = settle([take])

    assert take.status == S.FAILED
    assert take.reason == "The take this one extends was deleted before it could be sent."
    scene.refresh_from_db()
    assert scene.generation_problem() == (
        "The take this scene extends was deleted, so it cannot be generated again."
    )


# --- Upscale --------------------------------------------------------------------------------


def test_bob_upscales_a_take_to_1080p_kept_beside_it(emu, project, alice, bob):
    source = ready_take(project, alice)

    response = client_for(bob).post(
        reverse("take-upscale", args=[source.uuid]), {"resolution": "1080p"}, follow=True
    )

    assert "Upscaling take 1 to 1080p." in response.text
    upscale = settle_upscale(Upscale.objects.get(take=source))
    assert upscale.status == S.READY, upscale.reason
    assert (upscale.width, upscale.height) == (1920, 1080)
    assert upscale.video.name == f"{source.media_dir()}/clip-1080p.mp4"
    source.refresh_from_db()
    assert source.video.name == f"{source.media_dir()}/clip.mp4", "the original stays"
    assert Generation.objects.filter(scene=source.scene).count() == 1, "not a take of its own"
    with av.open(default_storage.path(upscale.video.name)) as container:
        assert container.streams.video[0].codec_context.height == 1080


def test_upscaling_the_same_take_again_reuses_what_exists(emu, project, alice, bob):
    source = ready_take(project, alice)
    upscale, _ = take_actions.request_upscale(source, alice, "1080p")
    settle_upscale(upscale)
    submits = emu.stats["submit"]

    again, notice = take_actions.request_upscale(source, bob, "1080p")

    assert again.pk == upscale.pk
    assert notice == "Take 1 already has a 1080p copy."
    run_pass()
    assert emu.stats["submit"] == submits


def test_a_double_click_on_upscale_makes_one_upscale(emu, project, alice, bob):
    FlowAccount.objects.filter(pk=project.account_id).update(tier=TIER_TWO)
    project.account.refresh_from_db()
    source = ready_take(project, alice)
    client = htmx_client_for(bob)
    url = reverse("take-upscale", args=[source.uuid])

    client.post(url, {"resolution": "4k"})
    second = client.post(url, {"resolution": "4k"})

    assert "Take 1 is already being upscaled to 4K." in second.text
    [upscale] = Upscale.objects.filter(take=source)
    assert upscale.cost == 50
    upscale = settle_upscale(upscale)
    assert upscale.status == S.READY, upscale.reason
    assert (upscale.width, upscale.height) == (3840, 2160)
    assert emu.stats["clips_submitted"] == 2, "the source and one upscale"


def test_a_4k_upscale_is_counted_against_the_allowance(emu, project, alice, bob):
    FlowAccount.objects.filter(pk=project.account_id).update(tier=TIER_TWO)
    project.account.refresh_from_db()
    source = ready_take(project, alice)
    project.memberships.filter(user=bob).update(monthly_allowance=40)

    with pytest.raises(CannotGenerate) as refused:
        take_actions.request_upscale(source, bob, "4k")

    assert str(refused.value).startswith("This would spend 50 credits, but you have 40 credits")
    assert not Upscale.objects.exists()


def test_bobs_upscale_flow_refuses_for_credits_marks_the_account_out_of_credits(
    emu, project, alice, bob
):
    FlowAccount.objects.filter(pk=project.account_id).update(tier=TIER_TWO)
    project.account.refresh_from_db()
    source = ready_take(project, alice)
    emu.set_faults(["quota"])
    upscale, _ = take_actions.request_upscale(source, bob, "4k")

    upscale = settle_upscale(upscale)

    assert upscale.status == S.FAILED
    # The clip is known only to the account that made it, so the upscale cannot move.
    assert upscale.reason == (
        "Not upscaled: the Flow account Studio has run out of credits (Flow refused the "
        "upscale, so nothing was spent), and only the account that made the clip can upscale "
        "it. Add credits to Studio, then ask again (PUBLIC_ERROR_USER_QUOTA_REACHED)."
    )
    assert emu.stats["clips_submitted"] == 1, "only the source was made"
    account = FlowAccount.objects.get(pk=project.account_id)
    assert account.credits == 0, "as a take's refusal records it"
    assert account.state_words(timezone.now()) == "Out of credits."


def test_bobs_upscale_flow_refuses_for_the_upscalers_daily_quota_fails_saying_so(
    emu, project, alice, bob
):
    source = ready_take(project, alice)
    project.account.record_credits(500)
    emu.set_faults(["model-quota"])
    upscale, _ = take_actions.request_upscale(source, bob, "1080p")

    upscale = settle_upscale(upscale)

    assert upscale.status == S.FAILED
    assert upscale.reason == (
        "Not upscaled: the Flow account Studio has used up today's quota of the 1080p upscaler "
        "(Flow refused the upscale, so nothing was spent), and only the account that made the "
        "clip can upscale it. Flow does not say when the quota resets: ask again later "
        "(PUBLIC_ERROR_PER_MODEL_DAILY_QUOTA_REACHED)."
    )
    assert emu.stats["submit"] == 2, "the source, then the upscale once"
    assert emu.stats["clips_submitted"] == 1, "only the source was made"
    account = FlowAccount.objects.get(pk=project.account_id)
    assert account.credits == 500, "a model's quota is not the account's credits"
    assert account.state_words(timezone.now()) == ""


def test_a_lost_upscale_answer_is_uncertain_and_never_sent_again(emu, project, alice, settings):
    source = ready_take(project, alice)
    settings.FLOW_READ_TIMEOUT = 0.3
    emu.set_faults(["slow=1"])
    upscale, _ = take_actions.request_upscale(source, alice, "1080p")

    run_pass()

    upscale.refresh_from_db()
    assert upscale.status == S.UNCERTAIN
    # An upscale's card names it an upscale, not a take.
    assert upscale.reason == (
        f"{UNCERTAIN_WORDS.replace('this take', 'this upscale')} What happened: Flow did not "
        "answer in time (upscaling clips)."
    )
    emu.set_faults([])
    deadline = time.monotonic() + 5
    while emu.stats["clips_submitted"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    submits = emu.stats["submit"]
    for _ in range(3):
        run_pass(now=timezone.now() + timedelta(hours=1))
    assert emu.stats["submit"] == submits
    upscale.refresh_from_db()
    assert upscale.status == S.UNCERTAIN
    with pytest.raises(CannotGenerate, match="ask again knowingly"):
        take_actions.request_upscale(source, alice, "1080p")


def test_bobs_rendering_upscale_says_flow_cannot_be_reached_and_goes_on_once_it_answers(
    emu, project, alice, bob, settings
):
    source = ready_take(project, alice)
    upscale, _ = take_actions.request_upscale(source, bob, "1080p")
    run_pass()
    upscale.refresh_from_db()
    assert upscale.status in (S.PENDING, S.ACTIVE), upscale.reason
    page = reverse("project-detail", args=[project.uuid])
    cannot_reach = re.compile(
        r"Upscaling to 1080p: [^.]+\. Flowsite could not reach Flow \(checking clips\)\. "
        r"Flowsite will check on this upscale again in about \d+ seconds?\."
    )

    emu_url, settings.FLOW_API_BASE_URL = settings.FLOW_API_BASE_URL, closed_port_url()
    run_pass(now=timezone.now() + timedelta(seconds=10))
    assert cannot_reach.search(unescape(client_for(bob).get(page).text))

    settings.FLOW_API_BASE_URL = emu_url
    upscale = settle_upscale(upscale, ahead=timedelta(minutes=10))
    assert (upscale.status, upscale.reason) == (S.READY, "")
    assert not cannot_reach.search(unescape(client_for(bob).get(page).text))


def test_an_upscale_whose_worker_died_mid_call_is_uncertain(emu, project, alice):
    source = ready_take(project, alice)
    upscale, _ = take_actions.request_upscale(source, alice, "1080p")
    Upscale.objects.filter(pk=upscale.pk).update(
        status=S.SUBMITTING, lease_until=timezone.now() - timedelta(seconds=1)
    )

    run_pass()

    upscale.refresh_from_db()
    assert upscale.status == S.UNCERTAIN
    assert emu.stats["clips_submitted"] == 1, "never sent by the reaper"
    card = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text
    assert (
        "Upscale to 1080p: submission uncertain. Flowsite could not confirm that Flow received "
        "this upscale; it was not resubmitted so it is not paid for twice. What happened: The "
        "worker sending it stopped before it could save Flow's answer. Submit it again if you "
        "want it."
    ) in unescape(card)


def test_the_card_and_the_gallery_show_the_resolutions_and_offer_each_download(
    emu, project, alice, carol
):
    source = ready_take(project, alice)
    upscale, _ = take_actions.request_upscale(source, alice, "1080p")
    settle_upscale(upscale)
    client = client_for(carol)
    download = reverse("media-upscale-video", args=[upscale.uuid])

    card = client.get(reverse("project-detail", args=[project.uuid])).text
    gallery = client.get(reverse("project-gallery", args=[project.uuid])).text

    assert '<span class="badge badge--resolution">720p</span>' in card
    assert '<span class="badge badge--resolution">1080p</span>' in card
    assert f'href="{download}?download=1"' in card and f'href="{download}?download=1"' in gallery
    assert "720p, 1080p" in gallery
    ranged = client.get(download, HTTP_RANGE="bytes=0-99")
    assert ranged.status_code == 206 and len(b"".join(ranged.streaming_content)) == 100


def test_deleting_a_take_deletes_its_upscaled_copies_too(
    emu, project, alice, bob, django_capture_on_commit_callbacks
):
    source = ready_take(project, alice)
    upscale = settle_upscale(take_actions.request_upscale(source, alice, "1080p")[0])
    assert default_storage.exists(upscale.video.name)

    with django_capture_on_commit_callbacks(execute=True):
        client_for(bob).post(reverse("take-delete", args=[source.uuid]))

    assert not Upscale.objects.exists()
    assert not default_storage.exists(upscale.video.name)


def test_an_upscale_in_flight_keeps_the_page_polling_fast(emu, project, alice, bob):
    source = ready_take(project, alice)
    client = client_for(bob)
    page = client.get(reverse("project-detail", args=[project.uuid])).text
    assert "live=0" in page

    response = client.post(
        reverse("take-upscale", args=[source.uuid]), {"resolution": "1080p"}, HTTP_HX_REQUEST="true"
    )

    assert "live=1" in response.text


# --- Last frame → next scene ------------------------------------------------------------


def test_the_last_frame_of_a_take_starts_the_next_scene(emu, project, alice, bob):
    source = ready_take(project, alice)
    client = client_for(bob)
    url = reverse("take-last-frame", args=[source.uuid])

    response = client.post(url, follow=True)

    assert "starting from the last frame of take 1" in response.text
    scene = Scene.objects.get(position=1)
    assert (scene.mode, scene.prompt) == (Scene.Mode.IMAGE, source.prompt)
    image = scene.start_image
    assert (image.width, image.height) == (1280, 720)
    with av.open(default_storage.path(source.video.name)) as container:
        last = list(container.decode(video=0))[-1].to_image()
    from PIL import Image, ImageChops, ImageStat

    with Image.open(image.file.path) as stored:
        assert ImageStat.Stat(ImageChops.difference(stored.convert("RGB"), last)).mean[0] < 2
    again = client.post(url, follow=True)
    assert "already starts from the last frame of take 1" in again.text
    assert project.scenes.count() == 2
    [take] = settle(scene.generate(bob))
    assert take.status == S.READY, take.reason


def test_the_last_frame_of_a_text_take_starts_a_scene_with_a_start_image_model(
    emu, project, alice, bob
):
    text = make_scene(project, mode="text", model_key="veo_3_1_t2v_fast", prompt="a reef")
    [source] = settle(text.generate(alice))
    assert source.status == S.READY, source.reason

    client_for(bob).post(reverse("take-last-frame", args=[source.uuid]))

    scene = Scene.objects.get(position=1)
    # Fast stays Fast, now one that starts from an image: it can be generated at once.
    assert (scene.mode, scene.model_key) == (Scene.Mode.IMAGE, "veo_3_1_i2v_s_fast")
    assert scene.generation_problem() == ""
    [take] = settle(scene.generate(bob))
    assert take.status == S.READY, take.reason


# --- The seam -------------------------------------------------------------------------------


def test_the_film_cuts_the_repeated_second_where_an_extension_follows_its_source(
    emu, project, alice
):
    source = ready_take(project, alice)
    scene = take_actions.extend(source, alice, "the seahorse dives")
    [extension] = settle(list(scene.generations.all()))
    Pick.choose(source)
    Pick.choose(extension)

    segments = snapshot(plan(project))
    with clip_files(segments) as built:
        out = default_storage.path("film-test.mp4")
        result = render_film(built, out)

    assert segments[0]["seam_out"] == take_actions.SEAM_SECONDS
    assert "seam_out" not in segments[1]
    one, two = (probe(Segment(path=s.path, label="")) for s in built)
    expected = one.duration - 1.0 + two.duration
    assert abs(result.duration - expected) < 1 / 24 + 1e-6
    assert result.segments[0]["trim_out"] == pytest.approx(one.duration - 1.0, abs=1e-3)


# --- Query counts ---------------------------------------------------------------------------


def _board_with_actions(project, user, scenes: int) -> None:
    """``scenes`` scenes of two ready takes each, every take with a ready 1080p copy, and every
    other scene an extension of the take before it."""
    from django.core.files.base import ContentFile

    made: list[Generation] = []
    for number in range(scenes):
        previous = made[-1] if made and number % 2 else None
        scene = Scene.objects.create(
            project=project,
            position=number,
            prompt=f"Shot {number}",
            mode=Scene.Mode.EXTEND if previous else Scene.Mode.IMAGE,
            source_take=previous,
            model_key="veo_3_1_extend_fast_landscape" if previous else "veo_3_1_i2v_s_fast",
        )
        for take_number in (1, 2):
            take = Generation.objects.create(
                scene=scene,
                project=project,
                requested_by=user,
                account=project.account,
                take=take_number,
                prompt=scene.prompt,
                model_key=scene.model_key,
                aspect=scene.aspect,
                seed=take_number,
                status=S.READY,
                finished_at=timezone.now(),
                media_generation_id="CAUSmade",
                source_take=previous,
                video=f"clips/{project.uuid}/{number}-{take_number}.mp4",
            )
            upscale = Upscale(project=project, take=take, resolution="1080p", status=S.READY)
            upscale.video.save(upscale.file_name(), ContentFile(b"\x00" * 16), save=False)
            upscale.save()
            made.append(take)


def test_the_storyboard_and_gallery_cost_the_same_queries_with_extensions_and_upscales(
    project, account, alice
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from generations.models import Project

    small = Project.objects.create(name="Small", account=account)
    small.add_member(alice, "owner")
    _board_with_actions(small, alice, 2)
    _board_with_actions(project, alice, 24)
    client = client_for(alice)

    counts = {}
    for name, board in (("small", small), ("large", project)):
        for page in ("project-detail", "project-gallery"):
            with CaptureQueriesContext(connection) as captured:
                response = client.get(reverse(page, args=[board.uuid]))
            assert response.status_code == 200
            counts[(name, page)] = len(captured)
        assert response.text.count("Download 1080p") == (4 if name == "small" else 48)

    assert counts[("small", "project-detail")] == counts[("large", "project-detail")]
    assert counts[("small", "project-gallery")] == counts[("large", "project-gallery")]
