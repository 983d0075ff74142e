"""Turn a start image and a prompt into a real, playable H.264 clip and its poster.

The clip is a slow camera move (zoom plus a pan along the image's long side) across the start
image with the prompt as a caption, so a person watching the emulated studio can tell takes
apart. It must be cheap: Pillow does the crop-and-scale of each frame in one call, the caption
is drawn once and pasted, and libx264 runs at its fastest preset, because the emulated
operation waits for its render and should not take longer than the clip plays.
"""

from __future__ import annotations

import io
import math
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont, ImageOps

LANDSCAPE_SIZE = (1280, 720)
PORTRAIT_SIZE = (720, 1280)

# How far the camera zooms in over the clip, and how much of the spare width/height it pans.
ZOOM_END = 1.12
_FAULT_MARKER = re.compile(r"\[fault:[^\]]*\]")


@dataclass(frozen=True)
class RenderedClip:
    video_path: Path
    poster_path: Path


def video_codec() -> str:
    """libx264 when this PyAV build has it (browsers play H.264 MP4); the error otherwise says
    what to install rather than failing deep inside a render."""
    if "libx264" in av.codec.codecs_available:
        return "libx264"
    raise RuntimeError(
        "This PyAV build has no libx264 encoder; install the PyAV wheel from PyPI, "
        "which bundles it."
    )


def caption_text(prompt: str) -> str:
    """The prompt as shown on the clip: fault markers are for the emulator, not the viewer."""
    return " ".join(_FAULT_MARKER.sub("", prompt).split())


