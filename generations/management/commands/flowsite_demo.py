"""Set up (or re-announce) the demo: a login, two emulator accounts (Google Flow and Vertex
AI) and a project with a scene on each.

Run by `make run` on every start, so it is idempotent: what exists is left as it is. It needs no
network: the sample start image is drawn here.
"""

from __future__ import annotations

import io
import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from PIL import Image, ImageDraw

from generations import work
from generations.engines.base import Aspect
from generations.engines.catalogue import TIER_TWO, default_model
from generations.images import store_start_image
from generations.models import AccountGrant, FlowAccount, Project, Scene

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "flowsite-demo"
DEMO_PROJECT = "Demo"
EMULATOR_ACCOUNT = "Local emulator"
VERTEX_ACCOUNT = "Local emulator (Vertex AI)"
VERTEX_PROJECT = "Demo on Vertex AI"
# The emulator's service-account key pair is made afresh each run, so the demo account signs
# in with the emulator's fixed token instead (README: how to try a key file against it).
VERTEX_CLOUD_PROJECT = "flowsite-demo"
# Set on the demo accounts while `make run` runs without the emulator: their token is the
# emulator's, which must never go to Google. The worker calls no account with a problem, so their
# takes wait saying this; the next start with the emulator clears it.
EMULATOR_OFF = (
    "This demo account spends the local Flow emulator, and the local emulator is off "
    "(FLOWSITE_EMULATOR=0): nothing is sent to Google with the emulator's token. Start with the "
    "emulator on to use it again."
)
SAMPLE_PROMPT = (
    "A red paper boat drifts across a calm lake at sunrise, mist over the water, "
    "the camera slowly pushes in."
)


class Command(BaseCommand):
    help = "Create the demo login, emulator account and demo project if they are missing."

    def handle(self, *args: Any, **options: Any) -> None:
        # The demo login has a published password: never create it on a real deployment.
        if not (settings.DEBUG or settings.FLOWSITE_EMULATOR):
            raise CommandError(
                "flowsite_demo creates a login with a published password, so it only runs "
                "with DEBUG or FLOWSITE_EMULATOR on."
            )
        with transaction.atomic():
            user, user_created = self._user()
            account = self._account()
            vertex = self._vertex_account()
            demo_accounts = [found for found in (account, vertex) if found is not None]
            if settings.FLOWSITE_EMULATOR:
                for granted in demo_accounts:
                    # Only granted accounts may be spent: the demo login may spend them.
                    AccountGrant.objects.get_or_create(account=granted, user=user)
                self._emulator_back(demo_accounts)
            else:
                self._emulator_off(demo_accounts, user)
            project_created = self._project(user, account)
            vertex_created = self._project(user, vertex, name=VERTEX_PROJECT)

        port = os.environ.get("PORT", "8000")
        self.stdout.write(f"Flowsite demo: open http://127.0.0.1:{port}/")
        if user_created:
            self.stdout.write(
                f"  Created the demo login: {DEMO_USERNAME} / {DEMO_PASSWORD} "
                "(also an admin, at /admin/)"
            )
        else:
            self.stdout.write(
                f"  Sign in as {DEMO_USERNAME} / {DEMO_PASSWORD} (unless you changed it)"
            )
        if not settings.FLOWSITE_EMULATOR:
            for off in demo_accounts:
                self.stdout.write(
                    f"  {off.upstream} account {off.label!r} spends the local emulator, which is "
                    f"off: it is no longer granted to {DEMO_USERNAME} and nothing is sent to "
                    "Google with its token. Start with the emulator on to use it again."
                )
        else:
            if account is not None:
                self.stdout.write(
                    f"  Flow account {account.label!r} spends the local emulator; "
                    f"it is granted to {DEMO_USERNAME}."
                )
            if vertex is not None:
                self.stdout.write(
                    f"  Vertex AI account {vertex.label!r} (project {vertex.vertex_project}) "
                    f"spends the local emulator too; it is granted to {DEMO_USERNAME}."
                )
        if project_created:
            self.stdout.write(f"  Created project {DEMO_PROJECT!r} with one sample scene.")
        if vertex_created:
            self.stdout.write(f"  Created project {VERTEX_PROJECT!r} with one sample scene.")

    def _user(self):
        User = get_user_model()
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is not None:
            return user, False
        # An admin too, so a newcomer can look at accounts and jobs in the Django admin.
        user = User.objects.create_superuser(DEMO_USERNAME, "demo@example.org", DEMO_PASSWORD)
        return user, True

    def _emulator_off(self, accounts: list[FlowAccount], user) -> None:
        """Neither offered to the demo login nor called by the worker while the emulator is
        off: the Demo projects say they may not spend them, queued takes wait, saying why."""
        AccountGrant.objects.filter(account__in=accounts, user=user).delete()
        FlowAccount.objects.filter(pk__in=[off.pk for off in accounts]).update(problem=EMULATOR_OFF)

    def _emulator_back(self, accounts: list[FlowAccount]) -> None:
        pks = [back.pk for back in accounts]
        if FlowAccount.objects.filter(pk__in=pks, problem=EMULATOR_OFF).update(problem=""):
            for back in accounts:
                work.resume_waiting(back)

    def _account(self) -> FlowAccount | None:
        if not settings.FLOWSITE_EMULATOR:
            return FlowAccount.objects.filter(label=EMULATOR_ACCOUNT).first()
        account, created = FlowAccount.objects.get_or_create(
            label=EMULATOR_ACCOUNT,
            defaults={"tier": TIER_TWO, "bearer_token": settings.FLOW_EMULATOR_TOKEN},
        )
        # The emulator's token is configurable; keep the account in step with it.
        if not created and (
            account.bearer_token != settings.FLOW_EMULATOR_TOKEN or account.session_cookie
        ):
            account.bearer_token, account.session_cookie = settings.FLOW_EMULATOR_TOKEN, ""
            account.access_token, account.problem = "", ""
            account.save(
                update_fields=["bearer_token", "session_cookie", "access_token", "problem"]
            )
        return account

    def _vertex_account(self) -> FlowAccount | None:
        if not settings.FLOWSITE_EMULATOR:
            return FlowAccount.objects.filter(label=VERTEX_ACCOUNT).first()
        account, created = FlowAccount.objects.get_or_create(
            label=VERTEX_ACCOUNT,
            defaults={
                "kind": FlowAccount.Kind.VERTEX,
                "vertex_project": VERTEX_CLOUD_PROJECT,
                "bearer_token": settings.FLOW_EMULATOR_TOKEN,
            },
        )
        if (
            not created
            and account.is_vertex
            and (
                account.bearer_token != settings.FLOW_EMULATOR_TOKEN
                and not account.service_account_key
            )
        ):
            account.replace_credentials(bearer_token=settings.FLOW_EMULATOR_TOKEN)
            account.save(update_fields=FlowAccount.CREDENTIAL_FIELDS)
        return account

    def _project(self, user, account: FlowAccount | None, name: str = DEMO_PROJECT) -> bool:
        if Project.objects.filter(name=name).exists():
            return False
        if name != DEMO_PROJECT and account is None:
            return False
        project = Project.start(name, account, user, "demo")
        image = store_start_image(
            project, io.BytesIO(sample_picture()), user, name="sample-lake.png"
        )
        tier = account.tier if account is not None else TIER_TWO
        vertex = account is not None and account.is_vertex
        engine = account.kind if account is not None else FlowAccount.Kind.FLOW
        # On Vertex AI the sample shows what Flow's lane cannot: a shorter clip with sound.
        options = {"duration": 6, "audio": True} if vertex else {}
        Scene.objects.create(
            project=project,
            position=0,
            title="Paper boat at sunrise",
            prompt=SAMPLE_PROMPT,
            start_image=image,
            aspect=Aspect.LANDSCAPE,
            model_key=default_model(tier, Aspect.LANDSCAPE, engine).key,
            takes=1,
            **options,
        )
        return True


