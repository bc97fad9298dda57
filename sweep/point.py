"""One point of a sweep, run on a worker as a process of its own: clone, run, share.

``python -m sweep.point PARENT_PID`` reads a ``PointJob`` as JSON on stdin and prints a
``PointResult`` as JSON on stdout. It

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

Whatever happens, the clone is deleted. The process dies with the worker that started it
(SIGTERM on its parent's death), and on SIGTERM or SIGINT it stops the command it is
running, with its stages (``sweep.processes``), before it deletes the clone.
"""

import fcntl
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from pipeline import dvc_api
from pipeline.download import user_cache_dir
from pipeline.errors import UserError
from pipeline.params import parse_yaml
from pipeline.runner import CHECKOUT_HINT
from sweep.processes import die_with_parent, run_in_group
from sweep.shared import PointJob, PointResult, Secret, boundary, hide

log = logging.getLogger(__name__)

# The stage whose outputs every point shares: reproduced once per host and sweep, under
# the host's lock, so that two workers never fetch and hash the same 70k digits at once.
DATA_STAGE = "fetch_and_scale"
FALLBACK_IDENTITY = ("mnist-mlp sweep", "sweep@localhost")


def default_work_dir() -> Path:
    """A worker host's folder for the sweep: ``$XDG_CACHE_HOME/mnist-mlp-sweep``."""
    return user_cache_dir(os.environ, "mnist-mlp-sweep")


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


def point_env(job: PointJob) -> dict[str, str]:
    """The worker's environment changed as the job says, and this Python first on PATH
    (the stages' commands run ``python``)."""
    env = os.environ | {name: value for name, value in job.env.items() if value is not None}
    for name in [name for name, value in job.env.items() if value is None]:
        env.pop(name, None)
    env |= {name: secret.reveal() for name, secret in job.secret_env.items()}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def checkout(job: PointJob, root: Path) -> Clone:
    """Clone ``job.git_url`` at ``job.base`` into ``root``, with a git user."""
    clone = Clone(root.parent, point_env(job), job.secrets())
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


def make_experiment(job: PointJob, root: Path, work_dir: Path, cache_dir: Path) -> PointResult:
    """Steps 1 to 5 of the module's docstring, in the fresh folder ``root``."""
    host = socket.gethostname()
    clone = checkout(job, root)
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


def point_result(job: PointJob) -> PointResult:
    """Make the experiment of ``job`` in a fresh clone under the work dir, then delete it."""
    work_dir = Path(job.work_dir).expanduser() if job.work_dir else default_work_dir()
    cache_dir = Path(job.cache_dir) if job.cache_dir else work_dir / "cache"
    clones = work_dir / "clones"
    clones.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"{job.name}-", dir=clones))
    try:
        return make_experiment(job, root, work_dir, cache_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    die_with_parent(int(sys.argv[1]))
    job = PointJob.from_json(sys.stdin.read())
    return boundary(lambda: print(point_result(job).to_json()), secrets=job.secrets())


if __name__ == "__main__":
    sys.exit(main())
