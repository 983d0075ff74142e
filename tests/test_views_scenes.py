"""The storyboard: adding, editing, reordering, deleting and generating scenes."""

import re
from datetime import timedelta
from html import unescape
from pathlib import Path
from uuid import uuid4

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from generations.engines.catalogue import TIER_TWO
from generations.models import AccountGrant, Generation, ImageAsset, Membership, Project, Scene
from generations.pipeline import Pass, reap
from tests.conftest import make_image, make_scene, png_bytes
from tests.views_support import (
    attach_clip,
    client_for,
    htmx_client_for,
    make_take,
    seen_settings,
    storyboard_seen,
)


def image_file(name="lighthouse.png", data=None, content_type="image/png"):
    return SimpleUploadedFile(name, png_bytes() if data is None else data, content_type)


def scene_data(**overrides) -> dict:
    data = {
        "title": "Opening",
        "prompt": "A lighthouse at dusk, waves rolling in",
        "aspect": "landscape",
        "model_key": "veo_3_1_i2v_s_fast",
        "seed": "",
        "takes": "2",
        "start_image_file": image_file(),
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def stored_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


# --- adding and editing -------------------------------------------------------------------


def test_bob_adds_a_scene_with_its_start_image(project, bob):
    response = client_for(bob).post(reverse("scene-create", args=[project.uuid]), scene_data())

    scene = Scene.objects.get(project=project)
    assert response.status_code == 302
    assert response["Location"] == f"/projects/{project.uuid}/#scene-{scene.uuid}"
    assert (scene.title, scene.takes, scene.seed, scene.aspect) == ("Opening", 2, None, "landscape")
    assert scene.start_image.project == project
    assert scene.start_image.uploaded_by == bob
    assert scene.start_image.original_name == "lighthouse.png"


def test_the_storyboard_shows_the_start_image_through_the_private_media_view(project, bob):
    client = client_for(bob)
    client.post(reverse("scene-create", args=[project.uuid]), scene_data())
    image = ImageAsset.objects.get()

    html = client.get(reverse("project-detail", args=[project.uuid])).text

    assert f'src="/media/image/{image.uuid}"' in html
    assert client.get(f"/media/image/{image.uuid}").status_code == 200


def test_the_form_lists_only_the_models_the_tier_allows_grouped_by_mode_and_aspect(project, bob):
    html = client_for(bob).get(reverse("scene-create", args=[project.uuid])).text

    assert '<optgroup label="Start image · Landscape 16:9">' in html
    assert '<optgroup label="Start image · Portrait 9:16">' in html
    assert '<optgroup label="Text · Portrait 9:16">' in html
    assert '<optgroup label="Start and end frames · Landscape 16:9">' in html
    assert '<optgroup label="Ingredients · Landscape 16:9">' in html
    assert 'value="veo_3_1_i2v_s_fast_portrait" data-mode="image" data-aspect="portrait"' in html
    assert 'value="veo_3_1_r2v_fast_landscape" data-mode="ingredients"' in html
    assert "_ultra" not in html


def test_a_tier_two_account_is_offered_the_ultra_models(project, bob, account):
    account.tier = TIER_TWO
    account.save(update_fields=["tier"])

    html = client_for(bob).get(reverse("scene-create", args=[project.uuid])).text

    assert 'value="veo_3_1_i2v_s_fast_ultra"' in html


BAD_INPUT = [
    ("no image", {"start_image_file": None}, "Choose a start image"),
    (
        "not an image",
        {"start_image_file": image_file("notes.png", b"just some text, honestly")},
        "not a JPEG, PNG or WebP image",
    ),
    ("empty prompt", {"prompt": "   "}, "Write a prompt"),
    # A no-break space, a zero-width space, an ideographic space: nothing shows.
    ("invisible prompt", {"prompt": "\u00a0\u200b\u3000"}, "Write a prompt"),
    ("unknown model", {"model_key": "veo_9_imaginary"}, "Unknown model “veo_9_imaginary”"),
    (
        "model the tier may not use",
        {"model_key": "veo_3_1_i2v_s_fast_ultra"},
        "needs a higher Flow tier than Pro (tier one), which the account Studio has; pick another",
    ),
    (
        "model of the wrong aspect",
        {"model_key": "veo_3_1_i2v_s_fast_portrait"},
        "makes Portrait 9:16 clips, not Landscape 16:9",
    ),
    ("no takes", {"takes": "0"}, "Takes must be a whole number from 1 to 4."),
    ("too many takes", {"takes": "5"}, "Takes must be a whole number from 1 to 4."),
    ("a seed out of range", {"seed": "-3"}, "The seed must be a whole number"),
    (
        "an unknown aspect",
        {"aspect": "square"},
        "The aspect must be landscape (16:9) or portrait (9:16), not “square”.",
    ),
]


@pytest.mark.parametrize(("case", "overrides", "message"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_gets_a_clear_message_and_saves_no_scene_only_the_good_image_is_kept(
    project, bob, settings, case, overrides, message
):
    response = client_for(bob).post(
        reverse("scene-create", args=[project.uuid]), scene_data(**overrides)
    )

    assert response.status_code == 200
    assert message in response.text
    assert 'class="error" role="alert"' in response.text
    assert Scene.objects.count() == 0
    if "start_image_file" in overrides:
        assert ImageAsset.objects.count() == 0
        assert stored_files(settings) == []
    else:
        # The picture need not be chosen again: the form sent back refers to it.
        kept = ImageAsset.objects.get()
        assert (kept.project, kept.uploaded_by) == (project, bob)
        assert f'name="start_image_kept" value="{kept.uuid}"' in response.text
        assert stored_files(settings) == [Path(kept.file.path)]


def test_editing_keeps_the_image_when_no_new_one_is_chosen(project, bob):
    image = make_image(project, bob)
    scene = make_scene(project, image, takes=1)
    before = scene.updated

    response = client_for(bob).post(
        reverse("scene-edit", args=[scene.uuid]),
        {
            **scene_data(start_image_file=None, prompt="Fog rolls over the rocks", seed="77"),
            "seen_settings": seen_settings(scene),
        },
    )

    scene.refresh_from_db()
    assert response.status_code == 302
    assert (scene.prompt, scene.seed, scene.takes, scene.start_image_id) == (
        "Fog rolls over the rocks",
        77,
        2,
        image.pk,
    )
    assert scene.updated > before


def test_editing_with_a_refused_image_changes_nothing(project, bob):
    scene = make_scene(project, make_image(project, bob), prompt="Original")

    response = client_for(bob).post(
        reverse("scene-edit", args=[scene.uuid]),
        {
            **scene_data(prompt="Changed", start_image_file=image_file("x.png", b"GIF89a nope")),
            "seen_settings": seen_settings(scene),
        },
    )

    scene.refresh_from_db()
    assert response.status_code == 200
    assert "not a JPEG, PNG or WebP image" in response.text
    assert scene.prompt == "Original"
    assert ImageAsset.objects.count() == 1


# --- order and deletion -------------------------------------------------------------------


def test_scenes_move_up_and_down(project, bob):
    first, second, third = (make_scene(project, title=name) for name in ("A", "B", "C"))
    client = client_for(bob)

    client.post(reverse("scene-move", args=[third.uuid]), {"direction": "up"})
    client.post(reverse("scene-move", args=[first.uuid]), {"direction": "down"})
    client.post(reverse("scene-move", args=[first.uuid]), {"direction": "down"})  # already last

    assert list(project.scenes.values_list("title", flat=True)) == ["C", "B", "A"]
    html = client.get(reverse("project-detail", args=[project.uuid])).text
    assert [m for m in re.findall(r'card__title">(\w)<', html)] == ["C", "B", "A"]


def test_deleting_a_scene_removes_its_takes_and_their_files(
    project, bob, settings, django_capture_on_commit_callbacks
):
    scene = make_scene(project, make_image(project, bob))
    attach_clip(make_take(scene, bob, status=Generation.Status.READY), b"mp4", b"jpg")
    clip_files = [p for p in stored_files(settings) if "clips" in p.parts]
    assert len(clip_files) == 2

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(bob).post(reverse("scene-delete", args=[scene.uuid]))

    assert response.status_code == 302
    assert not Scene.objects.filter(pk=scene.pk).exists()
    assert Generation.objects.count() == 0
    assert not any(path.exists() for path in clip_files)


def test_after_bob_deletes_the_first_scene_untitled_scenes_are_named_by_their_new_place(
    project, bob
):
    first, second, third = (make_scene(project, prompt=f"Shot {n}") for n in range(3))
    assert [str(scene) for scene in (first, second, third)] == ["Scene 1", "Scene 2", "Scene 3"]

    client_for(bob).post(reverse("scene-delete", args=[first.uuid]))

    left = list(project.scenes.order_by("position"))
    assert [(str(scene), scene.prompt) for scene in left] == [
        ("Scene 1", "Shot 1"),
        ("Scene 2", "Shot 2"),
    ]
    page = client_for(bob).get(reverse("project-detail", args=[project.uuid])).text
    assert "Scene 3" not in page


def test_a_scene_with_takes_in_flight_is_not_deleted(project, bob):
    scene = make_scene(project, make_image(project, bob))
    make_take(scene, bob, status=Generation.Status.PENDING)

    response = client_for(bob).post(reverse("scene-delete", args=[scene.uuid]), follow=True)

    assert Scene.objects.filter(pk=scene.pk).exists()
    assert "has takes still rendering" in response.text


# --- generating ---------------------------------------------------------------------------


def test_generate_creates_the_takes_and_queues_them(
    project, bob, queued, django_capture_on_commit_callbacks
):
    scene = make_scene(project, make_image(project, bob), takes=3, seed=5)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(bob).post(
            reverse("scene-generate", args=[scene.uuid]),
            {"last_take": "0", "seen_settings": seen_settings(scene)},
        )

    takes = list(scene.generations.order_by("take"))
    assert response.status_code == 302
    assert [t.take for t in takes] == [1, 2, 3]
    assert {(t.status, t.seed, t.requested_by_id) for t in takes} == {("queued", 5, bob.pk)}
    assert queued == [[t.pk for t in takes]]


def test_generate_with_htmx_returns_the_card_and_a_live_poller(
    project, bob, queued, django_capture_on_commit_callbacks
):
    scene = make_scene(project, make_image(project, bob), takes=2)

    with django_capture_on_commit_callbacks(execute=True):
        response = htmx_client_for(bob).post(
            reverse("scene-generate", args=[scene.uuid]),
            {"last_take": "0", "since": "12345", "seen_settings": seen_settings(scene)},
        )

    html = response.text
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<article id="scene-{scene.uuid}" class="card">')
    assert html.count("Take ") == 2
    assert "Queued 2 takes." in html
    assert '<div id="poller" class="poller" hx-swap-oob="true"' in html
    assert 'hx-trigger="every 2000ms"' in html
    # The page's own token is kept, so the next poll still brings every other changed card.
    assert "?since=12345" in html


def test_a_second_click_on_a_stale_card_does_not_pay_twice(
    project, bob, queued, django_capture_on_commit_callbacks
):
    scene = make_scene(project, make_image(project, bob), takes=1)
    client = htmx_client_for(bob)
    url = reverse("scene-generate", args=[scene.uuid])
    card = {"last_take": "0", "seen_settings": seen_settings(scene)}

    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, card)
        second = client.post(url, card)

    assert scene.generations.count() == 1
    assert len(queued) == 1
    assert "nothing was generated" in second.text


def test_generate_refuses_in_words_what_cannot_be_generated(project, bob, queued):
    scene = make_scene(project, image=None)

    response = htmx_client_for(bob).post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "0", "seen_settings": seen_settings(scene)},
    )

    assert response.status_code == 200
    assert "Add a start image before generating." in response.text
    assert scene.generations.count() == 0
    assert queued == []


