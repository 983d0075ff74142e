"""Team members with their project page open all day, as one asyncio process: each is already
signed in, opens the page, then polls it exactly as the page's poller does and opens the gallery
about every 30 s. Run by benchmarks/load/run.py, which starts the servers and seeds the members.

The poll URL (since token, mode) and the cadence come from the poller Flowsite renders, so the
load follows FLOWSITE_PAGE_POLL_SECONDS while takes are in flight and FLOWSITE_IDLE_POLL_SECONDS
otherwise, and the browser's htmx rules (see poller.py): a 204 leaves the timer running, a 200
swaps in a new poller (perhaps of the other cadence) whose timer starts then.

One event loop and a few lines of HTTP/1.0 over asyncio streams rather than a load-testing
framework or an HTTP library: the generator shares two cores with the servers it measures, and
each request here costs it a fraction of a millisecond of CPU (httpx took about 4 ms, a fifth
of a core at this load, taken from the server under test). gunicorn's sync workers close every
connection after one answer, as they would for a browser, so nothing is lost by not keeping
connections alive. Every request is recorded as (seconds since the start, name, milliseconds,
status, error); a poll is named by its answer: "poll 204" (nothing changed) or "poll 200"
(cards sent).

    python -m benchmarks.load.driver --users-file U --out S --host H --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.load.poller import Poller, Schedule

SESSION_COOKIE = "sessionid"


class Answer:
    def __init__(self, status: int, text: str) -> None:
        self.status_code, self.text = status, text


async def fetch(host: str, port: int, path: str, headers: dict[str, str]) -> Answer:
    """GET ``path`` over HTTP/1.0 (no chunked encoding; the server closes when done)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        lines = [f"GET {path} HTTP/1.0", f"Host: {host}:{port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ConnectionError(f"no HTTP answer ({len(raw)} bytes)")
    return Answer(int(status_line[1]), body.decode("utf-8", "replace"))


async def member(
    person: dict,
    host: str,
    start_at: float,
    stop_at: float,
    gallery_seconds: float,
    record,
) -> None:
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    server = urlsplit(host)
    cookie = {"Cookie": f"{SESSION_COOKIE}={person['session']}"}

    async def get(name: str, url: str, headers: dict[str, str] | None = None) -> Answer | None:
        started = time.monotonic()
        try:
            response = await asyncio.wait_for(
                fetch(server.hostname, server.port, url, {**cookie, **(headers or {})}), 30
            )
        except (OSError, TimeoutError) as error:
            record(started, name, (time.monotonic() - started) * 1000, 0, repr(error))
            return None
        ms = (time.monotonic() - started) * 1000
        if name == "poll":
            name = f"poll {response.status_code}"
        error = "" if response.status_code in (200, 204) else f"{response.status_code}"
        record(started, name, ms, response.status_code, error)
        return response if not error else None

    # Spread the gallery visits, or members started together would all go at once.
    gallery_at = time.monotonic() + random.uniform(0, gallery_seconds)
    page = await get("project page", f"/projects/{person['project']}/")
    if page is None:
        return
    schedule = Schedule(Poller.read(page.text), time.monotonic())
    while True:
        due = min(schedule.due, gallery_at) if schedule.poller.polls else gallery_at
        if due >= stop_at:
            return
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        if schedule.poller.polls and schedule.due <= time.monotonic():
            schedule.fired()
            answer = await get("poll", schedule.poller.url, headers={"HX-Request": "true"})
            if answer is not None and answer.status_code == 200:
                schedule.swapped(Poller.read(answer.text), time.monotonic())
        if gallery_at <= time.monotonic():
            gallery_at += random.uniform(0.8, 1.2) * gallery_seconds
            await get("gallery", f"/projects/{person['project']}/gallery/")


async def run(args: argparse.Namespace) -> dict:
    people = json.loads(Path(args.users_file).read_text())[: args.users]
    started = time.monotonic()
    stop_at = started + args.duration
    rows: list[tuple[float, str, float, int, str]] = []

    def record(at: float, name: str, ms: float, status: int, error: str) -> None:
        rows.append((at - started, name, ms, status, error))

    await asyncio.gather(
        *(
            member(
                person,
                args.host,
                started + n / args.spawn_rate,
                stop_at,
                args.gallery_seconds,
                record,
            )
            for n, person in enumerate(people)
        )
    )
    return {"users": len(people), "requests": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users-file", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--spawn-rate", type=float, default=10.0)
    parser.add_argument("--gallery-seconds", type=float, default=30.0)
    args = parser.parse_args()
    Path(args.out).write_text(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
