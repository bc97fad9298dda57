"""The error a user can fix, and the entry point that reports it in one message."""

import logging
import signal
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)


class UserError(Exception):
    """A problem in the user's input or environment, reported without a traceback."""


class StageStopped(BaseException):
    """SIGINT or SIGTERM arrived. Not a ``KeyboardInterrupt``: scikit-learn's ``fit``
    catches that and returns a half-trained model as if it had finished."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum, frame):
    # Unwind like an exception, so that every ``except BaseException`` that removes a
    # temporary file runs before the process exits.
    raise StageStopped(signum)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``: one message and exit 1 on a ``UserError``, 128+N on signal N."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_stopped)
    try:
        main()
    except UserError as exc:
        log.error("error: %s", exc)
        sys.exit(1)
    except StageStopped as exc:
        log.error("stopped by %s: this stage wrote no output", exc)
        sys.exit(128 + exc.signum)
