"""The deployment files agree with each other and with the settings.

Docker and nginx do not run here, so these read compose.yaml (YAML), deploy/nginx.conf (a small
parser of nginx's block syntax) and the Dockerfile, and check what would otherwise only fail on
a real host: services that start in the wrong order, a variable the settings never read, an
X-Accel location that is public or points somewhere other than the media folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "web", "worker")
# Read by libraries rather than flowsite/settings.py.
EXTERNAL_VARIABLES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "WEB_CONCURRENCY"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def nginx() -> list:
    return parse_nginx((ROOT / "deploy" / "nginx.conf").read_text())


def dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text()
    block = re.search(r"^ENV (.+?)(?=^\S)", text, re.MULTILINE | re.DOTALL)
    assert block, "the Dockerfile sets its environment in one ENV block"
    return dict(re.findall(r"(\w+)=(\S+)", block.group(1).replace("\\\n", " ")))


def parse_nginx(text: str) -> list:
    """nginx's configuration as nested lists: [name, args, children or None]."""
    text = re.sub(r"#[^\n]*", "", text)
    tokens = re.findall(r'"[^"]*"|\'[^\']*\'|[{};]|[^\s{};]+', text)
    stack: list[list] = [[]]
    words: list[str] = []
    for token in tokens:
        if token == ";":
            assert words, "an empty statement"
            stack[-1].append([words[0], words[1:], None])
            words = []
        elif token == "{":
            block = [words[0], words[1:], []]
            stack[-1].append(block)
            stack.append(block[2])
            words = []
        elif token == "}":
            assert not words, f"a statement without ';' before '}}': {words}"
            assert len(stack) > 1, "an unbalanced '}'"
            stack.pop()
        else:
            words.append(token)
    assert not words and len(stack) == 1, "the configuration ends inside a block or statement"
    return stack[0]


def find(blocks: list, name: str, *args: str) -> list:
    return [item for item in blocks if item[0] == name and (not args or item[1] == list(args))]


def settings_variables() -> set[str]:
    text = (ROOT / "flowsite" / "settings.py").read_text()
    return set(re.findall(r'env(?:str|bool|int|float|list)\("([A-Z0-9_]+)"', text))


# --- compose.yaml ----------------------------------------------------------------------------


def test_web_and_worker_start_only_after_the_one_off_migrate_succeeded(compose):
    services = compose["services"]

    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }, name
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["migrate"]["restart"] == "no"


def test_migrate_waits_for_a_healthy_postgresql(compose):
    db = compose["services"]["db"]

    assert compose["services"]["migrate"]["depends_on"]["db"] == {"condition": "service_healthy"}
    assert db["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in db["volumes"])


def test_every_app_container_runs_the_same_image_on_the_same_database_and_media(compose):
    services = compose["services"]
    db = services["db"]["environment"]

    for name in APP_SERVICES:
        service = services[name]
        assert service["build"] == "." and service["image"] == "flowsite:latest", name
        url = service["environment"]["DATABASE_URL"]
        assert url.startswith(f"postgres://{db['POSTGRES_USER']}:"), name
        assert url.endswith(f"@db:5432/{db['POSTGRES_DB']}"), name
        assert service["volumes"] == ["media:/data"], name
    assert dockerfile_env()["FLOWSITE_VAR_DIR"] == "/data"


def test_web_runs_several_gunicorn_workers_and_the_worker_runs_the_cluster(compose):
    web = compose["services"]["web"]
    worker = compose["services"]["worker"]

    assert web["command"][:2] == ["gunicorn", "flowsite.wsgi"]
    workers = next(arg for arg in web["command"] if arg.startswith("--workers="))
    assert re.fullmatch(r"--workers=\$\{WEB_CONCURRENCY:-([2-9]|\d\d+)\}", workers), workers
    # The cluster under the supervisor that restarts it when it stops working.
    assert worker["command"][:3] == ["python", "manage.py", "flowsite_worker"]
    assert worker["init"] is True, "reaps what a restarted cluster leaves behind"
    # A port range, so `--scale web=N` does not collide on one host port.
    assert re.search(r"\d+-\d+\}?:8000$", web["ports"][0])


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME-default}`` for one string."""

    def value(match: re.Match) -> str:
        name, operator, default = match.group(1), match.group(2), match.group(3) or ""
        if operator == ":-":
            return env.get(name) or default
        if operator == "-":
            return env.get(name, default)
        return env.get(name, "")

    return re.sub(r"\$\{(\w+)(?:(:?-)([^}]*))?\}", value, text)


def published(compose: dict, env: dict[str, str], profiles: set[str]) -> dict[str, list[str]]:
    """Each running service's host addresses its ports are published on ("0.0.0.0": all)."""
    addresses: dict[str, list[str]] = {}
    for name, service in compose["services"].items():
        if not set(service.get("profiles", [])) <= profiles:
            continue
        for port in service.get("ports", []):
            parts = interpolate(str(port), env).rsplit(":", 2)
            host = parts[0] if len(parts) == 3 else "0.0.0.0"
            addresses.setdefault(name, []).append(host or "0.0.0.0")
    return addresses


