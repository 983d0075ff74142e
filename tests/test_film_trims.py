"""Trims on the film page: the film cuts an extended take's last second (the extension repeats
it), so a trim must leave something before that cut; a refused trim keeps what was typed."""

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from generations import film_tasks
from generations.film import Segment
from generations.models import CannotGenerate, FilmRender, Generation, Pick
from tests.film_support import extension_picked, picked
from tests.views_support import client_for, htmx_client_for

# The emulator's clips last 2 s and an extension repeats its source's last 1 s, so the film
# can use 0 to 1 s of a source followed by its extension.
SEAM_WORDS = "the film can use 0 to 1.00 s of this clip"


def prefix(pick) -> str:
    return f"s{pick.scene.uuid.hex[:8]}"


def trim(client, pick, trim_in: str, trim_out: str = ""):
    return client.post(
        reverse("scene-trim", args=[pick.scene.uuid]),
        {f"{prefix(pick)}-trim_in": trim_in, f"{prefix(pick)}-trim_out": trim_out},
    )


def test_alices_trim_that_bobs_extension_cuts_away_is_told_on_the_page_not_in_a_failed_render(
    emu, project, alice, bob, django_assert_num_queries
):
    source = picked(project, alice)
    assert trim(client_for(alice), source, "1.5").status_code == 302, "the whole clip is there"

    extension_picked(source, bob)

    client = client_for(alice)
    with django_assert_num_queries(6):
        page = client.get(reverse("project-film", args=[project.uuid])).text
    row = page.split(f'id="pick-{source.scene.uuid}"')[1].split("</li>")[0]
    assert "Trim in (1.5 s) must be under 1.00 s" in row and SEAM_WORDS in row
    refused = htmx_client_for(alice).post(reverse("project-film-render", args=[project.uuid]))
    assert f"Scene 1 ({source.scene}): Trim in (1.5 s) must be under 1.00 s" in refused.text
    assert not FilmRender.objects.exists(), "nothing is queued to fail in the worker"
    with pytest.raises(CannotGenerate, match="must be under 1.00 s"):
        film_tasks.start(project, alice)

    assert trim(client_for(alice), source, "0.5").status_code == 302
    render = film_tasks.start(project, alice)
    assert film_tasks.run_render(render.pk) == "ready"


def test_bob_cannot_trim_into_the_second_the_extension_repeats_and_is_told_the_range(
    emu, project, alice, bob
):
    source = picked(project, alice)
    extension_picked(source, alice)

    refused = trim(client_for(bob), source, "1.2", "1.8")

    assert refused.status_code == 400
    assert "Trim in (1.2 s) must be under 1.00 s" in refused.text and SEAM_WORDS in refused.text
    source.refresh_from_db()
    assert source.trim_in is None and source.trim_out is None
    assert trim(client_for(bob), source, "0.25", "1.8").status_code == 302, (
        "a trim out inside the repeated second is cut there, as the film always did"
    )


def test_a_refused_trim_comes_back_with_what_bob_typed_and_the_error_beside_it(
    emu, project, alice, bob, django_assert_num_queries
):
    first = picked(project, alice, trim_in="0.5", trim_out="1.5")
    second = picked(project, alice, trim_in="0.25")

    client = client_for(bob)
    prefix(second)  # loads its scene now, so only the page's own queries are counted
    with django_assert_num_queries(6):
        refused = trim(client, second, "1.5", "1")

    assert refused.status_code == 400
    row = refused.text.split(f'id="pick-{second.scene.uuid}"')[1].split("</li>")[0]
    assert f'name="{prefix(second)}-trim_in" value="1.5"' in row
    assert f'name="{prefix(second)}-trim_out" value="1"' in row
    assert "Trim out (1 s) must come after trim in (1.5 s)." in row
    other = refused.text.split(f'id="pick-{first.scene.uuid}"')[1].split("</li>")[0]
    assert f'name="{prefix(first)}-trim_in" value="0.50"' in other, "the other rows as stored"
    assert "must come after" not in other
    second.refresh_from_db()
    assert (float(second.trim_in), second.trim_out) == (0.25, None)


def test_the_film_command_refuses_alices_trim_that_bobs_extension_cuts_away_before_any_work(
    emu, project, alice, bob, tmp_path
):
    source = picked(project, alice, trim_in="1.5")
    extension_picked(source, bob)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "film.mp4"

    with pytest.raises(CannotGenerate) as refusal:
        film_tasks.start(project, alice)
    with pytest.raises(CommandError) as refused:
        call_command("storyboard", "film", "--project", project.name, "--out", str(out))

    assert str(refused.value) == str(refusal.value), "the same words as Render film"
    assert "Trim in (1.5 s) must be under 1.00 s" in str(refused.value)
    assert "No film was written" not in str(refused.value), "refused before rendering"
    assert list(out.parent.iterdir()) == [], "nothing written, not even a part file"


