"""Posters for the ready takes that have none, made from their stored clips' first frames.

Takes downloaded before Flowsite made posters itself (Vertex AI's, and Flow's whose poster link
failed) show a grey box until played. This gives each the poster a download makes today.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from generations import storage
from generations.models import Generation
from generations.pipeline.download import first_frame_poster
from generations.storage import StoreFailed


class Command(BaseCommand):
    help = (
        "Make a poster from the first frame of each ready take's clip where the take has "
        "none (takes downloaded before Flowsite made posters). Takes that have a poster are "
        "left alone, so running it again only retries the clips that could not be read. "
        "Reads the takes --batch at a time; prints how many posters it made."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch", type=int, default=200, help="takes read at a time (default 200)"
        )

    def handle(self, *args, batch: int, **options) -> None:
        if batch < 1:
            raise CommandError("--batch must be at least 1.")
        made, after = 0, 0
        while True:
            takes = list(
                Generation.objects.filter(status=Generation.Status.READY, poster="", pk__gt=after)
                .exclude(video="")
                .select_related("project", "scene")
                .only(
                    "uuid",
                    "take",
                    "video",
                    "project__uuid",
                    "project__name",
                    "scene__title",
                    "scene__position",
                )
                .order_by("pk")[:batch]
            )
            for take in takes:
                try:
                    kept = self.make_poster(take)
                except StoreFailed as error:
                    raise CommandError(
                        f"{error.message} Made {made} poster(s) before that; run the command "
                        "again once the storage works."
                    ) from error
                if kept:
                    made += 1
                else:
                    self.stdout.write(
                        f"{take} in project {take.project.name}: its clip could not be read, "
                        "so it still has no poster."
                    )
            if len(takes) < batch:
                break
            after = takes[-1].pk
        self.stdout.write(f"Made {made} poster(s) from their clips' first frames.")

    def make_poster(self, take: Generation) -> bool:
        name = f"{take.media_dir()}/poster.jpg"
        try:
            with storage.open_for_serving(take.video.name) as clip:
                poster = first_frame_poster(clip, storage.local_path(name), take)
        except FileNotFoundError:
            return False
        if poster is None:
            return False
        name = storage.store_file(poster.path, name)
        # Only a take still without one: a poster made meanwhile is the same first frame.
        Generation.objects.filter(pk=take.pk, poster="").update(
            poster=name, poster_sha256=poster.sha256, updated=timezone.now()
        )
        return True
