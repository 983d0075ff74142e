"""Joining picked takes into one film: an MP4 with H.264 video and AAC audio, made with PyAV.

The film is stream-copied when every clip allows it (the same H.264 parameters and frame size,
no trims): its video packets are the clips' own, renumbered. When only some clips allow it, those
are still copied and the others re-encoded into the same track, each group of H.264 parameter
sets under its own number (``film_mix`` says how, and which clips qualify); with none, every
clip is re-encoded by one encoder.

Every segment gets audio: the clip's own, resampled, or silence as long as its video, so the
film plays through. The audio is always encoded by one AAC encoder for the whole film, which
keeps the track continuous at the seams (copied AAC brings its own priming at each start).

Clips of another aspect are scaled to fit inside the film's frame (the first segment's size)
and padded with black: letterbox or pillarbox, never stretched.

Everything streams: one packet or frame at a time, so memory does not grow with the number or
length of the clips. The film is written to a temporary file beside its final name and renamed
only once complete; a render that fails removes it, and one killed outright leaves it for
``reap`` (see ``FilmRender``).

Long because one render is one pass over the clips (plan, open, copy or encode, audio,
finish) sharing its output's state; the copy rule and the H.264 numbering live in ``film_mix``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
from av.audio.fifo import AudioFifo
from av.audio.resampler import AudioResampler

from . import film_mix

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000
AUDIO_LAYOUT = "stereo"
AUDIO_FORMAT = "fltp"
AUDIO_BITRATE = 128_000
# Samples per AAC-LC frame; the encoder takes exactly this many per call (but the last).
AAC_FRAME = 1024
# The settings of every re-encoded film (benchmarks/film.py gives ffmpeg the same ones).
VIDEO_CODEC = "libx264"
VIDEO_OPTIONS = {"preset": "veryfast", "crf": "20"}
VIDEO_PIX_FMT = "yuv420p"
# Temporary films end in this; ``leftovers`` finds the ones a killed render left.
PART_SUFFIX = ".part.mp4"


class FilmError(Exception):
    """The film cannot be made; the message says why, in the user's words (never a path or an
    errno: the detail goes to the log)."""


class ClipGone(FilmError):
    """A clip's file went away after the render found it: its take (or scene) was deleted
    while the film rendered. Deleting is never blocked by a render, so this is its answer."""

    def __init__(self, label: str) -> None:
        super().__init__(f"{label} was deleted while the film rendered; render again.")


@dataclass(frozen=True)
class Segment:
    """One clip of the film: where its file is, what to call it, and where to cut it."""

    path: str
    label: str
    trim_in: float | None = None
    trim_out: float | None = None
    # Seconds cut from the clip's end because the next clip (its extension) repeats them.
    seam_out: float = 0.0

    @property
    def trimmed(self) -> bool:
        return self.trim_in is not None or self.trim_out is not None

    def at_seam(self, duration: float) -> Segment:
        """This segment with its seam cut made a trim (known once the clip's duration is)."""
        if not self.seam_out:
            return self
        end = max(duration - self.seam_out, 0.0)
        trim_out = end if self.trim_out is None else min(self.trim_out, end)
        return replace(self, trim_out=round(trim_out, 3), seam_out=0.0)


@dataclass(frozen=True)
class Probe:
    width: int
    height: int
    rate: Fraction
    codec: str
    pix_fmt: str
    extradata: bytes
    time_base: Fraction
    duration: float
    frames: int
    has_audio: bool
    # Whether its first video packet holds an IDR picture (film_mix.copy_refusal).
    starts_with_idr: bool = False

    def copy_key(self) -> tuple:
        """What must be equal in two clips for their packets to share one track."""
        return (
            self.codec,
            self.width,
            self.height,
            self.pix_fmt,
            self.extradata,
            self.rate,
            self.time_base,
        )


@dataclass
class FilmResult:
    duration: float
    width: int
    height: int
    copied: bool
    segments: list[dict] = field(default_factory=list)
    # Which segments were stream-copied (all of them when ``copied``).
    copies: list[bool] = field(default_factory=list)


Progress = Callable[[int, int, str], None]


def probe(segment: Segment) -> Probe:
    try:
        container = av.open(segment.path)
    except FileNotFoundError:
        raise ClipGone(segment.label) from None
    except (av.FFmpegError, OSError) as error:
        log.warning("Film clip %s cannot be read: %s", segment.path, error)
        raise FilmError(f"{segment.label}: its clip cannot be read as a video.") from None
    with container:
        if not container.streams.video:
            raise FilmError(f"{segment.label}: its clip has no video.")
        stream = container.streams.video[0]
        context = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or Fraction(24)
        duration = _seconds(container, stream)
        frames = stream.frames or round(duration * rate)
        starts_with_idr = _starts_with_idr(container, stream)
        return Probe(
            width=context.width,
            height=context.height,
            rate=Fraction(rate),
            codec=context.name,
            pix_fmt=context.pix_fmt or "",
            extradata=bytes(context.extradata or b""),
            time_base=Fraction(stream.time_base),
            duration=duration,
            frames=frames,
            has_audio=bool(container.streams.audio),
            starts_with_idr=starts_with_idr,
        )


def _seconds(container, stream) -> float:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def clip_duration(path: str) -> float | None:
    """How long the clip at ``path`` lasts, as the film measures it (``probe``), reading its
    header only; None when it cannot be read or holds no video."""
    try:
        with av.open(path) as container:
            if not container.streams.video:
                return None
            return _seconds(container, container.streams.video[0]) or None
    except (av.FFmpegError, OSError):
        return None


def _starts_with_idr(container, stream) -> bool:
    if stream.codec_context.name != "h264":
        return False
    for packet in container.demux(stream):
        if packet.size:
            return film_mix.starts_with_idr(bytes(packet))
    return False


def check_trims(segment: Segment, probe_: Probe) -> None:
    start = segment.trim_in or 0.0
    end = segment.trim_out if segment.trim_out is not None else probe_.duration
    if start < 0 or end < 0:
        raise FilmError(f"{segment.label}: trims are seconds from the clip's start, not negative.")
    if start >= probe_.duration:
        raise FilmError(
            f"{segment.label}: it starts at {start:g} s but the clip lasts only "
            f"{probe_.duration:.2f} s."
        )
    if end <= start:
        raise FilmError(f"{segment.label}: it must end after it starts ({start:g} s).")


def render_film(
    segments: list[Segment], out_path: str | os.PathLike[str], progress: Progress | None = None
) -> FilmResult:
    """Join ``segments`` into the MP4 ``out_path`` (written whole or not at all)."""
    if not segments:
        raise FilmError("There is nothing to render: no scene has a picked take.")
    probes = [probe(segment) for segment in segments]
    segments = [s.at_seam(p.duration) for s, p in zip(segments, probes, strict=True)]
    for segment, found in zip(segments, probes, strict=True):
        check_trims(segment, found)
    first = probes[0]
    size = (first.width, first.height)
    copy = not any(s.trimmed for s in segments) and all(
        p.copy_key() == first.copy_key() and p.codec == "h264" for p in probes
    )
    copies = [True] * len(segments) if copy else film_mix.copy_plan(segments, probes)
    expected = [_expected_frames(s, p, first.rate) for s, p in zip(segments, probes, strict=True)]
    out_path = Path(out_path)
    part = out_path.with_name(f".{out_path.name}{PART_SUFFIX}")
    writer = _Writer(part, size, first.rate, sum(expected), progress)
    writer.silent = not any(p.has_audio for p in probes)
    mixed = any(copies) and not copy
    try:
        with av.open(str(part), mode="w", format="mp4", options={"movflags": "faststart"}) as out:
            if mixed:
                template = segments[copies.index(True)].path
                writer.open_mixed(out, template, probes[copies.index(True)])
            else:
                writer.open(out, segments[0].path if copy else None)
            for segment, found, copied in zip(segments, probes, copies, strict=True):
                writer.add(segment, found, copy=copied)
            writer.close()
        os.replace(part, out_path)
    except BaseException as error:
        part.unlink(missing_ok=True)
        # Every clip was there when probed; one missing now was deleted since (the
        # FileNotFoundError names only a path, so the segment is found by looking).
        if isinstance(error, FileNotFoundError):
            gone = next((s for s in segments if not os.path.exists(s.path)), None)
            if gone is not None:
                log.warning("Film clip %s went while rendering: %s", gone.path, error)
                raise ClipGone(gone.label) from None
        raise
    return FilmResult(
        duration=writer.position,
        width=size[0],
        height=size[1],
        copied=copy,
        segments=writer.placed,
        copies=copies,
    )


def _expected_frames(segment: Segment, found: Probe, rate: Fraction) -> int:
    start = segment.trim_in or 0.0
    end = segment.trim_out if segment.trim_out is not None else found.duration
    return max(1, round((min(end, found.duration) - start) * float(rate)))


class _Writer(film_mix.MixedTrack):
    """The film being written: its video track (copied or encoded) and its one audio track."""

    def __init__(self, path: Path, size, rate: Fraction, total: int, progress: Progress | None):
        self.path, self.size, self.rate = path, size, rate
        self.total, self.done = max(1, total), 0
        self.progress = progress
        self.position = 0.0  # seconds of film written so far
        self.placed: list[dict] = []
        self.samples_out = 0
        self.silent = False
        self.mix = None  # a mixed film's (sps id, encoder's sets): film_mix.MixedTrack

    # --- setting up -----------------------------------------------------------------------

    def open(self, out, template_path: str | None) -> None:
        self.out = out
        if template_path is not None:
            with av.open(template_path) as source:
                self.video = out.add_stream_from_template(source.streams.video[0])
            # Copied timestamps are counted in this, fixed before the muxer may change it.
            self.tick = Fraction(self.video.time_base)
            self.encoder = None
        else:
            self.video = out.add_stream(VIDEO_CODEC, rate=self.rate, options=dict(VIDEO_OPTIONS))
            self.video.width, self.video.height = self.size
            self.video.pix_fmt = VIDEO_PIX_FMT
            self.video.time_base = 1 / self.rate
            self.video.codec_context.time_base = 1 / self.rate
            self.encoder = self.video
        self._open_audio()

    def _open_audio(self) -> None:
        out = self.out
        self.audio = out.add_stream("aac", rate=AUDIO_RATE, layout=AUDIO_LAYOUT)
        self.audio.bit_rate = AUDIO_BITRATE
        self.audio.time_base = Fraction(1, AUDIO_RATE)
        self.fifo = AudioFifo()
        self.frame_index = 0
        self.last_dts = None

    # --- one segment ----------------------------------------------------------------------

    def add(self, segment: Segment, found: Probe, *, copy: bool) -> None:
        step = f"Joining {segment.label}" if copy else f"Encoding {segment.label}"
        self._report(step)
        self.segment_start = self.position
        self.resampler = AudioResampler(format=AUDIO_FORMAT, layout=AUDIO_LAYOUT, rate=AUDIO_RATE)
        with av.open(segment.path) as source:
            video_in = source.streams.video[0]
            audio_in = source.streams.audio[0] if source.streams.audio else None
            if copy:
                self._copy_video(source, video_in, audio_in, step)
            elif self.mix is not None:
                self._encode_mixed(source, video_in, audio_in, segment, found, step)
            else:
                self._encode_video(source, video_in, audio_in, segment, found, step)
        # Whatever audio the clip lacked (all of it, for a silent clip) is silence.
        self._audio_until(self.position, pad=True)
        self.placed.append(
            {
                "label": segment.label,
                "start": round(self.segment_start, 3),
                "duration": round(self.position - self.segment_start, 3),
                "trim_in": segment.trim_in,
                "trim_out": segment.trim_out,
                "audio": "clip" if found.has_audio else "silence",
            }
        )

    def _copy_video(self, source, video_in, audio_in, step: str) -> None:
        # Timestamps in the film's video time base (a mixed film's clips may have others).
        time_base = self.tick
        scale = Fraction(video_in.time_base) / time_base
        offset = round(Fraction(self.segment_start) / time_base)
        first_pts = None
        end = offset
        streams = [video_in, audio_in] if audio_in is not None else [video_in]
        for packet in source.demux(*streams):
            if packet.stream is audio_in:
                self._feed_audio(packet.decode(), trim_in=None, trim_out=None)
                continue
            if packet.dts is None or packet.pts is None:
                continue  # the demuxer's empty packet at the end
            if first_pts is None:
                first_pts = packet.pts
            pts = round((packet.pts - first_pts) * scale) + offset
            dts = round((packet.dts - first_pts) * scale) + offset
            if self.last_dts is not None and dts <= self.last_dts:
                dts = self.last_dts + 1
            packet.pts, packet.dts = max(pts, dts), dts
            packet.duration = round((packet.duration or 0) * scale)
            packet.time_base = time_base
            self.last_dts = dts
            end = max(end, packet.pts + packet.duration)
            packet.stream = self.video
            self.out.mux(packet)
            self.position = float(end * time_base)
            self._frame_done(step)
            self._audio_until(self.position, pad=audio_in is None)

    def _encode_video(self, source, video_in, audio_in, segment, found, step: str) -> None:
        trim_in = segment.trim_in or 0.0
        trim_out = segment.trim_out
        half = 0.5 / float(found.rate)
        graph = self._fit_graph(video_in, found)
        streams = [video_in, audio_in] if audio_in is not None else [video_in]
        finished = False
        for packet in source.demux(*streams):
            if packet.stream is audio_in:
                self._feed_audio(packet.decode(), trim_in=trim_in, trim_out=trim_out)
                continue
            for frame in packet.decode():
                moment = frame.time if frame.time is not None else 0.0
                if moment < trim_in - half:
                    continue
                if trim_out is not None and moment >= trim_out - half:
                    finished = True
                    break
                for fitted in self._fit(graph, frame):
                    self._encode(fitted, step, silent=audio_in is None)
            if finished and audio_in is None:
                break
        if graph is not None:
            for fitted in self._fit(graph, None):
                self._encode(fitted, step)

    def _fit_graph(self, video_in, found: Probe):
        """A filter graph that scales the clip into the film's frame and pads it with black,
        or None when the clip already has the film's size and pixel format."""
        width, height = self.size
        if (found.width, found.height) == (width, height) and found.pix_fmt == VIDEO_PIX_FMT:
            return None
        graph = av.filter.Graph()
        source = graph.add_buffer(template=video_in)
        chain = [
            source,
            graph.add("scale", f"{width}:{height}:force_original_aspect_ratio=decrease"),
            graph.add("pad", f"{width}:{height}:(ow-iw)/2:(oh-ih)/2:black"),
            graph.add("setsar", "1"),
            graph.add("format", VIDEO_PIX_FMT),
            graph.add("buffersink"),
        ]
        graph.link_nodes(*chain).configure()
        return graph

    def _fit(self, graph, frame) -> Iterable:
        if graph is None:
            if frame is not None:
                yield frame
            return
        graph.push(frame)
        while True:
            try:
                yield graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return

    def _encode(self, frame, step: str, *, silent: bool = True) -> None:
        frame.pts = self.frame_index
        frame.time_base = 1 / self.rate
        frame.pict_type = av.video.frame.PictureType.NONE
        self.frame_index += 1
        self._mux_encoded(self.encoder.encode(frame))
        self.position = float(self.frame_index / self.rate)
        self._frame_done(step)
        self._audio_until(self.position, pad=silent)

    # --- audio ----------------------------------------------------------------------------

    def _feed_audio(self, frames, *, trim_in, trim_out) -> None:
        """Queue the clip's audio inside the trims; what runs past the video's end is cut when
        the segment closes (``_audio_until`` with ``pad``)."""
        for frame in frames:
            moment = frame.time or 0.0
            if trim_in is not None and moment < trim_in:
                continue
            if trim_out is not None and moment >= trim_out:
                continue
            for resampled in self.resampler.resample(frame):
                resampled.pts = None
                self.fifo.write(resampled)

    def _audio_until(self, moment: float, *, pad: bool) -> None:
        """Encode the audio queued up to ``moment`` of the film; with ``pad``, first fill the
        segment with silence up to there."""
        target = round(moment * AUDIO_RATE)
        if self.silent:
            self._silent_packets_until(target, pad=pad)
            return
        queued_end = self.samples_out + self.fifo.samples
        if pad and queued_end < target:
            self._silence(target - queued_end)
        elif queued_end > target and pad:
            # More audio than video at the end of a segment: cut it at the video's end.
            surplus = queued_end - target
            keep = self.fifo.samples - surplus
            frame = self.fifo.read(keep) if keep > 0 else None
            self.fifo = AudioFifo()
            if frame is not None:
                frame.pts = None
                self.fifo.write(frame)
        while self.fifo.samples >= AAC_FRAME and (self.samples_out + AAC_FRAME <= target or pad):
            self._encode_audio(self.fifo.read(AAC_FRAME))

    def _silent_packets_until(self, target: int, *, pad: bool) -> None:
        """A film none of whose clips has sound: the same encoded frame of silence, repeated,
        instead of encoding silence frame by frame (which would cost more than joining the
        video). With ``pad`` the track may run past ``target`` by less than one AAC frame;
        later segments are measured from the film's start, so that never adds up."""
        while self.samples_out + (0 if pad else AAC_FRAME) < target + (0 if pad else 1):
            packet = av.Packet(silent_aac_frame())
            packet.pts = packet.dts = self.samples_out
            packet.duration = AAC_FRAME
            packet.time_base = Fraction(1, AUDIO_RATE)
            packet.stream = self.audio
            self.out.mux(packet)
            self.samples_out += AAC_FRAME

    def _silence(self, samples: int) -> None:
        while samples > 0:
            count = min(samples, 4096)
            frame = av.AudioFrame(format=AUDIO_FORMAT, layout=AUDIO_LAYOUT, samples=count)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate = AUDIO_RATE
            self.fifo.write(frame)
            samples -= count

    def _encode_audio(self, frame) -> None:
        frame.pts = self.samples_out
        frame.time_base = Fraction(1, AUDIO_RATE)
        self.samples_out += frame.samples
        self.out.mux(self.audio.encode(frame))

    # --- finishing ------------------------------------------------------------------------

    def close(self) -> None:
        self._report("Finishing the film")
        if self.encoder is not None:
            self.out.mux(self.encoder.encode(None))
        self._audio_until(self.position, pad=True)
        if self.silent:
            return
        if self.fifo.samples:
            self._encode_audio(self.fifo.read())
        self.out.mux(self.audio.encode(None))

    def _frame_done(self, step: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total, step)

    def _report(self, step: str) -> None:
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total, step)


_SILENT_FRAME: bytes | None = None


def silent_aac_frame() -> bytes:
    """One AAC frame of silence as the film's audio encoder makes it once past its start-up:
    every such frame is the same, so a silent stretch can repeat it."""
    global _SILENT_FRAME
    if _SILENT_FRAME is None:
        context = av.CodecContext.create("aac", "w")
        context.sample_rate, context.layout, context.format = AUDIO_RATE, AUDIO_LAYOUT, AUDIO_FORMAT
        context.bit_rate = AUDIO_BITRATE
        context.time_base = Fraction(1, AUDIO_RATE)
        packets = []
        for index in range(8):
            frame = av.AudioFrame(format=AUDIO_FORMAT, layout=AUDIO_LAYOUT, samples=AAC_FRAME)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate, frame.pts = AUDIO_RATE, index * AAC_FRAME
            frame.time_base = Fraction(1, AUDIO_RATE)
            packets += context.encode(frame)
        _SILENT_FRAME = bytes(packets[-1])
    return _SILENT_FRAME
