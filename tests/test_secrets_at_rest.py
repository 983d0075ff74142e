import io

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection

from generations.models import FlowAccount


def stored(account: FlowAccount, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM generations_flowaccount WHERE id = %s", [account.pk])
        return cursor.fetchone()[0]


def test_a_pasted_cookie_is_never_stored_in_the_clear(db):
    account = FlowAccount.objects.create(label="Studio", session_cookie="cookie-value-42")
    raw = stored(account, "session_cookie")
    assert "cookie-value-42" not in raw
    assert raw.startswith("fernet:")
    assert FlowAccount.objects.get(pk=account.pk).session_cookie == "cookie-value-42"


def test_empty_secrets_stay_empty(db):
    account = FlowAccount.objects.create(label="Studio", bearer_token="ya29.abc")
    assert stored(account, "session_cookie") == ""
    assert FlowAccount.objects.get(pk=account.pk).session_cookie == ""


def test_rotating_keys_reencrypts_under_the_new_key_and_the_old_key_can_go(db, settings):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FLOWSITE_FERNET_KEYS = [old_key]
    account = FlowAccount.objects.create(label="Studio", bearer_token="ya29.secret-token")
    before = stored(account, "bearer_token")

    settings.FLOWSITE_FERNET_KEYS = [new_key, old_key]
    call_command("rotate_fernet_keys", stdout=io.StringIO())
    assert stored(account, "bearer_token") != before

    settings.FLOWSITE_FERNET_KEYS = [new_key]
    assert FlowAccount.objects.get(pk=account.pk).bearer_token == "ya29.secret-token"


def test_rotating_with_only_a_new_key_is_refused_in_words_and_changes_nothing(db, settings):
    from django.core.management.base import CommandError

    account = FlowAccount.objects.create(label="Studio", bearer_token="ya29.secret-token")
    before = stored(account, "bearer_token")
    settings.FLOWSITE_FERNET_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(CommandError) as refusal:
        call_command("rotate_fernet_keys", stdout=io.StringIO())

    assert "Studio" in str(refusal.value)
    assert "none of the keys in FLOWSITE_FERNET_KEYS decrypts" in str(refusal.value)
    assert "keep the old key listed after the new one" in str(refusal.value)
    assert stored(account, "bearer_token") == before


def test_a_value_written_before_encryption_is_read_and_then_encrypted_by_rotation(db):
    account = FlowAccount.objects.create(label="Studio")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE generations_flowaccount SET bearer_token = %s WHERE id = %s",
            ["ya29.legacy", account.pk],
        )
    assert FlowAccount.objects.get(pk=account.pk).bearer_token == "ya29.legacy"
    call_command("rotate_fernet_keys", stdout=io.StringIO())
    assert stored(account, "bearer_token").startswith("fernet:")
    assert FlowAccount.objects.get(pk=account.pk).bearer_token == "ya29.legacy"


def test_the_app_refuses_to_start_without_a_key(settings):
    settings.FLOWSITE_FERNET_KEYS = []
    errors = [error.id for error in run_checks(tags=["flowsite"])]
    assert errors == ["flowsite.E001"]


def test_e001_tells_an_operator_of_a_make_run_install_to_reuse_its_keys_not_make_one(settings):
    settings.FLOWSITE_FERNET_KEYS = []
    (error,) = run_checks(tags=["flowsite"])
    assert "every process" in error.hint
    assert "same FLOWSITE_FERNET_KEYS" in error.hint
    assert "DEBUG=1" in error.hint


@pytest.mark.parametrize("keys", [["not-a-key"], ["short"]])
def test_a_malformed_key_is_reported_in_words(db, settings, keys):
    from django.core.exceptions import ImproperlyConfigured

    settings.FLOWSITE_FERNET_KEYS = keys
    with pytest.raises(ImproperlyConfigured, match="url-safe base64"):
        FlowAccount.objects.create(label="Studio", bearer_token="ya29.x")


@pytest.mark.parametrize("serves", [False, True])
def test_gunicorns_entry_point_refuses_to_serve_without_a_key(tmp_path, serves):
    import os
    import subprocess
    import sys

    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DEBUG", "FLOWSITE_FERNET_KEYS", "DATABASE_URL"}
    }
    env.update(FLOWSITE_VAR_DIR=str(tmp_path), SECRET_KEY="k" * 60, FLOWSITE_EMULATOR="0")
    if serves:
        env["FLOWSITE_FERNET_KEYS"] = Fernet.generate_key().decode()
    result = subprocess.run(
        [sys.executable, "-c", "import flowsite.wsgi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode == 0) is serves, result.stderr
    if not serves:
        assert "FLOWSITE_FERNET_KEYS is not set" in result.stderr


OTHER_KEY = Fernet.generate_key().decode()


@pytest.fixture
def stray(db, settings, alice) -> FlowAccount:
    """An account added by a command that made its own key, as E001's old hint led to."""
    from generations.models import AccountGrant

    keys = settings.FLOWSITE_FERNET_KEYS
    settings.FLOWSITE_FERNET_KEYS = [OTHER_KEY]
    stray = FlowAccount.objects.create(label="Stray", bearer_token="ya29.stray-token-1234")
    settings.FLOWSITE_FERNET_KEYS = keys
    AccountGrant.objects.create(account=stray, user=alice)
    return stray


def test_alice_still_opens_new_project_and_settings_beside_an_account_no_key_decrypts(
    project, stray, alice
):
    from django.urls import reverse

    from tests.views_support import client_for

    client = client_for(alice)
    new = client.get(reverse("project-create"))
    settings_page = client.get(reverse("project-settings", args=[project.uuid]))

    assert new.status_code == 200
    assert b"Stray" in new.content
    assert settings_page.status_code == 200


def test_staff_see_and_delete_an_account_no_key_decrypts(admin_client, stray):
    from django.urls import reverse

    listing = admin_client.get(reverse("admin:generations_flowaccount_changelist"))
    page = admin_client.get(reverse("admin:generations_flowaccount_change", args=[stray.pk]))
    delete_url = reverse("admin:generations_flowaccount_delete", args=[stray.pk])
    confirm = admin_client.get(delete_url)
    deleted = admin_client.post(delete_url, {"post": "yes"})

    assert listing.status_code == 200
    assert b"cannot be decrypted" in listing.content
    # Where a new secret can be pasted over the sealed one.
    assert page.status_code == 200
    assert b"cannot be decrypted" in page.content
    assert confirm.status_code == 200
    assert deleted.status_code == 302
    assert not FlowAccount.objects.filter(pk=stray.pk).exists()


def test_saving_an_account_no_key_decrypts_keeps_its_secret_for_the_right_key(stray, settings):
    before = stored(stray, "bearer_token")
    account = FlowAccount.objects.get(pk=stray.pk)
    account.problem = "checked"
    account.save()

    assert stored(stray, "bearer_token") == before
    settings.FLOWSITE_FERNET_KEYS = [OTHER_KEY]
    assert FlowAccount.objects.get(pk=stray.pk).bearer_token == "ya29.stray-token-1234"


def test_the_worker_says_in_words_that_only_stray_cannot_be_signed(account, stray):
    from generations.pipeline.accounts import Engines

    engines = Engines()
    loaded = FlowAccount.objects.get(pk=stray.pk)
    with pytest.raises(ValueError, match="cannot be decrypted") as refusal:
        engines.get(loaded)

    assert "Stray has no usable token" in loaded.unusable_secret(refusal.value)
    assert engines.get(FlowAccount.objects.get(pk=account.pk)) is not None
