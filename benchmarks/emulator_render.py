"""How fast the emulator renders clips, measured side by side in one run.

    .venv/bin/python benchmarks/emulator_render.py [--clips 4] [--clip-seconds 8] [--workers 2] [--quick]

Renders ``--clips`` landscape and ``--clips`` portrait clips from the same start image with
distinct captions (so nothing is cached): first one at a time, then on the emulator's render
pool. Prints seconds of clip produced per second of wall time (above 1.0 means faster than
real time) for each, and what share of real time a single clip takes to render.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generations.emulator.render import render_clip


def start_image() -> bytes:
    """A busy 1600×1200 picture, so the encoder has real detail to move around."""
    image = Image.new("RGB", (1600, 1200))
    draw = ImageDraw.Draw(image)
    for y in range(0, 1200, 4):
        draw.line([(0, y), (1600, y)], fill=(y % 256, (y * 3) % 256, 255 - y % 256))
    for index in range(60):
        x, y = (index * 137) % 1500, (index * 89) % 1100
        draw.ellipse([x, y, x + 90, y + 90], fill=((index * 40) % 256, 200, (index * 17) % 256))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def run(data: bytes, jobs: list[tuple[str, bool]], clip_seconds: float, workers: int) -> float:
    with tempfile.TemporaryDirectory(prefix="emulator-bench-") as folder:
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            futures = [
                pool.submit(
                    render_clip,
                    data,
                    prompt,
                    portrait=portrait,
                    clip_seconds=clip_seconds,
                    fps=24,
                    out_dir=Path(folder),
                    name=f"clip-{index}",
                )
                for index, (prompt, portrait) in enumerate(jobs)
            ]
            for future in futures:
                future.result()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4, help="clips per orientation")
    parser.add_argument("--clip-seconds", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2, help="the emulator's render pool")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    if args.quick:
        args.clips, args.clip_seconds = 1, 0.5

    data = start_image()
    jobs = [
        (f"take {index}: a slow pan across the harbour at dawn, gulls overhead", portrait)
        for portrait in (False, True)
        for index in range(args.clips)
    ]
    clip_total = len(jobs) * args.clip_seconds
    print(
        f"{len(jobs)} clips ({args.clips} landscape 1280×720, {args.clips} portrait 720×1280), "
        f"{args.clip_seconds:g} s each at 24 fps; {os.cpu_count()} CPUs"
    )
    # Warm up codec and font loading so the first measurement is not penalised.
    run(data, jobs[:1], 0.5, 1)

    serial = run(data, jobs, args.clip_seconds, 1)
    pooled = run(data, jobs, args.clip_seconds, args.workers)
    for label, wall in (("one at a time", serial), (f"pool of {args.workers}", pooled)):
        print(
            f"{label:>14}: {wall:6.2f} s wall for {clip_total:g} s of clip = "
            f"{clip_total / wall:5.2f} s of clip per s of wall time"
        )
    per_clip = serial / len(jobs)
    print(
        f"one clip renders in {per_clip:.2f} s = {per_clip / args.clip_seconds:.0%} of real time "
        f"({args.clip_seconds / per_clip:.2f}× faster than real time)"
    )
    print(f"pool / one-at-a-time throughput: {serial / pooled:.2f}×")


if __name__ == "__main__":
    main()
