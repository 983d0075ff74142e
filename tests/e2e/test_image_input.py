"""The scene form's image field in Chromium: a picture dropped, pasted or picked from the
project's images, previewed with the crop the scene's aspect makes, and kept through a submit
that fails.

The drop and the paste are real DOM events (``DragEvent`` and ``ClipboardEvent``) carrying a
``DataTransfer`` that holds a ``File`` built in the page from a PNG made here: the page's own
handlers do the rest, as they would for a file from the desktop or the clipboard.
"""

from __future__ import annotations

import base64
import io
import re

import pytest
from django.urls import reverse
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from generations.images import DAMAGED, NOT_AN_IMAGE, too_big_message
from generations.models import ImageAsset, Scene
from tests.conftest import make_image, make_scene, png_bytes
from tests.e2e.test_new_user import sign_in

pytestmark = pytest.mark.browser

SIZES = {"desktop": (1440, 900), "phone": (390, 844)}

# Builds the File in the page; `event` is "drop" (on the drop zone) or "paste" (on the
# focused element, as a paste from the clipboard arrives).
_SEND_PICTURE = """([event, name, encoded]) => {
    const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, {type: "image/png"}));
    if (event === "drop") {
        const zone = document.querySelector("[data-image-input-zone]");
        const init = {dataTransfer: transfer, bubbles: true, cancelable: true};
        zone.dispatchEvent(new DragEvent("dragenter", init));
        zone.dispatchEvent(new DragEvent("dragover", init));
        zone.dispatchEvent(new DragEvent("drop", init));
    } else {
        document.activeElement.dispatchEvent(
            new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true})
        );
    }
}"""


def send_picture(page: Page, event: str, name: str, data: bytes) -> None:
    page.evaluate(_SEND_PICTURE, [event, name, base64.b64encode(data).decode()])


def tall_picture() -> bytes:
    """A lighthouse on a cliff under a sun: what the crop keeps and loses shows."""
    image = Image.new("RGB", (360, 640), (126, 176, 222))
    draw = ImageDraw.Draw(image)
    draw.ellipse((230, 40, 310, 120), fill=(255, 214, 102))
    draw.rectangle((0, 470, 360, 640), fill=(28, 86, 140))
    draw.polygon([(0, 470), (0, 380), (200, 420), (260, 470)], fill=(90, 110, 60))
    draw.rectangle((70, 200, 120, 400), fill=(245, 245, 240))
    draw.rectangle((70, 260, 120, 290), fill=(200, 40, 40))
    draw.polygon([(60, 200), (130, 200), (95, 160)], fill=(200, 40, 40))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def wide_picture() -> bytes:
    return png_bytes(640, 360, colour=(30, 90, 200))


def image_input(page: Page, name: str = "start_image"):
    """The image input ``name`` (the form has five: start, end, three references)."""
    return page.locator(f"[data-image-input]:has(input[name={name}_file])")


def preview(page: Page, name: str = "start_image"):
    return image_input(page, name).locator("img[data-image-input-image]")


def expect_decoded(page: Page, name: str = "start_image") -> None:
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=preview(page, name).element_handle()
    )


def open_new_scene_form(page: Page, project, user: str = "alice") -> None:
    sign_in(page, user)
    page.goto(reverse("scene-create", args=[project.uuid]))
    expect(page.get_by_role("heading", name="New scene")).to_be_visible()
    # The script has set the field up (the drop hint shows only then).
    expect(image_input(page).get_by_text("or drop an image here, or paste one")).to_be_visible()


def test_alice_drops_a_portrait_picture_switches_to_its_aspect_and_it_survives_an_empty_prompt(
    page: Page, project, alice
):
    open_new_scene_form(page, project)
    send_picture(page, "drop", "tower.png", tall_picture())

    # The picture in a 16:9 frame, cropped as the clip would crop it, and the offer of its own
    # aspect.
    expect(preview(page)).to_be_visible()
    assert preview(page).evaluate("img => img.src.startsWith('data:image/png')")
    expect(image_input(page).locator("[data-image-input-frame]")).to_have_class(
        re.compile(r"image-input__frame--landscape")
    )
    crop = image_input(page).locator("[data-image-input-crop]")
    expect(crop).to_have_text(re.compile(r"68% of the picture's height is cut off"))
    use_own = page.get_by_role("button", name="Use the picture's own aspect (Portrait 9:16)")
    use_own.click()
    expect(page.get_by_label("Aspect")).to_have_value("portrait")
    expect(page.get_by_label("Model")).to_have_value(re.compile("portrait"))
    expect(crop).to_have_text("The whole picture fits the clip's frame.")
    expect(use_own).to_be_hidden()
    expect(image_input(page).locator("[data-image-input-frame]")).to_have_class(
        re.compile(r"image-input__frame--portrait")
    )

    # An empty prompt (spaces pass the browser's own check; Flowsite refuses them).
    page.get_by_label("Title").fill("Tower")
    page.get_by_label("Prompt").fill("   ")
    page.get_by_role("button", name="Add scene").click()
    expect(page.get_by_text("Write a prompt: it tells the model what happens")).to_be_visible()

    # The picture is still chosen: kept on the server, shown from there, not asked for again.
    expect(page.get_by_text("Kept from your last try: tower.png (360 × 640)")).to_be_visible()
    kept = ImageAsset.objects.get()
    expect(page.locator("input[name=start_image_kept]")).to_have_value(str(kept.uuid))
    expect(preview(page)).to_have_attribute("src", f"/media/image/{kept.uuid}")
    expect_decoded(page)
    expect(page.get_by_label("Aspect")).to_have_value("portrait")
    expect(crop).to_have_text("The whole picture fits the clip's frame.")

    page.get_by_label("Prompt").fill("The tower's lamp turns as night falls")
    page.get_by_role("button", name="Add scene").click()
    expect(page.locator("article.card", has_text="Tower")).to_be_visible()

    scene = Scene.objects.get(title="Tower")
    assert scene.start_image_id == kept.pk
    assert (scene.aspect, scene.start_image.width, scene.start_image.height) == (
        "portrait",
        360,
        640,
    )
    assert ImageAsset.objects.count() == 1


