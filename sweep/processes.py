"""Commands that can be stopped whole: each in a process group of its own.

``dvc exp run`` runs each stage as a child process. A signal to ``dvc`` alone would
orphan the stage, and DVC ignores SIGINT while a stage runs, so a command is stopped the
way a terminal's Ctrl-C stops it: SIGINT to its whole process group. The stages turn
that into an exception that removes their partial outputs (``pipeline.errors``), then DVC
reports the stage failed and exits; SIGKILL goes to whatever is left after a grace time.
"""

import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

from pipeline import runner
from pipeline.errors import STOP_SIGNALS

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 20


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel send this process SIGTERM when the process that started it ends.

    Linux only (the stages' ``runner.die_with_parent``); elsewhere a warning and nothing else.
    """
    if not runner.die_with_parent(parent_pid):
        log.warning("not Linux: a point keeps running if its worker is killed")


def run_in_group(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``args`` in a new process group, stdout and stderr together, like ``subprocess.run``.

    Any exception while it runs (a signal turned into one included) stops the whole
    group before it propagates.
    """
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate()
    except BaseException:
        # Stopping: a second SIGINT or SIGTERM (the worker dying now) must not cut it short.
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        stop_group(process)
        raise
    return subprocess.CompletedProcess(args, process.returncode, output, "")


def stop_group(process: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGINT to the process group that ``process`` leads; after ``grace`` s, SIGKILL."""
    try:
        members = [
            psutil.Process(process.pid),
            *psutil.Process(process.pid).children(recursive=True),
        ]
    except psutil.NoSuchProcess:
        members = []
    _signal_group(process.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while _alive(members) and time.monotonic() < deadline:
        process.poll()  # reap our own child, so that it does not linger as a zombie
        time.sleep(0.05)
    if _alive(members):
        log.warning("%s did not stop in %s s: killing it", process.args[:4], grace)
        _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(pgid, signum)


def _alive(members: list[psutil.Process]) -> bool:
    for member in members:
        try:
            if member.is_running() and member.status() != psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            pass
    return False
