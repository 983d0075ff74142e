"""Production settings: HTTPS only, secure cookies, HSTS, and Django's deploy checks passing.

The settings module reads the environment once, at import, so its defaults are checked by
loading a fresh copy of it under a given environment (nothing else is imported), and
`manage.py check --deploy` runs in a subprocess with a production environment.
"""

import importlib.util
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.fernet import Fernet
from django.utils.csp import CSP

from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parent.parent

# Whatever the developer's shell has set must not leak into "a production environment".
_OURS = (
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "FLOWSITE_FERNET_KEYS",
    "FLOWSITE_EMULATOR",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER",
    "FLOWSITE_S3_BUCKET",
    "FLOWSITE_S3_ENDPOINT_URL",
    "FLOWSITE_S3_REGION",
    "FLOWSITE_CSP_MEDIA_ORIGINS",
    # Set while the browser tests run (tests/e2e/conftest.py); deploy checks refuse it.
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def production_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _OURS}
    env.update(
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="studio.example.org",
        FLOWSITE_FERNET_KEYS=Fernet.generate_key().decode(),
        FLOWSITE_EMULATOR="0",
        FLOWSITE_VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="flowsite.settings",
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def load_settings(monkeypatch, env: dict[str, str]) -> ModuleType:
    """A fresh copy of flowsite/settings.py evaluated under exactly ``env``."""
    for key in _OURS:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location(
        "settings_under_test", ROOT / "flowsite/settings.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_passes_in_a_production_environment(tmp_path):
    result = run_check_deploy(production_environment(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_without_fernet_keys(tmp_path):
    env = production_environment(tmp_path)
    del env["FLOWSITE_FERNET_KEYS"]
    result = run_check_deploy(env)
    assert result.returncode != 0
    assert "flowsite.E001" in result.stderr
    assert "FLOWSITE_FERNET_KEYS is not set" in result.stderr


def test_production_defaults_are_https_only_with_a_year_of_hsts(monkeypatch, tmp_path):
    prod = load_settings(monkeypatch, production_environment(tmp_path))
    assert prod.DEBUG is False
    assert prod.SECURE_SSL_REDIRECT is True
    assert prod.SESSION_COOKIE_SECURE is True
    assert prod.CSRF_COOKIE_SECURE is True
    assert prod.SECURE_HSTS_SECONDS == 365 * 24 * 3600
    assert prod.SECURE_HSTS_INCLUDE_SUBDOMAINS is True
    assert prod.SECURE_HSTS_PRELOAD is True
    assert prod.SESSION_COOKIE_HTTPONLY is True
    assert prod.SESSION_COOKIE_SAMESITE == "Lax"
    assert prod.X_FRAME_OPTIONS == "DENY"
    assert prod.SECURE_CONTENT_TYPE_NOSNIFF is True
    # Without being told a proxy sets it, X-Forwarded-Proto is not believed.
    assert not hasattr(prod, "SECURE_PROXY_SSL_HEADER")


def test_each_production_default_can_be_switched_from_the_environment(monkeypatch, tmp_path):
    env = production_environment(
        tmp_path,
        SECURE_SSL_REDIRECT="0",
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="0",
        SECURE_HSTS_PRELOAD="off",
        SECURE_PROXY_SSL_HEADER="1",
    )
    prod = load_settings(monkeypatch, env)
    assert prod.SECURE_SSL_REDIRECT is False
    assert prod.SECURE_HSTS_SECONDS == 3600
    assert prod.SECURE_HSTS_INCLUDE_SUBDOMAINS is False
    assert prod.SECURE_HSTS_PRELOAD is False
    assert prod.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")


def test_make_run_on_plain_http_gets_no_https_redirect_or_secure_cookies(monkeypatch, tmp_path):
    dev = load_settings(monkeypatch, {"DEBUG": "1", "FLOWSITE_VAR_DIR": str(tmp_path)})
    assert dev.SECURE_SSL_REDIRECT is False
    assert dev.SESSION_COOKIE_SECURE is False
    assert dev.SECURE_HSTS_SECONDS == 0
    # The policy is the same in development: a CSP problem shows up on a laptop first.
    assert dev.SECURE_CSP["script-src"] == prod_policy(monkeypatch, tmp_path)["script-src"]


def prod_policy(monkeypatch, tmp_path) -> dict:
    return load_settings(monkeypatch, production_environment(tmp_path)).SECURE_CSP


@pytest.mark.parametrize(
    ("store", "origins"),
    [
        ({}, []),
        ({"FLOWSITE_S3_BUCKET": "studio-media"}, ["https://studio-media.s3.amazonaws.com"]),
        (
            {"FLOWSITE_S3_BUCKET": "studio-media", "FLOWSITE_S3_REGION": "eu-west-1"},
            [
                "https://studio-media.s3.amazonaws.com",
                "https://studio-media.s3.eu-west-1.amazonaws.com",
            ],
        ),
        (
            {"FLOWSITE_S3_BUCKET": "media.example.org", "FLOWSITE_S3_REGION": "eu-west-1"},
            [
                "https://s3.amazonaws.com/media.example.org/",
                "https://s3.eu-west-1.amazonaws.com/media.example.org/",
            ],
        ),
        (
            {"FLOWSITE_S3_BUCKET": "b", "FLOWSITE_S3_ENDPOINT_URL": "http://127.0.0.1:9000/x"},
            ["http://127.0.0.1:9000"],
        ),
        (
            {"FLOWSITE_S3_BUCKET": "b", "FLOWSITE_CSP_MEDIA_ORIGINS": "https://cdn.example.org"},
            ["https://cdn.example.org"],
        ),
    ],
)
def test_clips_redirected_to_the_object_store_are_allowed_from_that_bucket_only(
    monkeypatch, tmp_path, store, origins
):
    # The media views redirect to a presigned URL; the browser checks the bucket's origin.
    policy = load_settings(monkeypatch, production_environment(tmp_path, **store)).SECURE_CSP
    assert policy["media-src"] == ["'self'", *origins]
    assert policy["img-src"] == ["'self'", "data:", *origins]
    assert policy["script-src"] == [CSP.SELF, CSP.NONCE]


# --- the headers a page really carries ----------------------------------------------------


def test_a_page_carries_the_content_security_policy_with_a_fresh_nonce(client, alice, project):
    client.force_login(alice)
    first = client.get(f"/projects/{project.uuid}/")
    second = client.get(f"/projects/{project.uuid}/")
    policy = first["Content-Security-Policy"]
    directives = dict(
        (part.split(" ", 1) + [""])[:2] for part in (d.strip() for d in policy.split(";"))
    )
    assert directives["default-src"] == "'self'"
    assert re.fullmatch(r"'self' 'nonce-[\w-]{16,}'", directives["script-src"])
    assert directives["style-src"] == "'self'"
    assert directives["img-src"] == "'self' data:"
    assert directives["media-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'self'"
    nonce = re.search(r"'nonce-([\w-]+)'", policy).group(1)
    # The nonce in the header is the one on htmx's script tag, and it changes every response.
    assert f'nonce="{nonce}"' in first.text
    assert nonce not in second["Content-Security-Policy"]


def test_pages_refuse_framing_sniffing_and_leak_no_referrer_across_sites(client):
    response = client.get("/accounts/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_plain_http_is_redirected_to_https_and_https_gets_hsts(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    response = client.get("/accounts/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"
    secure = client.get("/accounts/login/", secure=True)
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_the_session_cookie_is_secure_httponly_and_same_site_lax(client, alice, settings):
    settings.SESSION_COOKIE_SECURE = True
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}, secure=True
    )
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


# --- nothing in the templates needs 'unsafe-inline' ----------------------------------------

TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT / "templates")))
def test_no_template_has_inline_styles_scripts_or_event_handlers(path):
    source = path.read_text()
    assert not re.search(r"\sstyle\s*=", source), "inline style attribute"
    assert "<style" not in source, "inline <style> element"
    assert not re.search(r"\son[a-z]+\s*=", source), "inline event handler"
    assert "javascript:" not in source
    for tag in re.findall(r"<script\b[^>]*>", source):
        assert "src=" in tag, f"inline script {tag}"
