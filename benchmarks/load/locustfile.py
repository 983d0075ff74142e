"""Team members with their project page open: each polls it every 3 s, as the page does, and
opens the gallery now and then. Run by benchmarks/load/run.py, which starts the servers.

Environment: LOAD_USERS_FILE (JSON written by seed.py: username, password, project per user),
LOAD_SUMMARY_FILE (where the summary JSON goes when the test stops), LOAD_GALLERY_EVERY (one
poll in this many is followed by a gallery visit; default 10).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import threading
import time
from pathlib import Path

from locust import FastHttpUser, constant_pacing, events, task

POLL_SECONDS = 3
SINCE = re.compile(r'hx-get="[^"]*?/poll/\?since=([^"&]*)')
# The page's poll pass (see generations/views/access.py), which the poller sends along.
PASS = re.compile(r'hx-get="[^"]*?/poll/\?since=[^"&]*&amp;pass=([^"&]*)"')
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

_people = json.loads(Path(os.environ["LOAD_USERS_FILE"]).read_text())
_next_person = itertools.count()
_lock = threading.Lock()
_gallery_every = int(os.environ.get("LOAD_GALLERY_EVERY", "10"))

# Every request, as (started at, name, milliseconds, error or ""), for the summary.
_requests: list[tuple[float, str, float, str]] = []
_signed_in_at: list[float] = []
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
        json.dump(
            {
                "started_at": _started_at,
                "requests": _requests,
                # The steady state starts once every user has signed in and opened the page.
                "all_signed_in_at": max(_signed_in_at) if _signed_in_at else None,
                "signed_in": len(_signed_in_at),
                "users": len(_people),
            },
            out,
        )


class TeamMember(FastHttpUser):
    wait_time = constant_pacing(POLL_SECONDS)

    def on_start(self) -> None:
        with _lock:
            person = _people[next(_next_person) % len(_people)]
        self.project = person["project"]
        # Spread the gallery visits, or users spawned together would all go at once.
        self.polls = random.randrange(_gallery_every)
        form = self.client.get("/accounts/login/", name="sign-in page")
        token = CSRF.search(form.text or "")
        with self.client.post(
            "/accounts/login/",
            data={
                "username": person["username"],
                "password": person["password"],
                "csrfmiddlewaretoken": token.group(1) if token else "",
            },
            headers={"Referer": f"{self.host}/accounts/login/"},
            name="sign in",
            allow_redirects=False,
            catch_response=True,
        ) as response:
            if response.status_code != 302:
                response.failure(f"sign-in answered {response.status_code}")
        page = self.client.get(f"/projects/{self.project}/", name="project page")
        since = SINCE.search(page.text or "")
        self.since = since.group(1) if since else ""
        poll_pass = PASS.search(page.text or "")
        self.poll_pass = poll_pass.group(1) if poll_pass else ""
        _signed_in_at.append(time.monotonic())

    @task
    def poll(self) -> None:
        with self.client.get(
            f"/projects/{self.project}/poll/?since={self.since}&pass={self.poll_pass}",
            headers={"HX-Request": "true"},
            name="poll",
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                since = SINCE.search(response.text or "")
                # A poller without hx-get means nothing is rendering: the page stops polling,
                # this user keeps the load up with the last token it had.
                if since:
                    self.since = since.group(1)
                poll_pass = PASS.search(response.text or "")
                if poll_pass:
                    self.poll_pass = poll_pass.group(1)
            elif response.status_code != 204:
                response.failure(f"poll answered {response.status_code}")
        self.polls += 1
        if self.polls % _gallery_every == 0:
            self.client.get(f"/projects/{self.project}/gallery/", name="gallery")
