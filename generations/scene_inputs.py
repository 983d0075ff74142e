"""The scene form's pieces for modes: the model list marked with each model's mode and
aspect, a stored image shown as a file input's current value, and the image fields, each
marked with the modes that use it (app.js shows a field only for those)."""

from __future__ import annotations

from django import forms
from django.urls import reverse

from .images import NOT_AN_IMAGE
from .models import Scene

IMAGE_TYPES = "image/jpeg,image/png,image/webp"


class ModelSelect(forms.Select):
    """The model list, each model marked with the mode and aspect of its group, so app.js
    can leave selectable only the models that make the chosen mode and aspect."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # (mode, aspect) of each group of ``choices``, in order.
        self.groups: list[tuple[str, str]] = []

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if subindex is not None and index < len(self.groups):
            mode, aspect = self.groups[index]
            option["attrs"] = {**option["attrs"], "data-mode": mode, "data-aspect": aspect}
        return option


class StoredImage:
    """A scene's stored image as a file input's current value (shown with a link and a
    Remove box)."""

    def __init__(self, image) -> None:
        self.image = image
        self.url = reverse("media-image", args=[image.uuid])

    def __str__(self) -> str:
        return str(self.image)


# The modes the form offers (an extension is made from a take, not from this form).
FORM_MODES = [(value, label) for value, label in Scene.Mode.choices if value != Scene.Mode.EXTEND]
# Which file field carries each of the scene's images.
FILE_FIELDS = {
    "start_image": "start_image_file",
    "end_image": "end_image_file",
    "reference_1": "reference_1_file",
    "reference_2": "reference_2_file",
    "reference_3": "reference_3_file",
}


def image_field(label: str, help_text: str, modes: str, **attrs) -> forms.FileField:
    field = forms.FileField(
        label=label,
        required=False,
        help_text=help_text,
        widget=forms.ClearableFileInput(attrs={"accept": IMAGE_TYPES, **attrs}),
        # An empty file is refused as images.py refuses it, and as the page says before.
        error_messages={"empty": NOT_AN_IMAGE},
    )
    # The modes whose inputs the field is (app.js shows it only for those).
    field.modes = modes
    return field
