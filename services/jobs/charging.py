"""When a job stops counting against the limits: only with proof that xAI started nothing for it.

A job is *charged* from the moment its request goes on the wire: the client calls the submit gate's hook
right before each attempt is sent, and the scheduler writes ``charged`` (and ``charged_at``, the moment a
finished job counts from) before the first byte leaves. From then on xAI may bill it, so it counts against
the member's window, the server's daily count and the daily spend whatever its ending (cancelled while
generating, timed out, moderated, failed at xAI, not downloadable or not deliverable, or caught by a crash
mid-submit, where nobody can tell). A job admitted but still waiting for a request slot (or out a 429's
Retry-After) is not charged, so a crash then puts it back in line instead of calling it uncertain; while it
waits it counts as in the making, like any waiting job. The flag is cleared only with proof:

- the request never went on the wire, or never whole: the submit was called off first (a Cancel, or a
  shutdown), the connection never opened, a proxy refused it, its body could not be sent completely (xAI
  reads nothing before the whole body is in), the attachment it needed was missing, or xAI's 429 turned it
  away (``SubmitGate.sent`` is false at the end);
- xAI answered with a clear refusal that created no job: an HTTP 4xx other than a timeout (408), a
  conflict (409) or moderation. A 400 "invalid argument", a 401/403 for the key, a 422, or a 429 for
  an account out of credits comes with no request id, so there is nothing for xAI to make or bill.

Why hand those refusals back, when the issue's rule is "only a job that provably never reached xAI"?
The limits exist to protect the bill and share the account: they count what may be spent. A request
xAI explicitly refused was not accepted and cannot be billed (there is no job to bill), so counting it
would only punish members for an admin's key or credit problem, or for a check the bot missed, and
make every member's quota run out while nothing was made. Moderation is the exception: xAI bills
moderated work, so a moderated refusal stays charged. Anything less clear (a 5xx, a timeout, a broken
answer, a 2xx without an id) may have started a billed job and stays charged.
"""

from __future__ import annotations

from services.xai.errors import XaiError

# 4xx answers that do not prove the request was refused before any work: a timeout or a conflict.
_UNCLEAR_4XX = frozenset({408, 409})


def started_nothing(error: XaiError | None, *, sent: bool) -> bool:
    """True when a submit that ended (with ``error``, or called off when None) provably started nothing."""
    if not sent:
        return True
    if error is None or error.moderated or error.transient:
        return False
    status = error.status
    return status is not None and 400 <= status < 500 and status not in _UNCLEAR_4XX
