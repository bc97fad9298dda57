"""The Dask side of a sweep: the task that runs one point, the point's own process, and
the call that stops them.

A task (``point_task``) starts the point's own process, ``python -m sweep.worker
PARENT_PID``, in a session of its own so that a Ctrl-C meant for the client does not
reach it, hands it a ``PointJob`` as JSON on stdin and waits for the ``PointResult``
that it prints as JSON on stdout. That process dies with this worker (SIGTERM on its
parent's death), so a killed worker leaves nothing running; Dask then reschedules the
task, and the new attempt finds the experiment already shared if the first one got that
far: a point appears once whatever happens.

The point's process

1. clones the job's git URL into a fresh folder under the worker's work dir and checks
   out the sweep's base commit;
2. points the clone at the host's shared DVC cache, so that the data is fetched and
   hashed once per host: the first point of a sweep on a host reproduces the data stage
   under a host-wide lock while the others wait, and the rest check it out;
3. returns at once if the experiment already exists at the git URL with the same params
   (an earlier attempt of this task got as far as pushing it);
4. runs ``dvc exp run --name NAME -S ...``;
5. pushes the outputs and the run cache to the project's DVC remote, if it has one, and
   then the experiment's git ref: the ref goes last, so that a point is shared whole
   or not at all.

Whatever happens, the clone is deleted. Each command runs in a process group of its own
(``run_in_group``): ``dvc exp run`` runs each stage as a child process, a signal to
``dvc`` alone would orphan the stage, and DVC ignores SIGINT while a stage runs, so on
SIGTERM or SIGINT the point stops its command the way a terminal's Ctrl-C does: SIGINT
to the whole group. The stages turn that into an exception that removes their partial
outputs (``pipeline.errors``), then DVC reports the stage failed and exits; SIGKILL goes
to whatever is left after a grace time.

Dask cannot interrupt a running task, so ``stop_points`` (run on every worker through
``Client.run``) terminates the points of a sweep that is being stopped.
"""

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import psutil

from pipeline import dvc_api, runner
from pipeline.download import user_cache_dir
from pipeline.errors import STOP_SIGNALS, UserError
from pipeline.params import parse_yaml
from pipeline.runner import CHECKOUT_HINT
from pipeline.secrets import Secret, hide
from sweep.shared import PointJob, PointResult, boundary

log = logging.getLogger(__name__)

# The folder that holds the sweep package on this worker: the point's process imports it.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent

# The stage whose outputs every point shares: reproduced once per host and sweep, under
# the host's lock, so that two workers never fetch and hash the same 70k digits at once.
DATA_STAGE = "fetch_and_scale"
FALLBACK_IDENTITY = ("mnist-mlp sweep", "sweep@localhost")
STOP_GRACE_SECONDS = 20

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
            [sys.executable, "-m", "sweep.worker", str(os.getpid())],
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


def default_work_dir(environ: Mapping[str, str]) -> Path:
    """A worker host's folder for the sweep: ``$XDG_CACHE_HOME/mnist-mlp-sweep``."""
    return user_cache_dir(environ, "mnist-mlp-sweep")


class Clone:
    """A clone of the project for one point, and the commands run in it.

    What a command prints goes through ``hide``: git quotes the URL it failed to reach,
    with its token, and a stage may quote a variable that ``--env`` set.
    """

    def __init__(self, root: Path, env: dict[str, str], secrets: list[Secret]):
        self.root = root
        self.env = env
        self.secrets = secrets

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``args`` in the clone; a ``UserError`` naming this host if it fails and ``check``."""
        result = run_in_group(list(args), cwd=self.root, env=self.env)
        result.stdout = hide(result.stdout, self.secrets)
        if check and result.returncode != 0:
            words = ["dvc", *args[3:5]] if args[1:3] == ("-m", "dvc") else [*args[:3]]
            raise UserError(
                f"`{hide(' '.join(words), self.secrets)}` failed on {socket.gethostname()}:"
                f" {failure_message(result.stdout)}"
            )
        return result

    def git(self, *args: str) -> str:
        return self.run("git", *args).stdout

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        # The worker's own DVC, the one installed beside this Python
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def remote_sha(self, ref: str) -> str | None:
        """The commit of ``ref`` at origin, if it has it."""
        listed = self.git("ls-remote", "origin", ref).split()
        return listed[0] if listed else None


def last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def failure_message(output: str) -> str:
    """The one line that says why ``dvc exp run`` failed.

    A stage's own message (``error: ...`` and its indented lines, as the stages print a
    ``UserError``) when there is one, else DVC's last ``ERROR:`` line. The stage's hint
    to ``dvc checkout`` is left out: the point's clone is gone.
    """
    lines = output.splitlines()
    for i in reversed(range(len(lines))):
        if lines[i].startswith("error: "):
            detail = [lines[i].removeprefix("error: ").strip()]
            for line in lines[i + 1 :]:
                if not line.startswith((" ", "\t")):
                    break
                detail.append(line.strip())
            return " ".join(detail).partition(f"; {CHECKOUT_HINT}")[0]
    errors = dvc_api.error_lines(output)
    return errors[-1] if errors else last_line(output)


@contextmanager
def host_lock(work_dir: Path):
    """Hold the host-wide lock of ``work_dir`` (``flock``: released if the process dies)."""
    with open(work_dir / "host.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def point_env(job: PointJob, environ: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment ``environ`` changed as the job says, and this Python first
    on PATH (the stages' commands run ``python``)."""
    env = dict(environ) | {name: value for name, value in job.env.items() if value is not None}
    for name in [name for name, value in job.env.items() if value is None]:
        env.pop(name, None)
    env |= {name: secret.reveal() for name, secret in job.secret_env.items()}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def checkout(job: PointJob, root: Path, env: dict[str, str]) -> Clone:
    """Clone ``job.git_url`` at ``job.base`` into ``root``, with a git user; its commands
    get ``env``."""
    clone = Clone(root.parent, env, job.secrets())
    clone.git("clone", "--quiet", "--no-checkout", job.git_url.reveal(), root.name)
    clone.root = root
    if clone.run("git", "checkout", "--quiet", "--detach", job.base, check=False).returncode != 0:
        raise UserError(f"commit {job.base[:7]} is not in {job.git_url}: push it there first")
    # DVC commits the experiment as this user: a worker without one of its own uses the client's.
    if not clone.run("git", "config", "user.name", check=False).stdout.strip():
        name, email = job.identity or FALLBACK_IDENTITY
        clone.git("config", "user.name", name)
        clone.git("config", "user.email", email)
    return clone


