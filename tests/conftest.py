"""The shared world of every test: alice owns a project, bob edits it, carol watches it and
charlie is an outsider who must never see it; the local Flow emulator stands in for Google;
and the factories that build start images and scenes the way Flowsite stores them.

The factories are plain functions (tests call them with arguments), imported from here.
"""

import io
import json
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from PIL import Image

from generations import images, tasks
from generations.emulator import Emulator, EmulatorConfig, start_emulator
from generations.engines.catalogue import TIER_ONE
from generations.engines.vertex import clean_service_account_key
from generations.models import AccountGrant, FlowAccount, ImageAsset, Membership, Project, Scene

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _private_media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _static_files_without_collectstatic(settings):
    # The manifest storage of production needs `collectstatic` first; tests render pages
    # straight from static/ and the apps' static folders.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # WhiteNoise then finds files through the finders too, and does not warn about the
    # missing STATIC_ROOT on every request.
    settings.WHITENOISE_AUTOREFRESH = True
    settings.WHITENOISE_USE_FINDERS = True


# A fixed key for tests only: production refuses to start without FLOWSITE_FERNET_KEYS.
TEST_FERNET_KEY = "m8R0a7Qy1hV8ZC3k2n9W3s1pJ4u6x0bYcD5eF7gH9iA="


@pytest.fixture(autouse=True)
def _fernet_key(settings):
    settings.FLOWSITE_FERNET_KEYS = [TEST_FERNET_KEY]


@pytest.fixture(autouse=True)
def _plain_http_in_tests(settings):
    # Tests run with DEBUG off, so production's redirect to HTTPS would answer every test
    # request with a 301; the test client and the live server speak plain HTTP.
    # tests/test_security_settings.py checks the production values themselves.
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Four users per test with production-strength hashing cost about a second per test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user("alice", "alice@example.org", PASSWORD)


@pytest.fixture
def bob(db) -> User:
    return User.objects.create_user("bob", "bob@example.org", PASSWORD)


@pytest.fixture
def carol(db) -> User:
    return User.objects.create_user("carol", "carol@example.org", PASSWORD)


@pytest.fixture
def charlie(db) -> User:
    return User.objects.create_user("charlie", "charlie@example.org", PASSWORD)


@pytest.fixture
def account(db) -> FlowAccount:
    return FlowAccount.objects.create(label="Studio", tier=TIER_ONE, bearer_token="ya29.test")


@pytest.fixture
def project(alice, bob, carol, account) -> Project:
    project = Project.objects.create(name="Poseidon", account=account, created_by=alice)
    project.add_member(alice, Membership.Role.OWNER)
    # Staff granted the account to alice, the owner, so the project may spend it.
    AccountGrant.objects.get_or_create(account=account, user=alice)
    project.add_member(bob, Membership.Role.EDITOR)
    project.add_member(carol, Membership.Role.VIEWER)
    return project


class TaskQueue:
    """The django-q2 broker's queue as tests see it, whichever broker is configured (the ORM
    by default, Redis when Q_REDIS_URL is set), emptied when a test starts."""

    def __init__(self) -> None:
        from django_q.brokers import get_broker

        self.broker = get_broker()
        self.clear()

    def count(self) -> int:
        return self.broker.queue_size()

    def clear(self) -> None:
        self.broker.purge_queue()


@pytest.fixture
def task_queue(db) -> TaskQueue:
    return TaskQueue()


@pytest.fixture
def queued(monkeypatch) -> list[list[int]]:
    """Record what would be queued for the worker instead of queueing it."""
    calls: list[list[int]] = []
    monkeypatch.setattr(tasks, "queue_submission", lambda ids: calls.append(list(ids)))
    return calls


# --- The local Flow emulator ------------------------------------------------------------------


@pytest.fixture(scope="session")
def _flow_emulator_server() -> Iterator[Emulator]:
    # One emulator for the whole session, so that renders are cached across tests.
    emulator = start_emulator(
        EmulatorConfig(port=0, pending_seconds=0.2, active_seconds=0.3, clip_seconds=2.0)
    )
    yield emulator
    emulator.stop()


