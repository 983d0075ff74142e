"""Forms for the studio pages. Every refusal is a sentence the person can act on.

Long because the scene form is most of it: one form for every mode, each image of which may be
a new upload, one of the project's images or the upload kept from a failed submit, checked
against the scene's rules before anything is stored; split, its parts would still have to be
read together."""

from __future__ import annotations

import copy

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.validators import MaxLengthValidator, ProhibitNullCharactersValidator
from django.db import transaction
from django.utils import timezone

from . import images, rules
from .engines.base import Aspect, EngineKind
from .engines.catalogue import (
    TIER_NOT_PAID,
    ClipOptions,
    models_for,
    options_for,
    resolution_label,
)
from .image_choice import ImageChoice, ProjectImages
from .models import DeletedMeanwhile, FlowAccount, Membership, Pick, Project, Scene
from .scene_inputs import FILE_FIELDS, FORM_MODES, ModelSelect, StoredImage, image_field


class ProjectForm(forms.Form):
    name = forms.CharField(
        max_length=120,
        validators=[rules.PROJECT_NAME],
        error_messages={"required": rules.PROJECT_NAME_REQUIRED},
    )
    account = forms.ModelChoiceField(
        queryset=FlowAccount.objects.none(),
        label="Account",
        help_text="Who pays for the project's clips.",
        error_messages={
            "required": "Choose the account that pays for this project's clips.",
            "invalid_choice": "That account is not one you may spend (or no longer exists); "
            "choose one from the list.",
        },
    )

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Only the accounts staff granted to this person: anyone else's credits are not theirs
        # to spend (SECURITY.md).
        granted = FlowAccount.objects.granted_to(user)
        accounts = list(granted)
        self.single_account: FlowAccount | None = None
        if len(accounts) <= 1:
            # Nothing to choose: the one account granted to them (or none yet; an admin can
            # grant one and set it later).
            self.single_account = accounts[0] if accounts else None
            del self.fields["account"]
        else:
            self.fields["account"].queryset = granted

    def clean_name(self) -> str:
        return rules.clean_project_name(self.cleaned_data["name"])

    def save(self, user) -> Project:
        account = self.cleaned_data.get("account", self.single_account)
        with transaction.atomic():
            return Project.start(self.cleaned_data["name"], account, user, "page")


class MemberAddForm(forms.Form):
    username = forms.CharField(
        max_length=150, error_messages={"required": "Type the username of the person to add."}
    )
    role = forms.ChoiceField(
        choices=Membership.Role.choices,
        initial=Membership.Role.EDITOR,
        error_messages={"invalid_choice": "Choose owner, editor or viewer."},
    )

    def __init__(self, project: Project, *args, **kwargs) -> None:
        self.project = project
        super().__init__(*args, **kwargs)

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f"Nobody here has the username “{username}”.")
        if Membership.objects.filter(project=self.project, user=user).exists():
            raise forms.ValidationError(
                f"{user} is already a member of {self.project}; change their role below."
            )
        return user


def seed_field() -> forms.CharField:
    """A scene's seed, as plain text: the scene model judges it, in its words."""
    return forms.CharField(
        required=False,
        empty_value=None,
        widget=forms.NumberInput(attrs={"min": 0, "max": rules.MAX_SEED}),
        help_text="Leave blank for a fresh random seed on every take.",
    )


def takes_field() -> forms.CharField:
    """A scene's number of takes, as plain text: the scene model judges it."""
    return forms.CharField(
        initial=1,
        widget=forms.NumberInput(attrs={"min": rules.MIN_TAKES, "max": rules.MAX_TAKES}),
        error_messages={"required": rules.TAKES_RULE},
    )


EDIT_STALE = (
    "A teammate changed this scene after you opened this page, so your changes were not saved "
    "(nothing was changed or deleted). Look at the scene as it is now, just above, then save "
    "again: what you typed is still in the form."
)


