"""Real-browser tests: Playwright drives Debian's Chromium (never a downloaded browser).

When no `chromium` is on PATH every test here is skipped with a plain reason; `scripts/test`
says so up front too.

Every page is opened with the real Content-Security-Policy on. The ``page`` fixture records
each CSP violation the browser reports (the ``securitypolicyviolation`` event and the console's
"Refused to ..." errors), every uncaught script error and every other error written to the
console (htmx's own, such as ``htmx:oobErrorNoTarget`` or ``htmx:swapError``, a picture or
script that failed to load) in ``page_problems``; a test that ends with any of them fails. The
one console error let through is Chromium's "Failed to load resource" for a page the test
itself opened and was answered 4xx or 5xx (the styled 403 and 404 pages): the test asserts that
status.
"""

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
RESULTS = Path(__file__).resolve().parents[2] / "test-results"

# Runs in every page before its own scripts, outside the page's CSP (Playwright injects it).
_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__reportCspViolation(
    `${event.violatedDirective} blocked ${event.blockedURI || "inline"} in ${event.sourceFile}`
  );
});
"""


def pytest_collection_modifyitems(config, items):
    if CHROMIUM:
        return
    skip = pytest.mark.skip(reason="no chromium on PATH (Debian: apt-get install -y chromium)")
    for item in items:
        if "e2e" in item.nodeid.split("/"):
            item.add_marker(skip)


class _NoPublicMedia:
    """Stands in for Django's test-server media handler, which would publish MEDIA_ROOT at
    MEDIA_URL. Flowsite has no MEDIA_URL (media is private, served by checking views), so the
    stock handler cannot even start; this one passes every request on to Django."""

    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        return self.application(environ, start_response)


@pytest.fixture(scope="session", autouse=True)
def _plain_http_live_server():
    """Session-scoped and autouse, so in place before pytest-django starts the live server.

    The live server builds its middleware once, and SecurityMiddleware reads
    SECURE_SSL_REDIRECT then: a per-test override would come too late, and production's
    redirect to HTTPS would send Chromium to a port that speaks no TLS.
    """
    from django.test import override_settings, testcases

    original = testcases._MediaFilesHandler
    testcases._MediaFilesHandler = _NoPublicMedia
    # WhiteNoise, built with the live server, finds files in place instead of asking for a
    # `collectstatic` folder (as tests/conftest.py arranges for each test).
    with override_settings(
        SECURE_SSL_REDIRECT=False, WHITENOISE_AUTOREFRESH=True, WHITENOISE_USE_FINDERS=True
    ):
        yield
    testcases._MediaFilesHandler = original


@pytest.fixture(scope="session")
def _allow_orm_beside_playwright():
    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the test
    # itself (setting up alice, reading takes back) are still plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture(scope="session")
def chromium(_allow_orm_beside_playwright):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page_problems() -> list[str]:
    """CSP violations and script errors seen by the ``page`` fixture's browser tab."""
    return []


@pytest.fixture
def expected_refusals() -> list[str]:
    """Paths a test makes the page ask for knowing Flowsite refuses them (a 403 to an htmx
    click): htmx and the browser report those on the console, which is then not a problem."""
    return []


@pytest.fixture
def page(chromium, live_server, settings, page_problems, expected_refusals) -> Iterator:
    # The live server speaks plain HTTP; production's Secure cookies would never come back.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    context = chromium.new_context(base_url=live_server.url)
    context.expose_binding(
        "__reportCspViolation", lambda source, text: page_problems.append(f"CSP: {text}")
    )
    context.add_init_script(_REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(15_000)
    failed_loads: list[str] = []
    refused_pages: set[str] = set()

    def on_console(message) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        if message.text.startswith("Failed to load resource"):
            failed_loads.append(url)
        else:
            page_problems.append(f"console: {message.text}" + (f" ({url})" if url else ""))

    page.on("console", on_console)
    page.on(
        "response",
        lambda response: (
            refused_pages.add(response.url)
            if response.request.resource_type == "document" and response.status >= 400
            else None
        ),
    )
    page.on("pageerror", lambda error: page_problems.append(f"script error: {error}"))
    yield page
    context.close()
    # Judged once everything has arrived: a page's response and its console line may come in
    # either order.
    page_problems.extend(
        f"console: failed to load {url}" for url in failed_loads if url not in refused_pages
    )
    page_problems[:] = [
        problem
        for problem in page_problems
        if not any(path in problem for path in expected_refusals)
    ]
    assert page_problems == [], "the browser reported problems"


@pytest.fixture
def screenshots() -> Path:
    """Where tests leave screenshots for a person to look at (gitignored)."""
    RESULTS.mkdir(exist_ok=True)
    return RESULTS


@pytest.fixture
def worker(transactional_db, settings, flow_emulator) -> Iterator[None]:
    """The background worker: the pump, run again and again in a thread, as a worker would
    (why a thread and not a cluster: see test_new_user.py)."""
    from django.db import connection

    from generations import tasks

    settings.FLOWSITE_POLL_INTERVAL = 0.3
    stop = threading.Event()
    failures: list[BaseException] = []

    def work() -> None:
        try:
            while not stop.is_set():
                tasks.pump(budget_seconds=2.0)
                stop.wait(0.2)
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=work, name="flowsite-e2e-worker", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=15)
    assert not thread.is_alive(), "the worker thread did not stop"
    assert failures == [], f"the worker failed: {failures!r}"
