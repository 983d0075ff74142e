"""Vertex AI accounts: added and changed with `manage.py flow_account` and in the admin, the
service-account key stored encrypted and never shown."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from generations.emulator.config import EmulatorConfig
from generations.emulator.state import EmulatorState
from generations.emulator.vertex import service_account_key
from generations.models import FlowAccount, Generation

TOKEN = "ya29.a0AfB_vertex-pasted-token-1234"


@pytest.fixture(scope="module")
def key_json() -> str:
    state = EmulatorState(EmulatorConfig(port=0))
    try:
        return json.dumps(service_account_key(state, "http://127.0.0.1:1"))
    finally:
        state.close()


def run(*args: str, stdin: str | None = None) -> str:
    out = io.StringIO()
    options = {"stdout": out}
    if stdin is not None:
        options["stdin"] = io.StringIO(stdin)
    call_command("flow_account", *args, **options)
    return out.getvalue()


def test_add_a_vertex_account_with_a_key_file(db, tmp_path, key_json):
    path = tmp_path / "key.json"
    path.write_text(key_json)

    output = run(
        "add",
        "Cloud",
        "--vertex-project",
        "my-studio-4821",
        "--service-account-file",
        str(path),
        "--storage-uri",
        "gs://studio-clips/flowsite/",
    )

    account = FlowAccount.objects.get(label="Cloud")
    assert account.is_vertex and account.vertex_project == "my-studio-4821"
    assert account.vertex_location == "us-central1", "the default region"
    assert json.loads(account.service_account_key)["private_key"].startswith("-----BEGIN")
    assert account.storage_uri == "gs://studio-clips/flowsite/"
    assert "Added Vertex AI account 'Cloud'" in output
    assert "flowsite@flowsite-demo.iam.gserviceaccount.com" in output
    assert "PRIVATE KEY" not in output


def test_add_a_vertex_account_with_a_pasted_token_and_a_region(db):
    run(
        "add",
        "Cloud",
        "--vertex-project",
        "my-studio-4821",
        "--vertex-location",
        "europe-west4",
        "--bearer-token",
        TOKEN,
    )

    account = FlowAccount.objects.get()
    assert (account.vertex_location, account.bearer_token) == ("europe-west4", TOKEN)
    assert account.auth_kind == "bearer token"


def test_a_key_file_can_come_from_standard_input(db, key_json):
    run(
        "add",
        "Cloud",
        "--vertex-project",
        "my-studio-4821",
        "--service-account-file",
        "-",
        stdin=key_json,
    )

    assert FlowAccount.objects.get().auth_kind == "service-account key"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--vertex-project", "My Studio", "--bearer-token", TOKEN], "Google Cloud project id"),
        (
            [
                "--vertex-project",
                "my-studio-4821",
                "--vertex-location",
                "mars",
                "--bearer-token",
                TOKEN,
            ],
            "us-central1 or europe-west4",
        ),
        (
            [
                "--vertex-project",
                "my-studio-4821",
                "--bearer-token",
                TOKEN,
                "--storage-uri",
                "s3://x",
            ],
            "gs://BUCKET/PREFIX/",
        ),
        (["--vertex-project", "my-studio-4821"], "--service-account-file is required"),
        (["--vertex-project", "my-studio-4821", "--session-cookie", "c"], "not a Flow session"),
        (["--bearer-token", TOKEN, "--storage-uri", "gs://bucket/x"], "give --vertex-project"),
        (
            ["--vertex-project", "my-studio-4821", "--service-account-file", "/nonexistent.json"],
            "cannot be read",
        ),
    ],
)
def test_a_wrong_vertex_account_is_refused_in_words(db, args, words):
    with pytest.raises(CommandError, match=words):
        run("add", "Cloud", *args)
    assert not FlowAccount.objects.exists()


def test_a_key_file_that_is_not_a_service_account_key_is_refused(db, tmp_path):
    path = tmp_path / "key.json"
    path.write_text('{"type": "authorized_user", "refresh_token": "x"}')

    with pytest.raises(CommandError, match="not a service-account key"):
        run(
            "add",
            "Cloud",
            "--vertex-project",
            "my-studio-4821",
            "--service-account-file",
            str(path),
        )


NOT_JSON = "The service-account key is not JSON; upload or paste the whole key file"
NOT_TEXT = b"\x89PNG\r\n\x1a\n\xf6\x00\xff binary"


def test_a_key_file_that_is_not_text_is_refused_as_any_file_that_is_not_json(db, tmp_path):
    path = tmp_path / "picture.json"
    path.write_bytes(NOT_TEXT)
    add = ["add", "Cloud", "--vertex-project", "my-studio-4821", "--service-account-file"]

    with pytest.raises(CommandError) as from_file:
        run(*add, str(path))
    with pytest.raises(CommandError) as from_stdin:
        call_command(
            "flow_account",
            *add,
            "-",
            stdout=io.StringIO(),
            stdin=io.TextIOWrapper(io.BytesIO(NOT_TEXT), encoding="utf-8"),
        )

    assert str(from_file.value).startswith(NOT_JSON)
    assert str(from_stdin.value).startswith(NOT_JSON)
    assert not FlowAccount.objects.exists()


def test_list_shows_the_engine_project_and_service_account_never_the_key(db, key_json, tmp_path):
    (tmp_path / "key.json").write_text(key_json)
    run(
        "add",
        "Cloud",
        "--vertex-project",
        "my-studio-4821",
        "--service-account-file",
        str(tmp_path / "key.json"),
    )
    FlowAccount.objects.create(label="Studio", bearer_token=TOKEN)

    output = run("list")

    cloud = next(line for line in output.splitlines() if line.startswith("Cloud"))
    assert "vertex my-studio-4821 us-central1" in cloud
    assert "flowsite@flowsite-demo.iam.gserviceaccount.com" in cloud
    assert "PRIVATE" not in output and TOKEN not in output


def test_update_changes_region_and_key_and_resumes_waiting_takes(db, key_json, tmp_path, project):
    account = project.account
    account.kind = FlowAccount.Kind.VERTEX
    account.vertex_project = "my-studio-4821"
    account.problem = "The Vertex AI API is not enabled."
    account.save()
    (tmp_path / "key.json").write_text(key_json)

    output = run(
        "update",
        "Studio",
        "--vertex-location",
        "europe-west4",
        "--service-account-file",
        str(tmp_path / "key.json"),
    )

    account.refresh_from_db()
    assert account.vertex_location == "europe-west4"
    assert account.auth_kind == "service-account key" and account.bearer_token == ""
    assert account.problem == ""
    assert "vertex_location" in output


def test_a_flow_account_takes_no_vertex_settings(db):
    FlowAccount.objects.create(label="Studio", bearer_token=TOKEN)

    with pytest.raises(CommandError, match="is a Google Flow account"):
        run("update", "Studio", "--vertex-project", "my-studio-4821")


def test_a_vertex_account_takes_no_flow_tier_when_added_or_updated(db):
    cloud = ["--vertex-project", "my-studio-4821", "--bearer-token", TOKEN]
    run("add", "Cloud", *cloud)
    before = FlowAccount.objects.values().get()

    with pytest.raises(CommandError, match="A Vertex AI account has no Flow tier"):
        run("update", "Cloud", "--tier", "PAYGATE_TIER_TWO")
    with pytest.raises(CommandError, match="A Vertex AI account has no Flow tier"):
        run("add", "Cloud 2", *cloud, "--tier", "PAYGATE_TIER_TWO")

    assert list(FlowAccount.objects.values()) == [before]


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root", "root@example.org", "x"))
    return client


def admin_form(**fields) -> dict:
    return {
        "label": "Cloud",
        "kind": "vertex",
        "tier": "PAYGATE_TIER_ONE",
        "vertex_project": "my-studio-4821",
        "vertex_location": "us-central1",
        "storage_uri": "",
        "cool_down_until_0": "",
        "cool_down_until_1": "",
        "problem": "",
        "new_bearer_token": "",
        "new_session_cookie": "",
        "grants-TOTAL_FORMS": "0",
        "grants-INITIAL_FORMS": "0",
        **fields,
    }


def test_an_admin_adds_a_vertex_account_by_uploading_its_key_file(admin_client, key_json):
    response = admin_client.post(
        reverse("admin:generations_flowaccount_add"),
        admin_form(
            new_service_account_key=SimpleUploadedFile(
                "key.json", key_json.encode(), "application/json"
            )
        ),
    )

    assert response.status_code == 302
    account = FlowAccount.objects.get()
    assert account.is_vertex and account.service_account_key
    page = admin_client.get(reverse("admin:generations_flowaccount_change", args=[account.pk]))
    assert "flowsite@flowsite-demo.iam.gserviceaccount.com" in page.text
    assert "PRIVATE KEY" not in page.text


def test_the_admin_refuses_a_vertex_account_without_a_project_or_with_a_cookie(admin_client):
    no_project = admin_client.post(
        reverse("admin:generations_flowaccount_add"),
        admin_form(vertex_project="", new_bearer_token=TOKEN),
    )
    cookie = admin_client.post(
        reverse("admin:generations_flowaccount_add"), admin_form(new_session_cookie="abc")
    )

    assert "A Vertex AI account needs its Google Cloud project id." in no_project.text
    assert "A Vertex AI account takes no session cookie." in cookie.text
    assert not FlowAccount.objects.exists()


def test_takes_wait_for_a_vertex_account_an_admin_fixes(db, project, alice, admin_client, key_json):
    account = project.account
    account.kind, account.vertex_project = FlowAccount.Kind.VERTEX, "my-studio-4821"
    account.problem = "Account Studio: the Vertex AI API is not enabled."
    account.save()
    from tests.conftest import make_image, make_scene

    scene = make_scene(project, make_image(project), model_key="veo-3.1-fast-generate-001")
    [take] = scene.generate(alice)
    Generation.objects.filter(pk=take.pk).update(reason=account.problem, next_check_at=None)

    with django_capture_on_commit():
        admin_client.post(
            reverse("admin:generations_flowaccount_change", args=[account.pk]),
            admin_form(
                label="Studio",
                new_service_account_key=SimpleUploadedFile("key.json", key_json.encode()),
            ),
        )

    take.refresh_from_db()
    account.refresh_from_db()
    assert account.problem == "" and account.auth_kind == "service-account key"
    assert take.reason == "" and take.next_check_at is not None


def django_capture_on_commit():
    from django.test import TestCase

    return TestCase.captureOnCommitCallbacks(execute=True)


def test_the_admin_refuses_a_key_file_that_is_not_text_as_the_command_does(admin_client):
    response = admin_client.post(
        reverse("admin:generations_flowaccount_add"),
        admin_form(
            new_service_account_key=SimpleUploadedFile("picture.json", NOT_TEXT, "image/png")
        ),
    )

    assert response.status_code == 200
    assert NOT_JSON in response.text
    assert not FlowAccount.objects.exists()
