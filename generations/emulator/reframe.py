"""Clips made from clips: an extension that continues a clip, and an upscale of one.

An extension starts with the window of the source the client sent (Flow's client sends the
last second), repeated as Flow's extensions repeat it, then moves on from the source's last
frame with a camera move that begins on the whole frame, so its first new frame is where the
source ended. An upscale is every frame of the source scaled to 1920×1080 or 3840×2160 (or
the portrait sizes): real pixels, encoded at the fastest preset.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

from .render import (
    ClipWriter,
    RenderedClip,
    camera_window,
    caption_band,
    caption_text,
    paste_caption,
    save_poster,
    source_for,
    written,
)


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return stream.frames
        return sum(1 for _ in container.decode(stream))


def render_extension(
    source: Path,
    prompt: str,
    *,
    window: tuple[int, int],
    clip_seconds: float,
    fps: int,
    out_dir: Path,
    name: str,
    move: int = 0,
    audio: bool = False,
) -> RenderedClip:
    """``<name>.mp4``: frames ``window`` (1-based, inclusive) of ``source``, then new motion
    from its last frame, ``clip_seconds`` in all."""
    first, last = window
    kept: deque[Image.Image] = deque(maxlen=last - first + 1)
    with av.open(str(source)) as container:
        for index, frame in enumerate(container.decode(video=0), start=1):
            if index > last:
                break
            if index >= first:
                kept.append(frame.to_image())
    if not kept:
        raise ValueError("the window holds no frame of the source")
    size = kept[-1].size
    # An even move starts on the whole frame (the window's widest, unzoomed view).
    start = source_for(kept[-1], size)
    band = caption_band(caption_text(prompt), *size)
    new = max(1, round(clip_seconds * fps) - len(kept))
    video_path, poster_path = out_dir / f"{name}.mp4", out_dir / f"{name}.jpg"
    save_poster(kept[0], poster_path)
    with written(video_path) as tmp, ClipWriter(tmp, size, fps, audio) as clip:
        for image in kept:
            clip.add(av.VideoFrame.from_image(image))
        for index in range(1, new + 1):
            image = start.resize(
                size,
                Image.Resampling.BILINEAR,
                box=camera_window(start.size, size, index / new, move & 2),
            )
            paste_caption(image, band)
            clip.add(av.VideoFrame.from_image(image))
    return RenderedClip(video_path, poster_path)


def render_upscale(
    source: Path, size: tuple[int, int], *, fps: int, out_dir: Path, name: str
) -> RenderedClip:
    """``<name>.mp4``: every frame of ``source`` scaled to ``size``."""
    video_path, poster_path = out_dir / f"{name}.mp4", out_dir / f"{name}.jpg"
    with (
        written(video_path) as tmp,
        ClipWriter(tmp, size, fps) as clip,
        av.open(str(source)) as container,
    ):
        for index, frame in enumerate(container.decode(video=0)):
            scaled = frame.reformat(width=size[0], height=size[1], format="yuv420p")
            if index == 0:
                save_poster(scaled.to_image(), poster_path)
            scaled.time_base = Fraction(1, fps)
            clip.add(scaled)
    return RenderedClip(video_path, poster_path)