class SeenSettings:
    """What an Edit page of a scene adds to its form: the scene's settings as the page showed
    them (``Scene.settings_token``, a hidden field), so a save from a page drawn before a
    teammate's save is refused instead of putting the old values back over theirs (and
    letting go of the images they added). A form without it (a page drawn before the field
    existed) is refused the same way: it cannot show it saw the scene as it is, and the
    refusal costs one more press, with everything typed kept.

    ``now``: the scene as it is, once a save was refused (the page shows it)."""

    def _watch_settings(self) -> None:
        self.now: Scene | None = None
        if self.instance.pk is None:
            del self.fields["seen_settings"]  # a new scene has nothing to overwrite
            self.read_token = None
            return
        self.read_token = self.instance.settings_token()
        self.initial["seen_settings"] = self.read_token
        # The scene as read, before cleaning writes the values sent onto it.
        self._as_read = copy.copy(self.instance)

    def _check_seen(self) -> None:
        if (
            self.read_token is not None
            and self.cleaned_data.get("seen_settings") != self.read_token
        ):
            self._refuse_stale(self._as_read)

    def _refuse_stale(self, now: Scene) -> None:
        self.add_error(None, EDIT_STALE)
        self.now = now
        Scene.load_images([now])
        # Saving again from the refused page is a knowing save over what it now shows.
        self.data = self.data.copy()
        self.data["seen_settings"] = now.settings_token()

    def _changed_meanwhile(self, scene: Scene) -> Scene | None:
        """Inside the saving transaction, before anything is stored: the scene as it is now
        if its settings changed since this form read them (a teammate saved in between),
        else None. Its row stays locked to the end of the transaction."""
        now = (
            Scene.objects.select_for_update()
            .filter(pk=scene.pk)
            .only("position", *Scene.SETTINGS_FIELDS)
            .first()
        )
        if now is None:
            raise DeletedMeanwhile(Scene.name_for(self.initial.get("title", ""), scene.position))
        return now if now.settings_token() != self.read_token else None


class _ChangedMeanwhile(Exception):
    """Rolls back a save that found the scene changed under the lock (``now``: as it is)."""

    def __init__(self, now: Scene) -> None:
        self.now = now


def seen_settings_field() -> forms.CharField:
    return forms.CharField(required=False, widget=forms.HiddenInput)


