"""Background work, run by django-q2 workers: submit takes, poll Flow, download clips.

(Being written: see the tasks brief. `queue_submission` is the entry point models call.)
"""


def queue_submission(generation_ids: list[int]) -> None:
    """Queue the submission of these freshly created takes."""
    raise NotImplementedError
