"""The boundary of the sweep's commands (``python -m sweep``, ``sweep.show``, ``sweep.point``).

One message and exit 2 for a ``UserError`` (a mistake in the command or the project);
"stopped by SIGINT" and 128+N for a stop by signal N; a traceback, exit 1, only for our
own bugs. Every line on stderr, Dask's and DVC's included, has the given secrets hidden.
These are not stages: nothing here speaks of a stage's outputs.
"""

import logging
import signal
import sys
import traceback
from collections.abc import Callable, Iterable

from pipeline.errors import STOP_SIGNALS, StageStopped, UserError
from sweep.secrets import HideSecrets, Secret, hide

log = logging.getLogger("sweep")

USER_ERROR = 2


def _stop(signum, frame):
    # Once: stopping in order takes a few seconds that a second Ctrl-C must not cut short.
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise StageStopped(signum)


def boundary(body: Callable[[], int | None], *, secrets: Iterable[str | Secret] = ()) -> int:
    """Run ``body`` with the sweep's logging and stop signals; its exit code."""
    secrets = tuple(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(HideSecrets(secrets))
    root, ours = logging.getLogger(), logging.getLogger("sweep")
    levels = root.level, ours.level
    # Dask's own INFO lines (workers starting and closing) are noise here: its warnings stay.
    root.setLevel(logging.WARNING)
    ours.setLevel(logging.INFO)
    root.addHandler(handler)
    previous = {signum: signal.signal(signum, _stop) for signum in STOP_SIGNALS}
    try:
        return body() or 0
    except UserError as exc:
        log.error("error: %s", exc)
        return USER_ERROR
    except StageStopped as exc:
        log.error("stopped by %s", exc)
        return 128 + exc.signum
    except Exception as exc:  # our bug: its traceback, with the secrets hidden all the same
        sys.stderr.write(hide("".join(traceback.format_exception(exc)), secrets))
        return 1
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])
