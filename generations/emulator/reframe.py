"""Clips made from clips: an extension that continues a clip, and an upscale of one.

An extension starts with the window of the source the client sent (Flow's client sends the
last second), repeated as Flow's extensions repeat it, then moves on from the source's last
frame with a camera move that begins on the whole frame, so its first new frame is where the
source ended. An upscale is every frame of the source scaled to 1920×1080 or 3840×2160 (or
the portrait sizes): real pixels, encoded at the fastest preset.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

from .render import (
    AUDIO_RATE,
    RenderedClip,
    _caption_band,
    _save_poster,
    _silence,
    _source_for,
    _window,
    caption_text,
    video_codec,
)


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return stream.frames
        return sum(1 for _ in container.decode(stream))


def _open_output(path: str, size: tuple[int, int], fps: int):
    out = av.open(path, mode="w", format="mp4", options={"movflags": "faststart"})
    stream = out.add_stream(
        video_codec(), rate=fps, options={"preset": "ultrafast", "tune": "fastdecode", "crf": "26"}
    )
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.time_base = Fraction(1, fps)
    stream.codec_context.profile = "Constrained Baseline"
    return out, stream


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
    start = _source_for(kept[-1], size)
    band = _caption_band(caption_text(prompt), *size)
    band_top = size[1] - (band.height if band else 0) - size[1] // 20
    total = max(len(kept) + 1, round(clip_seconds * fps))
    new = total - len(kept)
    video_path, poster_path = out_dir / f"{name}.mp4", out_dir / f"{name}.jpg"
    fd, tmp = tempfile.mkstemp(suffix=".mp4", dir=out_dir)
    os.close(fd)
    try:
        out, stream = _open_output(tmp, size, fps)
        with out:
            sound = out.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
            pts = 0
            for image in kept:
                if pts == 0:
                    _save_poster(image, poster_path, out_dir)
                frame = av.VideoFrame.from_image(image)
                frame.pts = pts
                pts += 1
                out.mux(stream.encode(frame))
            for index in range(1, new + 1):
                t = index / new
                image = start.resize(
                    size, Image.Resampling.BILINEAR, box=_window(start.size, size, t, move & 2)
                )
                if band is not None:
                    image.paste(band, (0, band_top), band)
                frame = av.VideoFrame.from_image(image)
                frame.pts = pts
                pts += 1
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
            if sound is not None:
                _silence(out, sound, total / fps)
        os.replace(tmp, video_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return RenderedClip(video_path, poster_path)


def render_upscale(
    source: Path, size: tuple[int, int], *, fps: int, out_dir: Path, name: str
) -> RenderedClip:
    """``<name>.mp4``: every frame of ``source`` scaled to ``size``."""
    video_path, poster_path = out_dir / f"{name}.mp4", out_dir / f"{name}.jpg"
    fd, tmp = tempfile.mkstemp(suffix=".mp4", dir=out_dir)
    os.close(fd)
    try:
        out, stream = _open_output(tmp, size, fps)
        with out, av.open(str(source)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                scaled = frame.reformat(width=size[0], height=size[1], format="yuv420p")
                if index == 0:
                    _save_poster(scaled.to_image(), poster_path, out_dir)
                scaled.pts = index
                scaled.time_base = Fraction(1, fps)
                out.mux(stream.encode(scaled))
            out.mux(stream.encode(None))
        os.replace(tmp, video_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return RenderedClip(video_path, poster_path)
