"""The project gallery at size: 10,000 finished clips by 20 members.

    .venv/bin/python benchmarks/gallery.py [--clips 10000] [--members 20] [--requests 300] [--quick]

Seeds one project with ``--clips`` ready takes (bulk_create; no poster files, which the gallery
never opens) spread over ``--members`` members and 50 scenes, and a second project with 10
clips. Prints:

- the SQL statements of the gallery for 10 clips and for ``--clips`` clips, on the first request
  (the page rendered) and on the next (the page from the cache): each pair must be equal;
- that the page is paginated (clips on the first page, number of pages);
- warm: the median server time of the first page, a middle page and the last page as a
  multiple of the bare "hello" view's, measured interleaved on gunicorn (target ≤ 10×), the
  page bodies coming from the cache as they do between two changes to the gallery;
- cold: the same pages, each the first request after a change (the gallery's version is
  bumped before every one of them), so the cost of rendering a page is in view too; the last
  page holds fewer clips, so first vs last shows what rendering each clip costs.
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

TARGET = 10.0


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

    from generations.models import Project
    from generations.views.gallery import PAGE_SIZE

    verdicts = bench.Verdicts(args.quick)
    viewer = User.objects.create_user("carol")
    members = User.objects.bulk_create(User(username=f"member{n:02d}") for n in range(args.members))
    small = seed("Small", 10, members, viewer)
    large = seed("Large", args.clips, members, viewer)
    pages = -(-args.clips // PAGE_SIZE)
    print(
        f"Gallery: {args.clips} clips by {args.members} members vs 10 clips; "
        f"{args.requests} requests of each kind, interleaved, gunicorn gthread on 127.0.0.1"
    )

    client = Client(headers=bench.PROXY_HEADERS)
    client.force_login(viewer)
    cold: dict[str, int] = {}
    warm: dict[str, int] = {}
    for label, project in (("10 clips", small), (f"{args.clips} clips", large)):
        for counts in (cold, warm):
            with bench.captured_queries() as queries:
                answer = client.get(reverse("project-gallery", args=[project.uuid]))
            assert answer.status_code == 200, answer.status_code
            counts[label] = len(queries.captured_queries)
    shown = len(re.findall(r'<li class="gallery__item">', answer.text))
    paged = f"Page 1 of {pages}" in answer.text
    for kind, counts in (("rendered", cold), ("from the cache", warm)):
        print(
            f"  SQL statements, page {kind}: "
            + ", ".join(f"{label} -> {count}" for label, count in counts.items())
            + " -> "
            + verdicts.guarantee(
                f"gallery queries ({kind}) independent of size", len(set(counts.values())) == 1
            )
        )
    print(
        f"  paginated: {shown} clips on the first page, 'Page 1 of {pages}' shown -> "
        + verdicts.guarantee("gallery paginated", shown == min(PAGE_SIZE, args.clips) and paged)
    )

    url = reverse("project-gallery", args=[large.uuid])
    middle = pages // 2 or 1
    kinds = {
        "first page": {},
        f"page {middle}": {"page": middle},
        f"last page ({pages})": {"page": pages},
    }

    def after_a_change(http, params):
        def request():
            # What a finished clip does to the gallery: every page must be rendered again.
            Project.objects.bump_gallery([large.pk])
            return http.get(url, params=params)

        return request

    with (
        bench.Server() as server,
        httpx.Client(
            base_url=server.url,
            cookies=bench.session_cookies(viewer),
            headers=bench.PROXY_HEADERS,
        ) as http,
    ):
        warm_samples = bench.interleaved(
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
        cold_samples = bench.interleaved(
            {
                "hello": lambda: http.get("/bench/hello/"),
                **{label: after_a_change(http, params) for label, params in kinds.items()},
            },
            args.requests,
            warmup=5,
        )
    hello = warm_samples.pop("hello")
    floor = warm_samples.pop("signed-in hello")
    line, _ = bench.ratio_line(
        "  signed-in hello (session + user, the floor of any signed-in view)",
        floor.server_median,
        "hello",
        hello.server_median,
    )
    print(f"{line} (for information)")
    print("  warm (the page body from the cache, as between two changes):")
    for label, measured in warm_samples.items():
        line, ratio = bench.ratio_line(
            f"    gallery {label}, median server time",
            measured.server_median,
            "hello",
            hello.server_median,
        )
        print(
            f"{line} (target ≤ {TARGET:g}×) -> "
            + verdicts.target(f"gallery {label} time", ratio <= TARGET)
        )
    cold_hello = cold_samples.pop("hello")
    print("  cold (the first request after a change: the page rendered and cached):")
    for label, measured in cold_samples.items():
        line, _ = bench.ratio_line(
            f"    gallery {label}, median server time",
            measured.server_median,
            "hello",
            cold_hello.server_median,
        )
        print(f"{line} (for information)")
    return verdicts.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
