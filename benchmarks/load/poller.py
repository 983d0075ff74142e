"""The storyboard's poller as htmx sees it, for the benchmarks that play an open page.

The freshness benchmark and the load test both poll the way the browser does: the URL and the
cadence come from the poller element Flowsite renders (``templates/generations/project.html``),
never from a constant of their own, so they follow whatever FLOWSITE_PAGE_POLL_SECONDS (takes
in flight) and FLOWSITE_IDLE_POLL_SECONDS (nothing in flight) say, and switch between the two
exactly when a poll answer swaps in a poller of the other cadence, as htmx does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urlsplit

_ELEMENT = re.compile(r'<div id="poller"[^>]*>')
_URL = re.compile(r'hx-get="([^"]*)"')
_EVERY = re.compile(r'hx-trigger="every (\d+(?:\.\d+)?)(ms|s)"')

# A card shows a take's clip once it links the take's video.
SHOWN_CLIP = re.compile(r"/media/take/([0-9a-f-]+)/video")


@dataclass(frozen=True)
class Poller:
    """Where the page polls and how often. Flowsite's pollers always poll; ``url`` is empty
    only for a poller without hx-get, which htmx would never fire."""

    url: str
    seconds: float

    @property
    def polls(self) -> bool:
        return bool(self.url)

    @property
    def live(self) -> bool:
        """The fast mode (takes in flight), as the poller's URL tells the server."""
        return parse_qs(urlsplit(self.url).query).get("live") == ["1"]

    @classmethod
    def read(cls, html: str) -> Poller:
        """The poller in a page or a poll answer; ValueError if there is none to follow."""
        element = _ELEMENT.search(html)
        if element is None:
            raise ValueError("the answer has no poller, so the page would stop updating")
        url = _URL.search(element.group(0))
        if url is None:
            return cls("", 0.0)
        every = _EVERY.search(element.group(0))
        if every is None:
            raise ValueError(f"a poller these benchmarks cannot follow: {element.group(0)}")
        value = float(every.group(1))
        return cls(unescape(url.group(1)), value / 1000 if every.group(2) == "ms" else value)


class Schedule:
    """When htmx fires the poller: ``every N`` fires N after the element was put on the page
    and every N after each firing, whatever the answers (a 204 swaps nothing, so the timer runs
    on); a 200 swaps in a new poller (new since token) whose own timer starts then."""

    def __init__(self, poller: Poller, now: float) -> None:
        self.poller = poller
        self.due = now + poller.seconds

    def fired(self) -> None:
        self.due += self.poller.seconds

    def swapped(self, poller: Poller, now: float) -> None:
        self.poller = poller
        self.due = now + poller.seconds
