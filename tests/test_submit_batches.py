"""Takes go to Flow in batches no bigger than Flow's own client sends."""

from generations.models import Generation
from tests.conftest import make_image
from tests.conftest import make_ready_scene as make_scene
from tests.tasks_support import settle


def test_six_takes_of_one_project_go_out_in_two_calls_of_at_most_four(emu, project, alice):
    image = make_image(project)
    first = make_scene(project, "the harbour at dawn", takes=4, image=image)
    second = make_scene(project, "the harbour at dusk", takes=2, image=image)
    takes = first.generate(alice) + second.generate(alice)

    settled = settle(takes)

    assert {take.status for take in settled} == {Generation.Status.READY}
    assert emu.stats["submit"] == 2
    assert emu.stats["clips_submitted"] == 6


def test_the_batch_size_is_a_setting(emu, project, alice, settings):
    settings.FLOW_SUBMIT_BATCH_SIZE = 1
    takes = make_scene(project, "the harbour at noon", takes=3).generate(alice)

    settle(takes)

    assert emu.stats["submit"] == 3
