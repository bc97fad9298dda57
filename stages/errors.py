"""The errors a user can fix, and the entry point that reports them in one message."""

import errno
import logging
import signal
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class UserError(Exception):
    """A problem in the user's input or environment, reported without a traceback."""


class StageStopped(BaseException):
    """SIGINT or SIGTERM arrived. Not a ``KeyboardInterrupt``: scikit-learn's ``fit``
    catches that and returns a half-trained model as if it had finished."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _State:
    """What the signal handler needs to know: a stop that arrived, and whether the
    stage's outputs are already complete (then a stop no longer undoes anything)."""

    stopped_by: int | None = None
    complete = False


def _on_stop(signum, frame):
    if _State.complete:
        return  # the outputs are in place: the stage is finishing, let it
    _State.stopped_by = signum
    # Unwind like an exception, so that every ``except BaseException`` that removes a
    # temporary file runs before the process exits.
    raise StageStopped(signum)


def raise_if_stopped() -> None:
    """Raise ``StageStopped`` for a stop that arrived but was swallowed on its way (an
    exception raised in a finalizer, such as ``ZipFile.__del__``, is only printed)."""
    if _State.stopped_by is not None:
        raise StageStopped(_State.stopped_by)


def outputs_complete() -> None:
    """Every output of the stage is in place: from now on a stop is ignored."""
    _State.complete = True


# errno values that mean the user's disk, not our code: one line, no traceback.
_DISK_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
}


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``: one message and exit 1 on a ``UserError`` or a full disk,
    128+N on signal N."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    _State.stopped_by, _State.complete = None, False
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_stop)
    try:
        main()
        raise_if_stopped()
    except UserError as exc:
        log.error("error: %s", exc)
        sys.exit(1)
    except StageStopped as exc:
        log.error("stopped by %s: this stage wrote no output", exc)
        sys.exit(128 + exc.signum)
    except OSError as exc:
        if exc.errno not in _DISK_ERRORS:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        log.error(
            "error: %s%s (%s): free some space or fix the folder's permissions, then run"
            " again; this stage wrote no output",
            _DISK_ERRORS[exc.errno],
            where,
            exc.strerror,
        )
        sys.exit(1)