class SceneForm(SeenSettings, forms.ModelForm):
    """Add or edit a scene. Its images are stored only once everything else is valid; each may
    also be the upload kept from a submit that failed, or one of the project's images
    (``image_choice``).

    The mode says which images the scene needs (rules.MODE_IMAGE_FIELDS); every field is on the
    page (app.js hides those the chosen mode does not use), and images a mode does not use
    are dropped when the mode changes (never refused: the person cannot see them), or refused
    when one is chosen anew."""

    mode = forms.CharField(
        label="Made from",
        required=False,
        widget=forms.Select(choices=FORM_MODES, attrs={"data-mode": "scene"}),
        help_text="Text: the prompt alone. Start image: the clip starts from a picture. Start "
        "and end frames: it moves from one picture to another. Ingredients: 1 to 3 reference "
        "images of what it shows.",
    )
    start_image_file = image_field(
        "Start image",
        "JPEG, PNG or WebP. The clip starts from this picture (Start image, Start and end frames).",
        "image frames",
    )
    end_image_file = image_field(
        "End image",
        "JPEG, PNG or WebP. The clip ends on this picture (Start and end frames).",
        "frames",
    )
    reference_1_file = image_field(
        "Reference image 1",
        "JPEG, PNG or WebP: a character, an object or a place the clip shows (Ingredients).",
        "ingredients",
    )
    reference_2_file = image_field("Reference image 2", "Optional.", "ingredients")
    reference_3_file = image_field("Reference image 3", "Optional.", "ingredients")
    # Plain text fields, not choice or number fields: the scene model judges every value
    # (Scene.clean() and its validators), so this form, the admin and the CSV import refuse the
    # same things in the same words; a form field's own check would say something else first.
    aspect = forms.CharField(
        widget=forms.Select(choices=Scene.AspectChoice.choices, attrs={"data-aspect": "scene"}),
        error_messages={"required": rules.ASPECT_REQUIRED},
    )
    model_key = forms.CharField(
        label="Model",
        widget=ModelSelect(attrs={"data-models": "scene"}),
        error_messages={"required": rules.MODEL_REQUIRED},
    )
    seed = seed_field()
    takes = takes_field()
    seen_settings = seen_settings_field()

    # Clip options, offered only when the account's engine has them (catalogue.ClipOptions).
    duration = forms.CharField(
        label="Duration",
        required=False,
        empty_value=None,
        widget=forms.Select(),
    )
    resolution = forms.CharField(label="Resolution", required=False, widget=forms.Select())
    audio = forms.BooleanField(
        label="Sound track", required=False, help_text="Dialogue, effects and music with the clip."
    )
    negative_prompt = forms.CharField(
        label="Negative prompt",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What the clip should not show, e.g. text overlays.",
    )
    person_generation = forms.CharField(label="People", required=False, widget=forms.Select())

    OPTION_FIELDS = ("duration", "resolution", "audio", "negative_prompt", "person_generation")

    field_order = [
        "title",
        "mode",
        "prompt",
        "start_image_file",
        "end_image_file",
        "reference_1_file",
        "reference_2_file",
        "reference_3_file",
        "aspect",
        "model_key",
        "duration",
        "resolution",
        "audio",
        "negative_prompt",
        "person_generation",
        "seed",
        "takes",
    ]

    class Meta:
        model = Scene
        fields = [
            "title",
            "mode",
            "prompt",
            "aspect",
            "model_key",
            "seed",
            "takes",
            "duration",
            "resolution",
            "audio",
            "negative_prompt",
            "person_generation",
        ]
        widgets = {"prompt": forms.Textarea(attrs={"rows": 4})}
        error_messages = {"prompt": {"required": rules.PROMPT_REQUIRED}}

    def __init__(self, project: Project, *args, user=None, **kwargs) -> None:
        self.project = project
        super().__init__(*args, **kwargs)
        # Scene.clean() judges the model against the project's account.
        self.instance.project = project
        self._watch_settings()
        held = [name for name in FILE_FIELDS if getattr(self.instance, f"{name}_id")]
        if any(not Scene._meta.get_field(name).is_cached(self.instance) for name in held):
            # One query for the scene's images, not one per input showing its current one.
            Scene.load_images([self.instance])
        # Every input offers the project's images from one list, read once for the page.
        shared = ProjectImages(project)
        self.images = {
            name: ImageChoice(
                self,
                name,
                project,
                user,
                current=getattr(self.instance, name) if name in held else None,
                # A reference is no frame of the clip (Ingredients shows what it shows, framed
                # as the model sees fit), so its preview claims no crop: it shows it whole.
                framed=name not in rules.REFERENCE_FIELDS,
                told_on=FILE_FIELDS["reference_1"] if name in rules.REFERENCE_FIELDS else None,
                shared=shared,
            )
            for name in FILE_FIELDS
        }
        _leave_text_rules_to_the_model(self)
        self.tier = project.account.tier if project.account else TIER_NOT_PAID
        self.engine = project.account.kind if project.account else EngineKind.FLOW
        _explain_takes(self, self.engine)
        self._offer_models()
        self._offer_options(options_for(self.engine))
        if self.instance.pk is None:
            self.initial.setdefault("mode", self.instance.mode)
            offered = models_for(self.tier, Aspect.LANDSCAPE, self.engine, self.instance.mode)
            if offered:
                self.initial.setdefault("model_key", offered[0].key)
        else:
            for name, field_name in FILE_FIELDS.items():
                image = (
                    getattr(self.instance, name) if getattr(self.instance, f"{name}_id") else None
                )
                if image is None:
                    continue
                if name in rules.REFERENCE_FIELDS:
                    # A reference can be removed (its box) or replaced.
                    self.initial[field_name] = StoredImage(image)
                else:
                    self.fields[field_name].help_text = (
                        "Leave empty to keep the current image. "
                        + self.fields[field_name].help_text
                    )

    def _offer_options(self, options: ClipOptions) -> None:
        """Only what the account's engine can do is offered: no dead options."""
        offered = {
            "duration": bool(options.durations),
            "resolution": bool(options.resolutions),
            "audio": options.audio,
            "negative_prompt": options.negative_prompt,
            "person_generation": bool(options.person_generation),
        }
        for name in self.OPTION_FIELDS:
            if not offered[name]:
                del self.fields[name]
        if "duration" in self.fields:
            self.fields["duration"].widget.choices = [
                ("", f"{options.default_duration} s (default)"),
                *((str(seconds), f"{seconds} s") for seconds in options.durations),
            ]
        if "resolution" in self.fields:
            rule = "; ".join(
                f"{resolution_label(resolution)} only at {seconds} s"
                for resolution, seconds in options.resolution_needs_duration
            )
            self.fields["resolution"].widget.choices = [
                ("", f"{resolution_label(options.default_resolution)} (default)"),
                *((value, resolution_label(value)) for value in options.resolutions),
            ]
            # Not str.capitalize(): it would lower-case the rest, 4K too.
            self.fields["resolution"].help_text = rule[:1].upper() + rule[1:] + "." if rule else ""
        if "person_generation" in self.fields:
            self.fields["person_generation"].widget.choices = [
                ("", "Google's default"),
                *options.person_generation,
            ]

    def _offer_models(self) -> None:
        # Grouped by mode and aspect so the list itself says which clips a model makes (and
        # app.js leaves only the chosen mode's and aspect's); the tier filter hides what the
        # account cannot pay for, and the scene refuses it anyway.
        widget = self.fields["model_key"].widget
        choices, widget.groups = [], []
        for mode, mode_label in FORM_MODES:
            for aspect, label in Scene.AspectChoice.choices:
                options = [
                    (model.key, model.label)
                    for model in models_for(self.tier, aspect, self.engine, mode)
                ]
                if options:
                    choices.append((f"{mode_label} · {label}", options))
                    widget.groups.append((mode, aspect))
        widget.choices = choices

    def clean_prompt(self) -> str:
        return rules.normalise_line_breaks(self.cleaned_data["prompt"]).strip()

    def clean_mode(self) -> str:
        if self.instance.mode == Scene.Mode.EXTEND:
            # An extension is edited with ExtensionForm; this form's modes would turn it into a
            # scene made from scratch, its take to continue forgotten.
            raise forms.ValidationError(rules.EXTENSION_STAYS)
        mode = self.cleaned_data.get("mode") or self.instance.mode
        if mode not in dict(FORM_MODES):
            raise forms.ValidationError(rules.MODE_REQUIRED)
        return mode

    def clean(self) -> dict:
        cleaned = super().clean()
        self._check_seen()
        for name, choice in self.images.items():
            given = cleaned.get(FILE_FIELDS[name])
            # Remove ticked (a reference): nothing kept from before takes the image's place, nor
            # a picked one (without JavaScript a checked radio cannot be unchecked, so Remove
            # must be able to override it, as a file overrides a pick).
            if given is not False:
                choice.resolve(_new_file(given))
        mode = cleaned.get("mode")
        if mode is None:
            return cleaned
        uses = rules.MODE_IMAGE_FIELDS[mode]
        scene = self.instance
        # What the scene will hold: a new file (or one picked or kept), or the image it has if
        # the mode uses it (and, for a reference, it was not removed).
        # A file chosen for an image the mode does not use counts, so that it is refused rather
        # than silently dropped.
        will_have = {}
        for name, field_name in FILE_FIELDS.items():
            # (The current reference comes back as a StoredImage: kept unless the mode drops it.)
            given = _new_file(cleaned.get(field_name)) or self.images[name].chosen
            kept = (
                cleaned.get(field_name) is not False
                and getattr(scene, f"{name}_id") is not None
                and name in uses
            )
            will_have[name] = bool(given) or kept
        problems = rules.mode_input_problems(
            mode,
            start=will_have["start_image"],
            end=will_have["end_image"],
            references=sum(will_have[name] for name in rules.REFERENCE_FIELDS),
        )
        told = {name: self.has_error(field_name) for name, field_name in FILE_FIELDS.items()}
        told["reference_1"] = any(told[name] for name in rules.REFERENCE_FIELDS)
        for name, problem in problems.items():
            if told[name]:
                continue  # a picked or kept image already said what is wrong
            if name == "reference_1":
                missing = not any(will_have[other] for other in rules.REFERENCE_FIELDS)
            else:
                missing = not will_have[name]
            self.add_error(FILE_FIELDS[name], rules.MISSING_UPLOAD[name] if missing else problem)
        # Images the scene holds that the mode no longer uses are let go whatever else is wrong
        # (the clean-up removes them once saved, if nothing else uses them); removed references
        # too. Kept until the scene's own rules ran, they were judged against the new mode: a
        # refusal about images the person neither sent nor can see on the page. So the scene's
        # rules find nothing to say about its images here (the form has no field by their
        # names): what is wrong with them was said above, beside their file fields.
        for name, field_name in FILE_FIELDS.items():
            if name not in uses or cleaned.get(field_name) is False:
                setattr(scene, name, None)
        if not problems:
            for name in FILE_FIELDS:
                if name not in uses:
                    self.images[name].chosen = None
        return cleaned

    def full_clean(self) -> None:
        super().full_clean()
        if self.is_bound and self._errors:
            # Whatever else is wrong, the pictures chosen need not be chosen again.
            for choice in self.images.values():
                choice.keep_upload(self.files.get(choice.file_name))

    def _post_clean(self) -> None:
        if not self.has_error("mode"):
            super()._post_clean()
            return
        # The mode asked for was refused, so the scene still has its old one: judging the model
        # against that would add a second refusal, wrong about the mode the person chose.
        # Without a mode the scene's rules judge the model on the rest (engine, aspect, tier).
        mode, self.instance.mode = self.instance.mode, ""
        try:
            super()._post_clean()
        finally:
            self.instance.mode = mode

    def save_scene(self, user) -> Scene | None:
        """Store the image (if one was chosen) and the scene together, or neither.

        Returns None when the image is refused; the reason is then on the form.
        ``DeletedMeanwhile`` when a teammate deleted the scene being edited.
        """
        scene: Scene = self.instance
        for each in self.images.values():
            if each.user is None:
                each.user = user
        # The field of the image being stored, which a refusal is said beside.
        storing = FILE_FIELDS["start_image"]
        try:
            with transaction.atomic():
                # First, before an image is stored or let go: clean() compared the page with
                # the scene as read before this transaction, and a teammate may have saved since.
                now = self._changed_meanwhile(scene) if scene.pk is not None else None
                if now is not None:
                    raise _ChangedMeanwhile(now)
                # Each image: the one chosen (a file stored now, or one picked or kept), else
                # the one the scene holds (clean() let go those that must go).
                chosen = {}
                for name, choice in self.images.items():
                    storing = choice.file_name
                    upload = _new_file(self.cleaned_data.get(storing))
                    chosen[name] = choice.image_to_save(upload) or getattr(scene, name)
                scene.start_image, scene.end_image = chosen["start_image"], chosen["end_image"]
                scene.set_references([chosen[name] for name in rules.REFERENCE_FIELDS])
                scene.updated = timezone.now()
                if scene.pk is None:
                    scene.project = self.project
                    last = self.project.scenes.order_by("-position").first()
                    scene.position = last.position + 1 if last else 0
                    scene.created = scene.updated
                    scene.save()
                    self.project.mark_scenes_changed()
                else:
                    try:
                        scene.save(
                            update_fields=[
                                "title",
                                "prompt",
                                "aspect",
                                "model_key",
                                "seed",
                                "takes",
                                "mode",
                                *(name for name in self.OPTION_FIELDS if name in self.fields),
                                *Scene.IMAGE_FIELDS,
                                "updated",
                            ]
                        )
                    except Scene.NotUpdated:
                        # The scene was read before this transaction; a teammate deleted it
                        # since. The rollback takes back an image stored for it. Named as
                        # the page showed it, not by the title just typed.
                        shown = Scene.name_for(self.initial.get("title", ""), scene.position)
                        raise DeletedMeanwhile(shown) from None
        except images.ImageRejected as refusal:
            self.add_error(storing, str(refusal))
            self._forget([each.stored for each in self.images.values()])
            return None
        except _ChangedMeanwhile as changed:
            self._refuse_stale(changed.now)
            # As any refused form does (full_clean), it keeps the files chosen.
            for choice in self.images.values():
                choice.keep_upload(self.files.get(choice.file_name))
            return None
        except BaseException:
            self._forget([each.stored for each in self.images.values()])
            raise
        return scene

    @staticmethod
    def _forget(stored: list) -> None:
        # The rollback forgot the image rows; their files must not outlive them.
        for image in stored:
            if image is not None:
                image.file.storage.delete(image.file.name)


