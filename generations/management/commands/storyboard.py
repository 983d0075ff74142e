"""Drive a project from scripts: import scenes from a CSV, generate, watch, export the clips.

    manage.py storyboard import FILE.csv --project NAME --user USERNAME [--account LABEL]
    manage.py storyboard generate --project NAME --user USERNAME
    manage.py storyboard status --project NAME
    manage.py storyboard export --project NAME --out DIR
    manage.py storyboard pick --project NAME --scene POSITION --take N
    manage.py storyboard film --project NAME --out FILE.mp4 [--all-latest]
    manage.py storyboard extend --project NAME --user USERNAME --scene POSITION --take N --prompt TEXT
    manage.py storyboard upscale --project NAME --user USERNAME --scene POSITION --take N --resolution 1080p|4k

Scenes are numbered 1, 2, 3… in storyboard order everywhere here (the table, the exported file
names, the manifest), as the studio shows them.

Long because it is one command with eight subcommands (import, generate, status, export, pick,
film, extend, upscale; the last two in _take_actions.py) that share the project, user and scene lookups; each subcommand is one method.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Prefetch, Q
from django.utils import timezone

from generations import film_tasks, work
from generations.budgets import cleared_words
from generations.engines.catalogue import models_for
from generations.film import FilmError, render_film
from generations.images import (
    ImageRejected,
    clean_image_bytes,
    max_image_bytes,
    store_start_image,
    too_big_message,
)
from generations.models import (
    ARCHIVED_PROBLEM,
    AccountGrant,
    AuditEvent,
    CannotGenerate,
    FlowAccount,
    Generation,
    ImageAsset,
    Membership,
    Pick,
    Project,
    Scene,
)
from generations.rules import (
    MAX_PROMPT_CHARACTERS,
    is_blank,
    mode_input_problems,
    normalise_line_breaks,
    printable,
)

from .flow_account import table

REQUIRED_COLUMNS = ("prompt", "aspect")
# The clip options (duration … people) are for Vertex AI accounts; a Flow account refuses them
# in the scene rules' words.
OPTIONS_COLUMNS = ("duration", "resolution", "audio", "negative_prompt", "person_generation")
# What a clip is made from: the mode (default: image when an image is given, else text) and
# its images, each a path relative to the CSV; references are 1 to 3 paths separated by ";".
IMAGE_COLUMNS = ("image", "end_image", "references")
OPTIONAL_COLUMNS = ("mode", "end_image", "references", "model", "seed", "takes", *OPTIONS_COLUMNS)
COLUMNS = ("image", *REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
CSV_MODES = ("text", "image", "frames", "ingredients")
EXTEND_ROW = (
    "An extension is made from a ready take, not from a CSV row: import the scene it "
    "continues, generate it, then run storyboard extend --scene N --take N --prompt TEXT."
)
# A mode's image missing from its row, in the CSV's words.
MISSING_CELL = {
    "start_image": "The image cell is empty; name the start image file.",
    "end_image": "The end_image cell is empty; name the end image file (a frames clip moves "
    "from the image to it).",
    "reference_1": "The references cell is empty; name 1 to 3 image files separated by “;”.",
}
# The scene's fields the columns fill, in the order a row's problems are told.
SCENE_FIELDS = ("prompt", "aspect", "model_key", "seed", "takes", *OPTIONS_COLUMNS)
AUDIO_WORDS = {"": False, "no": False, "false": False, "0": False, "off": False}
AUDIO_WORDS |= {"yes": True, "true": True, "1": True, "on": True}
EDIT_ROLES = (Membership.Role.OWNER, Membership.Role.EDITOR)


@dataclass
class SceneRow:
    number: int
    image: Path | None
    scene: Scene  # judged by the model's rules, not yet saved
    end_image: Path | None = None
    references: tuple[Path, ...] = ()

    @property
    def paths(self) -> list[Path]:
        return [path for path in (self.image, self.end_image, *self.references) if path]


class Command(BaseCommand):
    help = "Import, generate, inspect and export a project's storyboard."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        do_import = actions.add_parser("import", help="Append scenes from a CSV file.")
        do_import.add_argument("csv_file", metavar="FILE.csv")
        do_import.add_argument("--project", required=True, metavar="NAME")
        do_import.add_argument("--user", required=True, metavar="USERNAME")
        do_import.add_argument("--account", metavar="LABEL")

        generate = actions.add_parser(
            "generate", help="Queue every scene with no ready take and none in flight."
        )
        generate.add_argument("--project", required=True, metavar="NAME")
        generate.add_argument("--user", required=True, metavar="USERNAME")

        status = actions.add_parser("status", help="Show the scenes and their takes.")
        status.add_argument("--project", required=True, metavar="NAME")

        export = actions.add_parser("export", help="Copy the ready clips and a manifest to DIR.")
        export.add_argument("--project", required=True, metavar="NAME")
        export.add_argument("--out", required=True, metavar="DIR")

        pick = actions.add_parser("pick", help="Pick take N of a scene for the film.")
        pick.add_argument("--project", required=True, metavar="NAME")
        pick.add_argument("--scene", required=True, type=int, metavar="POSITION")
        pick.add_argument("--take", required=True, type=int, metavar="N")

        extend = actions.add_parser("extend", help="Extend take N of a scene with a new scene.")
        upscale = actions.add_parser("upscale", help="Upscale take N of a scene (Flow).")
        for parser_ in (extend, upscale):
            parser_.add_argument("--project", required=True, metavar="NAME")
            parser_.add_argument("--user", required=True, metavar="USERNAME")
            parser_.add_argument("--scene", required=True, type=int, metavar="POSITION")
            parser_.add_argument("--take", required=True, type=int, metavar="N")
        extend.add_argument("--prompt", required=True, metavar="TEXT")
        upscale.add_argument("--resolution", required=True, choices=["1080p", "4k"])

        film = actions.add_parser("film", help="Render the film of the picks to FILE.mp4.")
        film.add_argument("--project", required=True, metavar="NAME")
        film.add_argument("--out", required=True, metavar="FILE.mp4")
        film.add_argument(
            "--all-latest",
            action="store_true",
            help="Use the newest ready take of each scene that has no pick.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "film":
            self.film(options["project"], Path(options["out"]), options["all_latest"])
            return
        if action == "pick":
            self.pick(options["project"], options["scene"], options["take"])
            return
        if action in ("extend", "upscale"):
            from ._take_actions import run_take_action

            project = _project(options["project"])
            user = _user(options["user"])
            _require_editor(project, user)
            scene = scene_numbered(project, options["scene"])
            self.stdout.write(run_take_action(action, project, scene, user, options))
            return
        if action == "import":
            self.do_import(Path(options["csv_file"]), options)
        elif action == "generate":
            self.generate(options["project"], options["user"])
        elif action == "status":
            self.status(options["project"])
        else:
            self.export(options["project"], Path(options["out"]))

    # --- import -------------------------------------------------------------------------

    def do_import(self, csv_path: Path, options: dict[str, Any]) -> None:
        user = _user(options["user"])
        name = options["project"].strip()
        if is_blank(name):
            raise CommandError("The project name is empty.")
        try:
            Project._meta.get_field("name").clean(name, None)
        except ValidationError as invalid:
            raise CommandError(printable(" ".join(invalid.messages))) from None
        project = _find_project(name)
        if project is not None:
            _require_editor(project, user)
        account = _import_account(project, options["account"], user)

        rows, errors = read_storyboard(csv_path, account)
        if errors:
            raise CommandError(
                f"{csv_path} was not imported; nothing was changed. Fix these rows:\n"
                + "\n".join(errors)
            )
        if not rows:
            raise CommandError(f"{csv_path} has a header but no scenes.")

        stored: list[str] = []
        cleared = None
        try:
            with transaction.atomic():
                created = project is None
                if project is None:
                    project = Project.start(name, account, user, "import")
                elif project.account_id is None:
                    # As any move to an account: limits set in the other unit are cleared,
                    # and the accounts it falls back on stay.
                    later = [a for a in project.accounts_in_order() if a.pk != account.pk]
                    cleared = project.set_accounts([account, *later])
                    AuditEvent.accounts_chosen(project, [account, *later], cleared, user)
                images = self._store_images(project, rows, user, stored)
                last = project.scenes.aggregate(last=models.Max("position"))["last"]
                first = 0 if last is None else last + 1
                now = timezone.now()
                scenes = [row.scene for row in rows]
                for index, (row, scene) in enumerate(zip(rows, scenes, strict=True)):
                    scene.project = project
                    scene.start_image = images[row.image] if row.image else None
                    scene.end_image = images[row.end_image] if row.end_image else None
                    scene.set_references([images[path] for path in row.references])
                    scene.position, scene.created, scene.updated = first + index, now, now
                Scene.objects.bulk_create(scenes)
                project.mark_scenes_changed()
        except BaseException:
            # The rows are gone with the rollback; the files must go too.
            for stored_name in stored:
                default_storage.delete(stored_name)
            raise

        if created:
            self.stdout.write(
                f"Created project {project.name!r} (owner {printable(user.get_username())}, "
                f"account {printable(account.label)})."
            )
        if cleared is not None:
            self.stdout.write(cleared_words(cleared, account))
        count = Scene.objects.filter(project=project).count()
        self.stdout.write(
            f"Imported {len(rows)} scene{_s(len(rows))} into {project.name!r} "
            f"with {len(images)} image{_s(len(images))}; "
            f"the storyboard now has {count} scene{_s(count)}."
        )

    def _store_images(
        self, project: Project, rows: list[SceneRow], user, stored: list[str]
    ) -> dict[Path, ImageAsset]:
        """Store each distinct image file once, however many scenes (and roles) use it."""
        images: dict[Path, ImageAsset] = {}
        for row in rows:
            for path in row.paths:
                if path in images:
                    continue
                try:
                    with path.open("rb") as handle:
                        asset = store_start_image(project, handle, user, name=path.name)
                except (ImageRejected, OSError) as error:
                    # The file changed after it was checked.
                    raise CommandError(f"row {row.number}: {path}: {error}") from None
                stored.append(asset.file.name)
                images[path] = asset
        return images

    # --- generate -----------------------------------------------------------------------

    def generate(self, project_name: str, username: str) -> None:
        user = _user(username)
        project = _project(project_name)
        _require_editor(project, user)
        busy = Generation.objects.filter(scene=OuterRef("pk")).filter(
            Q(status=Generation.Status.READY) | Q(status__in=Generation.IN_FLIGHT)
        )
        scenes = list(project.scenes.annotate(busy=Exists(busy)).order_by("position", "id"))
        for scene in scenes:
            scene.project = project  # one project for all: no query per scene
        numbered = [(number, scene) for number, scene in enumerate(scenes, start=1)]
        todo = [(number, scene) for number, scene in numbered if not scene.busy]
        if not todo:
            self.stdout.write(
                "Nothing to queue: every scene has a ready take or one in flight."
                if scenes
                else f"Project {project.name!r} has no scenes yet."
            )
            return

        problems = [
            printable(f"scene {number}: {problem}")
            for number, scene in todo
            if (problem := scene.generation_problem())
        ]
        if problems:
            raise CommandError(
                "Nothing was queued. Fix these scenes first:\n" + "\n".join(problems)
            )

        queued: list[tuple[int, Scene, list[Generation]]] = []
        try:
            with transaction.atomic():
                for number, scene in todo:
                    queued.append((number, scene, work.generate(scene, user)))
        except CannotGenerate as error:
            raise CommandError(printable(f"Nothing was queued: {error}")) from None

        total = 0
        for number, scene, takes in queued:
            total += len(takes)
            numbers = ", ".join(str(take.take) for take in takes)
            self.stdout.write(
                f"Queued scene {number}, take{_s(len(takes))} {numbers}: {_excerpt(scene)}"
            )
        skipped = len(scenes) - len(todo)
        summary = f"Queued {total} take{_s(total)} for {len(queued)} scene{_s(len(queued))}."
        if skipped:
            summary += f" Skipped {skipped} scene{_s(skipped)} with a ready take or one in flight."
        self.stdout.write(summary)

    # --- status -------------------------------------------------------------------------

    def status(self, project_name: str) -> None:
        project = _project(project_name)
        scenes = list(_scenes_with_takes(project))
        if not scenes:
            self.stdout.write(f"Project {project.name!r} has no scenes yet.")
            return
        counts: Counter[str] = Counter()
        rows: list[list[str]] = []
        for number, scene in enumerate(scenes, start=1):
            takes = scene.generations.all()
            if not takes:
                rows.append([str(number), "-", "no takes yet", "", _excerpt(scene), ""])
                continue
            for index, take in enumerate(takes):
                counts[take.status] += 1
                rows.append(
                    [
                        str(number) if index == 0 else "",
                        str(take.take),
                        take.get_status_display(),
                        take.requested_by.get_username() if take.requested_by else "",
                        _excerpt(scene) if index == 0 else "",
                        _shorten(take.reason, 70),
                    ]
                )
        in_flight = sum(counts[status] for status in Generation.IN_FLIGHT)
        take_total = sum(counts.values())
        self.stdout.write(
            f"Project {project.name!r} · account {printable(str(project.account or 'none'))} · "
            f"{len(scenes)} scene{_s(len(scenes))}, {take_total} take{_s(take_total)} "
            f"({counts[Generation.Status.READY]} ready, {in_flight} in flight, "
            f"{counts[Generation.Status.FAILED]} failed)"
        )
        self.stdout.write(table(["SCENE", "TAKE", "STATUS", "BY", "PROMPT", "REASON"], rows))

    # --- pick ---------------------------------------------------------------------------

    def pick(self, project_name: str, position: int, number: int) -> None:
        project = _project(project_name)
        scene = scene_numbered(project, position)
        take = scene.generations.filter(take=number).first()
        if take is None:
            raise CommandError(f"Scene {position} has no take {number}.")
        try:
            Pick.choose(take)
        except CannotGenerate as refusal:
            raise CommandError(f"Scene {position} take {number}: {refusal}") from None
        self.stdout.write(f"Picked take {number} of scene {position} ({scene}) for the film.")

    # --- film ---------------------------------------------------------------------------

    def film(self, project_name: str, out: Path, all_latest: bool) -> None:
        project = _project(project_name)
        if out.suffix.lower() != ".mp4":
            raise CommandError(f"{out} should end in .mp4: the film is an MP4.")
        if out.exists() and out.is_dir():
            raise CommandError(f"{out} is a folder; give the film's file name.")
        # Its folder is made as export makes its own (before any work, so a path that cannot
        # be written is said at once, not after the render).
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CommandError(f"Cannot create {out.parent}: {error.strerror}.") from None
        film_plan = film_tasks.plan(project, all_latest=all_latest)
        if not film_plan.picks:
            hint = "" if all_latest else " (or pass --all-latest)"
            raise CommandError(f"No scene of {project.name!r} has a picked take{hint}.")
        for scene in film_plan.missing:
            self.stderr.write(
                f"Scene {film_plan.numbers[scene.pk]} ({_excerpt(scene)}) has no "
                f"{'ready take' if all_latest else 'pick'}; it is left out."
            )
        if refusal := film_plan.trim_refusal():
            # Before any clip is read, as Render film refuses, not "No film was written" late.
            raise CommandError(refusal)
        try:
            with film_tasks.clip_files(film_tasks.snapshot(film_plan)) as segments:
                result = render_film(segments, out)
        except FilmError as error:
            raise CommandError(f"No film was written: {error}") from None
        how = "stream copy" if result.copied else "re-encoded"
        self.stdout.write(
            f"Wrote {out}: {result.duration:.2f} s, {result.width}x{result.height}, "
            f"{len(result.segments)} segment{_s(len(result.segments))} ({how})."
        )
        rows = [
            [
                str(number),
                segment["label"],
                f"{segment['start']:.2f}",
                f"{segment['duration']:.2f}",
                segment["audio"],
            ]
            for number, segment in enumerate(result.segments, start=1)
        ]
        self.stdout.write(table(["#", "SEGMENT", "START", "SECONDS", "AUDIO"], rows))

    # --- export -------------------------------------------------------------------------

    def export(self, project_name: str, out: Path) -> None:
        project = _project(project_name)
        if out.exists() and not out.is_dir():
            raise CommandError(f"{out} exists and is not a folder.")
        scenes = list(_scenes_with_takes(project))
        numbers = film_tasks.take_numbers(scenes)

        entries: list[dict[str, Any]] = []
        copies: list[tuple[Generation, str]] = []
        missing: list[str] = []
        for number, scene in enumerate(scenes, start=1):
            for take in scene.generations.all():
                file_name = None
                if take.is_ready:
                    suffix = Path(take.video.name).suffix or ".mp4"
                    file_name = f"scene-{number:02d}-take-{take.take}{suffix}"
                    if not take.video.name or not default_storage.exists(take.video.name):
                        missing.append(f"scene {number} take {take.take}")
                    copies.append((take, file_name))
                entries.append(take.manifest_entry(number, file_name, numbers))
        if missing:
            raise CommandError(
                "Nothing was exported: the stored clip is missing for "
                + ", ".join(missing)
                + ". Retry those takes or mark them failed in the admin."
            )

        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CommandError(f"Cannot create {out}: {error.strerror}.") from None
        hashes = self._copy_clips(copies, out)
        for entry in entries:
            if entry["file"] is not None:
                entry["sha256"] = hashes[entry["file"]]
        manifest = {
            "project": project.name,
            "exported_at": timezone.now().isoformat(),
            "takes": entries,
        }
        _write_atomically(
            out / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
        )
        self.stdout.write(
            f"Exported {len(copies)} clip{_s(len(copies))} of {len(entries)} "
            f"take{_s(len(entries))} to {out}; the manifest is {out / 'manifest.json'}."
        )

    def _copy_clips(self, copies: list[tuple[Generation, str]], out: Path) -> dict[str, str]:
        """Copy every clip beside its final name first, then move them all into place, so an
        export that fails half-way leaves no partial clip behind."""
        hashes: dict[str, str] = {}
        parts: list[tuple[Path, Path]] = []
        try:
            for take, file_name in copies:
                part = out / f".{file_name}.part"
                parts.append((part, out / file_name))
                digest = hashlib.sha256()
                with (
                    default_storage.open(take.video.name, "rb") as source,
                    part.open("wb") as target,
                ):
                    for chunk in source.chunks():
                        digest.update(chunk)
                        target.write(chunk)
                sha256 = digest.hexdigest()
                if take.video_sha256 and take.video_sha256 != sha256:
                    raise CommandError(
                        f"Nothing was exported: the stored clip {file_name} does not match the "
                        "checksum recorded when it was downloaded; it is damaged."
                    )
                hashes[file_name] = sha256
            for part, final in parts:
                os.replace(part, final)
        except BaseException:
            for part, _ in parts:
                part.unlink(missing_ok=True)
            raise
        return hashes


# --- reading a storyboard CSV -----------------------------------------------------------


def read_storyboard(csv_path: Path, account: FlowAccount) -> tuple[list[SceneRow], list[str]]:
    """Every scene in the CSV, or every problem with it (as "row N: ..." lines)."""
    try:
        with csv_path.open(encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise CommandError(f"There is no file {csv_path}.") from None
    except IsADirectoryError:
        raise CommandError(f"{csv_path} is a folder, not a CSV file.") from None
    except UnicodeDecodeError:
        raise CommandError(f"{csv_path} is not UTF-8 text; save it as CSV UTF-8.") from None
    except OSError as error:
        raise CommandError(f"Cannot read {csv_path}: {error.strerror}.") from None
    delimiter = _delimiter(text)
    try:
        records, problem = _records(text, delimiter)
    except csv.Error as error:
        raise CommandError(f"{csv_path} is not a readable CSV file: {error}.") from None
    if problem:
        return [], [problem]
    if not records or not any(cell.strip() for cell in records[0]):
        raise CommandError(
            f"{csv_path} is empty; its first row must name the columns {', '.join(COLUMNS)}."
        )

    header = [cell.strip().lower() for cell in records[0]]
    header_problems = []
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        header_problems.append(f"missing column{_s(len(missing))} {', '.join(missing)}")
    # Unnamed columns (a trailing comma in a spreadsheet export) are ignored.
    unknown = [column for column in header if column and column not in COLUMNS]
    if unknown:
        header_problems.append(
            f"unknown column{_s(len(unknown))} {', '.join(repr(c) for c in unknown)} "
            f"(the columns are {', '.join(COLUMNS)})"
        )
        if any(";" in column for column in unknown):
            # Only a header with no comma at all is read as semicolon-separated (_delimiter).
            header_problems.append(
                "some columns are separated by semicolons (;) and others by commas; separate "
                "them all by commas (in Excel: Save As, CSV UTF-8 (Comma delimited)) or all "
                "by semicolons"
            )
    repeated = sorted({column for column in header if column and header.count(column) > 1})
    if repeated:
        header_problems.append(f"repeated column{_s(len(repeated))} {', '.join(repeated)}")
    if header_problems:
        return [], [f"row 1: {'; '.join(header_problems)}"]

    base = csv_path.resolve().parent
    checked_images: dict[Path, str] = {}
    rows: list[SceneRow] = []
    errors: list[str] = []
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue  # a blank line between scenes
        if len(record) > len(header) and any(cell.strip() for cell in record[len(header) :]):
            errors.append(
                f"row {number}: {len(record)} cells but the header names {len(header)} columns"
            )
            continue
        # A spreadsheet may drop trailing empty cells: pad them back.
        padded = ([cell.strip() for cell in record] + [""] * len(header))[: len(header)]
        cells = dict(zip(header, padded, strict=True))
        row, problems = _check_row(number, cells, base, account, checked_images)
        if problems:
            # The problems may quote a cell: shown, never obeyed, on the operator's terminal.
            errors.append(printable(f"row {number}: {' '.join(problems)}"))
        elif row is not None:
            rows.append(row)
    return rows, errors


def _delimiter(text: str) -> str:
    """What separates the columns: a comma, or a semicolon when the header has semicolons and
    no comma (Excel saves "CSV" so where the decimal mark is a comma). No column's name has
    either, so the header alone settles it; a cell with a comma (a prompt) is then just text."""
    header = text.split("\n", 1)[0]
    return ";" if ";" in header and "," not in header else ","


def _records(text: str, delimiter: str) -> tuple[list[list[str]], str]:
    """The CSV's records, or why its quotes cannot be read, as a "row N: ..." line. Read
    strictly: a quote left open would otherwise swallow the rows after it into one cell
    (their line breaks too), and the row would be refused for what its swallowed cells lack
    instead of for the quote.

    Which quote problem stopped the reader is told by where it stopped, not by the words of
    Python's csv error: strictness adds only two refusals, a quoted cell still open when the
    data ends, and a quote closing a cell with more text after it."""
    lines = io.StringIO(text, newline="").readlines()
    ran_out: list[bool] = []  # set once the reader asked for a line after the last

    def feed():
        yield from lines
        ran_out.append(True)

    reader = csv.reader(feed(), delimiter=delimiter, strict=True)
    records: list[list[str]] = []
    ended_on = 0  # the line the last record read ended on
    try:
        for record in reader:
            records.append(record)
            ended_on = reader.line_num
    except csv.Error:
        row, starts = len(records) + 1, ended_on + 1
        if ran_out:
            # A strict reader refuses the end of the data only inside a quoted cell.
            return [], (
                f'row {row}: a quote (") opened on line {starts} of the file is never '
                "closed, so everything after it was read as one cell; close the quote at the "
                'end of its cell, or write a quote that is part of the text twice ("").'
            )
        if not _read_leniently(lines[starts - 1 : reader.line_num], delimiter):
            # Not the quotes: a cell past csv.field_size_limit(), the one refusal a lenient
            # reader has left (lines keep their endings, and NUL is read since Python 3.11).
            return [], (
                f"row {row}: a cell starting on line {starts} of the file holds more than "
                f"{csv.field_size_limit():,} characters, far more than any cell may (a prompt "
                f"has at most {MAX_PROMPT_CHARACTERS:,}); shorten it, or close a quote left open."
            )
        separator = "semicolon" if delimiter == ";" else "comma"
        if reader.line_num == starts:
            where = f"ends early: more text follows it before the next {separator}"
        else:
            where = (
                f"is not closed on that line: the next quote, on line {reader.line_num}, is "
                f"followed by more text before the next {separator}, and everything between "
                "was read as one cell"
            )
        return [], (
            f'row {row}: a quote (") opened on line {starts} of the file {where}. A quoted cell '
            f"ends with a quote right before its {separator}; write a quote that is part of the "
            'text twice ("").'
        )
    return records, ""


def _read_leniently(lines: list[str], delimiter: str) -> bool:
    """Whether these lines read without strictness: if so, what the strict reader refused in
    them mid-line was a quote closing its cell early."""
    try:
        for _ in csv.reader(lines, delimiter=delimiter):
            pass
    except csv.Error:
        return False
    return True


def _check_row(
    number: int,
    cells: dict[str, str],
    base: Path,
    account: FlowAccount,
    checked_images: dict[Path, str],
) -> tuple[SceneRow | None, list[str]]:
    """The row as a scene judged by the scene model's rules (the scene form's words), or every
    problem with it as sentences."""
    problems: list[str] = []

    def checked(given: str) -> Path:
        path, problem = _image_path(base, given)
        if problem:
            problems.append(problem)
            return path
        if path not in checked_images:
            checked_images[path] = _image_problem(path, given)
        if checked_images[path]:
            problems.append(checked_images[path])
        return path

    given_image = cells.get("image", "")
    given_end = cells.get("end_image", "")
    given_references = [part.strip() for part in cells.get("references", "").split(";")]
    given_references = [part for part in given_references if part]
    mode = cells.get("mode", "").strip().lower() or ("image" if given_image else "text")
    if mode == Scene.Mode.EXTEND:
        # An extension continues a take, which no row can name; and an import only adds
        # scenes, so it never touches (nor changes the mode of) an extension already there.
        problems.append(EXTEND_ROW)
        mode_problems = {}
    elif mode not in CSV_MODES:
        problems.append(f"The mode is text, image, frames or ingredients, not “{cells['mode']}”.")
        mode_problems = {}
    else:
        mode_problems = mode_input_problems(
            mode,
            start=bool(given_image),
            end=bool(given_end),
            references=len(given_references),
        )
    for name in ("start_image", "end_image", "reference_1"):
        if name in mode_problems:
            given = {"start_image": given_image, "end_image": given_end}.get(name, given_references)
            problems.append(mode_problems[name] if given else MISSING_CELL[name])
    image = checked(given_image) if given_image else None
    end_image = checked(given_end) if given_end else None
    references = tuple(checked(given) for given in given_references)

    aspect = cells["aspect"].lower()
    model_key = cells.get("model", "")
    exclude = ["project", *Scene.IMAGE_FIELDS]
    if mode not in CSV_MODES:
        exclude.append("model_key")
        mode = "image"  # judged as the usual mode; its own problem is told above
    if not model_key:
        if aspect in Scene.AspectChoice.values:
            offered = models_for(account.tier, aspect, account.kind, mode)
            model_key = offered[0].key if offered else ""
        else:
            # No model asked for, and none to choose until the aspect (its own problem) is set.
            exclude.append("model_key")
    scene = Scene(
        # Judged against the account the project will spend, whether or not it exists yet.
        project=Project(account=account),
        prompt=normalise_line_breaks(cells["prompt"]),
        aspect=aspect,
        mode=mode,
        model_key=model_key,
        seed=cells.get("seed") or None,
        takes=cells.get("takes") or 1,
        duration=cells.get("duration") or None,
        resolution=cells.get("resolution", "").strip().lower(),
        audio=AUDIO_WORDS.get(cells.get("audio", "").strip().lower(), False),
        negative_prompt=normalise_line_breaks(cells.get("negative_prompt", "")).strip(),
        person_generation=cells.get("person_generation", "").strip().lower(),
    )
    scene.models_named_by_key = True  # the model column takes keys, so refusals list keys
    if cells.get("audio", "").strip().lower() not in AUDIO_WORDS:
        problems.append(f"The audio column says yes or no, not “{cells['audio']}”.")
    try:
        scene.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as invalid:
        by_field = invalid.message_dict
        problems += [message for field in SCENE_FIELDS for message in by_field.get(field, [])]

    if problems:
        return None, problems
    return SceneRow(number, image, scene, end_image, references), []


def _image_path(base: Path, given: str) -> tuple[Path, str]:
    """The file ``given`` names in the CSV's folder ``base`` (resolved), and why it is refused,
    or "". The paths are relative to the CSV, so one that is absolute or leads out of its
    folder (``..``, a link) is refused before anything is opened: an import never reads a file
    the CSV's author did not put beside it."""
    if Path(given).is_absolute():
        return Path(given), (
            f"The image path {given} is absolute; name the file by its path from the CSV's folder."
        )
    path = (base / given).resolve()
    if not path.is_relative_to(base):
        return path, (
            f"The image path {given} leads outside the CSV's folder; name a file in that folder "
            "or below it."
        )
    return path, ""