def test_without_javascript_generate_redirects_with_the_reason(project, bob, queued):
    scene = make_scene(project, image=None)

    response = client_for(bob).post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "0", "seen_settings": seen_settings(scene)},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == f"/projects/{project.uuid}/#scene-{scene.uuid}"
    assert "Add a start image before generating." in response.text


def test_generate_all_generates_what_is_ready_and_names_what_is_not(
    project, bob, queued, django_capture_on_commit_callbacks
):
    image = make_image(project, bob)
    ready = [make_scene(project, image, takes=2), make_scene(project, image, takes=1)]
    make_scene(project, image=None, title="Finale")

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(bob).post(
            reverse("project-generate-all", args=[project.uuid]),
            {"last_generation": "0", "seen_settings": storyboard_seen(project)},
            follow=True,
        )

    assert [s.generations.count() for s in ready] == [2, 1]
    assert Generation.objects.count() == 3
    assert sorted(pk for call in queued for pk in call) == sorted(
        Generation.objects.values_list("pk", flat=True)
    )
    assert "Queued 3 takes for 2 scenes." in response.text
    assert "Finale was not generated: Add a start image before generating." in response.text


def test_generate_all_twice_from_the_same_page_generates_once(
    project, bob, queued, django_capture_on_commit_callbacks
):
    make_scene(project, make_image(project, bob), takes=1)
    client = client_for(bob)
    url = reverse("project-generate-all", args=[project.uuid])

    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"last_generation": "0", "seen_settings": storyboard_seen(project)})
        second = client.post(
            url, {"last_generation": "0", "seen_settings": storyboard_seen(project)}, follow=True
        )

    assert Generation.objects.count() == 1
    assert "nothing was generated" in second.text


