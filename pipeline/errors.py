"""The exceptions that the stage runner (``pipeline/runner.py``) reports in one message."""

import signal

# The signals that stop a stage (Ctrl-C, and what `kill` and DVC send).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class UserError(Exception):
    """A problem in the user's input or environment, reported without a traceback."""


class StageStopped(BaseException):
    """SIGINT or SIGTERM arrived. Not a ``KeyboardInterrupt``: scikit-learn's ``fit``
    catches that and returns a half-trained model as if it had finished."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
