"""What people ask of the worker: new takes, and takes resumed after an account is fixed.

Models only change rows; handing work to the worker once those rows are committed happens
here, so views, the admin and commands call these instead of the model methods they wrap.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from . import tasks
from .models import AuditEvent, FlowAccount, Generation, Project, Scene


def submit_after_commit(generations: Iterable[Generation]) -> None:
    """Hand freshly created takes to the worker once the transaction that made them commits."""
    ids = [generation.pk for generation in generations]
    if ids:
        transaction.on_commit(lambda: tasks.queue_submission(ids))


def record_generated(project: Project, user, generations: list[Generation], **details) -> None:
    """The takes asked for, in the audit trail. ``take_numbers`` only for one scene's takes:
    across scenes a number says nothing without its scene, and Generate all counts them."""
    if generations:
        AuditEvent.record(
            AuditEvent.Action.TAKES_GENERATED,
            user,
            project,
            takes=len(generations),
            models=sorted({take.model_key for take in generations}),
            **details,
        )


def generate(scene: Scene, user) -> list[Generation]:
    generations = scene.generate(user)
    submit_after_commit(generations)
    record_generated(
        scene.project,
        user,
        generations,
        scene=str(scene),
        take_numbers=[take.take for take in generations],
    )
    return generations


def generate_scenes(
    project: Project, scenes: Iterable[Scene], user
) -> tuple[list[Scene], list[tuple]]:
    """The scenes generated and, for each scene left out, why (in words)."""
    generated, skipped, generations = project.generate_scenes(scenes, user)
    submit_after_commit(generations)
    record_generated(project, user, generations, scenes=len(generated), by="Generate all")
    return generated, skipped


def retry_as_new_take(generation: Generation, user) -> Generation:
    return _sent_again(generation, generation.retry_as_new_take(user), user, "retry_of")


def resubmit(generation: Generation, user) -> Generation:
    return _sent_again(generation, generation.resubmit(user), user, "resubmitted")


def _sent_again(generation: Generation, new: Generation, user, how: str) -> Generation:
    """``new``, asked for again in place of ``generation``, goes to the worker once committed,
    and the audit trail says which take it replaces (``how``: "retry_of" or "resubmitted")."""
    submit_after_commit([new])
    record_generated(
        generation.project,
        user,
        [new],
        scene=str(generation.scene),
        take_numbers=[new.take],
        **{how: generation.take},
    )
    return new


def try_again(generation: Generation, user) -> Generation:
    """A take's Retry (its card, the admin's action): an uncertain take is submitted again
    knowingly, a failed or cancelled one asked for again as a new take, and any other refused
    (``Generation.can_try_again``)."""
    if generation.status == Generation.Status.UNCERTAIN:
        return resubmit(generation, user)
    return retry_as_new_take(generation, user)


def cancel(generation: Generation, user) -> bool:
    """Stop following a take (``Generation.cancel``); False when it had already finished."""
    cancelled = generation.cancel(by=user)
    if cancelled:
        AuditEvent.record(
            AuditEvent.Action.TAKE_CANCELLED,
            user,
            generation.project,
            scene=str(generation.scene),
            take=generation.take,
        )
    return cancelled


def fetch_again(generation: Generation) -> None:
    """Send a failed take whose clip was made back to the worker (``Generation.fetch_again``),
    starting a pump once that is committed: nothing new is submitted, so nothing is paid."""
    generation.fetch_again()
    transaction.on_commit(tasks.start_pump)


def limits_changed(project: Project, username: str | None = None) -> None:
    """After an owner changed the project's budget (or ``username``'s allowance): takes the
    old limit kept off another account are looked at again at the worker's next pass
    (``Project.wake_waiting_takes``), with a pump to run it."""
    if project.wake_waiting_takes(username):
        transaction.on_commit(tasks.start_pump)


def resume_waiting(account: FlowAccount) -> None:
    """Once the account's new credentials are committed, the takes that waited for them are
    due again and a pump runs for them."""

    def resume() -> None:
        if account.resume_waiting_generations():
            tasks.start_pump()

    transaction.on_commit(resume)