def _generate_all_queries(client, project) -> int:
    newest = Generation.objects.filter(project=project).order_by("-pk").first()
    url = reverse("project-generate-all", args=[project.uuid])
    with (
        CaptureQueriesContext(connection) as queries,
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        response = client.post(
            url,
            {
                "last_generation": str(newest.pk if newest else 0),
                "seen_settings": storyboard_seen(project),
            },
        )
    assert response.status_code == 302
    return len(queries.captured_queries)


def test_generate_all_costs_bob_the_same_queries_for_2_scenes_or_12(project, bob, alice):
    small = project
    large = Project.objects.create(name="Longer film", account=project.account, created_by=alice)
    large.add_member(bob, Membership.Role.EDITOR)
    AccountGrant.objects.create(account=project.account, project=large)
    for board, count in ((small, 2), (large, 12)):
        image = make_image(board, bob)
        for _ in range(count):
            make_scene(board, image, takes=2)
    client = client_for(bob)

    assert _generate_all_queries(client, small) == _generate_all_queries(client, large)
    assert Generation.objects.filter(project=large).count() == 24


def test_generate_all_numbers_each_scenes_takes_after_the_ones_it_has(
    project, bob, queued, django_capture_on_commit_callbacks
):
    image = make_image(project, bob)
    old, new = make_scene(project, image, takes=2), make_scene(project, image, takes=1)
    make_take(old, bob, status=Generation.Status.READY)
    client = client_for(bob)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("project-generate-all", args=[project.uuid]),
            {
                "last_generation": str(Generation.objects.get().pk),
                "seen_settings": storyboard_seen(project),
            },
        )

    assert sorted(old.generations.values_list("take", flat=True)) == [1, 2, 3]
    assert list(new.generations.values_list("take", flat=True)) == [1]
    assert sorted(pk for call in queued for pk in call) == sorted(
        Generation.objects.exclude(take=1, scene=old).values_list("pk", flat=True)
    )


