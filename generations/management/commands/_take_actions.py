"""``storyboard extend`` and ``storyboard upscale``: the card's take actions, from scripts.

The storyboard command finds the project, the person (an owner or editor) and the scene; this
asks the same model functions the card does (generations/take_actions.py), so a script is
refused in the same words and counted against the same budgets.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from generations import take_actions
from generations.models import CannotGenerate, Generation, Project, Scene
from generations.rules import printable


def run_take_action(
    action: str, project: Project, scene: Scene, user, options: dict[str, Any]
) -> str:
    """Do ``action`` on take ``options["take"]`` of ``scene``; what happened, in a line."""
    number = options["take"]
    position = options["scene"]
    take = (
        Generation.objects.select_related("project__account", "scene")
        .filter(scene=scene, take=number)
        .first()
    )
    if take is None:
        raise CommandError(f"Scene {position} has no take {number}.")
    try:
        if action == "extend":
            extension = take_actions.extend(take, user, options["prompt"])
            return (
                f"Added {printable(str(extension))} after scene {position}, extending take "
                f"{number}; its take is queued (the worker sends it to "
                f"{'Vertex AI' if project.account and project.account.is_vertex else 'Flow'})."
            )
        _, notice = take_actions.request_upscale(take, user, options["resolution"])
        return f"Scene {position}: {notice}"
    except CannotGenerate as refusal:
        raise CommandError(f"Scene {position} take {number}: {refusal}") from None
