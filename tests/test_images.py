"""Start images are judged by their bytes and stored as clean, upright, metadata-free copies."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import ExifTags, Image, ImageCms

from generations import images
from generations.images import ImageRejected, store_start_image
from generations.models import ImageAsset


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def picture(width: int = 64, height: int = 36, mode: str = "RGB") -> Image.Image:
    image = Image.new(mode, (width, height), (30, 120, 200) if mode == "RGB" else None)
    return image


def upload(data: bytes, name: str = "still.jpg", content_type: str = "image/jpeg"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def stored_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` × ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def open_stored(asset: ImageAsset) -> Image.Image:
    with asset.file.open("rb") as handle:
        image = Image.open(io.BytesIO(handle.read()))
        image.load()
    return image


@pytest.mark.parametrize(
    ("fmt", "name", "expected_mime"),
    [
        ("JPEG", "a.jpg", "image/jpeg"),
        ("PNG", "a.png", "image/png"),
        ("WEBP", "a.webp", "image/jpeg"),
    ],
)
def test_a_good_image_is_stored_with_its_size_type_and_hash(
    project, alice, settings, fmt, name, expected_mime
):
    data = encode(picture(64, 36), fmt)

    asset = store_start_image(project, upload(data, name), alice)

    asset.refresh_from_db()
    with asset.file.open("rb") as handle:
        stored = handle.read()
    assert asset.project == project
    assert asset.uploaded_by == alice
    assert asset.original_name == name
    assert (asset.width, asset.height) == (64, 36)
    assert asset.mime_type == expected_mime
    assert asset.size == len(stored)
    assert asset.sha256 == hashlib.sha256(stored).hexdigest()
    assert asset.file.name.startswith(f"images/{project.uuid}/{asset.uuid}.")
    assert asset.file.name.endswith(".png" if expected_mime == "image/png" else ".jpg")
    assert Image.open(io.BytesIO(stored)).format == expected_mime.split("/")[1].upper()


def test_the_name_argument_overrides_the_file_name(project, alice):
    asset = store_start_image(
        project, io.BytesIO(encode(picture(), "PNG")), alice, name="opening shot.png"
    )

    assert asset.original_name == "opening shot.png"


def test_a_text_file_named_jpg_is_refused(project, alice, settings):
    with pytest.raises(ImageRejected, match=r"^That file is not a JPEG, PNG or WebP image\.$"):
        store_start_image(project, upload(b"just some notes\n" * 20, "photo.jpg"), alice)

    assert ImageAsset.objects.count() == 0
    assert stored_files(settings) == []


def test_a_gif_is_refused_even_with_an_image_content_type(project, alice, settings):
    data = encode(picture(mode="P"), "GIF")

    with pytest.raises(ImageRejected, match="not a JPEG, PNG or WebP"):
        store_start_image(project, upload(data, "cat.png", "image/png"), alice)

    assert ImageAsset.objects.count() == 0
    assert stored_files(settings) == []


def test_an_empty_file_is_refused(project, alice):
    with pytest.raises(ImageRejected, match="not a JPEG, PNG or WebP"):
        store_start_image(project, upload(b"", "empty.jpg"), alice)


def test_oversized_bytes_are_refused_before_anything_is_decoded(
    project, alice, settings, monkeypatch
):
    settings.FLOWSITE_MAX_IMAGE_BYTES = 1024 * 1024
    data = encode(Image.effect_noise((800, 800), 100).convert("RGB"), "PNG")
    assert len(data) > 1024 * 1024

    def no_decoding(*args, **kwargs):
        raise AssertionError("the image was handed to Pillow")

    monkeypatch.setattr(images.Image, "open", no_decoding)
    with pytest.raises(ImageRejected, match=r"^The image is larger than 1 MB\.$"):
        store_start_image(project, upload(data, "big.png"), alice)

    assert ImageAsset.objects.count() == 0
    assert stored_files(settings) == []


def test_a_stream_without_a_size_is_read_only_one_byte_past_the_cap(project, alice, settings):
    settings.FLOWSITE_MAX_IMAGE_BYTES = 1000

    class Endless(io.RawIOBase):
        asked: list[int] = []

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            self.asked.append(size)
            return b"\xff" * size

    stream = Endless()
    with pytest.raises(ImageRejected, match="larger than"):
        store_start_image(project, stream, alice)

    assert stream.asked == [1001]


def test_the_default_cap_is_twenty_megabytes(project, alice, settings):
    del settings.FLOWSITE_MAX_IMAGE_BYTES
    too_big = SimpleUploadedFile("huge.jpg", b"")
    too_big.size = 20 * 1024 * 1024 + 1

    with pytest.raises(ImageRejected, match=r"^The image is larger than 20 MB\.$"):
        store_start_image(project, too_big, alice)


def test_a_decompression_bomb_is_refused(project, alice, settings):
    bomb = png_declaring(20000, 20000)
    assert len(bomb) < 200

    with pytest.raises(ImageRejected) as refused:
        store_start_image(project, upload(bomb, "bomb.png"), alice)

    assert str(refused.value) == "The image is too large (400 megapixels; at most 40)."
    assert ImageAsset.objects.count() == 0
    assert stored_files(settings) == []


def test_an_image_over_the_pixel_cap_is_refused_from_its_header(
    project, alice, settings, monkeypatch
):
    settings.FLOWSITE_MAX_IMAGE_PIXELS = 1_000_000
    loaded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: loaded.append(self))

    with pytest.raises(ImageRejected) as refused:
        store_start_image(project, upload(png_declaring(1500, 1000), "wide.png"), alice)

    assert str(refused.value) == "The image is too large (1.5 megapixels; at most 1)."
    assert loaded == []


def test_a_truncated_jpeg_is_refused(project, alice, settings):
    data = encode(Image.effect_noise((300, 200), 80).convert("RGB"), "JPEG")

    with pytest.raises(ImageRejected, match="damaged or incomplete"):
        store_start_image(project, upload(data[: len(data) // 2]), alice)

    assert ImageAsset.objects.count() == 0
    assert stored_files(settings) == []


def test_exif_orientation_six_rotates_the_stored_pixels(project, alice):
    # Stored sideways: red on the left, blue on the right; orientation 6 means "turn clockwise".
    source = Image.new("RGB", (80, 40), (0, 0, 255))
    source.paste((255, 0, 0), (0, 0, 40, 40))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    data = encode(source, "JPEG", exif=exif, quality=95)

    asset = store_start_image(project, upload(data), alice)

    stored = open_stored(asset)
    assert (asset.width, asset.height) == (40, 80) == stored.size
    top, bottom = stored.getpixel((20, 10)), stored.getpixel((20, 70))
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom
    assert ExifTags.Base.Orientation not in stored.getexif()


def test_a_jpeg_with_gps_exif_is_stored_with_no_exif_at_all(project, alice):
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.0)
    data = encode(picture(), "JPEG", exif=exif)
    # The source really carries the position.
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    asset = store_start_image(project, upload(data), alice)

    with asset.file.open("rb") as handle:
        stored_bytes = handle.read()
    stored = Image.open(io.BytesIO(stored_bytes))
    assert "exif" not in stored.info
    assert len(stored.getexif()) == 0
    assert stored.getexif().get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert b"Exif" not in stored_bytes
    assert b"PhoneCo" not in stored_bytes


def test_png_text_chunks_and_colour_profile_are_not_kept(project, alice):
    from PIL import PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "Alice Liddell")
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(picture(), "PNG", pnginfo=text, icc_profile=profile)

    asset = store_start_image(project, upload(data, "a.png"), alice)

    stored = open_stored(asset)
    assert "icc_profile" not in stored.info
    assert "Author" not in stored.info
    assert stored.getpixel((5, 5)) == (30, 120, 200)


def test_a_cmyk_jpeg_is_stored_as_rgb(project, alice):
    data = encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG")

    asset = store_start_image(project, upload(data), alice)

    stored = open_stored(asset)
    assert stored.mode == "RGB"
    red, green, blue = stored.getpixel((16, 16))
    assert red > 200 and green < 60 and blue < 60


def test_transparency_is_flattened_onto_white(project, alice):
    source = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    source.paste((0, 0, 0, 255), (0, 0, 10, 20))
    data = encode(source, "PNG")

    asset = store_start_image(project, upload(data, "cutout.png"), alice)

    stored = open_stored(asset)
    assert stored.mode == "RGB"
    assert stored.getpixel((15, 10)) == (255, 255, 255)
    assert stored.getpixel((5, 10)) == (0, 0, 0)


def test_a_palette_png_with_a_transparent_colour_is_stored_as_rgb(project, alice):
    source = Image.new("P", (10, 10), 1)
    source.putpalette([0, 0, 0, 255, 0, 0])
    data = encode(source, "PNG", transparency=0)

    asset = store_start_image(project, upload(data, "p.png"), alice)

    assert open_stored(asset).getpixel((3, 3)) == (255, 0, 0)


def test_a_sixteen_bit_greyscale_png_keeps_its_tones(project, alice):
    source = Image.new("I;16", (10, 10), 32768)
    data = encode(source, "PNG")

    asset = store_start_image(project, upload(data, "grey.png"), alice)

    value = open_stored(asset).getpixel((5, 5))
    assert 120 <= value[0] <= 136 and value[0] == value[1] == value[2]


def test_nothing_is_left_in_storage_when_the_row_cannot_be_saved(
    project, alice, settings, monkeypatch
):
    def broken_save(self, *args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(ImageAsset, "save", broken_save)

    with pytest.raises(RuntimeError):
        store_start_image(project, ContentFile(encode(picture(), "PNG"), name="a.png"), alice)

    assert stored_files(settings) == []


# --- shape and decode memory --------------------------------------------------------------

# (channels for each PNG colour type: grey, RGB, palette, grey + alpha, RGBA)
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def streamed_png(width: int, height: int, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A valid, all-black PNG of any size, written without ever holding its pixels: the rows
    are identical, so one row is compressed once and its bytes repeated (they compress to
    almost nothing, which is what makes such files cheap to upload and dear to decode)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    row_bytes = (width * PNG_CHANNELS[colour_type] * bit_depth + 7) // 8
    block = bytes(min(row_bytes, 1024 * 1024))
    compressor = zlib.compressobj(9)
    checksum = zlib.adler32(b"")

    def compressed_row() -> bytes:
        # A full flush ends the row on a byte boundary with no reference to earlier rows, so
        # a row's bytes after the first are the same for every row.
        nonlocal checksum
        parts = [compressor.compress(b"\x00")]  # the row's filter type: none
        checksum = zlib.adler32(b"\x00", checksum)
        left = row_bytes
        while left:
            step = min(left, len(block))
            parts.append(compressor.compress(block[:step]))
            checksum = zlib.adler32(block[:step], checksum)
            left -= step
        parts.append(compressor.flush(zlib.Z_FULL_FLUSH))
        return b"".join(parts)

    first = compressed_row()
    rest = compressed_row() if height > 1 else b""
    for _ in range(height - 2):
        checksum = zlib.adler32(b"\x00", checksum)
        left = row_bytes
        while left:
            step = min(left, len(block))
            checksum = zlib.adler32(block[:step], checksum)
            left -= step
    # The last block, then the checksum of every row, not just of the two compressed here.
    end = compressor.flush()[:-4] + struct.pack(">I", checksum)
    idat = first + rest * (height - 1) + end
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


@pytest.fixture
def decoded(monkeypatch) -> list[Image.Image]:
    """The images whose pixels were decoded."""
    calls: list[Image.Image] = []
    load = Image.Image.load

    def recording_load(self):
        calls.append(self)
        return load(self)

    monkeypatch.setattr(Image.Image, "load", recording_load)
    return calls


def test_a_16_bit_rgba_png_forty_times_wider_than_tall_is_refused_before_decoding(
    project, alice, settings, decoded
):
    # Under the pixel cap (exactly 40 megapixels), yet no picture a clip can start from.
    data = streamed_png(40_000, 1_000, bit_depth=16, colour_type=6)
    assert len(data) < 400_000

    with pytest.raises(ImageRejected) as refused:
        store_start_image(project, upload(data, "strip.png"), alice)

    assert str(refused.value) == (
        "The image is 40 times as wide as it is tall; a clip frames a start image between "
        "9:16 and 16:9, so crop it to at most 4 to 1."
    )
    assert decoded == []
    assert ImageAsset.objects.count() == 0 and stored_files(settings) == []


def test_a_png_of_forty_million_by_one_pixels_is_refused(project, alice, decoded):
    data = streamed_png(40_000_000, 1, bit_depth=1, colour_type=0)

    with pytest.raises(ImageRejected) as refused:
        store_start_image(project, upload(data, "line.png"), alice)

    assert str(refused.value).startswith(
        "The image is 40,000,000 times as wide as it is tall; a clip frames a start image"
    )
    assert decoded == []


def test_a_picture_just_taller_than_four_to_one_is_refused_and_four_to_one_is_kept(project, alice):
    with pytest.raises(ImageRejected) as refused:
        store_start_image(project, upload(streamed_png(100, 401), "tall.png"), alice)
    kept = store_start_image(project, upload(streamed_png(400, 100), "wide.png"), alice)

    assert str(refused.value) == (
        "The image is 4.1 times as tall as it is wide; a clip frames a start image between "
        "9:16 and 16:9, so crop it to at most 4 to 1."
    )
    assert (kept.width, kept.height) == (400, 100)


def test_decode_memory_counts_the_bytes_of_each_pixel_from_the_header(
    project, alice, settings, decoded
):
    # A budget of 3 bytes a pixel at the cap: 0.6 megapixels of 16-bit RGBA (8 bytes each)
    # pass the pixel cap but not the budget; the same picture in 8-bit RGBA fits.
    settings.FLOWSITE_MAX_IMAGE_PIXELS = 1_000_000
    heavy = streamed_png(1_000, 600, bit_depth=16, colour_type=6)

    with pytest.raises(ImageRejected) as refused:
        store_start_image(project, upload(heavy, "deep.png"), alice)

    assert str(refused.value) == (
        "The image is too heavy to decode: 0.6 megapixels at 64 bits per pixel need 4.8 MB, "
        "and Flowsite decodes at most 3 MB. Save it with 8 bits per channel or with fewer "
        "pixels."
    )
    assert decoded == []
    light = store_start_image(
        project, upload(streamed_png(1_000, 600, colour_type=6), "light.png"), alice
    )
    assert (light.width, light.height, light.mime_type) == (1_000, 600, "image/png")
