"""The world the load test runs in: USERS people, each owning a project page of their own and
already signed in (the page has been open all day).

Each project has four scenes with real start images: the first with two finished takes (so the
gallery has clips to group), the second generated for real (its take goes to the Flow emulator
through the worker and finishes during the run, so cards change under load), the third
generated with the emulator's ``stuck`` marker (it keeps rendering past the end of the run, so
every page keeps polling all along, as a page with a long take does), the fourth a draft.
Each person gets a real session, made by ``django.contrib.auth.login`` through the session
engine exactly as the sign-in form makes it. Writes what the load driver's members need to ``--out`` as
JSON: username, password (for the separate sign-in phase), session cookie, project.

    python -m benchmarks.load.seed --users 100 --out users.json   (Django settings from the env)
"""

from __future__ import annotations

import argparse
import io
import json
import secrets
from datetime import timedelta
from pathlib import Path


def seed(users: int) -> list[dict[str, str]]:
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.core.files.base import ContentFile
    from django.db import transaction
    from django.utils import timezone
    from PIL import Image

    from generations.engines.catalogue import TIER_TWO
    from generations.images import store_start_image
    from generations.models import (
        AccountGrant,
        FlowAccount,
        Generation,
        Membership,
        Project,
        Scene,
    )

    emulator_token = _emulator_token()
    account = FlowAccount.objects.create(
        label="Load test", tier=TIER_TWO, bearer_token=emulator_token
    )
    password = secrets.token_urlsafe(12)
    # One hash for everyone: hashing every member's password at production cost would take a minute.
    hashed = make_password(password)
    people = User.objects.bulk_create(
        User(username=f"load-{n:02d}", email=f"load-{n:02d}@example.org", password=hashed)
        for n in range(1, users + 1)
    )
    credentials: list[dict[str, str]] = []
    hour_ago = timezone.now() - timedelta(hours=1)
    for n, person in enumerate(people, 1):
        project = Project.objects.create(
            name=f"Load project {n:02d}", account=account, created_by=person
        )
        project.add_member(person, Membership.Role.OWNER)
        AccountGrant.objects.create(account=account, project=project)
        scenes = []
        for position in range(4):
            buffer = io.BytesIO()
            # The same picture per position in every project: the emulator renders each
            # distinct clip once, so its rendering (Google's work, not Flowsite's) stays small.
            Image.new("RGB", (320, 180), (40 * position, 90, 160)).save(buffer, "JPEG")
            buffer.seek(0)
            image = store_start_image(project, buffer, person, name=f"shot-{position}.jpg")
            scenes.append(
                Scene.objects.create(
                    project=project,
                    position=position,
                    prompt=f"Shot {position + 1}: a lighthouse at dusk, waves rolling in"
                    + (" [fault:stuck]" if position == 2 else ""),
                    start_image=image,
                    aspect="landscape",
                    model_key="veo_3_1_i2v_s_fast",
                    takes=1,
                )
            )
        for take in (1, 2):
            done = Generation.objects.create(
                scene=scenes[0],
                project=project,
                requested_by=person,
                account=account,
                take=take,
                prompt=scenes[0].prompt,
                model_key=scenes[0].model_key,
                aspect="landscape",
                seed=take,
                start_image=scenes[0].start_image,
                status=Generation.Status.READY,
                created=hour_ago,
                finished_at=hour_ago,
                updated=hour_ago,
            )
            # A small stand-in file: the load test renders pages, it never plays clips.
            done.video.save(f"{done.media_dir()}/clip.mp4", ContentFile(b"\x00" * 1024), save=False)
            done.video_size = 1024
            done.save(update_fields=["video", "video_size"])
        # As Generate would have left it: the scene has given takes 1 and 2.
        Scene.objects.filter(pk=scenes[0].pk).update(last_take=2)
        with transaction.atomic():
            # Queued for real: committed, the worker's pump submits them to the emulator.
            scenes[1].generate(person)
            scenes[2].generate(person)
        credentials.append(
            {
                "username": person.username,
                "password": password,
                "session": _signed_in_session(person),
                "project": str(project.uuid),
            }
        )
    return credentials


def _signed_in_session(user) -> str:
    """The session key of a real sign-in: what the sign-in form's ``login()`` stores."""
    from django.conf import settings
    from django.contrib.auth import login
    from django.http import HttpRequest
    from django.utils.module_loading import import_string

    request = HttpRequest()
    request.META["REMOTE_ADDR"] = "127.0.0.1"
    request.session = import_string(f"{settings.SESSION_ENGINE}.SessionStore")()
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session.save()
    return request.session.session_key


def _emulator_token() -> str:
    from django.conf import settings

    return settings.FLOW_EMULATOR_TOKEN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import django

    django.setup()
    credentials = seed(args.users)
    args.out.write_text(json.dumps(credentials, indent=1))
    print(f"Seeded {len(credentials)} signed-in users, each with a project of 4 scenes")


if __name__ == "__main__":
    main()
