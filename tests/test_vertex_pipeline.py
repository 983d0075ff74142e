"""Takes on a Vertex AI account through the worker, against the emulator over real HTTP: the
same passes, cards and files as with Flow, with Vertex AI's errors in words."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import av
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone
from PIL import Image, ImageChops, ImageStat

from generations import work
from generations.engines.vertex import VertexEngine, clean_service_account_key
from generations.models import FlowAccount, Generation
from generations.tasks import run_pass
from tests.conftest import vertex_scene
from tests.tasks_support import UNCERTAIN_WORDS
from tests.tasks_support import settle as settle_within
from tests.views_support import client_for

S = Generation.Status


def settle(takes, **options):
    # Vertex AI clips are rendered at their real length (4 s here), which takes a while on a
    # busy machine.
    options.setdefault("timeout", 180.0)
    return settle_within(takes, **options)


FAST = "veo-3.1-fast-generate-001"


def probe(name: str) -> tuple[float, int, int, bool]:
    with av.open(str(Path(django_settings.MEDIA_ROOT) / name)) as container:
        video = container.streams.video[0]
        return (
            float(container.duration) / 1_000_000,
            video.width,
            video.height,
            bool(container.streams.audio),
        )


def test_a_scenes_takes_are_generated_through_the_worker_as_one_vertex_call(
    vertex_project, flow_emulator, alice, queued
):
    scene = vertex_scene(vertex_project, takes=3, audio=True)

    takes = work.generate(scene, alice)
    takes = settle(takes)

    assert [take.status for take in takes] == [S.READY] * 3
    assert flow_emulator.stats["vertex_predict"] == 1
    assert flow_emulator.stats["upload"] == 0, "the start image goes inside the call"
    assert len({take.operation_name.rsplit("#", 1)[0] for take in takes}) == 1
    for take in takes:
        seconds, width, height, audio = probe(take.video.name)
        assert round(seconds) == 4 and width == 1280 and audio
        assert take.video_size > 0 and len(take.video_sha256) == 64
    account = FlowAccount.objects.get(pk=vertex_project.account_id)
    assert account.access_token, "the minted token is kept on the account for every worker"


def test_results_in_cloud_storage_arrive_the_same_way(vertex_project, flow_emulator, alice):
    FlowAccount.objects.filter(pk=vertex_project.account_id).update(
        storage_uri="gs://studio-bucket/flowsite/"
    )
    [take] = settle(vertex_scene(vertex_project).generate(alice))

    assert take.status == S.READY
    assert flow_emulator.stats["vertex_storage"] == 1


def test_a_partly_filtered_scene_keeps_the_takes_that_passed(vertex_project, alice):
    scene = vertex_scene(vertex_project, "[fault:filtered=1]", takes=2)

    takes = settle(scene.generate(alice))

    assert [take.status for take in takes] == [S.READY, S.FAILED]
    assert "safety filter removed this take" in takes[1].reason


def test_an_api_not_enabled_makes_the_takes_wait_with_the_reason(
    vertex_project, flow_emulator, alice
):
    [take] = vertex_scene(vertex_project, "[fault:api-disabled:once]").generate(alice)

    run_pass()

    take.refresh_from_db()
    account = FlowAccount.objects.get(pk=vertex_project.account_id)
    assert take.status == S.QUEUED
    assert "Vertex AI API is not enabled in Google Cloud project flowsite-demo" in take.reason
    assert account.problem == take.reason
    run_pass(now=timezone.now() + timedelta(hours=1))
    assert flow_emulator.stats["vertex_predict"] == 1, "nothing is sent until an admin fixes it"

    account.replace_credentials(service_account_key=account.service_account_key)
    account.save()
    account.resume_waiting_generations()
    [take] = settle([take])
    assert take.status == S.READY


def test_a_throttled_submit_rests_the_account_and_tries_again_later(
    vertex_project, flow_emulator, alice
):
    [take] = vertex_scene(vertex_project, "[fault:throttle=1:once]").generate(alice)
    before = timezone.now()

    assert run_pass(now=before)["requeued"] == 1

    take.refresh_from_db()
    account = FlowAccount.objects.get(pk=vertex_project.account_id)
    assert take.status == S.QUEUED and "quota" in take.reason
    assert account.cool_down_until >= before + timedelta(seconds=1)
    [take] = settle([take], ahead=timedelta(seconds=2))
    assert take.status == S.READY
    assert flow_emulator.stats["vertex_predict"] == 2


def test_a_throttled_poll_rests_the_account(vertex_project, flow_emulator, alice):
    [take] = vertex_scene(vertex_project, "[fault:stuck]").generate(alice)
    run_pass()
    flow_emulator.set_faults(["throttle=30"])
    before = timezone.now()

    run_pass(now=before + timedelta(seconds=1))

    account = FlowAccount.objects.get(pk=vertex_project.account_id)
    assert account.cool_down_until >= before + timedelta(seconds=30)
    take.refresh_from_db()
    assert take.status in (S.PENDING, S.ACTIVE) and take.check_errors == 1


def test_a_lost_submit_answer_is_uncertain_and_never_sent_again(
    vertex_project, flow_emulator, alice, settings
):
    settings.FLOW_CALL_DEADLINE = 1.0
    [take] = vertex_scene(vertex_project, "[fault:slow=2]").generate(alice)

    assert run_pass()["uncertain"] == 1

    take.refresh_from_db()
    assert take.status == S.UNCERTAIN
    assert take.reason.startswith(UNCERTAIN_WORDS.replace("that Flow", "that Vertex AI"))
    assert "Vertex AI did not answer in time" in take.reason
    assert not re.search(r"\bFlow\b", take.reason), take.reason
    deadline = time.monotonic() + 5
    while flow_emulator.stats["clips_submitted"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(3):
        run_pass(now=timezone.now() + timedelta(hours=1))
    assert flow_emulator.stats["vertex_predict"] == 1
    take.refresh_from_db()
    assert take.status == S.UNCERTAIN


LOST_OPERATION = (
    "Vertex AI no longer knows this take's operation, so Flowsite cannot fetch its clip."
)


def test_a_take_whose_operation_vertex_lost_fails_alone_and_the_account_stays_usable(
    vertex_project, flow_emulator, alice
):
    lost = vertex_scene(vertex_project, "[fault:forgotten]").generate(alice)
    kept = vertex_scene(vertex_project).generate(alice)

    [lost_take, kept_take] = settle(lost + kept, timeout=90)

    assert (lost_take.status, lost_take.reason) == (S.FAILED, LOST_OPERATION)
    assert (kept_take.status, kept_take.reason) == (S.READY, "")
    account = FlowAccount.objects.get(pk=vertex_project.account_id)
    assert account.problem == ""
    assert "not available in region" not in lost_take.reason
    for _ in range(3):
        run_pass(now=timezone.now() + timedelta(hours=1))
    assert flow_emulator.stats["vertex_predict"] == 2, "the lost take is never sent again"
    assert flow_emulator.stats["clips_submitted"] == 2
    [later] = settle(vertex_scene(vertex_project).generate(alice), timeout=90)
    assert later.status == S.READY, "the account's next takes are not held up"


def test_a_take_in_flight_when_an_admin_moves_the_account_to_another_region_still_arrives(
    vertex_project, flow_emulator, alice
):
    [take] = settle(
        vertex_scene(vertex_project).generate(alice), until=(S.PENDING, S.ACTIVE), timeout=60
    )
    assert "/locations/us-central1/" in take.operation_name
    account = FlowAccount.objects.get(pk=vertex_project.account_id)
    account.vertex_location = "europe-west4"
    account.save(update_fields=["vertex_location"])

    [take] = settle([take])

    # The emulator answers 404 at any address but the one the operation's name carries, as
    # Google does: the take arrived, so its status was asked in us-central1.
    assert (take.status, take.reason) == (S.READY, "")
    assert flow_emulator.stats["vertex_fetch"] >= 1
    [later] = settle(vertex_scene(vertex_project).generate(alice))
    assert later.status == S.READY
    assert "/locations/europe-west4/" in later.operation_name, "new takes go to the new region"


def test_a_vertex_take_rendering_far_too_long_fails_as_stuck_naming_vertex_ai(
    vertex_project, alice, settings
):
    settings.FLOWSITE_STUCK_AFTER = 1.0
    [take] = vertex_scene(vertex_project, "[fault:stuck]").generate(alice)

    [take] = settle([take])

    assert take.status == S.FAILED
    assert take.reason.startswith("Vertex AI was still working on this take"), take.reason
    assert not re.search(r"\bFlow\b", take.reason), take.reason


def test_a_refused_key_makes_the_takes_wait_for_a_new_one(vertex_project, flow_emulator, alice):
    flow_emulator.revoke_service_account_key()
    [take] = vertex_scene(vertex_project).generate(alice)

    run_pass()

    take.refresh_from_db()
    assert take.status == S.QUEUED
    assert "upload a new key file" in take.reason
    assert flow_emulator.stats["vertex_predict"] == 0


def test_a_storyboard_csv_on_a_vertex_account_imports_generates_and_exports(
    flow_emulator, alice, settings, tmp_path
):
    import csv
    import io

    from django.core.management import call_command
    from PIL import Image

    from generations.models import AccountGrant, Project

    settings.VERTEX_API_BASE_URL = flow_emulator.url
    settings.FLOWSITE_POLL_INTERVAL = 0.1
    cloud = FlowAccount.objects.create(
        label="Cloud",
        kind=FlowAccount.Kind.VERTEX,
        vertex_project="flowsite-demo",
        service_account_key=clean_service_account_key(
            json.dumps(flow_emulator.service_account_key())
        ),
    )
    AccountGrant.objects.create(account=cloud, user=alice)
    Image.new("RGB", (64, 36), (200, 80, 40)).save(tmp_path / "harbour.png")
    with (tmp_path / "board.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "prompt", "aspect", "takes", "duration", "audio"])
        writer.writerow(["harbour.png", "a heron lifts off the reeds", "landscape", "2", "4", "no"])

    def run(*args: str) -> str:
        out = io.StringIO()
        call_command("storyboard", *args, stdout=out)
        return out.getvalue()

    run(
        "import",
        str(tmp_path / "board.csv"),
        "--project",
        "Herons",
        "--user",
        "alice",
        "--account",
        "Cloud",
    )
    run("generate", "--project", "Herons", "--user", "alice")
    project = Project.objects.get(name="Herons")
    takes = settle(list(Generation.objects.filter(project=project)))
    status = run("status", "--project", "Herons")
    run("export", "--project", "Herons", "--out", str(tmp_path / "out"))

    assert project.account == cloud
    assert [take.status for take in takes] == [S.READY, S.READY]
    assert flow_emulator.stats["vertex_predict"] == 1
    assert "ready" in status
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [entry["model"] for entry in manifest["takes"]] == [FAST, FAST]
    for entry in manifest["takes"]:
        assert round(probe_file(tmp_path / "out" / entry["file"])[0]) == 4


def probe_file(path: Path) -> tuple[float, bool]:
    with av.open(str(path)) as container:
        return float(container.duration) / 1_000_000, bool(container.streams.audio)


def test_a_scene_is_never_split_across_two_calls(vertex_project, flow_emulator, alice):
    first = vertex_scene(vertex_project, takes=3)
    second = vertex_scene(vertex_project, takes=2)
    takes = first.generate(alice) + second.generate(alice)

    takes = settle(takes)

    assert {take.status for take in takes} == {S.READY}
    assert flow_emulator.stats["vertex_predict"] == 2, "one call per scene"
    assert flow_emulator.stats["clips_submitted"] == 5


def test_a_scene_vertex_refuses_fails_in_one_call_without_being_split(
    vertex_project, flow_emulator, alice
):
    # On Flow a refused batch is split to find the clip it is about; on Vertex AI a call is one
    # scene, so its refusal already names the scene and its samples are not asked again alone.
    takes = vertex_scene(vertex_project, "[fault:invalid-argument]", takes=3).generate(alice)

    run_pass()

    for take in takes:
        take.refresh_from_db()
    assert {take.status for take in takes} == {S.FAILED}
    assert all("sampleCount" in take.reason for take in takes)
    # The card says which choice was refused before Google's text.
    assert takes[0].reason.startswith("Vertex AI refused the number of takes for this model;")
    assert flow_emulator.stats["vertex_predict"] == 1


def test_a_pasted_vertex_token_that_expired_asks_an_admin_at_once_and_is_not_rechecked(
    vertex_project, flow_emulator, alice
):
    # A Flow 401 is re-checked before anyone is bothered; a pasted Vertex AI token lasts an
    # hour and never comes back, and re-checking it would need a call that spends nothing.
    account = vertex_project.account
    account.replace_credentials(bearer_token=flow_emulator.token)
    account.save()
    flow_emulator.expire_tokens()
    [take] = vertex_scene(vertex_project).generate(alice)

    run_pass()

    take.refresh_from_db()
    account.refresh_from_db()
    assert take.status == S.QUEUED
    assert "Vertex AI access token of account" in take.reason
    assert (account.problem, account.credential_refusals) == (take.reason, 0)
    run_pass(now=timezone.now() + timedelta(hours=1))
    assert flow_emulator.stats["vertex_predict"] == 1, "nothing is sent until an admin fixes it"


def test_a_vertex_account_whose_key_was_removed_fails_its_takes_asking_for_a_key(
    vertex_project, flow_emulator, alice
):
    [take] = vertex_scene(vertex_project).generate(alice)
    FlowAccount.objects.filter(pk=vertex_project.account.pk).update(service_account_key="")

    run_pass()

    take.refresh_from_db()
    assert take.status == S.FAILED
    assert take.reason.startswith(
        "The Vertex AI account Studio has no usable service-account key or token ("
    )
    assert take.reason.endswith("ask an admin to paste one.")
    assert flow_emulator.stats["vertex_predict"] == 0


def test_alices_take_vertex_keeps_refusing_promises_a_retry_once_and_none_once_failed(
    vertex_project, flow_emulator, alice
):
    now = timezone.now()

    def fail(marker):
        nonlocal now
        [take] = vertex_scene(vertex_project, marker).generate(alice)
        while take.status == S.QUEUED:
            run_pass(now=now)
            take.refresh_from_db()
            yield take.reason
            now += timedelta(minutes=10)

    quota = list(fail("[fault:quota]"))
    assert re.fullmatch(
        r"Vertex AI's quota for project flowsite-demo in us-central1 is used up for now\. "
        r"Flowsite will try again in about \d+ seconds?\.",
        quota[0],
    ), quota[0]
    assert quota[-1] == (
        "Vertex AI's quota for project flowsite-demo in us-central1 is used up for now. "
        "Flowsite gave up after 6 attempts."
    )
    assert list(fail("[fault:error500]"))[-1] == (
        "Vertex AI had an internal error (HTTP 500) while submitting a scene's takes. "
        "Flowsite gave up after 6 attempts."
    )


def test_alice_sees_a_vertex_take_with_a_poster_made_from_its_first_frame(
    vertex_project, flow_emulator, alice
):
    # Vertex AI gives no poster, and every Vertex AI card was an empty grey box until played.
    [take] = settle(vertex_scene(vertex_project).generate(alice))

    assert take.status == S.READY
    assert take.poster.name == f"{take.media_dir()}/poster.jpg"
    media = Path(django_settings.MEDIA_ROOT)
    assert hashlib.sha256((media / take.poster.name).read_bytes()).hexdigest() == take.poster_sha256
    with av.open(str(media / take.video.name)) as container:
        first = next(container.decode(video=0)).to_image()
    with Image.open(media / take.poster.name) as poster:
        assert poster.size == first.size
        assert ImageStat.Stat(ImageChops.difference(poster.convert("RGB"), first)).mean[0] < 2
    page = client_for(alice).get(reverse("project-detail", args=[vertex_project.uuid]))
    assert f'poster="/media/take/{take.uuid}/poster"' in page.text
    assert sorted(p.name for p in (media / take.media_dir()).iterdir()) == [
        "clip.mp4",
        "poster.jpg",
    ]


def test_a_vertex_clip_whose_first_frame_cannot_be_decoded_is_ready_without_a_poster(
    vertex_project, flow_emulator, alice, monkeypatch
):
    fetch = VertexEngine.fetch_video
    garbled = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(4096)
    monkeypatch.setattr(
        VertexEngine,
        "fetch_video",
        lambda self, clip, dest, **kw: fetch(self, replace(clip, video_data=garbled), dest, **kw),
    )

    [take] = settle(vertex_scene(vertex_project).generate(alice))

    assert take.status == S.READY, take.reason
    assert (take.poster.name, take.poster_sha256) == ("", "")
    folder = Path(django_settings.MEDIA_ROOT) / take.media_dir()
    assert sorted(p.name for p in folder.iterdir()) == ["clip.mp4"], "nothing half-written"
    page = client_for(alice).get(reverse("project-detail", args=[vertex_project.uuid]))
    assert f"/media/take/{take.uuid}/video" in page.text
    assert f'poster="/media/take/{take.uuid}/poster"' not in page.text