def _image_problem(path: Path, given: str) -> str:
    """Why the file cannot be a start image, as a sentence, or "" (decoded here so the import
    fails before anything is stored)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"The image file {given} does not exist."
    except OSError as error:
        return f"The image file {given} cannot be read ({error.strerror})."
    if not path.is_file():
        return f"The image {given} is not a file."
    if size > max_image_bytes():
        return f"{given}: {too_big_message()}"
    try:
        with path.open("rb") as handle:
            data = handle.read(max_image_bytes() + 1)
        clean_image_bytes(data)
    except ImageRejected as error:
        return f"{given}: {error}"
    except OSError as error:
        return f"The image file {given} cannot be read ({error.strerror})."
    return ""


# --- lookups ----------------------------------------------------------------------------


def _user(username: str):
    User = get_user_model()
    try:
        user = User.objects.get(**{User.USERNAME_FIELD: username})
    except User.DoesNotExist:
        raise CommandError(f"No user is called {username!r}.") from None
    if not user.is_active:
        raise CommandError(f"The user {username!r} is deactivated.")
    return user


def _find_project(name: str) -> Project | None:
    projects = list(Project.objects.filter(name=name).select_related("account")[:2])
    if len(projects) > 1:
        raise CommandError(
            f"Several projects are named {name!r}; rename one in the admin so scripts can "
            "tell them apart."
        )
    return projects[0] if projects else None


def _project(name: str) -> Project:
    project = _find_project(name.strip())
    if project is None:
        raise CommandError(f"No project is named {name!r}.")
    return project


def _require_editor(project: Project, user) -> None:
    if project.is_archived:
        raise CommandError(ARCHIVED_PROBLEM.format(project=printable(project.name)))
    role = (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )
    if role not in EDIT_ROLES:
        raise CommandError(
            f"{printable(user.get_username())} is not an owner or editor of project {project.name!r}"
            + (f" (only a {role})." if role else ".")
        )


def _import_account(project: Project | None, label: str | None, user) -> FlowAccount:
    """The account a (new or existing) project spends: one granted to the person who will own
    the new project, or to the existing project or one of its owners."""
    if project is not None and project.account is not None:
        if label is not None and label != project.account.label:
            raise CommandError(
                f"Project {project.name!r} spends account {printable(project.account.label)}, not {label!r}; "
                "leave out --account or change the project's account in the admin."
            )
        return project.account
    if project is None:
        allowed = FlowAccount.objects.granted_to(user)
        whom = f"to {user.get_username()}"
    else:
        allowed = FlowAccount.objects.filter(grants__in=AccountGrant.objects.allowing(project))
        whom = f"to project {project.name!r} or one of its owners"
    if label is not None:
        named = FlowAccount.objects.filter(label=label).first()
        if named is None:
            raise CommandError(f"No Flow or Vertex AI account is labelled {label!r}.")
        account = allowed.filter(label=label).first()
        if account is None:
            raise CommandError(
                f"The {named.upstream} account {label!r} is not granted {whom}; staff can "
                f"grant it with: flow_account grant {label!r} --user USERNAME"
            )
        return account
    accounts = list(allowed.distinct().order_by("label"))
    if not accounts:
        raise CommandError(
            f"No Flow or Vertex AI account is granted {whom}; staff can grant one with: "
            "flow_account grant LABEL --user USERNAME"
        )
    if len(accounts) > 1:
        labels = ", ".join(repr(account.label) for account in accounts)
        raise CommandError(
            f"Several accounts are granted {whom} ({labels}); choose one with --account."
        )
    return accounts[0]


def scene_numbered(project: Project, position: int) -> Scene:
    """The scene numbered ``position`` (1, 2, 3… in storyboard order)."""
    scenes = list(project.scenes.order_by("position", "id"))
    if not 1 <= position <= len(scenes):
        raise CommandError(
            f"Project {project.name!r} has {len(scenes)} scene{_s(len(scenes))}; "
            f"there is no scene {position}."
        )
    return scenes[position - 1]


def _scenes_with_takes(project: Project) -> models.QuerySet[Scene]:
    takes = (
        Generation.objects.select_related("requested_by", *Generation.INPUT_RELATIONS)
        .prefetch_related(Prefetch("upscales", to_attr="upscale_list"))
        .order_by("take", "id")
    )
    return project.scenes.order_by("position", "id").prefetch_related(
        Prefetch("generations", queryset=takes)
    )


def _excerpt(scene: Scene) -> str:
    return _shorten(scene.title or scene.prompt, 40)


def _shorten(text: str, limit: int) -> str:
    text = printable(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _write_atomically(path: Path, data: bytes) -> None:
    part = path.with_name(f".{path.name}.part")
    try:
        part.write_bytes(data)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