def test_bob_pastes_a_picture_into_the_form_and_the_scene_starts_from_it(page: Page, project, bob):
    open_new_scene_form(page, project, "bob")
    page.get_by_label("Title").fill("Pasted")
    page.get_by_label("Title").focus()
    send_picture(page, "paste", "clipboard.png", wide_picture())

    expect(preview(page)).to_be_visible()
    expect(image_input(page).locator("[data-image-input-crop]")).to_have_text(
        "The whole picture fits the clip's frame."
    )
    expect(page.get_by_role("button", name=re.compile("own aspect"))).to_be_hidden()
    # The paste went to the picture, not into the title.
    expect(page.get_by_label("Title")).to_have_value("Pasted")
    page.get_by_label("Prompt").fill("Gulls wheel over the quay")
    page.get_by_role("button", name="Add scene").click()
    expect(page.locator("article.card", has_text="Pasted")).to_be_visible()

    assert Scene.objects.get(title="Pasted").start_image.original_name == "clipboard.png"


def test_bob_reuses_the_harbour_picture_from_the_picker(page: Page, project, alice, bob):
    harbour = make_image(project, alice, color=(10, 140, 90))
    make_scene(project, harbour, title="Harbour")
    open_new_scene_form(page, project, "bob")

    image_input(page).get_by_text("Reuse an image of this project (1)").click()
    image_input(page).get_by_role("radio", name=re.compile("start.png")).check()
    expect(preview(page)).to_have_attribute("src", f"/media/image/{harbour.uuid}")
    expect_decoded(page)
    page.get_by_label("Title").fill("Harbour, later")
    page.get_by_label("Prompt").fill("Night falls on the harbour")
    page.get_by_role("button", name="Add scene").click()
    expect(page.locator("article.card", has_text="Harbour, later")).to_be_visible()

    assert Scene.objects.get(title="Harbour, later").start_image_id == harbour.pk
    assert ImageAsset.objects.count() == 1

    # The same picture as the end frame of a Start and end frames scene: picked in the end
    # image's own picker, shown chosen there (still after a failed submit), the start image's
    # untouched.
    page.goto(reverse("scene-create", args=[project.uuid]))
    page.get_by_label("Made from").select_option(label="Start and end frames")
    end = image_input(page, "end_image")
    expect(end).to_be_visible()
    send_picture(page, "drop", "dawn.png", wide_picture())
    expect(preview(page)).to_have_attribute("src", re.compile("^data:image/png"))
    end.get_by_text("Reuse an image of this project (1)").click()
    end.get_by_role("radio", name=re.compile("start.png")).check()
    expect(preview(page, "end_image")).to_have_attribute("src", f"/media/image/{harbour.uuid}")
    expect_decoded(page, "end_image")
    expect(end.locator("[data-image-input-crop]")).to_have_text(
        "The whole picture fits the clip's frame."
    )
    expect(image_input(page).locator("input[type=radio]")).not_to_be_checked()
    page.get_by_label("Title").fill("Harbour at dusk")
    page.get_by_label("Prompt").fill("   ")
    page.get_by_role("button", name="Add scene").click()
    expect(page.get_by_text("Write a prompt: it tells the model what happens")).to_be_visible()

    end = image_input(page, "end_image")
    expect(end.get_by_role("radio", name=re.compile("start.png"))).to_be_checked()
    expect(preview(page, "end_image")).to_have_attribute("src", f"/media/image/{harbour.uuid}")
    expect(preview(page, "end_image")).to_be_visible()
    page.get_by_label("Prompt").fill("The harbour lights come on")
    page.get_by_role("button", name="Add scene").click()
    expect(page.locator("article.card", has_text="Harbour at dusk")).to_be_visible()

    scene = Scene.objects.get(title="Harbour at dusk")
    assert (scene.mode, scene.end_image_id) == ("frames", harbour.pk)
    assert scene.start_image.original_name == "dawn.png"


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (64, 36), colour) for colour in ((200, 40, 40), (40, 200, 40))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


