"""One image a scene form takes: a file (chosen, dropped or pasted), one of the project's images
reused, or the one this person uploaded in a submit of the form that failed. The scene form has
one for each of its images (start, end, references).

A file input forgets its file when the form comes back with an error (an empty prompt, say),
so an upload that passed its own checks is stored at once as an ``ImageAsset`` nothing refers
to yet, and the re-rendered form carries its uuid in a hidden field (``<name>_kept``). Sent
back, that uuid is honoured only for an image of this project uploaded by this person. An
upload the form never comes back for is removed by the hourly sweep once the grace period is
over (``cleanup.remove_abandoned_images``).

The picker (``<name>_pick``) offers the project's images in use (a scene starts from them or
a take was made from them); a choice is judged against the same list, so an image of another
project is refused, whatever uuid is sent. A form's inputs share one ``ProjectImages``, so the
list is read once however many pickers the page shows, and the images picked in one more query.

What wins when several are sent: a file, then a picked image, then the kept one, then the
scene's current image. Without JavaScript a checked radio cannot be unchecked, so a file must
be able to override it; the page's script clears the others when one is chosen.

Every image has the full input (drop, paste, the preview, the picker):
``generations/_image_input.html``, keyed on its ``data-image-input`` attributes. The preview of
an image the clip is framed from (``framed``: the start and end frames) shows the crop the
scene's aspect makes; a reference image is not a frame of the clip, so it is shown whole.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING
from uuid import UUID

from . import images
from .cleanup import in_use
from .engines.base import Aspect
from .models import ImageAsset

if TYPE_CHECKING:
    from django import forms

    from .models import Project

KEPT_GONE = (
    "The image you chose before is no longer kept (unused uploads are removed after a while); "
    "choose it again."
)
NOT_OF_PROJECT = (
    "That image is not one of this project's images; pick one shown under “Reuse an image”."
)
PICKED_GONE = "That image was removed meanwhile (with its scene); choose another."
# The picker shows the newest few; the rest are a file away.
MAX_OPTIONS = 24


class ProjectImages:
    """The project's images in use, as a form's image inputs offer and judge them: the newest
    are read once for every picker, the picked ones in one query for every input."""

    def __init__(self, project: Project) -> None:
        self.project = project
        # The uuids the inputs were sent as picked (``ImageChoice`` adds its own).
        self.wanted: set[UUID] = set()

    @cached_property
    def newest(self) -> list[ImageAsset]:
        # Twice the options, as twins (the same bytes uploaded twice) are shown once; and a
        # few more, as each input leaves out its own image and that image's twins.
        rows = self.project.images.filter(in_use()).order_by("-created", "-pk")
        return list(rows[: MAX_OPTIONS * 3])

    @cached_property
    def picked(self) -> dict[UUID, ImageAsset]:
        if not self.wanted:
            return {}
        rows = self.project.images.filter(in_use(), uuid__in=self.wanted)
        return {image.uuid: image for image in rows}


class ImageChoice:
    """The image input ``name`` of a bound or unbound form (fields ``<name>_file`` on the form,
    ``<name>_kept`` and ``<name>_pick`` read from its data)."""

    # The refusals the page's script says before a file is sent, in the server's words.
    not_an_image = images.NOT_AN_IMAGE
    damaged = images.DAMAGED

    @property
    def too_large(self) -> str:
        return images.too_big_message()

    @property
    def max_bytes(self) -> int:
        return images.max_image_bytes()

    def __init__(
        self,
        form: forms.BaseForm,
        name: str,
        project: Project,
        user,
        *,
        current: ImageAsset | None = None,
        framed: bool = True,
        told_on: str | None = None,
        shared: ProjectImages | None = None,
    ) -> None:
        self.form = form
        self.name = name
        self.file_name = f"{name}_file"
        self.kept_name = f"{name}_kept"
        self.pick_name = f"{name}_pick"
        self.project = project
        self.user = user
        self.current = current
        # Whether the clip is framed from this picture, so the preview shows the crop.
        self.framed = framed
        self.shared = shared if shared is not None else ProjectImages(project)
        if form.is_bound and (picked := _uuid(form.data.get(self.pick_name))) is not None:
            self.shared.wanted.add(picked)
        # The field where the form tells what the mode refuses about this image (a reference's
        # is the first reference's); an image refused there is not kept.
        self.told_on = told_on or self.file_name
        # A stored image chosen through the picker or kept from an earlier submit.
        self.chosen: ImageAsset | None = None
        self.picked = False
        # The upload stored by ``image_to_save``; the caller removes its file on a rollback.
        self.stored: ImageAsset | None = None
        form.fields[self.file_name].image_choice = self

    # --- judging what was sent ---------------------------------------------------------------

    def resolve(self, upload) -> None:
        """Find the stored image sent (picked or kept) unless a file was; a refusal goes on the
        file field. Called from the form's ``clean()``."""
        if upload or not self.form.is_bound:
            return
        picked = _uuid(self.form.data.get(self.pick_name))
        if picked is not None:
            self.chosen = self.shared.picked.get(picked)
            self.picked = True
            if self.chosen is None:
                self.form.add_error(self.file_name, NOT_OF_PROJECT)
            return
        kept = _uuid(self.form.data.get(self.kept_name))
        if kept is not None:
            mine = self.project.images.filter(uuid=kept, uploaded_by=self.user)
            self.chosen = mine.first() if self.user is not None else None
            if self.chosen is None:
                self.form.add_error(self.file_name, KEPT_GONE)

    def keep_upload(self, upload) -> None:
        """The form failed: store the upload now, if it passes its own checks, so the form
        sent back refers to it instead of asking for it again."""
        if not upload or self.form.has_error(self.file_name) or self.form.has_error(self.told_on):
            return
        try:
            self.chosen = images.store_start_image(
                self.project, upload, self.user, name=upload.name
            )
        except images.ImageRejected as refusal:
            self.form.add_error(self.file_name, str(refusal))
            return
        self.picked = False

    def image_to_save(self, upload) -> ImageAsset | None:
        """Inside the saving transaction: the image the scene is to hold now (None: keep its
        current one). Raises ``images.ImageRejected`` when the upload is refused or a chosen
        image went meanwhile (the hourly sweep)."""
        if upload:
            self.stored = images.store_start_image(
                self.project, upload, self.user, name=upload.name
            )
            return self.stored
        if self.chosen is None:
            return None
        # Locked, so the sweep cannot take it between this check and the scene's save.
        if not ImageAsset.objects.select_for_update().filter(pk=self.chosen.pk).exists():
            raise images.ImageRejected(PICKED_GONE if self.picked else KEPT_GONE)
        return self.chosen

    # --- what the template shows -------------------------------------------------------------

    @property
    def kept(self) -> ImageAsset | None:
        return None if self.picked else self.chosen

    @property
    def picked_uuid(self) -> str:
        return str(self.chosen.uuid) if self.picked and self.chosen else ""

    @property
    def preview(self) -> ImageAsset | None:
        """What the scene would start from if the form were sent as it stands."""
        return self.chosen or self.current

    @property
    def frame_aspect(self) -> str:
        """The aspect the form says the clip will have, so the preview shows its crop."""
        field = self.form.fields.get("aspect")
        value = self.form["aspect"].value() if field is not None else None
        return value if value in set(Aspect) else Aspect.LANDSCAPE

    @cached_property
    def options(self) -> list[ImageAsset]:
        """The project's images in use, newest first, one per picture (the same bytes uploaded
        twice are shown once); the scene's own image is not offered again."""
        seen: set[str] = set()
        if self.current is not None:
            seen.add(self.current.sha256)
        options = []
        for image in self.shared.newest:
            if image.sha256 not in seen and image != self.current:
                seen.add(image.sha256)
                options.append(image)
        return options[:MAX_OPTIONS]


def _uuid(text: str | None) -> UUID | None:
    try:
        return UUID(text) if text else None
    except ValueError:
        return None