def same_params(clone: Clone, ref: str, flags: tuple[str, ...]) -> bool:
    """Whether the experiment at ``ref`` has the params that ``flags`` give the base commit."""
    clone.git("fetch", "--quiet", "origin", f"+{ref}:{ref}")
    for file, overrides in dvc_api.grid(list(flags))[0].items():
        # in the clone's copy, as `exp run -S` does
        dvc_api.apply_overrides(clone.root / file, overrides)
        expected = (clone.root / file).read_text(encoding="utf-8")
        found = clone.git("show", f"{ref}:{file}")
        clone.git("checkout", "--quiet", "--", file)
        if not same_values(expected, found, file):
            return False
    return True


def same_values(a: str, b: str, where: str) -> bool:
    """Whether two params files hold the same values as DVC reads them: YAML 1.2, as
    ``pipeline.config`` parses (PyYAML's 1.1 takes ``yes`` for ``true``, ``012`` for 10),
    and typed (``true`` is not ``1``, nor ``10`` ``10.0``, though Python's == says so)."""

    def canonical(text: str) -> str:
        return json.dumps(parse_yaml(text, where), sort_keys=True, default=str)

    return canonical(a) == canonical(b)


def existing(clone: Clone, job: PointJob, ref: str) -> PointResult | None:
    """The result of an experiment of this name already at origin, if there is one."""
    if clone.remote_sha(ref) is None:
        return None
    if same_params(clone, ref, job.flags):
        return PointResult(job.name, "exists", host=socket.gethostname())
    return PointResult(
        job.name,
        "failed",
        host=socket.gethostname(),
        error=f"experiment {job.name} already exists at {job.git_url} with other params;"
        " give the sweep another --name",
    )


def make_experiment(
    job: PointJob, root: Path, work_dir: Path, cache_dir: Path, env: dict[str, str]
) -> PointResult:
    """Steps 1 to 5 of the module's docstring, in the fresh folder ``root``."""
    host = socket.gethostname()
    clone = checkout(job, root, env)
    ref = dvc_api.exp_ref(job.base, job.name)
    if (found := existing(clone, job, ref)) is not None:
        return found
    remote = dvc_api.use_cache(clone.root, cache_dir)
    pull = ["--pull"] if remote else []

    ran: tuple[str, ...] = ()
    with host_lock(work_dir):
        warm = work_dir / "warm"
        if not warm.is_file() or warm.read_text() != job.sweep_id:
            result = clone.dvc("repro", *pull, DATA_STAGE, check=False)
            ran = dvc_api.ran_stages(result.stdout)
            if result.returncode != 0:
                return PointResult(job.name, "failed", failure_message(result.stdout), ran, host)
            warm.write_text(job.sweep_id)

    flags = [arg for flag in job.flags for arg in ("-S", flag)]
    result = clone.dvc("exp", "run", *pull, "--name", job.name, *flags, check=False)
    ran += dvc_api.ran_stages(result.stdout)
    if result.returncode != 0:
        return PointResult(job.name, "failed", failure_message(result.stdout), ran, host)

    if remote:
        clone.dvc("push", "--run-cache")
    clone.dvc("exp", "push", "--no-cache", "origin", job.name)
    pushed = clone.remote_sha(ref)
    if pushed == clone.git("rev-parse", ref).strip():
        return PointResult(job.name, "done", ran=ran, host=host)
    if pushed is not None:
        # Another attempt of this task pushed first (a worker thought dead was not).
        return existing(clone, job, ref) or PointResult(job.name, "exists", host=host)
    raise UserError(f"`dvc exp push origin {job.name}` pushed nothing to {job.git_url}")


def point_result(job: PointJob, environ: Mapping[str, str]) -> PointResult:
    """Make the experiment of ``job`` in a fresh clone under the work dir, then delete it;
    ``environ`` is the worker's environment."""
    work_dir = Path(job.work_dir).expanduser() if job.work_dir else default_work_dir(environ)
    cache_dir = Path(job.cache_dir) if job.cache_dir else work_dir / "cache"
    clones = work_dir / "clones"
    clones.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"{job.name}-", dir=clones))
    try:
        return make_experiment(job, root, work_dir, cache_dir, point_env(job, environ))
    finally:
        shutil.rmtree(root, ignore_errors=True)


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


def main() -> int:
    """``python -m sweep.worker PARENT_PID``: one point, from its job on stdin."""
    if not runner.die_with_parent(int(sys.argv[1])):
        log.warning("not Linux: a point keeps running if its worker is killed")
    environ = dict(os.environ)
    job = PointJob.from_json(sys.stdin.read())
    return boundary(lambda: print(point_result(job, environ).to_json()), secrets=job.secrets())


if __name__ == "__main__":
    sys.exit(main())
