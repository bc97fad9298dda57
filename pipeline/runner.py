"""The stage runner: one message and one exit code per cause, stops that unwind, and a
stage that lives no longer than the dvc that runs it.

``python -m stages <stage>`` (``stages/__main__.py``) runs every stage's ``main`` through
``run_stage``. SIGINT and SIGTERM become ``StageStopped``, an exception that library code
cannot swallow, so that every cleanup runs; a ``UserError`` or an error of the disk or
of a folder is one line and exit 1, never a traceback.
"""

import contextlib
import ctypes
import errno
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import NoReturn

from pipeline.errors import EXIT_USAGE, STOP_SIGNALS, StageStopped, UserError, stopped

log = logging.getLogger(__name__)


class _State:
    """What the signal handler needs to know: a stop that arrived, whether stops are held
    off, whether the stage's outputs are already complete (then a stop no longer undoes
    anything), and whether the stage has ended (then only its report and exit remain)."""

    stopped_by: int | None = None
    held = False
    complete = False
    ended = False


def _unwinding_from_a_stop() -> bool:
    """Whether the code that a signal interrupted is handling a ``StageStopped``: in an
    ``except`` or ``finally`` block on its way out, such as one removing a temporary file.
    (A signal handler sees the exception that the interrupted code handles.)"""
    exc, seen = sys.exc_info()[1], set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, StageStopped):
            return True
        seen.add(id(exc))
        exc = exc.__context__
    return False


def _on_stop(signum, frame):
    if _State.complete or _State.ended:
        return  # the outputs are in place, or the stage reports how it ended: let it
    _State.stopped_by = signum
    if _State.held:
        return  # raised when the hold ends (``stops_held``)
    if _unwinding_from_a_stop():
        # A second stop (DVC forwards the user's, the kernel sends one when DVC dies):
        # raising it would cut short the cleanup that the first one runs.
        return
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


@contextlib.contextmanager
def stops_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM off during the block: one that arrives meanwhile raises
    ``StageStopped`` when the block ends, unless the block called ``outputs_complete``.

    A flag that the handler reads, not a blocked signal: the kernel delivers a signal to
    any thread that does not block it (OpenBLAS's, for one), and Python
    then runs the handler in the main thread all the same.
    """
    _State.held = True
    try:
        yield
    finally:
        _State.held = False
    if _State.complete:
        _State.stopped_by = None  # it came too late to undo anything: ignored
    raise_if_stopped()


# errno values that mean the user's disk or folders, not our code: what happened, and
# what to do about it, in one line.
_OS_ERRORS = {
    errno.ENOSPC: ("the disk is full", "free some space"),
    errno.EDQUOT: ("the disk quota is exhausted", "free some space"),
    errno.EROFS: ("the file system is read-only", "make it writable"),
    errno.EACCES: ("permission denied", "fix the folder's permissions"),
    errno.EPERM: ("operation not permitted", "fix the folder's permissions or attributes"),
    errno.EISDIR: ("a folder stands where a file goes", "move it away"),
}


# The start of the hint after a failure where DVC ran the stage.
CHECKOUT_HINT = "DVC removed the stage's previous outputs when it started it"


def after_failure(stage: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """What a failed ``stage`` leaves, where DVC ran it: DVC removes a stage's outputs
    before it runs the stage's command, and brings them back from its cache on request."""
    dvc_stage = environ.get("DVC_STAGE")  # how DVC names the stage it runs
    if stage is None or not dvc_stage:
        return ""
    return f"{CHECKOUT_HINT}: `dvc checkout {dvc_stage}` brings them back"


def _report(message: str, hint: str) -> None:
    if hint:
        # On the message's own line, unless it is a list of problems
        message += ("\n" if "\n" in message else "; ") + hint
    log.error("%s", message)


def run_stage(main: Callable[[], None], *, stage: str | None = None) -> None:
    """Run ``main``: one message and exit ``EXIT_USAGE`` on a ``UserError`` or an error of
    the disk or a folder, 128+N on signal N (``errors``' table).

    ``stage`` names the pipeline's stage that ``main`` runs: where DVC runs it, the
    message also says how to bring back the outputs that DVC removed before.
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    _State.stopped_by, _State.held, _State.complete, _State.ended = None, False, False, False
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_stop)
    hint = after_failure(stage)
    try:
        try:
            main()
            raise_if_stopped()
        finally:
            _State.ended = True  # later stops are ignored: one report, one exit code
    except UserError as exc:
        _report(f"error: {exc}", hint)
        sys.exit(EXIT_USAGE)
    except StageStopped as exc:
        _report(f"stopped by {exc}: this stage wrote no output", hint)
        sys.exit(stopped(exc.signum))
    except OSError as exc:
        if exc.errno not in _OS_ERRORS:
            raise
        what, fix = _OS_ERRORS[exc.errno]
        where = f" writing {exc.filename}" if exc.filename else ""
        _report(
            f"error: {what}{where} ({exc.strerror}): {fix}, then run again;"
            " this stage wrote no output",
            hint,
        )
        sys.exit(EXIT_USAGE)


def refuse_direct_run(stage: str) -> NoReturn:
    """What ``python -m stages.<stage>`` does: say in one line how to run the stage."""
    print(
        f"error: run this stage as `python -m stages {stage}` (or `dvc repro`):"
        f" `python -m stages.{stage}` loads numpy before its code paths can be pinned",
        file=sys.stderr,
    )
    sys.exit(EXIT_USAGE)


# --- a stage dies with the dvc that runs it -----------------------------------------------

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent: int) -> bool:
    """Have the kernel send this process SIGTERM when ``parent`` (``os.getppid()``, read
    as early as possible) ends: prctl's parent-death signal. False where that does not
    exist (not Linux), and nothing is done."""
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    if os.getppid() != parent:  # it ended before the request above: no signal would come
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def die_with_dvc(parent: int, environ: Mapping[str, str]) -> bool:
    """Under DVC, have this process stopped (SIGTERM) when the dvc that runs it ends;
    anywhere else, do nothing. True if the request was made.

    Else a stage whose ``dvc repro`` was killed runs on, and later overwrites the outputs
    of a newer run. DVC runs each stage's command with a shell, and dvc.yaml's commands
    ``exec`` the stage, so the shell becomes the stage and its parent is dvc itself
    (``parent``, ``os.getppid()`` read as early as possible): the kernel's parent-death
    signal then says all, with nothing to watch. DVC says that it runs a stage with
    ``DVC_STAGE``; a stage run by hand (``python -m stages train``, under nohup, from a
    script or a thread) has no such tie, and outlives its starter as any program does.
    Linux only; elsewhere nothing happens.
    """
    return "DVC_STAGE" in environ and die_with_parent(parent)
