"""What an open storyboard page costs the server while clips render: its one poll request.

    .venv/bin/python benchmarks/page_poll.py [--requests 1500] [--scenes 40] [--quick]
                                             [--database sqlite|postgres]

A project with ``--scenes`` scenes of four takes each, one take still rendering (and one with
nothing rendering, whose page polls slowly), served by gunicorn on 127.0.0.1. A signed-in
client polls the way the page does (htmx, keep-alive, through its session) and, interleaved
with it, calls the harness's "signed-in hello" view (the same middleware, the session and the
user, nothing else), on SQLite or, with ``--database postgres``, on PostgreSQL at 127.0.0.1:5432
(database ``flowsite_page_poll``, created and dropped here; --postgres-url overrides). Prints:

- the SQL statements of an unchanged poll (target ≤ 3) and its answer (204, no body), for a
  page with clips in flight (fast mode) and an idle one (slow mode);
- that a poll after one take changed brings back only that card;
- the median server time of the unchanged poll, in both modes, as a multiple of signed-in
  hello's (target ≤ 1.5×), and the changed poll's and bare hello's for information;
- the poll's floor, for information: "member hello" (the harness's signed-in hello plus one
  query asking whether the user is a member of the URL's project, as any project view must),
  as a multiple of signed-in hello: what is left of the target for "did anything change";
- on a page like the load test's (four scenes, two takes changing state, the poll's own SQL
  counted), what a poll answering with one changed card, with the cards of two takes, and
  the page itself cost, as multiples of signed-in hello (for information: these are what the
  load test's card window is made of).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import run as bench

POLL_TARGET = 1.5
QUERY_TARGET = 3


def seed(scenes: int, *, rendering: bool = True, name: str = "Poseidon", user=None):
    """A project of ``scenes`` scenes × 4 takes, all last touched an hour ago, one rendering
    (or none: an idle page), owned by ``user`` (a new "alice" when None)."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from generations.models import FlowAccount, Generation, Membership, Project, Scene

    user = user or User.objects.create_user("alice")
    account = FlowAccount.objects.create(label=f"Studio of {name}", bearer_token="ya29.bench")
    project = Project.objects.create(name=name, account=account, created_by=user)
    project.add_member(user, Membership.Role.OWNER)
    hour_ago = timezone.now() - timedelta(hours=1)
    READY = Generation.Status.READY
    scene_rows = Scene.objects.bulk_create(
        Scene(
            project=project,
            position=n,
            prompt=f"Shot {n}: a lighthouse at dusk, waves rolling in",
            model_key="veo_3_1_i2v_s_fast",
            created=hour_ago,
            updated=hour_ago,
        )
        for n in range(scenes)
    )
    takes = Generation.objects.bulk_create(
        Generation(
            scene=scene,
            project=project,
            requested_by=user,
            account=account,
            take=take,
            prompt=scene.prompt,
            model_key=scene.model_key,
            aspect=scene.aspect,
            seed=1000 + take,
            status=Generation.Status.ACTIVE if rendering and n == 0 and take == 1 else READY,
            created=hour_ago,
            updated=hour_ago,
            finished_at=None if rendering and n == 0 and take == 1 else hour_ago,
        )
        for n, scene in enumerate(scene_rows)
        for take in range(1, 5)
    )
    return user, project, takes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500, help="timed requests of each kind")
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--postgres-url", default="postgres://postgres@127.0.0.1:5432/flowsite_page_poll"
    )
    args = parser.parse_args()
    if args.quick:
        args.requests, args.scenes = 60, 5
    postgres = args.database == "postgres"
    if postgres and not bench.postgres_database(args.postgres_url, "create"):
        return 1
    try:
        with tempfile.TemporaryDirectory(prefix="flowsite-bench-poll-") as folder:
            bench.configure(Path(folder), args.postgres_url if postgres else None)
            return run(args)
    finally:
        if postgres:
            from django.db import connections

            connections.close_all()
            bench.postgres_database(args.postgres_url, "drop")


