"""Video delivery: the private, Range-aware media view against WhiteNoise, on one 50 MB clip.

    .venv/bin/python benchmarks/media.py [--mb 50] [--rounds 7] [--quick]

One ready take whose clip is a ``--mb`` MB file; the same bytes (a hard link) sit in STATIC_ROOT,
where WhiteNoise serves them as a static file. gunicorn serves both on 127.0.0.1 and curl (or,
without curl, a keep-alive httpx client) downloads them in turn, ``--rounds`` times each. Prints:

- throughput of the media view and of WhiteNoise, and their ratio (target ≥ 0.5);
- memory while the view streams the clip, as a share of the file's size: the growth of the
  gunicorn worker's peak RSS, and Python's own peak allocation (tracemalloc, in this process,
  through the same view); the view must stream in chunks, so both stay flat (target ≤ 10 %);
- that a Range request answers 206 with exactly the bytes asked for;
- with FLOWSITE_X_ACCEL_REDIRECT set, a second server: the view answers with headers only
  (body 0 bytes, X-Accel-Redirect set) and its median server time as a multiple of the bare
  "hello" view's and of the signed-in hello (the floor of any view behind a sign-in).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import run as bench

THROUGHPUT_TARGET = 0.5
MEMORY_TARGET = 0.10
# "Time ~ hello": Django's share of an X-Accel-Redirect answer is the access check and a few
# headers; judged against the signed-in hello, since no view behind a sign-in can go lower.
ACCEL_TARGET = 2.0
READ_CHUNK = 1024 * 1024
CURL = shutil.which("curl")


def seed(mb: int, var_dir: Path):
    """A ready take whose clip is ``mb`` MB of random bytes, and the same file as a static."""
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.utils import timezone

    from generations.models import FlowAccount, Generation, Membership, Project, Scene

    user = User.objects.create_user("alice")
    account = FlowAccount.objects.create(label="Studio", bearer_token="ya29.bench")
    project = Project.objects.create(name="Poseidon", account=account, created_by=user)
    project.add_member(user, Membership.Role.OWNER)
    scene = Scene.objects.create(project=project, prompt="waves", model_key="veo_3_1_i2v_s_fast")
    now = timezone.now()
    take = Generation.objects.create(
        scene=scene,
        project=project,
        requested_by=user,
        account=account,
        prompt=scene.prompt,
        model_key=scene.model_key,
        aspect=scene.aspect,
        seed=7,
        status=Generation.Status.READY,
        finished_at=now,
    )
    name = f"{take.media_dir()}/clip.mp4"
    path = Path(settings.MEDIA_ROOT) / name
    path.parent.mkdir(parents=True)
    with path.open("wb") as handle:
        for _ in range(mb):
            handle.write(os.urandom(1024 * 1024))
    Generation.objects.filter(pk=take.pk).update(video=name, video_size=path.stat().st_size)
    static = var_dir / "static" / "bench" / "clip.mp4"
    static.parent.mkdir(parents=True, exist_ok=True)
    os.link(path, static)
    return user, take, path.stat().st_size


def curl_download(base: str, url: str, cookies: dict[str, str]) -> tuple[int, int, float]:
    """(status, body bytes, seconds) of one GET by curl, which reads several times faster than
    a Python client, so the servers and not the client set the pace. curl's own clock
    (``time_total``) leaves out starting the process."""
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    headers = [
        arg for name, value in bench.PROXY_HEADERS.items() for arg in ("-H", f"{name}: {value}")
    ]
    written = subprocess.run(
        [
            CURL,
            "-s",
            "-o",
            os.devnull,
            "-b",
            cookie,
            *headers,
            "-w",
            "%{http_code} %{size_download} %{time_total}",
            base + url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(written[0]), int(written[1]), float(written[2])


def download(http, url: str, headers: dict[str, str] | None = None) -> tuple[int, int, float]:
    """(status, body bytes, seconds to the last byte) of one streamed GET."""
    started = time.perf_counter()
    received = 0
    with http.stream("GET", url, headers=headers) as response:
        for chunk in response.iter_raw(READ_CHUNK):
            received += len(chunk)
        status = response.status_code
    return status, received, time.perf_counter() - started


class PeakRss:
    """The largest resident size of a process while the block runs (KiB), sampled every 2 ms
    and, where the kernel allows, read from its reset high-water mark too."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = 0
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRss:
        self.hwm = bench.reset_peak_rss(self.pid)
        self.before = bench.proc_status_kib(self.pid, "VmRSS")
        self.peak = self.before
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, bench.proc_status_kib(self.pid, "VmRSS"))
            time.sleep(0.002)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.hwm:
            self.peak = max(self.peak, bench.proc_status_kib(self.pid, "VmHWM"))

    @property
    def growth_bytes(self) -> int:
        return (self.peak - self.before) * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=50, help="size of the clip in MB")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=500, help="X-Accel-Redirect requests")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    if args.quick:
        args.mb, args.rounds, args.requests = 8, 2, 40
    with tempfile.TemporaryDirectory(prefix="flowsite-bench-media-") as folder:
        bench.configure(Path(folder))
        return run(args, Path(folder))