def _ease(t: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * t)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and draw.textlength(candidate, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    if line:
        lines.append(line)
    return lines


def caption_band(text: str, frame_width: int, frame_height: int) -> Image.Image | None:
    """A translucent band with the wrapped caption, drawn once per clip."""
    if not text:
        return None
    # Sized on the short side, so portrait captions are as legible as landscape ones.
    font_size = max(18, min(frame_width, frame_height) // 26)
    font = ImageFont.load_default(size=font_size)
    margin = font_size
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    lines = _wrap(probe, text, font, frame_width - 2 * margin)
    max_lines = 4
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(".") + "…"
    line_height = int(font_size * 1.3)
    band = Image.new("RGBA", (frame_width, line_height * len(lines) + margin), (0, 0, 0, 140))
    draw = ImageDraw.Draw(band)
    for index, line in enumerate(lines):
        draw.text(
            (margin, margin // 2 + index * line_height), line, font=font, fill=(255, 255, 255, 255)
        )
    return band


def source_for(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The start image scaled once so that every camera window is a near 1:1 crop of it."""
    image = ImageOps.exif_transpose(image).convert("RGB")
    width, height = size
    # A panorama or a sliver would make a huge source for a pan nobody sees the ends of: keep
    # its middle, at most twice as wide (or tall) as the frame's shape.
    frame_ratio, ratio = width / height, image.width / image.height
    if ratio > 2 * frame_ratio:
        keep = round(image.height * 2 * frame_ratio)
        left = (image.width - keep) // 2
        image = image.crop((left, 0, left + keep, image.height))
    elif ratio < frame_ratio / 2:
        keep = round(image.width * 2 / frame_ratio)
        top = (image.height - keep) // 2
        image = image.crop((0, top, image.width, top + keep))
    scale = max(width / image.width, height / image.height) * ZOOM_END
    target = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    return image.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)


# Four camera moves: pan forwards or backwards, zooming in or out.
CAMERA_MOVES = 4


def camera_window(
    source: tuple[int, int], size: tuple[int, int], t: float, move: int = 0
) -> tuple[float, float, float, float]:
    """The part of the source the camera sees at time ``t`` in [0, 1] during ``move``."""
    if move & 1:
        t = 1.0 - t
    src_w, src_h = source
    width, height = size
    # The widest window with the frame's aspect that fits the source, then zoom into it.
    base = min(src_w / width, src_h / height)
    zoom = 1.0 + (ZOOM_END - 1.0) * _ease(t)
    win_w, win_h = width * base / zoom, height * base / zoom
    # Pan from one end of the spare room to the other along the longer spare axis.
    spare_x, spare_y = src_w - win_w, src_h - win_h
    progress = _ease(t) if not move & 2 else 1.0 - _ease(t)
    if spare_x >= spare_y:
        left, top = spare_x * (0.15 + 0.7 * progress), spare_y / 2
    else:
        left, top = spare_x / 2, spare_y * (0.15 + 0.7 * progress)
    return (left, top, left + win_w, top + win_h)


def render_clip(
    image_bytes: bytes,
    prompt: str,
    *,
    portrait: bool,
    clip_seconds: float,
    move: int = 0,
    fps: int,
    out_dir: Path,
    name: str,
    size: tuple[int, int] | None = None,
    audio: bool = False,
    end_image_bytes: bytes | None = None,
) -> RenderedClip:
    """Render ``<name>.mp4`` and ``<name>.jpg`` into ``out_dir``; with ``end_image_bytes``
    the clip cross-fades from the start image into the end image (each under the same camera
    move), so it begins on the one and ends on the other.

    Both files are written under temporary names and renamed into place (``written``).
    """
    size = size or (PORTRAIT_SIZE if portrait else LANDSCAPE_SIZE)
    width, height = size
    frames = max(1, round(clip_seconds * fps))
    with Image.open(io.BytesIO(image_bytes)) as opened:
        source = source_for(opened, size)
    end_source = None
    if end_image_bytes is not None:
        with Image.open(io.BytesIO(end_image_bytes)) as opened:
            end_source = source_for(opened, size)
    band = caption_band(caption_text(prompt), width, height)

    video_path = out_dir / f"{name}.mp4"
    poster_path = out_dir / f"{name}.jpg"
    with written(video_path) as tmp, ClipWriter(tmp, size, fps, audio) as clip:
        for index in range(frames):
            t = index / (frames - 1) if frames > 1 else 0.0
            frame_image = source.resize(
                size, Image.Resampling.BILINEAR, box=camera_window(source.size, size, t, move)
            )
            if end_source is not None:
                end_frame = end_source.resize(
                    size,
                    Image.Resampling.BILINEAR,
                    box=camera_window(end_source.size, size, t, move),
                )
                frame_image = Image.blend(frame_image, end_frame, _ease(t))
            paste_caption(frame_image, band)
            if index == 0:
                save_poster(frame_image, poster_path)
            clip.add(av.VideoFrame.from_image(frame_image))
    return RenderedClip(video_path, poster_path)


def paste_caption(image: Image.Image, band: Image.Image | None) -> None:
    """The caption band, a little above the bottom of the frame."""
    if band is not None:
        image.paste(band, (0, image.height - band.height - image.height // 20), band)


@contextmanager
def written(path: Path) -> Iterator[str]:
    """A temporary file beside ``path``, renamed to it once the block succeeds (a reader never
    sees half a file) and removed if it fails."""
    fd, tmp = tempfile.mkstemp(suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_poster(image: Image.Image, path: Path) -> None:
    with written(path) as tmp:
        image.save(tmp, "JPEG", quality=85)


AUDIO_RATE = 48000


class ClipWriter:
    """An H.264 MP4 written frame by frame, each frame after the last; with ``audio``, a silent
    AAC track as long as the video is added on closing (a clip asked with sound has one)."""

    def __init__(self, path: str, size: tuple[int, int], fps: int, audio: bool = False) -> None:
        self.fps, self.frames = fps, 0
        codec = video_codec()
        self.out = av.open(path, mode="w", format="mp4", options={"movflags": "faststart"})
        self.stream = self.out.add_stream(
            codec, rate=fps, options={"preset": "ultrafast", "tune": "fastdecode", "crf": "26"}
        )
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = Fraction(1, fps)
        # Baseline-compatible profile keeps every browser happy.
        self.stream.codec_context.profile = "Constrained Baseline"
        # Every stream is declared before the first packet is written.
        self.sound = self.out.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None

    def add(self, frame: av.VideoFrame) -> None:
        frame.pts = self.frames
        self.frames += 1
        self.out.mux(self.stream.encode(frame))

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        with self.out:
            if exc_type is None:
                self.out.mux(self.stream.encode(None))
                if self.sound is not None:
                    self._silence(self.frames / self.fps)

    def _silence(self, seconds: float) -> None:
        total, pts = round(seconds * AUDIO_RATE), 0
        while pts < total:
            count = min(1024, total - pts)
            frame = av.AudioFrame(format="fltp", layout="mono", samples=count)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate, frame.pts = AUDIO_RATE, pts
            pts += count
            self.out.mux(self.sound.encode(frame))
        self.out.mux(self.sound.encode(None))