def test_under_the_nginx_profile_only_nginx_is_reachable_from_the_network(compose):
    # The README's nginx command line.
    env = {"FLOWSITE_X_ACCEL_REDIRECT": "/protected/", "FLOWSITE_TRUSTED_PROXIES": "1"}

    addresses = published(compose, env, {"nginx"})

    assert addresses.pop("nginx") == ["0.0.0.0"]
    assert addresses == {"web": ["127.0.0.1"]}
    # nginx reaches the web containers over the compose network, on the port they expose.
    assert compose["services"]["web"]["expose"] == ["8000"]


def test_web_ports_are_on_loopback_unless_web_bind_says_otherwise(compose):
    assert published(compose, {}, set()) == {"web": ["127.0.0.1"]}
    assert published(compose, {"WEB_BIND": "0.0.0.0"}, set()) == {"web": ["0.0.0.0"]}


def test_the_compose_interpolation_helper_follows_composes_rules():
    assert interpolate("${A:-x}:${B-y}:${C}", {"A": "", "B": ""}) == "x::"
    assert interpolate("${A:-x}", {"A": "a"}) == "a"


def test_secrets_have_no_default_and_stop_compose_when_missing(compose):
    env = compose["services"]["web"]["environment"]

    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert env["FLOWSITE_FERNET_KEYS"].startswith("${FLOWSITE_FERNET_KEYS:?")


def test_every_variable_compose_passes_is_one_the_app_reads(compose):
    read = settings_variables() | EXTERNAL_VARIABLES

    for name in APP_SERVICES:
        unknown = set(compose["services"][name]["environment"]) - read
        assert not unknown, f"{name} passes variables nothing reads: {sorted(unknown)}"


def test_nginx_and_redis_are_optional_profiles(compose):
    services = compose["services"]

    assert services["nginx"]["profiles"] == ["nginx"]
    assert services["redis"]["profiles"] == ["redis"]
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["redis"]["required"] is False
    for name in ("db", "migrate", "web", "worker"):
        assert "profiles" not in services[name]


def test_nginx_gets_its_configuration_and_the_media_volume_read_only(compose):
    nginx = compose["services"]["nginx"]

    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert "media:/data:ro" in nginx["volumes"]
    assert nginx["depends_on"]["web"] == {"condition": "service_healthy"}
    assert (ROOT / "deploy" / "nginx.conf").is_file()


# --- deploy/nginx.conf ------------------------------------------------------------------------


def test_nginx_balances_over_the_web_service(nginx):
    (http,) = find(nginx, "http")
    (upstream,) = find(http[2], "upstream", "flowsite_web")
    (server,) = find(http[2], "server")
    (root,) = find(server[2], "location", "/")

    assert find(upstream[2], "server", "web:8000")
    assert find(root[2], "proxy_pass", "http://flowsite_web")
    assert find(root[2], "proxy_set_header", "X-Forwarded-For", "$proxy_add_x_forwarded_for")
    assert find(root[2], "proxy_set_header", "X-Forwarded-Proto", "$scheme")


def test_the_x_accel_location_is_internal_and_maps_the_media_folder(nginx, compose):
    (http,) = find(nginx, "http")
    (server,) = find(http[2], "server")
    (protected,) = find(server[2], "location", "/protected/")

    assert find(protected[2], "internal"), "without `internal` anyone could fetch /protected/"
    media_root = dockerfile_env()["FLOWSITE_VAR_DIR"] + "/media/"
    assert find(protected[2], "alias", media_root)
    hint = compose["services"]["web"]["environment"]["FLOWSITE_X_ACCEL_REDIRECT"]
    assert hint == "${FLOWSITE_X_ACCEL_REDIRECT:-}"
    assert "FLOWSITE_X_ACCEL_REDIRECT=/protected/" in (ROOT / "compose.yaml").read_text()


def test_the_nginx_parser_refuses_a_missing_semicolon():
    with pytest.raises(AssertionError, match="without ';'"):
        parse_nginx("http { server { listen 8080 } }")


# --- Dockerfile -------------------------------------------------------------------------------


def test_the_image_is_slim_runs_as_a_user_and_collects_static_files_at_build():
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]

    assert re.fullmatch(r"FROM python:3\.1[2-9]-slim", lines[0])
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    collect = next(i for i, line in enumerate(lines) if "collectstatic --noinput" in line)
    assert collect < lines.index(f"USER {users[-1]}")
    assert lines[-1].startswith('CMD ["gunicorn", "flowsite.wsgi"')
    assert dockerfile_env()["STATIC_ROOT"] == "/app/staticfiles"


def test_the_build_context_leaves_out_the_virtualenv_data_and_git():
    ignored = (ROOT / ".dockerignore").read_text().split()

    for entry in (".git", ".venv", "var", ".env"):
        assert entry in ignored