def test_a_take_number_is_never_given_twice_even_after_the_newest_take_is_deleted(
    project, bob, queued
):
    scene = make_scene(project, make_image(project, bob))
    client = htmx_client_for(bob)
    client.post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "0", "seen_settings": seen_settings(scene)},
    )
    client.post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "1", "seen_settings": seen_settings(scene)},
    )
    second = scene.generations.get(take=2)
    Generation.objects.filter(pk=second.pk).update(status=Generation.Status.FAILED)

    client.post(reverse("take-delete", args=[second.uuid]))
    card = client.post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "2", "seen_settings": seen_settings(scene)},
    ).text

    assert "Queued 1 take." in card
    assert sorted(scene.generations.values_list("take", flat=True)) == [1, 3]
    assert 'name="last_take" value="3"' in card


def test_a_page_that_saw_take_2_cannot_generate_after_bob_replaced_it_with_take_3(
    project, alice, bob, queued
):
    scene = make_scene(project, make_image(project, bob))
    make_take(scene, bob, status=Generation.Status.READY)
    second = make_take(scene, bob, status=Generation.Status.READY)
    # Alice's page shows take 2 as the newest. Bob deletes it and generates again.
    bobs = htmx_client_for(bob)
    bobs.post(reverse("take-delete", args=[second.uuid]))
    bobs.post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "2", "seen_settings": seen_settings(scene)},
    )

    stale = htmx_client_for(alice).post(
        reverse("scene-generate", args=[scene.uuid]),
        {"last_take": "2", "seen_settings": seen_settings(scene)},
    )

    assert "New takes of this scene appeared" in stale.text
    assert sorted(scene.generations.values_list("take", flat=True)) == [1, 3]


