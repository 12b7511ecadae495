"""Turn any exception of a reconcile into a reason and a message that are safe to show anywhere.

The text of an exception we did not foresee may quote what was being processed: a UnicodeEncodeError
on the Authorization header quotes a character of the token, a client error the URL or body. So a
message built here holds only the exception's type and where it happened; the log gets the traceback's
frames (file, line, function, source line), never the exception's text or any local variable.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import PurePath

from argobridge.kube.errors import TRANSPORT_ERRORS, KubeError, transport_message

log = logging.getLogger(__name__)

INTERNAL_ERROR = "InternalError"
API_ERROR = "ApiError"


def where_raised(error: BaseException) -> str:
    """The innermost frame of ArgoBridge's own code the exception passed, as `module.function line N`."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [frame for frame in frames if "argobridge" in PurePath(frame.filename).parts]
    if not (ours or frames):
        return "an unknown place"
    frame = (ours or frames)[-1]
    parts = PurePath(frame.filename).with_suffix("").parts
    # The package is the last directory of that name (a checkout may live under another "argobridge").
    start = len(parts) - 1 - parts[::-1].index("argobridge") if "argobridge" in parts else len(parts) - 1
    module = ".".join(parts[start:])
    return f"{module}.{frame.name} line {frame.lineno}"


def log_internal_error(error: BaseException, during: str) -> str:
    """Log an unforeseen exception's frames (no text, no locals); return `Type in module.function line N`."""
    place = where_raised(error)
    frames = "".join(traceback.format_list(traceback.extract_tb(error.__traceback__)))
    log.error(
        "%s failed: %s in %s (its text is not logged: it may quote a secret)\nTraceback (frames only):\n%s",
        during,
        type(error).__name__,
        place,
        frames,
    )
    return f"{type(error).__name__} in {place}"


def describe_failure(error: BaseException, during: str) -> tuple[str, str]:
    """(reason, message) for a failure of `during` (e.g. "Reconciling"), with the fix, without secrets.

    KubeError's own message is safe by construction (status and the apiserver's short reason); a
    transport error keeps only its types; anything else is an InternalError with type and place.
    """
    if isinstance(error, KubeError):
        return API_ERROR, f"{during} failed: {error}; ArgoBridge retries"
    if isinstance(error, TRANSPORT_ERRORS):
        return API_ERROR, f"{during} failed: {transport_message(error)}; ArgoBridge retries"
    what = log_internal_error(error, during)
    return (
        INTERNAL_ERROR,
        f"{during} failed with an internal error ({what}); ArgoBridge retries on the next resync. If it"
        " persists, report it with the operator's log, which has the traceback",
    )
