"""Background work, one pass at a time: reap, submit, poll, download.

The rule that outranks every other: **never pay twice.** A submit spends credits, so a take
whose submit request may have left Flowsite is never submitted again automatically. Its take is
flipped to "submitting" right before the call; if the answer is lost, unreadable or the worker
dies holding it, the take becomes "uncertain" and a person decides. Everything else in the
package may be retried freely, because nothing else costs anything.

How passes share the work: everything here is idempotent, so a pass can be run by a test, a
benchmark or the django-q2 pump alike, and several passes may run at once on different
workers. Each phase takes its rows with a conditional UPDATE that stamps a fresh claim token
and a lease, then writes only rows still carrying that token (``claims``). In the pump, a
keeper thread renews those leases every few seconds, and downloads run on threads of their
own beside submitting and polling (``download``). A worker past its lease is presumed dead,
and the reaper takes back what it held.

Words: a *take* is what the team sees, a ``Generation`` numbered within its scene; code says
``generation``. A pass *claims* rows (token and lease), *holds* them while it works, and
*releases* them — clearing claim and lease in the same UPDATE that writes its outcome.

The modules, in the order a pass runs them:

- ``policy``: leases, backoff, attempts, and every sentence a card shows;
- ``accounts``: one engine per account, the shared token cache, an account's problem;
- ``claims``: claiming rows, and writing them only while held;
- ``reap``: settling takes whose worker vanished;
- ``submit``: uploading start images and the submit call (the one that costs);
- ``poll``: status calls, batch by batch;
- ``download``: fetching a finished clip and its poster;
- ``passes``: a pass itself, and when the next one is due.
"""

from .claims import Keeper
from .download import Downloads
from .passes import Pass, run_pass, seconds_until_due
from .policy import beat_seconds, download_slots, poll_interval

__all__ = [
    "Downloads",
    "Keeper",
    "Pass",
    "beat_seconds",
    "download_slots",
    "poll_interval",
    "run_pass",
    "seconds_until_due",
]