EXTENSION_PROMPT_REQUIRED = "Write what happens next: it tells the model how the clip goes on."


class ExtensionForm(SeenSettings, forms.ModelForm):
    """Edit an extension (mode "extend", made from a take by take_actions.extend): what happens
    next, its title, seed and takes. What it continues, and so its mode, its aspect, its model
    and its clip options (take_actions.planned_extension), follow its source take: the page
    shows them and the form has no field for them, so a save never makes it another mode."""

    # Plain text fields, as the scene form's: the scene model judges them, in its words.
    seed = seed_field()
    takes = takes_field()
    seen_settings = seen_settings_field()

    class Meta:
        model = Scene
        fields = ["title", "prompt", "seed", "takes"]
        labels = {"prompt": "What happens next"}
        help_texts = {"prompt": "How the clip goes on from the last second of the take it extends."}
        widgets = {"prompt": forms.Textarea(attrs={"rows": 4})}
        error_messages = {"prompt": {"required": EXTENSION_PROMPT_REQUIRED}}

    def __init__(self, *args, instance: Scene, **kwargs) -> None:
        super().__init__(*args, instance=instance, **kwargs)
        self._watch_settings()
        _leave_text_rules_to_the_model(self)
        account = instance.project.account
        _explain_takes(self, account.kind if account else EngineKind.FLOW)

    def clean_prompt(self) -> str:
        prompt = rules.normalise_line_breaks(self.cleaned_data["prompt"]).strip()
        if rules.is_blank(prompt):
            raise forms.ValidationError(EXTENSION_PROMPT_REQUIRED)
        return prompt

    def clean(self) -> dict:
        cleaned = super().clean()
        self._check_seen()
        return cleaned

    def add_error(self, field, error) -> None:
        # The scene's rules (Scene.clean(), which the model form runs and hands its refusals
        # here as {field: errors}) also judge what follows the source take (its model, its clip
        # options): nothing on this page can change those, and Generate says what is wrong
        # with them, so only the fields shown here are refused here.
        if field is None and hasattr(error, "error_dict"):
            shown = {
                name: messages
                for name, messages in error.error_dict.items()
                if name in self.fields or name == NON_FIELD_ERRORS
            }
            if not shown:
                return
            error = forms.ValidationError(shown)
        super().add_error(field, error)

    def save_extension(self) -> Scene | None:
        """Save what the page changes, and only that (the mode above all). None when a
        teammate saved the scene since the page was read (the reason is then on the form);
        ``DeletedMeanwhile`` when a teammate deleted it."""
        scene: Scene = self.instance
        with transaction.atomic():
            now = self._changed_meanwhile(scene)
            if now is not None:
                self._refuse_stale(now)
                return None
            scene.updated = timezone.now()
            try:
                scene.save(update_fields=[*self._meta.fields, "updated"])
            except Scene.NotUpdated:
                shown = Scene.name_for(self.initial.get("title", ""), scene.position)
                raise DeletedMeanwhile(shown) from None
        return scene


