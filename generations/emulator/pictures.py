"""The picture each way of making a clip starts from, for the renderer.

A start-image clip moves across its start image. The others need a picture made here:
- text: a picture drawn from the prompt alone (its colours and shapes follow from the words),
  so two prompts give two different clips and the same prompt the same one;
- ingredients: the reference images side by side, so a viewer sees what the clip was made of;
- frames: the start image, cross-fading into the end image over the clip (``render.py``).
Each picture is PNG bytes, identical for identical inputs, so the render cache still works.
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import Future

from PIL import Image, ImageDraw, ImageOps

from .render import LANDSCAPE_SIZE, PORTRAIT_SIZE, RenderedClip, caption_text
from .state import EmulatorState, StoredImage

# Pictures are drawn at half the clip's size: the camera move scales them anyway.
_SCALE = 2


def _stored(image: Image.Image) -> StoredImage:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    data = buffer.getvalue()
    return StoredImage.from_bytes(data)


def _size(portrait: bool) -> tuple[int, int]:
    width, height = PORTRAIT_SIZE if portrait else LANDSCAPE_SIZE
    return width // _SCALE, height // _SCALE


def text_picture(prompt: str, portrait: bool) -> StoredImage:
    """A picture from the prompt alone: a two-colour gradient with a few discs, every colour
    and place taken from a hash of the caption."""
    digest = hashlib.sha256(caption_text(prompt).encode()).digest()
    width, height = _size(portrait)
    top, bottom = tuple(digest[0:3]), tuple(digest[3:6])
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / max(1, height - 1)
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    for index in range(4):
        chunk = digest[8 + index * 6 : 14 + index * 6]
        x, y = chunk[0] * width // 256, chunk[1] * height // 256
        radius = 10 + chunk[2] * min(width, height) // 1024
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=tuple(chunk[3:6]))
    return _stored(image)


def collage(references: list[StoredImage], portrait: bool) -> StoredImage:
    """The reference images side by side (one above the other for a portrait clip), each
    whole inside its part of the frame."""
    width, height = _size(portrait)
    image = Image.new("RGB", (width, height), (24, 24, 28))
    count = max(1, len(references))
    for index, reference in enumerate(references):
        if portrait:
            box = (0, index * height // count, width, (index + 1) * height // count)
        else:
            box = (index * width // count, 0, (index + 1) * width // count, height)
        tile = (box[2] - box[0], box[3] - box[1])
        with Image.open(io.BytesIO(reference.data)) as opened:
            picture = ImageOps.contain(
                ImageOps.exif_transpose(opened).convert("RGB"), tile, Image.Resampling.BILINEAR
            )
        left = box[0] + (tile[0] - picture.width) // 2
        top = box[1] + (tile[1] - picture.height) // 2
        image.paste(picture, (left, top))
    return _stored(image)


def render_mode(
    state: EmulatorState,
    mode: str,
    images: list[StoredImage],
    prompt: str,
    portrait: bool,
    seed: int,
    **options,
) -> Future[RenderedClip]:
    """Start rendering a clip of ``mode`` from its uploaded or inline ``images`` (the start
    image; the start and end frames; the references; none for text)."""
    if mode == "text":
        return state.renderer.render(
            text_picture(prompt, portrait), prompt, portrait, seed, **options
        )
    if mode == "ingredients":
        return state.renderer.render(collage(images, portrait), prompt, portrait, seed, **options)
    if mode == "frames":
        return state.renderer.render(images[0], prompt, portrait, seed, end=images[1], **options)
    return state.renderer.render(images[0], prompt, portrait, seed, **options)