def run(args: argparse.Namespace, var_dir: Path) -> int:
    import httpx
    from django.test import Client
    from django.urls import reverse

    verdicts = bench.Verdicts(args.quick)
    user, take, size = seed(args.mb, var_dir)
    url = reverse("media-take-video", args=[take.uuid])
    static_url = "/static/bench/clip.mp4"
    cookies = bench.session_cookies(user)
    print(
        f"Video delivery: one {size / 1e6:.0f} MB clip, {args.rounds} downloads each way, "
        "interleaved, gunicorn gthread on 127.0.0.1"
    )

    # Python's own allocations while the view streams the whole clip, in this process.
    client = Client(headers=bench.PROXY_HEADERS)
    client.force_login(user)
    # Once first, so what Django loads and caches on a first request is not counted.
    for chunk in client.get(url, headers={"Range": "bytes=0-999999"}).streaming_content:
        del chunk
    tracemalloc.start()
    tracemalloc.reset_peak()
    start_bytes = tracemalloc.get_traced_memory()[0]
    answer = client.get(url)
    streamed = sum(len(chunk) for chunk in answer.streaming_content)
    peak = tracemalloc.get_traced_memory()[1] - start_bytes
    tracemalloc.stop()
    answer.close()
    print(
        f"  Python allocations while streaming {streamed / 1e6:.0f} MB through the view: peak "
        f"{peak / 1e6:.2f} MB = {peak / size:.1%} of the file (target ≤ {MEMORY_TARGET:.0%}) -> "
        + verdicts.guarantee("flat memory (tracemalloc)", streamed == size and peak < 0.1 * size)
    )

    with (
        bench.Server() as server,
        httpx.Client(
            base_url=server.url, cookies=cookies, headers=bench.PROXY_HEADERS, timeout=60
        ) as http,
    ):
        # Warm both paths (file cache, code), then the worker's peak while the view streams.
        for target in (url, static_url):
            download(http, target)
        with PeakRss(server.worker_pid) as rss:
            status, received, _ = download(http, url)
        print(
            f"  gunicorn worker while the view streams: peak RSS grew "
            f"{rss.growth_bytes / 1e6:.2f} MB = {rss.growth_bytes / size:.1%} of the file "
            f"(target ≤ {MEMORY_TARGET:.0%}) -> "
            + verdicts.guarantee(
                "flat memory (worker RSS)",
                status == 200 and received == size and rss.growth_bytes < MEMORY_TARGET * size,
            )
        )
        first, last = size // 5, size // 5 + 10_000_000 - 1
        status, received, _ = download(http, url, {"Range": f"bytes={first}-{last}"})
        wanted = min(last, size - 1) - first + 1
        print(
            f"  Range bytes={first}-{last}: HTTP {status}, {received} bytes -> "
            + verdicts.guarantee("range request", status == 206 and received == wanted)
        )

        view_times: list[float] = []
        static_times: list[float] = []
        for index in range(args.rounds):
            pair = [(url, view_times), (static_url, static_times)]
            for target, times in pair if index % 2 == 0 else reversed(pair):
                if CURL:
                    status, received, seconds = curl_download(server.url, target, cookies)
                else:
                    status, received, seconds = download(http, target)
                if status != 200 or received != size:
                    raise RuntimeError(f"{target}: HTTP {status}, {received} of {size} bytes")
                times.append(seconds)
    view_rate = size / statistics.median(view_times) / 1e6
    static_rate = size / statistics.median(static_times) / 1e6
    ratio = view_rate / static_rate
    print(
        f"  throughput (median, {'curl' if CURL else 'httpx'}): media view {view_rate:.0f} MB/s, "
        f"WhiteNoise {static_rate:.0f} "
        f"MB/s -> view = {ratio:.2f}× WhiteNoise (target ≥ {THROUGHPUT_TARGET:g}×) -> "
        + verdicts.target("media throughput", ratio >= THROUGHPUT_TARGET)
    )

    accel(args, verdicts, url, cookies)
    return verdicts.exit_code()


def accel(args: argparse.Namespace, verdicts: bench.Verdicts, url: str, cookies) -> None:
    """The same view behind nginx: it checks access and hands over to X-Accel-Redirect."""
    import httpx

    with (
        bench.Server(env={"FLOWSITE_X_ACCEL_REDIRECT": "/protected/"}) as server,
        httpx.Client(base_url=server.url, cookies=cookies, headers=bench.PROXY_HEADERS) as http,
    ):
        answer = http.get(url)
        redirect = answer.headers.get("x-accel-redirect", "")
        print(
            f"  with FLOWSITE_X_ACCEL_REDIRECT: HTTP {answer.status_code}, body "
            f"{len(answer.content)} bytes, X-Accel-Redirect {redirect} -> "
            + verdicts.guarantee(
                "X-Accel-Redirect answers headers only",
                answer.status_code == 200
                and not answer.content
                and redirect.startswith("/protected/clips/"),
            )
        )
        samples = bench.interleaved(
            {
                "hello": lambda: http.get("/bench/hello/"),
                "signed-in hello": lambda: http.get("/bench/signed-in-hello/"),
                "x-accel": lambda: http.get(url),
            },
            args.requests,
        )
    hello, floor, view = samples["hello"], samples["signed-in hello"], samples["x-accel"]
    line, _ = bench.ratio_line(
        "  X-Accel-Redirect answer, median server time",
        view.server_median,
        "hello",
        hello.server_median,
    )
    print(f"{line} (for information)")
    line, ratio = bench.ratio_line(
        "  X-Accel-Redirect answer", view.server_median, "signed-in hello", floor.server_median
    )
    print(
        f"{line} (target ≤ {ACCEL_TARGET:g}×) -> "
        + verdicts.target("X-Accel-Redirect time", ratio <= ACCEL_TARGET)
    )


if __name__ == "__main__":
    raise SystemExit(main())