def test_scenes_made_before_take_numbers_were_kept_go_on_from_their_highest_take(project, bob):
    from importlib import import_module

    from django.apps import apps

    scene, empty = make_scene(project), make_scene(project)
    make_take(scene, bob, take=1)
    make_take(scene, bob, take=4)
    Scene.objects.update(last_take=0)

    migration = import_module("generations.migrations.0035_scene_last_take")
    migration.number_from_the_takes_there_are(apps, None)

    assert dict(Scene.objects.values_list("pk", "last_take")) == {scene.pk: 4, empty.pk: 0}


def test_retry_asks_for_a_failed_take_again_as_a_new_take(
    project, bob, queued, django_capture_on_commit_callbacks
):
    scene = make_scene(project, make_image(project, bob))
    failed = make_take(scene, bob, status=Generation.Status.FAILED, reason="Unsafe", seed=99)

    with django_capture_on_commit_callbacks(execute=True):
        response = htmx_client_for(bob).post(
            reverse("take-retry", args=[failed.uuid]), {"last_take": "1"}
        )

    new = scene.generations.get(take=2)
    assert response.status_code == 200
    assert (new.status, new.seed, new.prompt) == ("queued", 99, failed.prompt)
    assert queued == [[new.pk]]
    assert "Queued take 2." in response.text


def test_retry_of_an_uncertain_take_submits_it_again_and_says_so(
    project, bob, queued, django_capture_on_commit_callbacks
):
    scene = make_scene(project, make_image(project, bob))
    uncertain = make_take(scene, bob, status=Generation.Status.UNCERTAIN)

    with django_capture_on_commit_callbacks(execute=True):
        client_for(bob).post(reverse("take-retry", args=[uncertain.uuid]), {"last_take": "1"})

    uncertain.refresh_from_db()
    assert scene.generations.filter(take=2, status="queued").exists()
    assert uncertain.tried_again_as == 2


def test_bob_pressing_submit_again_on_an_uncertain_take_a_second_time_pays_nothing_more(
    project, bob, queued, django_capture_on_commit_callbacks
):
    scene = make_scene(project, make_image(project, bob))
    uncertain = make_take(scene, bob, status=Generation.Status.UNCERTAIN)
    with django_capture_on_commit_callbacks(execute=True):
        first = htmx_client_for(bob).post(
            reverse("take-retry", args=[uncertain.uuid]), {"last_take": "1"}
        )
    # His card now shows take 2, so his second press is not a stale one.
    assert 'name="last_take" value="2"' in first.text

    response = htmx_client_for(bob).post(
        reverse("take-retry", args=[uncertain.uuid]), {"last_take": "2"}
    )

    uncertain.refresh_from_db()
    assert uncertain.status == Generation.Status.UNCERTAIN
    assert list(scene.generations.values_list("take", flat=True)) == [1, 2]
    assert queued == [[scene.generations.get(take=2).pk]]
    assert "Take 1 was already submitted again as take 2." in response.text
    take_one = response.text.split('<span class="take__name">Take 1</span>')[1]
    assert "Submitted again as take 2." in take_one
    assert "Submit again</button>" not in take_one
    assert uncertain.tried_again_as == 2


def take_reasons(html: str, number: int) -> list[str]:
    """The reasons take ``number``'s card reads, each as shown."""
    card = html.split(f'<span class="take__name">Take {number}</span>')[1].split("</li>")[0]
    return [unescape(text) for text in re.findall(r'<p class="take__reason"[^>]*>(.*?)</p>', card)]


