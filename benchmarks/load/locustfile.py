"""Team members with their project page open all day: each is already signed in, opens the page,
then polls it exactly as the page's poller does and opens the gallery about every 30 s. Run by
benchmarks/load/run.py, which starts the servers and seeds the members.

The poll URL (since token, mode) and the cadence come from the poller Flowsite
renders, so the load follows FLOWSITE_PAGE_POLL_SECONDS while takes are in flight and
FLOWSITE_IDLE_POLL_SECONDS otherwise, and the browser's htmx rules (see poller.py): a 204 leaves
the timer running, a 200 swaps in a new poller (perhaps of the other cadence) whose timer starts
then.

Environment: LOAD_USERS_FILE (JSON written by seed.py: username, session, project per member),
LOAD_SUMMARY_FILE (where the summary JSON goes when the test stops), LOAD_GALLERY_SECONDS (about
how often a member opens the gallery; default 30).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
from http.cookiejar import Cookie
from pathlib import Path
from urllib.parse import urlsplit

from locust import FastHttpUser, events, task

from benchmarks.load.poller import Poller, Schedule

_people = json.loads(Path(os.environ["LOAD_USERS_FILE"]).read_text())
_next_person = itertools.count()
_lock = threading.Lock()
_gallery_seconds = float(os.environ.get("LOAD_GALLERY_SECONDS", "30"))
SESSION_COOKIE = os.environ.get("LOAD_SESSION_COOKIE", "sessionid")

# Every request, as (started at, name, milliseconds, error or ""), for the summary.
_requests: list[tuple[float, str, float, str]] = []
_started_at = time.monotonic()


@events.request.add_listener
def _record(request_type, name, response_time, response_length, exception=None, **_):
    _requests.append((time.monotonic(), name, response_time, repr(exception) if exception else ""))


@events.quitting.add_listener
def _summarise(environment, **_):
    path = os.environ.get("LOAD_SUMMARY_FILE")
    if not path:
        return
    with open(path, "w") as out:
        json.dump({"started_at": _started_at, "requests": _requests, "users": len(_people)}, out)


def _cookie(host: str, name: str, value: str) -> Cookie:
    return Cookie(
        version=0,
        name=name,
        value=value,
        port=None,
        port_specified=False,
        domain=host,
        domain_specified=False,
        domain_initial_dot=False,
        path="/",
        path_specified=True,
        secure=False,
        expires=None,
        discard=False,
        comment=None,
        comment_url=None,
        rest={"HttpOnly": ""},
    )


class TeamMember(FastHttpUser):
    def wait_time(self) -> float:
        return max(0.0, self._next_moment() - time.monotonic())

    def _next_moment(self) -> float:
        if self.schedule is not None and self.schedule.poller.polls:
            return min(self.schedule.due, self.gallery_at)
        return self.gallery_at

    def on_start(self) -> None:
        with _lock:
            person = _people[next(_next_person) % len(_people)]
        self.project = person["project"]
        self.schedule: Schedule | None = None
        # Spread the gallery visits, or members spawned together would all go at once.
        self.gallery_at = time.monotonic() + random.uniform(0, _gallery_seconds)
        # Signed in long ago: the session cookie the sign-in form would have set.
        self.client.cookiejar.set_cookie(
            _cookie(urlsplit(self.host).hostname, SESSION_COOKIE, person["session"])
        )
        with self.client.get(
            f"/projects/{self.project}/", name="project page", catch_response=True
        ) as response:
            try:
                self.schedule = Schedule(Poller.read(response.text or ""), time.monotonic())
            except ValueError as problem:
                response.failure(f"project page: {problem} (answered {response.status_code})")

    @task
    def next_thing(self) -> None:
        now = time.monotonic()
        if self.schedule is not None and self.schedule.poller.polls and self.schedule.due <= now:
            self.poll()
        if self.gallery_at <= time.monotonic():
            self.gallery_at += random.uniform(0.8, 1.2) * _gallery_seconds
            self.client.get(f"/projects/{self.project}/gallery/", name="gallery")

    def poll(self) -> None:
        schedule = self.schedule
        schedule.fired()
        with self.client.get(
            schedule.poller.url,
            headers={"HX-Request": "true"},
            name="poll",
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                try:
                    schedule.swapped(Poller.read(response.text or ""), time.monotonic())
                except ValueError as problem:
                    response.failure(str(problem))
            elif response.status_code != 204:
                response.failure(f"poll answered {response.status_code}")