def _leave_text_rules_to_the_model(form: forms.ModelForm) -> None:
    """The scene model judges the prompt's length, after clean_prompt made each CR LF line
    break one character, as the textarea's maxlength counted them; and the title's, in its
    words. A NUL too: it is a control character like any other, said as the model says them."""
    for name in ("prompt", "title"):
        field = form.fields[name]
        field.validators = [
            v
            for v in field.validators
            if not isinstance(v, MaxLengthValidator | ProhibitNullCharactersValidator)
        ]


def _explain_takes(form: forms.Form, engine: str) -> None:
    each = "is billed in US dollars" if engine == EngineKind.VERTEX else "spends credits"
    form.fields["takes"].help_text = f"How many clips one Generate asks for (each {each})."


def _new_file(value):
    """The file uploaded in a scene form's image field, or None: the field's value may also be
    the current reference (a StoredImage) or False (its Remove box ticked)."""
    return value if value and not isinstance(value, StoredImage) else None


class TrimForm(forms.Form):
    """Where the film enters and leaves a picked take, in seconds from the clip's start."""

    trim_in = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=6,
        decimal_places=2,
        error_messages={
            "invalid": "Trim in is a number of seconds, like 1.5.",
            "min_value": "Trim in cannot be before the clip's start (0 s).",
            "max_digits": "Trim in is too large to be seconds into a clip.",
            # 99999 is refused under this key (too many digits before the point), not max_digits.
            "max_whole_digits": "Trim in is too large to be seconds into a clip.",
            "max_decimal_places": "Trim in takes at most two decimals (hundredths of a second).",
        },
    )
    trim_out = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=6,
        decimal_places=2,
        error_messages={
            "invalid": "Trim out is a number of seconds, like 6.25.",
            "min_value": "Trim out cannot be before the clip's start (0 s).",
            "max_digits": "Trim out is too large to be seconds into a clip.",
            # 99999 is refused under this key (too many digits before the point), not max_digits.
            "max_whole_digits": "Trim out is too large to be seconds into a clip.",
            "max_decimal_places": "Trim out takes at most two decimals (hundredths of a second).",
        },
    )

    def __init__(
        self, *args, clip_seconds: float | None = None, seam: float = 0.0, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.clip_seconds, self.seam = clip_seconds, seam

    def clean(self) -> dict:
        data = super().clean()
        problem = Pick.trim_problem(
            data.get("trim_in"), data.get("trim_out"), self.clip_seconds, self.seam
        )
        if problem:
            raise forms.ValidationError(problem)
        return data