def sample_picture(width: int = 1280, height: int = 720) -> bytes:
    """A sunrise over a lake with a paper boat, drawn with Pillow (PNG bytes)."""
    horizon = int(height * 0.58)
    sky = Image.linear_gradient("L").resize((width, horizon))
    image = Image.new("RGB", (width, height))
    # Sky: deep blue at the top warming to orange at the horizon.
    image.paste(
        Image.merge(
            "RGB",
            [
                sky.point(lambda v: 40 + v * 0.8),
                sky.point(lambda v: 50 + v * 0.45),
                sky.point(lambda v: 110 - v * 0.3),
            ],
        ),
        (0, 0),
    )
    draw = ImageDraw.Draw(image)
    draw.ellipse(
        (width * 0.62, horizon - 110, width * 0.62 + 180, horizon + 70), fill=(255, 214, 120)
    )
    # Water, darker away from the horizon, with a few light streaks.
    for y in range(horizon, height):
        depth = (y - horizon) / (height - horizon)
        draw.line((0, y, width, y), fill=(int(70 - 40 * depth), int(90 - 40 * depth), 120))
    for index in range(9):
        y = horizon + 18 + index * 28
        x = int(width * 0.6) - index * 12
        draw.line((x, y, x + 220 - index * 10, y), fill=(230, 170, 110), width=3)
    # The paper boat.
    base_y, left = int(height * 0.78), int(width * 0.3)
    draw.polygon(
        [(left, base_y), (left + 260, base_y), (left + 210, base_y + 50), (left + 50, base_y + 50)],
        fill=(200, 40, 40),
    )
    draw.polygon(
        [(left + 60, base_y), (left + 130, base_y - 120), (left + 200, base_y)], fill=(235, 70, 60)
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
