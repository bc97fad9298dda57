"""The error a user can fix, and the entry point that reports it in one message."""

import logging
import signal
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)


class UserError(Exception):
    """A problem in the user's input or environment, reported without a traceback."""


def _raise_interrupt(signum, frame):
    # Turn SIGTERM into the same unwinding as Ctrl-C, so that every ``finally`` and
    # ``except BaseException`` that removes a temporary file runs before we exit.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; exit 1 with one message on a ``UserError``, 130 when stopped."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        main()
    except UserError as exc:
        log.error("error: %s", exc)
        sys.exit(1)
    except KeyboardInterrupt:
        log.error("stopped: no output of this stage was written")
        sys.exit(130)
