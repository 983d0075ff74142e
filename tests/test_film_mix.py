"""A film whose clips are partly stream-copied and partly re-encoded, in one H.264 track.

The clips are real MP4s from the emulator (Constrained Baseline, no B-frames); the film's own
encoder makes High profile with B-frames, under parameter sets of another number.
"""

from dataclasses import replace
from fractions import Fraction

import av
from PIL import ImageChops, ImageStat

from generations import film, film_mix
from tests.film_support import CLIP_SECONDS, FPS, decode_all, media_path, picked

FRAME = 1 / FPS


def segment(pick) -> film.Segment:
    return film.Segment(
        str(media_path(pick.take.video.name)),
        f"take {pick.take.take}",
        float(pick.trim_in) if pick.trim_in is not None else None,
        float(pick.trim_out) if pick.trim_out is not None else None,
    )


def pictures(path) -> list:
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def packets(path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def difference(one, other) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(one, other)).mean) / 3


def test_untrimmed_clips_are_copied_and_a_trimmed_one_re_encoded_into_one_playable_film(
    emu, project, alice, tmp_path
):
    picks = [
        picked(project, alice),
        picked(project, alice, trim_in=0.5, trim_out=1.5),
        picked(project, alice),
    ]
    segments = [segment(pick) for pick in picks]
    out = tmp_path / "film.mp4"

    result = film.render_film(segments, out)

    assert result.copies == [True, False, True] and not result.copied
    expected = 2 * CLIP_SECONDS + 1.0
    assert abs(result.duration - expected) <= FRAME
    decoded = decode_all(out)
    assert decoded["frames"] == round(expected * FPS), decoded
    assert abs(decoded["audio_seconds"] - decoded["video_seconds"]) <= FRAME, decoded
    assert decoded["audio_gaps"] == []
    # The copied clips are their own bytes, and decode to exactly their own pictures.
    clip = round(CLIP_SECONDS * FPS)
    film_packets = packets(out)
    first, third = packets(segments[0].path), packets(segments[2].path)
    assert film_packets[:clip] == first and film_packets[-clip:] == third
    shown = pictures(out)
    for start, source in ((0, segments[0].path), (clip + FPS, segments[2].path)):
        for mine, theirs in zip(shown[start : start + clip], pictures(source), strict=True):
            assert difference(mine, theirs) == 0
    # The re-encoded middle decodes (with its own parameter sets) to the trimmed pictures.
    middle = pictures(segments[1].path)[FPS // 2 : FPS // 2 + FPS]
    for mine, theirs in zip(shown[clip : clip + FPS], middle, strict=True):
        assert difference(mine, theirs) < 2.0


def test_a_film_may_start_and_end_re_encoded_around_one_copied_clip(emu, project, alice, tmp_path):
    picks = [
        picked(project, alice, trim_in=1.0),
        picked(project, alice),
        picked(project, alice, trim_out=0.5),
        picked(project, alice, trim_in=0.25, trim_out=1.25),
    ]
    out = tmp_path / "film.mp4"

    result = film.render_film([segment(pick) for pick in picks], out)

    assert result.copies == [False, True, False, False]
    expected = 1.0 + CLIP_SECONDS + 0.5 + 1.0
    decoded = decode_all(out)
    assert decoded["frames"] == round(expected * FPS), decoded
    assert abs(decoded["video_seconds"] - expected) <= FRAME
    with av.open(str(out)) as container:
        times = [frame.time for frame in container.decode(video=0)]
    # One picture per frame, in order, none shown twice or skipped.
    steps = {round((b - a) * FPS, 3) for a, b in zip(times, times[1:], strict=False)}
    assert steps == {1.0}, steps
    assert packets(out)[FPS : FPS + round(CLIP_SECONDS * FPS)] == packets(segment(picks[1]).path)


def test_with_mixing_turned_off_every_clip_is_re_encoded(emu, project, alice, tmp_path):
    picks = [picked(project, alice), picked(project, alice, trim_in=1.0)]
    film_mix.MIX = False
    try:
        result = film.render_film([segment(pick) for pick in picks], tmp_path / "film.mp4")
    finally:
        film_mix.MIX = True

    assert result.copies == [False, False]
    assert decode_all(tmp_path / "film.mp4")["frames"] == round((CLIP_SECONDS + 1.0) * FPS)


def test_the_rule_copies_only_untrimmed_h264_clips_of_the_films_format_from_an_idr(
    emu, project, alice
):
    pick = picked(project, alice)
    clip = film.probe(segment(pick))
    assert clip.codec == "h264" and clip.starts_with_idr
    assert film_mix.copy_refusal(clip, clip, trimmed=False) is None

    refusals = {
        "trimmed": film_mix.copy_refusal(clip, clip, trimmed=True),
        "codec hevc": film_mix.copy_refusal(replace(clip, codec="hevc"), clip, False),
        "frame size": film_mix.copy_refusal(replace(clip, width=720, height=1280), clip, False),
        "pixel format yuv444p": film_mix.copy_refusal(
            replace(clip, pix_fmt="yuv444p"), clip, False
        ),
        "frame rate": film_mix.copy_refusal(replace(clip, rate=Fraction(25)), clip, False),
        "parameter sets": film_mix.copy_refusal(
            replace(clip, extradata=clip.extradata[:-1] + b"\x01"), clip, False
        ),
        "no IDR at the start": film_mix.copy_refusal(
            replace(clip, starts_with_idr=False), clip, False
        ),
    }
    assert refusals == {reason: reason for reason in refusals}
    # Annex B extradata (no avcC) cannot be listed beside the encoder's sets.
    annexb = replace(clip, extradata=b"\x00\x00\x00\x01\x67\x42")
    assert film_mix.copy_refusal(annexb, annexb, False) == "parameter sets"


def test_the_plan_copies_the_first_copyable_clips_group_in_the_films_frame(emu, project, alice):
    landscape = segment(picked(project, alice))
    trimmed = segment(picked(project, alice, trim_in=0.5))
    portrait = segment(picked(project, alice, portrait=True))
    probes = {s.path: film.probe(s) for s in (landscape, trimmed, portrait)}

    def plan(*segments):
        return film_mix.copy_plan(list(segments), [probes[s.path] for s in segments])

    assert plan(trimmed, landscape, portrait, landscape) == [False, True, False, True]
    # A portrait first clip makes a portrait film: the landscape clips are fitted, not copied.
    assert plan(portrait, landscape) == [True, False]
    other = replace(probes[landscape.path], extradata=probes[landscape.path].extradata + b"\x00")
    assert film_mix.plan_copies(
        [landscape, landscape], [probes[landscape.path], other], (1280, 720), Fraction(24)
    ) == [True, False]


def test_the_encoders_parameter_sets_take_a_number_the_copied_clip_does_not_use(
    emu, project, alice
):
    clip = film.probe(segment(picked(project, alice)))
    copied = film_mix.AvcConfig.parse(clip.extradata)
    sps_id = film_mix.free_sps_id(copied)
    encoder = film_mix.SegmentEncoder(
        (1280, 720), Fraction(24), sps_id, film.VIDEO_CODEC, film.VIDEO_OPTIONS, "yuv420p"
    ).config()

    assert copied.sps_ids() == copied.pps_ids() == {0}
    assert sps_id == 1 and encoder.sps_ids() == encoder.pps_ids() == {1}
    merged = film_mix.AvcConfig.parse(film_mix.merged_record(copied, encoder))
    assert merged.sps == copied.sps + encoder.sps and merged.pps == copied.pps + encoder.pps
    assert merged.profile == max(copied.profile, encoder.profile) == 100  # High
    assert merged.length_size == 4
