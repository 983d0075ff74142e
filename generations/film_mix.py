"""Stream copy and re-encoding in one film: which clips may be copied, and how their H.264
shares one MP4 track with the film's own encoder.

An MP4 track names its H.264 parameter sets (SPS and PPS) once, in its ``avcC`` record, and
every slice says by number which PPS (and so which SPS) it was coded with. A copied clip's
slices point at the clip's own sets; re-encoded ones at the encoder's, which differ (another
profile, entropy coder, reference count…). Decoded with the wrong set, a slice is garbage, which
is why the film used to re-encode everything as soon as one clip needed it.

They can share the track soundly when every set has its own number: libx264 numbers its sets
with ``sps-id``, so the encoder is given a number the copied clips do not use, and the film's
``avcC`` lists the copied clips' sets and the encoder's side by side. Decoders keep every set
they are given and pick per slice; a switch of SPS happens only at an IDR picture, where H.264
allows it, since each re-encoded segment starts with one (a fresh encoder) and a copied clip
must start with one (``copy_refusal``).

What cannot be copied, and is re-encoded instead (``copy_refusal`` says which and why):

- a trimmed clip (a cut inside a GOP would need the frames before it);
- another codec, frame size, pixel format (only 8-bit 4:2:0, the film's) or frame rate;
- a clip whose parameter sets differ from the first copyable clip's (one group is copied;
  merging several groups would need renumbering inside every slice header);
- a clip whose first picture is not an IDR, or whose NAL lengths are not 4 bytes (the film's
  ``avcC`` has one length size for the whole track).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av

# NAL unit types (H.264 table 7-1).
NAL_IDR, NAL_SPS, NAL_PPS = 5, 7, 8
# H.264 allows SPS ids 0-31.
MAX_SPS_ID = 31


@dataclass(frozen=True)
class AvcConfig:
    """The parts of an ``avcC`` record (ISO/IEC 14496-15, 5.3.3.1) the film needs."""

    profile: int
    compatibility: int
    level: int
    length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]

    @classmethod
    def parse(cls, record: bytes) -> AvcConfig | None:
        """The record, or None when it is not one (Annex B extradata, or none)."""
        if len(record) < 7 or record[0] != 1:
            return None
        position = 5
        sets: list[list[bytes]] = [[], []]
        try:
            for kind in range(2):
                count = record[position] & (0x1F if kind == 0 else 0xFF)
                position += 1
                for _ in range(count):
                    size = int.from_bytes(record[position : position + 2], "big")
                    sets[kind].append(bytes(record[position + 2 : position + 2 + size]))
                    position += 2 + size
        except IndexError:
            return None
        return cls(
            profile=record[1],
            compatibility=record[2],
            level=record[3],
            length_size=(record[4] & 3) + 1,
            sps=tuple(sets[0]),
            pps=tuple(sets[1]),
        )

    def sps_ids(self) -> set[int]:
        return {_first_ue(nal[4:]) for nal in self.sps}

    def pps_ids(self) -> set[int]:
        return {_first_ue(nal[1:]) for nal in self.pps}


def merged_record(copied: AvcConfig, encoder: AvcConfig) -> bytes:
    """One ``avcC`` listing both groups of sets. Its profile and level must hold for every set
    listed: the higher profile and level, and only the compatibility flags both share."""
    profile = max(copied.profile, encoder.profile)
    record = bytearray(
        [
            1,
            profile,
            copied.compatibility & encoder.compatibility,
            max(copied.level, encoder.level),
            0xFC | 3,
            0xE0 | len(copied.sps + encoder.sps),
        ]
    )
    for nal in copied.sps + encoder.sps:
        record += len(nal).to_bytes(2, "big") + nal
    record.append(len(copied.pps + encoder.pps))
    for nal in copied.pps + encoder.pps:
        record += len(nal).to_bytes(2, "big") + nal
    if profile in (100, 110, 122, 144):
        # High profiles carry chroma format and bit depths: 4:2:0, 8 bits (copy_refusal).
        record += bytes([0xFC | 1, 0xF8, 0xF8, 0])
    return bytes(record)


def _unescape(data: bytes) -> bytes:
    """The RBSP of a NAL unit: its emulation-prevention bytes (00 00 03) removed."""
    return data.replace(b"\x00\x00\x03", b"\x00\x00")


def _first_ue(data: bytes) -> int:
    """The first Exp-Golomb number of ``data`` (an SPS's or PPS's own id)."""
    bits = "".join(f"{byte:08b}" for byte in _unescape(data[:8]))
    zeros = len(bits) - len(bits.lstrip("0"))
    return int(bits[zeros : 2 * zeros + 1], 2) - 1


def annexb_nals(data: bytes) -> list[bytes]:
    """The NAL units of Annex B bytes (each after a 00 00 01 or 00 00 00 01 start code)."""
    nals = []
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        following = data.find(b"\x00\x00\x01", begin)
        end = len(data) if following < 0 else following
        nal = data[begin:end]
        if following >= 0 and nal.endswith(b"\x00"):
            nal = nal[:-1]  # the leading zero of a four-byte start code
        if nal:
            nals.append(nal)
        start = following
    return nals


def length_prefixed(data: bytes) -> bytes:
    """Annex B bytes as MP4 stores them: each NAL unit after its four-byte length."""
    return b"".join(len(nal).to_bytes(4, "big") + nal for nal in annexb_nals(data))


def starts_with_idr(payload: bytes, length_size: int = 4) -> bool:
    """Whether a length-prefixed access unit holds an IDR slice."""
    position = 0
    while position + length_size <= len(payload):
        size = int.from_bytes(payload[position : position + length_size], "big")
        position += length_size
        if position < len(payload) and payload[position] & 0x1F == NAL_IDR:
            return True
        position += size
    return False


def copy_refusal(probe, film_probe, trimmed: bool) -> str | None:
    """Why this clip cannot be stream-copied into the film whose first copyable clip is
    ``film_probe`` (its size, rate and parameter sets are the group's), or None if it can."""
    if trimmed:
        return "trimmed"
    if probe.codec != "h264":
        return f"codec {probe.codec}"
    if (probe.width, probe.height) != (film_probe.width, film_probe.height):
        return "frame size"
    if probe.pix_fmt != "yuv420p":
        return f"pixel format {probe.pix_fmt}"
    if probe.rate != film_probe.rate:
        return "frame rate"
    config = AvcConfig.parse(probe.extradata)
    if config is None or config.length_size != 4 or not config.sps or not config.pps:
        return "parameter sets"
    if probe.extradata != film_probe.extradata:
        return "parameter sets"
    if not probe.starts_with_idr:
        return "no IDR at the start"
    return None


def plan_copies(segments, probes, film_size, film_rate) -> list[bool]:
    """Which segments are copied: those with the film's size and rate that ``copy_refusal``
    lets through, all sharing the parameter sets of the first such clip."""
    group = None
    copies = []
    for segment, probe in zip(segments, probes, strict=True):
        fits = (probe.width, probe.height) == film_size and probe.rate == film_rate
        if group is None and fits and copy_refusal(probe, probe, segment.trimmed) is None:
            group = probe
        copies.append(group is not None and copy_refusal(probe, group, segment.trimmed) is None)
    return copies


def free_sps_id(config: AvcConfig) -> int:
    """A number for the encoder's SPS and PPS (x264 gives both the same) that no copied set
    uses."""
    taken = config.sps_ids() | config.pps_ids()
    return next(i for i in range(MAX_SPS_ID + 1) if i not in taken)


class SegmentEncoder:
    """The film's H.264 encoder for one re-encoded segment of a mixed film: its parameter sets
    under ``sps_id``, kept out of the stream (they are in the track's ``avcC``), its packets
    length-prefixed as MP4 stores them."""

    def __init__(self, size, rate: Fraction, sps_id: int, codec: str, options: dict, pix_fmt):
        self.context = av.CodecContext.create(codec, "w")
        self.context.width, self.context.height = size
        self.context.pix_fmt = pix_fmt
        self.context.time_base = 1 / rate
        self.context.framerate = rate
        self.context.flags |= av.codec.context.Flags.global_header
        params = f"sps-id={sps_id}"
        self.context.options = dict(options) | {"x264-params": params}
        self.context.open()
        self.time_base = Fraction(1, 1) / rate

    def config(self) -> AvcConfig:
        """The encoder's parameter sets (libx264 gives them as Annex B)."""
        nals = annexb_nals(bytes(self.context.extradata))
        return AvcConfig(
            profile=nals[0][1] if nals else 0,
            compatibility=nals[0][2] if nals else 0,
            level=nals[0][3] if nals else 0,
            length_size=4,
            sps=tuple(n for n in nals if n[0] & 0x1F == NAL_SPS),
            pps=tuple(n for n in nals if n[0] & 0x1F == NAL_PPS),
        )

    def encode(self, frame) -> list:
        """Packets (in the encoder's time base) for ``frame``; None flushes."""
        out = []
        for packet in self.context.encode(frame):
            converted = av.Packet(length_prefixed(bytes(packet)))
            converted.pts, converted.dts = packet.pts, packet.dts
            converted.duration = packet.duration
            converted.time_base = self.time_base
            converted.is_keyframe = packet.is_keyframe
            out.append(converted)
        return out


# Mixed films (some clips copied, the rest re-encoded) may be turned off, to measure them
# against re-encoding everything (benchmarks/film.py).
MIX = True


def copy_plan(segments, probes) -> list[bool]:
    """Which clips of a film that cannot be copied whole are copied all the same (only the
    film's own encoder, libx264, can number its parameter sets)."""
    from . import film

    if not MIX or film.VIDEO_CODEC != "libx264":
        return [False] * len(segments)
    first = probes[0]
    return plan_copies(segments, probes, (first.width, first.height), first.rate)


class MixedTrack:
    """What ``film._Writer`` does differently in a mixed film: one video track with both
    groups of parameter sets, each re-encoded segment from a fresh encoder, and decoding
    times kept rising across the seams."""

    mix: tuple[int, AvcConfig] | None = None  # the encoder's SPS id and sets
    tick: Fraction  # the video track's time base, as the timestamps are counted

    def open_mixed(self, out, template_path: str, found) -> None:
        """A track that takes the copied clips' packets as they are and the re-encoded ones
        under parameter sets of their own number, both listed in its ``avcC``."""
        self.out = out
        copied = AvcConfig.parse(found.extradata)
        sps_id = free_sps_id(copied)
        self.mix = (sps_id, self._segment_encoder(sps_id).config())
        with av.open(template_path) as source:
            self.video = out.add_stream_from_template(source.streams.video[0])
        # Fine enough for decoding times squeezed a tick apart at the seams, and one the MP4
        # muxer keeps (it replaces a coarser one once the header is written).
        if self.video.time_base.numerator != 1 or self.video.time_base.denominator < 10_000:
            self.video.time_base = Fraction(1, 90_000)
        self.tick = Fraction(self.video.time_base)
        self.video.codec_context.extradata = merged_record(copied, self.mix[1])
        self.encoder = None
        self._open_audio()

    def _segment_encoder(self, sps_id: int) -> SegmentEncoder:
        from . import film

        return SegmentEncoder(
            self.size, self.rate, sps_id, film.VIDEO_CODEC, film.VIDEO_OPTIONS, film.VIDEO_PIX_FMT
        )

    def _encode_mixed(self, source, video_in, audio_in, segment, found, step: str) -> None:
        """A re-encoded segment of a mixed film: a fresh encoder (so it starts with an IDR,
        where the track may switch parameter sets), placed at the film's current position and
        flushed whole before the next clip is copied."""
        from . import film

        self.encoder = self._segment_encoder(self.mix[0])
        if self.encoder.config() != self.mix[1]:
            raise film.FilmError(f"{segment.label}: the encoder changed its settings mid-film.")
        self.frame_index = round(Fraction(self.position) * self.rate)
        self._encode_video(source, video_in, audio_in, segment, found, step)
        self._mux_encoded(self.encoder.encode(None))
        self.encoder = None

    def _mux_encoded(self, packets) -> None:
        """Encoded packets into the track. In a mixed film they are brought into the track's
        time base and their decoding times kept rising past the copied clip before them: a
        B-frame encoder starts decoding before its first picture is shown, while the previous
        clip's last frames are still being decoded."""
        if self.mix is None:
            self.out.mux(packets)
            return
        time_base = self.tick
        for packet in packets:
            scale = Fraction(packet.time_base) / time_base
            pts, dts = round(packet.pts * scale), round(packet.dts * scale)
            if self.last_dts is not None and dts <= self.last_dts:
                dts = self.last_dts + 1
            packet.pts, packet.dts = max(pts, dts), dts
            packet.duration = round((packet.duration or 0) * scale)
            packet.time_base = time_base
            self.last_dts = dts
            packet.stream = self.video
            self.out.mux(packet)