@pytest.fixture
def flow_emulator(_flow_emulator_server: Emulator, settings) -> Emulator:
    """A running emulator with short timings (pending 0.2 s, active 0.3 s, 2 s clips), reset
    for this test, with FLOW_API_BASE_URL / FLOW_LABS_BASE_URL pointing at it."""
    emulator = _flow_emulator_server
    emulator.reset()
    settings.FLOW_API_BASE_URL = emulator.url
    settings.FLOW_LABS_BASE_URL = emulator.url
    # Media hosts are pinned to their port: the emulator's links are on its own.
    origin = emulator.url.removeprefix("http://")
    if origin not in settings.FLOW_MEDIA_HOSTS:
        settings.FLOW_MEDIA_HOSTS = [*settings.FLOW_MEDIA_HOSTS, origin]
    return emulator


@pytest.fixture
def emu(flow_emulator: Emulator, account: FlowAccount, settings) -> Emulator:
    """The emulator with the project's account signed in to it (its bearer token), and the
    worker polling as often as a test can use (a clip is ready within a second)."""
    settings.FLOWSITE_POLL_INTERVAL = 0.1
    account.bearer_token = flow_emulator.token
    account.save(update_fields=["bearer_token"])
    return flow_emulator


VERTEX_FAST = "veo-3.1-fast-generate-001"


def use_vertex(account: FlowAccount, emulator: Emulator) -> FlowAccount:
    """Make ``account`` a Vertex AI account signing in with the emulator's service-account key
    (the caller points VERTEX_API_BASE_URL and GOOGLE_STORAGE_BASE_URL at the emulator)."""
    account.kind = FlowAccount.Kind.VERTEX
    account.vertex_project = "flowsite-demo"
    account.replace_credentials(
        service_account_key=clean_service_account_key(json.dumps(emulator.service_account_key()))
    )
    account.save()
    return account


@pytest.fixture
def vertex_project(flow_emulator, project, settings):
    """alice's project on a Vertex AI account signing in with the emulator's key."""
    settings.VERTEX_API_BASE_URL = flow_emulator.url
    settings.GOOGLE_STORAGE_BASE_URL = flow_emulator.url
    settings.FLOWSITE_POLL_INTERVAL = 0.1
    use_vertex(project.account, flow_emulator)
    return project


def vertex_scene(project, marker: str = "", **fields):
    fields.setdefault("takes", 1)
    fields.setdefault("duration", 4)
    return make_scene(
        project,
        make_image(project),
        prompt=f"{marker} a heron lifts off the reeds".strip(),
        model_key=VERTEX_FAST,
        **fields,
    )


# --- Factories --------------------------------------------------------------------------------


def png_bytes(width: int = 64, height: int = 36, colour: tuple = (30, 90, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def make_image(
    project: Project, user=None, *, portrait: bool = False, color: tuple = (30, 90, 200)
) -> ImageAsset:
    """A start image stored the way an upload is; give another ``color`` for an image whose
    bytes (and so whose upload to Flow) differ."""
    size = (36, 64) if portrait else (64, 36)
    data = png_bytes(*size, colour=color)
    return images.store_start_image(project, ContentFile(data, name="start.png"), user)


def make_scene(project: Project, image: ImageAsset | None = None, **fields) -> Scene:
    """A scene at the end of the storyboard; without ``image`` it has no start image."""
    position = fields.pop("position", project.scenes.count())
    defaults = {
        "prompt": "A lighthouse at dusk, waves rolling in",
        "model_key": "veo_3_1_i2v_s_fast",
        "aspect": "landscape",
        "takes": 1,
    }
    defaults.update(fields)
    return Scene.objects.create(project=project, start_image=image, position=position, **defaults)


def make_ready_scene(
    project: Project,
    prompt: str = "a seahorse trots along the harbour wall",
    *,
    takes: int = 1,
    image: ImageAsset | None = None,
) -> Scene:
    """A scene the worker can generate: it always has a start image (a new one unless given),
    and its prompt is where the emulator's ``[fault:…]`` markers go."""
    return make_scene(project, image or make_image(project), prompt=prompt, takes=takes)
