"""The shared world of every test: alice owns a project, bob edits it, carol watches it and
charlie is an outsider who must never see it."""

import pytest
from django.contrib.auth.models import User

from generations.engines.catalogue import TIER_ONE
from generations.models import FlowAccount, Membership, Project

pytest_plugins = ["tests.fixtures_emulator"]

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