# An iPhone's HEIC picture renamed .jpg: its first bytes are no JPEG's.
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200)
# A PNG's signature with nothing a PNG decoder can read after it.
BROKEN_PNG = png_bytes()[:8] + b"not the rest of a picture" * 4


def choose_file(page: Page, name: str, mime: str, data: bytes) -> None:
    page.locator("input[name=start_image_file]").set_input_files(
        {"name": name, "mimeType": mime, "buffer": data}
    )


def test_alice_is_told_before_submitting_that_a_file_is_no_picture_flowsite_takes(
    page: Page, project, alice
):
    open_new_scene_form(page, project)
    status = image_input(page).locator("[data-image-input-status]")
    figure = image_input(page).locator("[data-image-input-preview]")
    for name, mime, data, words in (
        ("dance.gif", "image/gif", animated_gif(), NOT_AN_IMAGE),
        ("IMG_0001.jpg", "image/jpeg", HEIC, NOT_AN_IMAGE),
        ("empty.jpg", "image/jpeg", b"", NOT_AN_IMAGE),
        ("broken.png", "image/png", BROKEN_PNG, DAMAGED),
    ):
        choose_file(page, name, mime, data)
        expect(status).to_have_text(words)
        # No preview: neither the browser's broken-picture icon nor a crop of a picture the
        # server will refuse.
        expect(figure).to_be_hidden()

    # A picture after them is previewed, and the status line is clear again.
    choose_file(page, "harbour.png", "image/png", wide_picture())
    expect(figure).to_be_visible()
    expect(status).to_have_text("")
    expect(image_input(page).locator("[data-image-input-crop]")).to_have_text(
        "The whole picture fits the clip's frame."
    )

    # The server, which decides, refuses them in the same words.
    page.get_by_label("Title").fill("Dance")
    page.get_by_label("Prompt").fill("The dancers spin")
    for name, mime, data in (("dance.gif", "image/gif", animated_gif()), ("empty.jpg", "", b"")):
        choose_file(page, name, mime, data)
        expect(status).to_have_text(NOT_AN_IMAGE)
        page.get_by_role("button", name="Add scene").click()
        expect(image_input(page).locator("p.error")).to_have_text(NOT_AN_IMAGE)
    assert not Scene.objects.exists()


def test_alice_is_told_before_sending_it_that_her_picture_is_over_the_size_limit(
    page: Page, project, alice, settings
):
    big = wide_picture()
    settings.FLOWSITE_MAX_IMAGE_BYTES = len(big) - 1
    open_new_scene_form(page, project)
    status = image_input(page).locator("[data-image-input-status]")
    figure = image_input(page).locator("[data-image-input-preview]")

    choose_file(page, "harbour.png", "image/png", big)

    expect(status).to_have_text(too_big_message())
    expect(figure).to_be_hidden()
    # The limit is the server's: a picture under it is previewed and the line is clear again.
    choose_file(page, "small.png", "image/png", png_bytes())
    expect(figure).to_be_visible()
    expect(status).to_have_text("")
    # The big one is let go of, so Save cannot send it whole only to have it refused.
    choose_file(page, "harbour.png", "image/png", big)
    expect(status).to_have_text(too_big_message())
    assert page.locator("input[name=start_image_file]").evaluate("input => input.files.length") == 0


def test_alice_is_told_before_saving_that_another_mode_lets_go_of_the_scenes_start_image(
    page: Page, project, alice
):
    scene = make_scene(project, make_image(project, alice), title="Harbour")
    sign_in(page, "alice")
    page.goto(reverse("scene-edit", args=[scene.uuid]))
    note = page.locator("#mode-drops")
    mode = page.get_by_label("Made from")

    mode.select_option(label="Ingredients")
    expect(note).to_have_text("Saved in this mode, the scene lets go of its start image.")
    mode.select_option(label="Start and end frames")  # uses the start image too
    expect(note).to_have_text("")
    mode.select_option(label="Text")
    expect(note).to_have_text("Saved in this mode, the scene lets go of its start image.")

    # A picture just chosen is not let go but refused (the server says so): nothing to warn of.
    page.goto(reverse("scene-create", args=[project.uuid]))
    choose_file(page, "harbour.png", "image/png", png_bytes())
    expect(preview(page)).to_be_visible()
    page.get_by_label("Made from").select_option(label="Text")
    expect(page.locator("#mode-drops")).to_have_text("")


@pytest.mark.parametrize("size", SIZES)
def test_screenshots_of_the_scene_form_with_a_dropped_picture_and_the_picker(
    page: Page, project, alice, screenshots, size
):
    for colour in ((10, 140, 90), (200, 90, 30)):
        make_scene(project, make_image(project, alice, color=colour), title=f"Scene {colour[0]}")
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    open_new_scene_form(page, project)
    send_picture(page, "drop", "tower.png", tall_picture())
    expect(page.get_by_role("button", name=re.compile("own aspect"))).to_be_visible()
    image_input(page).get_by_text("Reuse an image of this project (2)").click()
    for thumb in image_input(page).locator(".image-input__thumb").all():
        thumb.scroll_into_view_if_needed()  # loaded lazily
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle()
        )
    page.screenshot(path=screenshots / f"scene-form-{size}.png", full_page=True)
