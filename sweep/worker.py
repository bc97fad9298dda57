"""The Dask side of a sweep: the task that runs one point, and the call that stops them.

A task starts the point's own process (``python -m sweep.point``, in a session of its
own so that a Ctrl-C meant for the client does not reach it) and waits for its result.
That process dies with this worker, so a killed worker leaves nothing running; Dask then
reschedules the task, and the new attempt finds the experiment already shared if the
first one got that far: a point appears once whatever happens.

Dask cannot interrupt a running task, so ``stop_points`` (run on every worker through
``Client.run``) terminates the points of a sweep that is being stopped.
"""

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

from distributed import WorkerPlugin

from sweep.shared import PointJob, PointResult, hide

# The folder that holds the sweep package on this worker: the point's process imports it.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent

# The point processes running on this worker, by sweep, and the sweeps being stopped.
_running: dict[str, set[subprocess.Popen]] = defaultdict(set)
_stopped: set[str] = set()
_lock = threading.Lock()


class PointCrashed(Exception):
    """The point's process ended without a result; Dask retries the task."""


def point_task(job: PointJob) -> PointResult:
    """The Dask task of one point: run it in its own process and return its result."""
    with _lock:
        if job.sweep_id in _stopped:
            raise PointCrashed(f"{job.name}: the sweep is stopping")
        process = subprocess.Popen(
            [sys.executable, "-m", "sweep.point", str(os.getpid())],
            cwd=PACKAGE_PARENT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        _running[job.sweep_id].add(process)
    try:
        output, errors = process.communicate(job.to_json())
    finally:
        with _lock:
            _running[job.sweep_id].discard(process)
    if process.returncode != 0 or not output.strip():
        lines = [line for line in errors.splitlines() if line.strip()] or ["(no output)"]
        last = hide(lines[-1].removeprefix("error: "), job.secrets())
        raise PointCrashed(f"{job.name}: exit code {process.returncode}: {last}")
    return PointResult.from_json(output.strip().splitlines()[-1])


def ready() -> str:
    """This host's name. Called on the scheduler and on the workers before the sweep starts:
    where this function cannot be unpickled, neither can the tasks (both import ``sweep``)."""
    import socket

    return socket.gethostname()


async def stop_points(sweep_id: str, timeout: float) -> int:
    """Terminate the points of ``sweep_id`` on this worker and wait for them: how many.

    A coroutine, so that ``Client.run`` awaits it without blocking the worker's event loop.
    """
    with _lock:
        _stopped.add(sweep_id)
        processes = list(_running.pop(sweep_id, ()))
    for process in processes:
        process.terminate()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while any(p.poll() is None for p in processes) and loop.time() < deadline:
        await asyncio.sleep(0.1)
    for process in processes:
        if process.poll() is None:
            process.kill()
    return len(processes)


class IgnoreInterrupts(WorkerPlugin):
    """A worker of the client's own ``LocalCluster`` shares its terminal: it leaves a
    Ctrl-C there to the client, which stops the sweep in order."""

    def setup(self, worker) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
