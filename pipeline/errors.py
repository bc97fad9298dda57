"""What every command of the project says when it fails: its exceptions, its exit codes
and its one-line messages.

The stages (``pipeline/runner.py``), ``tools.verify``, the sweep and the benchmarks exit
with the codes of one table (docs/pipeline.md, "Exit codes"):

- ``EXIT_OK`` (0): done, and whatever was checked holds;
- ``EXIT_FAILED`` (1): it ran and found a failure: outputs that differ from dvc.lock, a
  sweep point that failed, a benchmark command that failed; and an unexpected error,
  which Python reports with a traceback;
- ``EXIT_USAGE`` (2): it could not run as asked: the command line, params.yaml, the
  environment, the data or the disk is wrong, and one message says what to fix;
- ``stopped(N)`` (128 + N): stopped by signal N, 130 for Ctrl-C, as a shell reports it.

A message is one line (``error: ...``); what it quotes of the world (a server's reason, an
exception, a value from a file) goes through ``one_line`` first.
"""

import signal

# The signals that stop a stage (Ctrl-C, and what `kill` and DVC send).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def stopped(signum: int) -> int:
    """The exit code of a command stopped by signal ``signum``: 128 + N, as shells give."""
    return 128 + signum


class UserError(Exception):
    """A problem in the user's input or environment, reported without a traceback."""


class StageStopped(BaseException):
    """SIGINT or SIGTERM arrived. Not a ``KeyboardInterrupt``: scikit-learn's ``fit``
    catches that and returns a half-trained model as if it had finished."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def one_line(text: object, limit: int = 200) -> str:
    """``text`` fit for one line of a message: its first line that is not blank (for an
    exception with no message, its type's name), control characters (escape sequences
    that would recolour, retitle or rewrite the user's terminal) as ``?``, and at most
    ``limit`` characters, the last three ``...`` where it was cut."""
    if isinstance(text, BaseException) and not str(text).strip():
        return type(text).__name__
    lines = [line.strip() for line in str(text).split("\n") if line.strip()]
    shown = "".join(c if c.isprintable() else "?" for c in (lines[0] if lines else ""))
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