def test_the_preview_is_told_to_cut_the_second_an_extension_repeats_only_before_that_extension(
    emu, project, alice, bob
):
    source = picked(project, alice, trim_out="1.5")
    extension = extension_picked(source, bob)
    last = picked(project, alice)

    page = client_for(bob).get(reverse("project-film", args=[project.uuid])).text

    clips = page.split("data-preview-clip")[1:]
    assert len(clips) == 3
    assert 'data-seam-out="1.0"' in clips[0].split(">")[0], "the source: its last 1 s is cut"
    assert "data-seam-out" not in clips[1].split(">")[0], f"{extension.take} ends the take"
    assert "data-seam-out" not in clips[2].split(">")[0], f"{last.take} is extended by nothing"
    # Its words say so too: a trim out of 1.5 s is not where a 2 s clip extended stops; the
    # film leaves it at 1 s, and the page says that one place.
    assert 'take 1 (0 s to 1 s)"' in clips[0]
    row = page.split(f'id="pick-{source.scene.uuid}"')[1].split("</li>")[0]
    assert (
        "From 0 s to 1 s: the next scene&#x27;s take extends this one and repeats its last 1 s, "
        "so the film stops there, before the trim out (1.5 s)." in row
    )
    assert "1.5 s to" not in row and "to 1.5 s" not in row
    for take in (extension, last):
        row = page.split(f'id="pick-{take.scene.uuid}"')[1].split("</li>")[0]
        assert "The whole clip." in row and "extends this one" not in row


@pytest.mark.parametrize(
    ("trim_in", "trim_out", "clip_seconds", "seam", "words"),
    [
        # The probe's: a trim out inside the second the extension repeats; the render cuts at 7 s.
        (
            None,
            "7.99",
            8.0,
            1.0,
            "From 0 s to 7 s: the next scene's take extends this one and repeats its last 1 s, "
            "so the film stops there, before the trim out (7.99 s).",
        ),
        (
            "0.5",
            None,
            8.041666,
            1.0,
            "From 0.5 s to 7.04 s: the next scene's take extends this one and repeats its last "
            "1 s, so the film stops there.",
        ),
        # A trim out before the repeated second: the seam changes nothing.
        (None, "5", 8.0, 1.0, "From 0 s to 5 s."),
        ("0.50", "6.25", 8.0, 0.0, "From 0.5 s to 6.25 s."),
        (None, None, 8.0, 0.0, "The whole clip."),
        # A clip that cannot be measured here: both places, and which wins.
        (
            None,
            "7.99",
            None,
            1.0,
            "From 0 s to 1 s before its end: the next scene's take extends this one and repeats "
            "its last 1 s, so the film stops there (if the trim out, 7.99 s, does not come "
            "first).",
        ),
    ],
)
def test_the_film_page_says_the_one_place_the_render_leaves_a_take(
    trim_in, trim_out, clip_seconds, seam, words
):
    pick = Pick(
        trim_in=None if trim_in is None else Decimal(trim_in),
        trim_out=None if trim_out is None else Decimal(trim_out),
    )

    assert pick.film_words(clip_seconds, seam)[0] == words
    if clip_seconds is not None:
        # Where render_film leaves the clip (film.Segment.at_seam), to the hundredth.
        leaves = (
            Segment(
                "clip.mp4",
                "take",
                trim_out=None if trim_out is None else float(trim_out),
                seam_out=seam,
            )
            .at_seam(clip_seconds)
            .trim_out
        )
        said = "the end" if leaves is None else f"{Decimal(f'{leaves:.2f}').normalize():f} s"
        assert pick.film_span(clip_seconds, seam)[1] == said


def test_a_take_downloaded_before_clips_were_measured_is_checked_from_its_file(
    emu, project, alice, bob
):
    pick = picked(project, alice)
    Generation.objects.filter(pk=pick.take_id).update(video_seconds=None)

    refused = trim(client_for(bob), pick, "2.5")

    assert refused.status_code == 400
    assert "Trim in (2.5 s) must be inside the clip, which lasts 2.00 s." in refused.text


@pytest.mark.parametrize(
    ("trim_in", "trim_out", "told"),
    [
        ("", "0", "Trim out (0 s) must come after the clip&#x27;s start."),
        ("", "0.05", "The film needs at least 0.1 s of a clip; trim in and out are 0.05 s apart."),
        ("1.95", "", "The film needs at least 0.1 s of a clip; from trim in (1.95 s) it would"),
        # As typed in scientific notation or with trailing zeros: said as a plain number.
        ("1e3", "", "Trim in (1000 s) must be inside the clip, which lasts 2.00 s."),
        ("1.50", "1.20", "Trim out (1.2 s) must come after trim in (1.5 s)."),
    ],
)
def test_bob_cannot_trim_a_clip_down_to_no_frame_at_all(
    emu, project, alice, bob, trim_in, trim_out, told
):
    pick = picked(project, alice)

    refused = trim(client_for(bob), pick, trim_in, trim_out)

    assert refused.status_code == 400
    assert told in refused.text
    pick.refresh_from_db()
    assert (pick.trim_in, pick.trim_out) == (None, None)


def test_a_film_version_says_where_each_trimmed_take_starts_and_ends(emu, project, alice, bob):
    first = picked(project, alice, trim_out="1.5")
    picked(project, alice, trim_in="0.5")
    render = film_tasks.start(project, alice)
    assert film_tasks.run_render(render.pk) == "ready"

    page = client_for(bob).get(reverse("project-film", args=[project.uuid])).text

    assert f"Scene 1 ({first.scene}) take 1, from 0 s to 1.5 s" in page
    assert "take 1, from 0.5 s to the end" in page