def test_alices_uncertain_take_invites_her_to_submit_it_again_only_until_she_has(
    project, alice, queued, django_capture_on_commit_callbacks
):
    # The worker sending take 1 died mid-call: the reaper makes it uncertain, in its words.
    scene = make_scene(project, make_image(project, alice))
    uncertain = make_take(
        scene,
        alice,
        status=Generation.Status.SUBMITTING,
        claim=uuid4(),
        lease_until=timezone.now() - timedelta(seconds=1),
    )
    reap.reap(Pass(timezone.now()))
    page = reverse("project-detail", args=[project.uuid])
    why = (
        "Flowsite could not confirm that Flow received this take; it was not resubmitted so it "
        "is not paid for twice. What happened: The worker sending it stopped before it could "
        "save Flow's answer."
    )

    before = client_for(alice).get(page).text
    with django_capture_on_commit_callbacks(execute=True):
        client_for(alice).post(reverse("take-retry", args=[uncertain.uuid]), {"last_take": "1"})
    after = client_for(alice).get(page).text

    assert take_reasons(after, 1) == [why, "Submitted again as take 2."]
    assert take_reasons(before, 1) == [f"{why} Submit it again if you want it."]


def test_bob_retrying_a_failed_take_a_second_time_is_pointed_at_its_first_retry(
    project, bob, queued, django_capture_on_commit_callbacks
):
    scene = make_scene(project, make_image(project, bob))
    failed = make_take(scene, bob, status=Generation.Status.FAILED, reason="Unsafe")
    with django_capture_on_commit_callbacks(execute=True):
        htmx_client_for(bob).post(reverse("take-retry", args=[failed.uuid]), {"last_take": "1"})

    response = htmx_client_for(bob).post(
        reverse("take-retry", args=[failed.uuid]), {"last_take": "2"}
    )

    assert scene.generations.count() == 2
    assert "Take 1 was already retried as take 2." in response.text
    take_one = response.text.split('<span class="take__name">Take 1</span>')[1]
    assert "Unsafe" in take_one
    assert "Retried as take 2." in take_one
    assert "Retry as a new take</button>" not in take_one


def test_a_ready_take_is_not_retried(project, bob, queued):
    scene = make_scene(project, make_image(project, bob))
    ready = make_take(scene, bob, status=Generation.Status.READY)

    response = htmx_client_for(bob).post(
        reverse("take-retry", args=[ready.uuid]), {"last_take": "1"}
    )

    assert "Only a failed, cancelled or uncertain take can be tried again." in response.text
    assert scene.generations.count() == 1


def test_cancel_stops_a_take_in_flight(project, bob):
    scene = make_scene(project, make_image(project, bob))
    active = make_take(scene, bob, status=Generation.Status.ACTIVE)

    response = htmx_client_for(bob).post(reverse("take-cancel", args=[active.uuid]))

    active.refresh_from_db()
    assert active.status == "cancelled"
    assert "Cancelled take 1." in response.text
    # Nothing in flight any more: the poller that comes back polls slowly.
    assert 'hx-trigger="every 10000ms"' in response.text
    assert "&amp;live=0" in response.text


def test_alice_cancelling_a_take_bob_just_cancelled_is_told_it_was_cancelled(project, alice, bob):
    scene = make_scene(project, make_image(project, bob))
    active = make_take(scene, bob, status=Generation.Status.ACTIVE)
    bobs, alices = htmx_client_for(bob), htmx_client_for(alice)
    url = reverse("take-cancel", args=[active.uuid])

    assert "Cancelled take 1." in bobs.post(url).text
    second = alices.post(url).text

    assert "Take 1 was already cancelled; there is nothing to cancel." in second
    assert "finished" not in second


def test_each_card_shows_status_in_words_elapsed_time_reason_and_the_clip(project, alice):
    scene = make_scene(project, make_image(project, alice))
    ready = attach_clip(make_take(scene, alice, status=Generation.Status.READY), b"v", b"p")
    make_take(scene, alice, status=Generation.Status.FAILED, reason="Flow refused the prompt.")
    make_take(scene, alice, status=Generation.Status.PENDING)

    html = client_for(alice).get(reverse("project-detail", args=[project.uuid])).text

    assert "Waiting to render" in html
    assert "Ready" in html and "Failed" in html
    assert "Flow refused the prompt." in html
    assert "42 s" in html
    assert (
        f'<video id="clip-{ready.uuid}" hx-preserve="true" class="clip clip--landscape" '
        f'controls preload="none"\n'
        f'                   aria-label="Scene 1, take 1 by alice"\n'
        f'                   src="/media/take/{ready.uuid}/video" '
        f'poster="/media/take/{ready.uuid}/poster"></video>'
    ) in html
    assert f'href="/media/take/{ready.uuid}/video?download=1"' in html
