"""The project gallery at size: 10,000 finished clips by 20 members, 48 cards a page.

    .venv/bin/python benchmarks/gallery.py [--clips 10000] [--members 20] [--requests 300] [--quick]

Seeds one project with ``--clips`` ready takes (bulk_create; a video and a poster named per
take, whose files the gallery never opens) spread over ``--members`` members and 50 scenes, and a second project with 10
clips. Every gallery page is rendered from the database on every request (there is no page
cache), so what is measured is what any member opening any page waits for. Prints:

- the SQL statements of a gallery page for 10 clips and, at ``--clips`` clips, for the first
  page, a deep page, the last page and one scene's clips: all must be equal;
- that the page is paginated (48 clips on the first page, the number of pages);
- the median server time of the first page, a middle page, the last page and one scene's first
  page, each as a multiple of the signed-in hello view's (the session and the user, the floor
  of any page behind a sign-in), measured interleaved on gunicorn in the same run
  (target ≤ 15×); bare hello is measured alongside for information.
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

TARGET = 15.0


def seed(name: str, clips: int, members: list, viewer):
    """A project whose ``clips`` ready takes were asked for by ``members`` in turn."""
    from django.utils import timezone

    from generations.models import FlowAccount, Generation, Membership, Project, Scene

    account, _ = FlowAccount.objects.get_or_create(label="Studio")
    project = Project.objects.create(name=name, account=account, created_by=viewer)
    project.add_member(viewer, Membership.Role.VIEWER)
    Membership.objects.bulk_create(
        Membership(project=project, user=user, role=Membership.Role.EDITOR) for user in members
    )
    now = timezone.now()
    scenes = Scene.objects.bulk_create(
        Scene(
            project=project,
            position=n,
            title=f"Shot {n}",
            prompt=f"Shot {n}: a lighthouse at dusk, waves rolling in",
            model_key="veo_3_1_i2v_s_fast",
        )
        for n in range(min(50, clips))
    )
    rows = (
        Generation(
            scene=scenes[n % len(scenes)],
            project=project,
            requested_by=members[n % len(members)],
            account=account,
            take=n // len(scenes) + 1,
            prompt=scenes[n % len(scenes)].prompt,
            model_key="veo_3_1_i2v_s_fast",
            aspect="landscape",
            seed=n,
            status=Generation.Status.READY,
            video=f"clips/{project.uuid}/{n}/clip.mp4",
            poster=f"clips/{project.uuid}/{n}/poster.jpg",
            video_size=1_500_000,
            created=now - timedelta(minutes=n + 5),
            updated=now - timedelta(minutes=n),
            finished_at=now - timedelta(minutes=n),
        )
        for n in range(clips)
    )
    Generation.objects.bulk_create(rows, batch_size=1000)
    return project


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--requests", type=int, default=300, help="timed requests of each kind")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    if args.quick:
        args.clips, args.members, args.requests = 500, 5, 20
    with tempfile.TemporaryDirectory(prefix="flowsite-bench-gallery-") as folder:
        bench.configure(Path(folder))
        return run(args)


def run(args: argparse.Namespace) -> int:
    import httpx
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    from generations.views.gallery import PAGE_SIZE

    verdicts = bench.Verdicts(args.quick)
    viewer = User.objects.create_user("carol")
    members = User.objects.bulk_create(User(username=f"member{n:02d}") for n in range(args.members))
    small = seed("Small", 10, members, viewer)
    large = seed("Large", args.clips, members, viewer)
    pages = -(-args.clips // PAGE_SIZE)
    middle = pages // 2 or 1
    scene = str(large.scenes.order_by("position").values_list("uuid", flat=True)[0])
    print(
        f"Gallery: {args.clips} clips by {args.members} members vs 10 clips, {PAGE_SIZE} a page; "
        f"{args.requests} requests of each kind, interleaved, gunicorn gthread on 127.0.0.1"
    )

    client = Client(headers=bench.PROXY_HEADERS)
    client.force_login(viewer)
    kinds = {
        "first page": {},
        f"page {middle}": {"page": middle},
        f"last page ({pages})": {"page": pages},
        "one scene, first page": {"scene": scene},
    }
    counted = {"10 clips": (small, {})} | {
        f"{args.clips} clips, {label}": (large, params) for label, params in kinds.items()
    }
    counts: dict[str, int] = {}
    first = ""
    for label, (project, params) in counted.items():
        with bench.captured_queries() as queries:
            answer = client.get(reverse("project-gallery", args=[project.uuid]), params)
        assert answer.status_code == 200, answer.status_code
        # The first page of the whole gallery also reads the project's films (one query,
        # whatever their number: tests/test_gallery_films.py); counted apart so that pages
        # compare like with like.
        films = [q for q in queries.captured_queries if "filmrender" in q["sql"]]
        assert len(films) <= 1, films
        counts[label] = len(queries.captured_queries) - len(films)
        if project == large and not params:
            first = answer.text
    print(
        "  SQL statements (besides the films' one on a first page), every page rendered: "
        + ", ".join(f"{label} -> {count}" for label, count in counts.items())
        + " -> "
        + verdicts.guarantee("gallery queries independent of size", len(set(counts.values())) == 1)
    )
    shown = len(re.findall(r'<li class="gallery__item[ "]', first))
    paged = f"Page 1 of {pages}" in first
    print(
        f"  paginated: {shown} clips on the first page, 'Page 1 of {pages}' shown -> "
        + verdicts.guarantee("gallery paginated", shown == min(PAGE_SIZE, args.clips) and paged)
    )

    url = reverse("project-gallery", args=[large.uuid])
    with (
        bench.Server() as server,
        httpx.Client(
            base_url=server.url,
            cookies=bench.session_cookies(viewer),
            headers=bench.PROXY_HEADERS,
        ) as http,
    ):
        samples = bench.interleaved(
            {
                "hello": lambda: http.get("/bench/hello/"),
                "signed-in hello": lambda: http.get("/bench/signed-in-hello/"),
                **{
                    label: (lambda params=params: http.get(url, params=params))
                    for label, params in kinds.items()
                },
            },
            args.requests,
            warmup=5,
        )
    hello = samples.pop("hello")
    floor = samples.pop("signed-in hello")
    line, _ = bench.ratio_line(
        "  signed-in hello (session + user, the floor of any signed-in view)",
        floor.server_median,
        "hello",
        hello.server_median,
    )
    print(f"{line} (for information)")
    for label, measured in samples.items():
        line, ratio = bench.ratio_line(
            f"  gallery {label}, rendered, median server time",
            measured.server_median,
            "signed-in hello",
            floor.server_median,
        )
        print(
            f"{line} (target ≤ {TARGET:g}×) -> "
            + verdicts.target(f"gallery {label} time", ratio <= TARGET)
        )
    return verdicts.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
