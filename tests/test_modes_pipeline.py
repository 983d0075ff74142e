"""Takes of every mode through the worker against the emulator: each image of a scene (start,
end, references) uploaded to Flow once per account and reused across scenes and takes, a
batch never mixing modes, and each take recording what it was made from."""

from __future__ import annotations

import pytest

from generations.models import Generation, ImageUpload
from generations.tasks import run_pass
from tests.conftest import make_image, make_scene
from tests.tasks_support import settle
from tests.test_vertex_pipeline import settle as settle_vertex

S = Generation.Status
RED, GREEN, BLUE = (220, 30, 30), (30, 200, 40), (30, 40, 220)


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.FLOWSITE_POLL_INTERVAL = 0.1


def scenes_of_every_mode(project, alice, *, flow: bool = True):
    red, green, blue = (make_image(project, alice, color=c) for c in (RED, GREEN, BLUE))
    models = (
        {
            "text": "veo_3_1_t2v_fast",
            "frames": "veo_3_1_i2v_s_fast_fl",
            "ingredients": "veo_3_1_r2v_fast_landscape",
        }
        if flow
        else dict.fromkeys(("text", "frames", "ingredients"), "veo-3.1-fast-generate-001")
    )
    extra = {} if flow else {"duration": 8}
    text = make_scene(project, mode="text", model_key=models["text"], **extra)
    frames = make_scene(
        project, red, mode="frames", end_image=blue, model_key=models["frames"], **extra
    )
    ingredients = make_scene(
        project,
        mode="ingredients",
        reference_1=red,
        reference_2=green,
        reference_3=blue,
        model_key=models["ingredients"],
        **extra,
    )
    return text, frames, ingredients, (red, green, blue)


def test_a_take_of_each_mode_is_made_with_each_image_uploaded_once(emu, project, alice):
    text, frames, ingredients, (red, green, blue) = scenes_of_every_mode(project, alice)

    takes = settle(
        [take for scene in (text, frames, ingredients) for take in scene.generate(alice)]
    )

    assert [take.status for take in takes] == [S.READY] * 3, [t.reason for t in takes]
    # Red and blue serve two scenes each, and are uploaded once all the same.
    assert emu.stats["upload"] == 3
    assert ImageUpload.objects.filter(account=project.account).count() == 3
    # One call per mode: Flow has a call for each way of making a clip.
    assert emu.stats["submit"] == 3
    by_mode = {take.mode: take for take in takes}
    assert by_mode["text"].start_image_id is None
    assert (by_mode["frames"].start_image, by_mode["frames"].end_image) == (red, blue)
    assert [
        by_mode["ingredients"].reference_1,
        by_mode["ingredients"].reference_2,
        by_mode["ingredients"].reference_3,
    ] == [red, green, blue]

    # Another take reuses every upload.
    settle(frames.generate(alice) + ingredients.generate(alice))
    assert emu.stats["upload"] == 3


def test_end_and_reference_images_flow_forgot_are_uploaded_again_once(emu, project, alice):
    _, frames, ingredients, (red, green, blue) = scenes_of_every_mode(project, alice)
    for image in (red, green, blue):
        ImageUpload.objects.create(image=image, account=project.account, media_id="gone")

    takes = settle(frames.generate(alice) + ingredients.generate(alice))

    assert [take.status for take in takes] == [S.READY, S.READY]
    assert emu.stats["upload"] == 3
    assert not ImageUpload.objects.filter(media_id="gone").exists()


def test_a_take_whose_end_image_was_deleted_fails_saying_so(emu, project, alice):
    _, frames, _, (red, _, blue) = scenes_of_every_mode(project, alice)
    [take] = frames.generate(alice)
    Generation.objects.filter(pk=take.pk).update(end_image=None)

    [take] = settle([take])

    assert take.status == S.FAILED
    assert take.reason == (
        "The end image of this take was deleted before it could be sent to Flow."
    )
    assert emu.stats["submit"] == 0


def test_a_vertex_take_whose_end_image_was_deleted_says_it_was_not_sent_to_vertex_ai(
    vertex_project, flow_emulator, alice
):
    _, frames, _, _ = scenes_of_every_mode(vertex_project, alice, flow=False)
    [take] = frames.generate(alice)
    Generation.objects.filter(pk=take.pk).update(end_image=None)

    [take] = settle_vertex([take])

    assert take.status == S.FAILED
    assert take.reason == (
        "The end image of this take was deleted before it could be sent to Vertex AI."
    )
    assert flow_emulator.stats["vertex_predict"] == 0


def test_a_take_of_each_mode_is_made_on_vertex(vertex_project, flow_emulator, alice):
    text, frames, ingredients, _ = scenes_of_every_mode(vertex_project, alice, flow=False)

    takes = settle_vertex(
        [take for scene in (text, frames, ingredients) for take in scene.generate(alice)]
    )

    assert [take.status for take in takes] == [S.READY] * 3, [t.reason for t in takes]
    assert flow_emulator.stats["vertex_predict"] == 3
    assert flow_emulator.stats["upload"] == 0


def test_a_take_whose_end_image_file_is_gone_from_storage_fails_saying_so(emu, project, alice):
    _, frames, _, (_, _, blue) = scenes_of_every_mode(project, alice)
    [take] = frames.generate(alice)
    blue.file.storage.delete(blue.file.name)

    [take] = settle([take])

    assert take.status == S.FAILED
    assert take.reason == "The end image file could not be read from Flowsite's storage."
    assert emu.stats["submit"] == 0


def test_an_image_nobody_waits_for_any_more_does_not_hold_up_the_takes_beside_it(
    emu, project, alice
):
    # Flow refuses the first scene's start image (its bytes are not an image), so that take
    # drops out; its end image, unreadable too, then concerns no take. The second scene's take,
    # in the same batch, is sent all the same.
    _, frames, _, (red, green, blue) = scenes_of_every_mode(project, alice)
    other = make_scene(
        project, green, mode="frames", end_image=green, model_key="veo_3_1_i2v_s_fast_fl"
    )
    [broken_take] = frames.generate(alice)
    [take] = other.generate(alice)
    with red.file.storage.open(red.file.name, "wb") as broken:
        broken.write(b"not an image")
    blue.file.storage.delete(blue.file.name)

    run_pass()

    broken_take.refresh_from_db()
    take.refresh_from_db()
    assert broken_take.status == S.FAILED
    assert "not an image that can be decoded" in broken_take.reason
    assert (take.status, take.attempts, take.reason) == (S.PENDING, 0, "")
    assert emu.stats["submit"] == 1