def run(args: argparse.Namespace) -> int:
    import httpx
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from generations.models import Generation
    from generations.views.cards import encode_since

    verdicts = bench.Verdicts(args.quick)
    user, project, takes = seed(args.scenes)
    poll = reverse("project-poll", args=[project.uuid])
    # One take changes now; a page whose token is a minute old gets exactly that card back.
    Generation.objects.filter(pk=takes[-1].pk).update(reason="Seen", updated=timezone.now())
    # As the page's poller asks: in fast mode (a take in flight).
    unchanged = f"{poll}?since={encode_since(timezone.now())}&live=1"
    changed = f"{poll}?since={encode_since(timezone.now() - timedelta(minutes=1))}&live=1"
    # An idle page (nothing in flight) polls slowly, on the same path; the same person has it
    # open too, so one session serves both.
    _, idle_project, _ = seed(args.scenes, rendering=False, name="Triton", user=user)
    idle = (
        reverse("project-poll", args=[idle_project.uuid])
        + f"?since={encode_since(timezone.now())}&live=0"
    )

    # A page like the load test's: four scenes, two takes whose state changed, one 30 s ago
    # and one now; a page whose token is 10 s old gets one card, a minute old both.
    _, small, small_takes = seed(4, name="Nereus", user=user)
    now = timezone.now()
    for take, moment in ((small_takes[5], now - timedelta(seconds=30)), (small_takes[9], now)):
        Generation.objects.filter(pk=take.pk).update(
            status=Generation.Status.ACTIVE, updated=moment
        )
    small_poll = reverse("project-poll", args=[small.uuid])
    one_card = f"{small_poll}?since={encode_since(now - timedelta(seconds=10))}&live=1"
    two_cards = f"{small_poll}?since={encode_since(now - timedelta(minutes=1))}&live=1"
    small_page = reverse("project-detail", args=[small.uuid])

    print(
        f"Page poll: {args.scenes} scenes × 4 takes, one rendering; "
        f"{args.requests} requests of each kind, interleaved, gunicorn gthread on 127.0.0.1, "
        f"{'PostgreSQL' if args.database == 'postgres' else 'SQLite'}"
    )

    # The guarantees, counted in this process through the same views.
    client = Client(headers={"HX-Request": "true", **bench.PROXY_HEADERS})
    client.force_login(user)
    with bench.captured_queries() as queries:
        quiet = client.get(unchanged)
    n_queries = len(queries.captured_queries)
    print(
        f"  unchanged poll: HTTP {quiet.status_code}, {len(quiet.content)} body bytes, "
        f"{n_queries} SQL statements (target ≤ {QUERY_TARGET}) -> "
        + verdicts.guarantee(
            "unchanged poll queries",
            quiet.status_code == 204 and not quiet.content and n_queries <= QUERY_TARGET,
        )
    )
    with bench.captured_queries() as queries:
        resting = client.get(idle)
    n_idle = len(queries.captured_queries)
    print(
        f"  unchanged poll of an idle page (nothing in flight, slow mode): HTTP "
        f"{resting.status_code}, {len(resting.content)} body bytes, {n_idle} SQL statements "
        f"(target ≤ {QUERY_TARGET}) -> "
        + verdicts.guarantee(
            "idle poll queries",
            resting.status_code == 204 and not resting.content and n_idle <= QUERY_TARGET,
        )
    )
    with bench.captured_queries() as queries:
        busy = client.get(changed)
    cards = re.findall(r'<article id="scene-([0-9a-f-]+)"[^>]*hx-swap-oob', busy.text)
    only_that_card = cards == [str(takes[-1].scene.uuid)]
    print(
        f"  poll after one take changed: HTTP {busy.status_code}, {len(cards)} card(s) out of "
        f"{args.scenes}, {len(queries.captured_queries)} SQL statements -> "
        + verdicts.guarantee("changed poll returns only that card", only_that_card)
    )

    for label, url, expect in (
        ("one changed card", one_card, 1),
        ("the cards of two takes", two_cards, 2),
    ):
        with bench.captured_queries() as queries:
            answer = client.get(url)
        sent = re.findall(r'<article id="scene-([0-9a-f-]+)"[^>]*hx-swap-oob', answer.text)
        print(
            f"  4-scene page, poll with {label}: HTTP {answer.status_code}, {len(sent)} card(s), "
            f"{len(answer.content)} bytes, {len(queries.captured_queries)} SQL statements -> "
            + verdicts.guarantee(f"poll with {label}", len(sent) == expect)
        )
    with bench.captured_queries() as queries:
        client.get(small_page, headers={"HX-Request": ""})
    print(f"  4-scene project page: {len(queries.captured_queries)} SQL statements")

    member_hello = reverse("bench-member-hello", args=[project.uuid])
    with bench.Server() as server:
        headers = {"HX-Request": "true", **bench.PROXY_HEADERS}
        with httpx.Client(
            base_url=server.url, cookies=bench.session_cookies(user), headers=headers
        ) as http:
            samples = bench.interleaved(
                {
                    "hello": lambda: http.get("/bench/hello/"),
                    "signed-in hello": lambda: http.get("/bench/signed-in-hello/"),
                    "member hello": lambda: http.get(member_hello),
                    "unchanged": lambda: http.get(unchanged),
                    "unchanged, idle page": lambda: http.get(idle),
                    "changed": lambda: http.get(changed),
                    "one card": lambda: http.get(one_card),
                    "two takes": lambda: http.get(two_cards),
                    "page": lambda: http.get(small_page, headers={"HX-Request": ""}),
                },
                args.requests,
                expect={
                    "member hello": 204,
                    "unchanged": 204,
                    "unchanged, idle page": 204,
                    "one card": 200,
                    "two takes": 200,
                    "page": 200,
                },
            )
    floor = samples["signed-in hello"]
    for label, name, verdict in (
        ("  unchanged poll (204), median server time", "unchanged", "unchanged poll time"),
        (
            "  unchanged poll of an idle page (204), median server time",
            "unchanged, idle page",
            "idle poll time",
        ),
    ):
        line, ratio = bench.ratio_line(
            label, samples[name].server_median, "signed-in hello", floor.server_median
        )
        print(
            f"{line} (target ≤ {POLL_TARGET:g}×) -> "
            + verdicts.target(verdict, ratio <= POLL_TARGET)
        )
    line, _ = bench.ratio_line(
        "  the poll's floor, member hello (signed-in hello + one membership query), median",
        samples["member hello"].server_median,
        "signed-in hello",
        floor.server_median,
    )
    print(f"{line} (for information)")
    hello = samples["hello"]
    for label, name in (
        ("  signed-in hello (session + user, the floor of any signed-in view)", "signed-in hello"),
        ("  unchanged poll", "unchanged"),
        ("  changed poll (1 card), median server time", "changed"),
    ):
        line, _ = bench.ratio_line(label, samples[name].server_median, "hello", hello.server_median)
        print(f"{line} (for information)")
    for label, name in (
        ("  4-scene page, poll with one changed card, median server time", "one card"),
        ("  4-scene page, poll with the cards of two takes, median server time", "two takes"),
        ("  4-scene project page, median server time", "page"),
    ):
        line, _ = bench.ratio_line(
            label, samples[name].server_median, "signed-in hello", floor.server_median
        )
        print(f"{line} (for information)")
    print(
        f"  round trips seen by the client (median): signed-in hello "
        f"{floor.roundtrip_median:.3f} ms, unchanged poll "
        f"{samples['unchanged'].roundtrip_median:.3f} ms "
        f"({samples['unchanged'].roundtrip_median / floor.roundtrip_median:.2f}×)"
    )
    return verdicts.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
