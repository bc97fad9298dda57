"""The client of a sweep: one Dask task per point, then the results as DVC shows them.

It runs where the user's repository is. It checks every point of the grid against the
sweep commit's params, then starts a ``LocalCluster`` (at most one worker a point) or
connects to a scheduler, maps ``sweep.worker.run_point`` over the points (each task
idempotent, retried by Dask), shows progress, then ``dvc exp pull``s the experiments
and prints their swept params and headline metrics from ``dvc exp show``.

A Ctrl-C (or SIGTERM) cancels the tasks, stops the points still running on every
worker (each deletes its clone, and shares nothing unless it had finished), and closes
the cluster it started, waiting for all the processes that cluster started to end.
"""

import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from stages import paths
from stages.errors import StageStopped, UserError
from sweep.cluster import STOP_TIMEOUT_SECONDS, Scheduler, connect, dashboard, one_line, probe
from sweep.grid import Point, check_points
from sweep.jobs import PointJob, PointResult
from sweep.secrets import Secret, hide

log = logging.getLogger(__name__)

HEADLINE_METRICS = ("train_accuracy", "test_accuracy", "final_loss", "iterations")
METRICS_FILE = paths.PROJECT.metrics.relative_to(paths.ROOT).as_posix()
# Retries of a task that raised (a point whose process crashed, a push that failed); a
# task whose worker died is rescheduled by Dask without counting as one.
RETRIES = 2
# The variables of the stages that hold a path: a relative one would be relative to the
# point's clone, not to where the sweep runs (MNIST_MIRROR=../shared/mnist).
PATH_VARIABLES = ("MNIST_MIRROR", "MNIST_CACHE", "XDG_CACHE_HOME")
# An experiment's name, as DVC takes it: no "/", which git would read as a folder.
EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def run(args: list[str], cwd: Path, check: bool = True, secrets: Iterable[Secret] = ()) -> str:
    """Run a command in the user's repository; a ``UserError`` with its last line if it fails.

    ``secrets`` are hidden in that message (git quotes a URL that it cannot reach)."""
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
        command = ["dvc", *args[3:5]] if args[1:3] == ["-m", "dvc"] else args[:3]
        raise UserError(hide(f"`{' '.join(command)}` failed: {lines[-1]}", secrets))
    return result.stdout.strip()


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


@dataclass(frozen=True)
class Project:
    """The user's repository: where it is, the commit the sweep runs at, and its settings."""

    root: Path
    base: str
    identity: tuple[str, str] | None
    cache_dir: Path
    dvc_remote: str

    @classmethod
    def discover(cls, cwd: Path) -> "Project":
        toplevel = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True
        )
        if toplevel.returncode != 0 or not (Path(toplevel.stdout.strip()) / ".dvc").is_dir():
            raise UserError(
                f"{cwd} is not in a git repository with DVC: run the sweep in the project"
            )
        root = Path(toplevel.stdout.strip())
        base = run(["git", "rev-parse", "HEAD"], root)
        if run(["git", "status", "--porcelain", "--untracked-files=no"], root):
            log.warning(
                "warning: uncommitted changes are not part of the sweep: it runs at commit %s",
                base[:7],
            )
        name = run(["git", "config", "user.name"], root, check=False)
        email = run(["git", "config", "user.email"], root, check=False)
        from dvc.repo import Repo  # its API here: two `dvc` commands would take a second

        with Repo(str(root)) as repo:
            cache_dir, dvc_remote = (
                Path(repo.cache.local_cache_dir),
                repo.config["core"].get("remote", ""),
            )
        return cls(
            root=root,
            base=base,
            identity=(name, email) if name and email else None,
            cache_dir=cache_dir,
            dvc_remote=dvc_remote,
        )

    def file_at_base(self, path: str) -> bytes | None:
        """The bytes of ``path`` at the base commit, or ``None`` if it has no such file."""
        shown = subprocess.run(
            ["git", "show", f"{self.base}:{path}"], cwd=self.root, capture_output=True
        )
        return shown.stdout if shown.returncode == 0 else None

    def check_git_url(self, url: Secret) -> None:
        """Fail now, not on every worker, if the base commit is not on ``url``."""
        if is_local_path(url.reveal()) and Path(url.reveal()).resolve() == self.root:
            return
        heads = run(["git", "ls-remote", url.reveal()], self.root, secrets=[url]).split()[::2]
        for sha in heads:
            reached = subprocess.run(
                ["git", "merge-base", "--is-ancestor", self.base, sha],
                cwd=self.root,
                capture_output=True,
            )
            if reached.returncode == 0:
                return
        raise UserError(
            f"commit {self.base[:7]} is not on {url}, where the workers clone from: push it first"
        )


def experiment_names(prefix: str, count: int, root: Path) -> list[str]:
    """``PREFIX-1`` ... ``PREFIX-count``, as ``dvc exp run --queue --name PREFIX`` names a sweep."""
    names = [f"{prefix}-{i}" for i in range(1, count + 1)]
    valid = (
        EXPERIMENT_NAME.fullmatch(prefix)
        and not subprocess.run(
            ["git", "check-ref-format", f"refs/exps/{names[-1]}"], cwd=root
        ).returncode
    )
    if not valid:
        raise UserError(
            f"--name {prefix!r}: not usable as an experiment's name; use letters, digits,"
            " '-', '_' and '.'"
        )
    return names


def is_local_path(url: str) -> bool:
    """Whether git reads ``url`` as a path (not ``scheme://...`` nor ``[user@]host:path``)."""
    return "://" not in url and ":" not in url.partition("/")[0]


def absolute_url(url: str, cwd: Path) -> str:
    """``url``, a relative path in it made absolute from ``cwd``: the workers clone elsewhere."""
    return os.path.abspath(cwd / Path(url).expanduser()) if is_local_path(url) else url


def absolute_paths(env: dict[str, str], cwd: Path) -> dict[str, str]:
    """The ``PATH_VARIABLES`` of ``env`` whose value is a relative path, made absolute
    from ``cwd``; one line says so, without their values (an ``--env`` value is secret)."""
    changed = {
        name: os.path.abspath(cwd / value)
        for name, value in env.items()
        if name in PATH_VARIABLES
        and value
        and "://" not in value
        and not value.lower().startswith("file:")
        and not value.startswith("~")
        and not Path(value).is_absolute()
    }
    if changed:
        log.info(
            "%s: relative path%s made absolute for the points, from %s (where the sweep runs)",
            ", ".join(sorted(changed)),
            "s" if len(changed) > 1 else "",
            cwd,
        )
    return changed


def nanny_variables() -> set[str]:
    """The environment variables that a Dask nanny sets for its worker processes.

    Among them one BLAS and OpenMP thread per worker, and a fixed PYTHONHASHSEED: the
    points get this shell's values back, so that each runs as ``dvc exp run`` would here.
    (The stages pin OpenBLAS's threads themselves, ``stages/cpu.py``, so the bits do not
    depend on it.)
    """
    import dask
    import distributed  # noqa: F401  (its defaults join dask.config when it is imported)

    return (
        set(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
        | set(dask.config.get("distributed.nanny.environ", {}))
        | {"PYTHONHASHSEED"}
    )


def points_env(local: bool, cwd: Path) -> dict[str, str | None]:
    """The environment changes for the points' commands (``None`` unsets a variable).

    This shell's values of the variables that Dask's nanny sets (``nanny_variables``), and,
    for ``local`` workers (which inherit this shell's environment), its relative paths
    made absolute (``absolute_paths``).
    """
    env = {name: os.environ.get(name) for name in nanny_variables()}
    return env | (absolute_paths(dict(os.environ), cwd) if local else {})


def secret_env(env: dict[str, Secret], cwd: Path) -> dict[str, Secret]:
    """``--env``, with its relative paths made absolute (``absolute_paths``)."""
    changed = absolute_paths({name: value.reveal() for name, value in env.items()}, cwd)
    return env | {name: Secret(value) for name, value in changed.items()}


@contextmanager
def progress(total: int) -> Iterator:
    """Advance by one point: a progress bar on a terminal, a log line otherwise."""
    from tqdm import tqdm

    if sys.stderr.isatty():
        with tqdm(total=total, unit="point", desc="sweep", file=sys.stderr) as bar:
            yield lambda result: bar.update()
        return
    done = 0

    def advance(result: PointResult) -> None:
        nonlocal done
        done += 1
        ran = f"ran {', '.join(result.ran)}" if result.ran else "ran no stage"
        host = f" on {result.host}" if result.host else ""
        log.info("%s: %s%s, %s (%d/%d)", result.name, result.state, host, ran, done, total)

    yield advance


def run_points(client, jobs: list[PointJob]) -> dict[str, PointResult]:
    """Map the points over the cluster and gather how each ended, by name."""
    from distributed import as_completed

    from sweep.worker import run_point

    keys = [f"{job.name}-{job.sweep_id[:8]}" for job in jobs]
    by_key = {key: job.name for key, job in zip(keys, jobs, strict=True)}
    futures = client.map(run_point, jobs, key=keys, retries=RETRIES, pure=False)
    results = {}
    try:
        with progress(len(jobs)) as advance:
            for future in as_completed(futures):
                name = by_key[future.key]
                try:
                    result = future.result()
                except Exception as exc:  # the task failed after its retries: report, go on
                    result = PointResult(name, "failed", error=one_line(exc))
                results[name] = result
                advance(result)
    except (KeyboardInterrupt, StageStopped):
        stop(client, futures, jobs[0].sweep_id)
        raise
    return results


def stop(client, futures, sweep_id: str) -> None:
    """Cancel the sweep's tasks and stop its points on every worker."""
    from sweep.worker import stop_points

    log.warning("stopping the sweep: its running points delete their clones and share nothing")
    client.cancel(futures)
    try:
        stopped = client.run(stop_points, sweep_id, STOP_TIMEOUT_SECONDS)
    except Exception as exc:  # a worker that is gone has nothing left to stop
        log.warning("could not reach every worker: %s", one_line(exc))
    else:
        log.warning("stopped %d running point(s)", sum(stopped.values()))


def pull(project: Project, git_url: Secret, names: list[str]) -> None:
    """Bring the experiments' refs and, from the DVC remote, their outputs into the project."""
    no_cache = [] if project.dvc_remote else ["--no-cache"]
    run(dvc("exp", "pull", *no_cache, git_url.reveal(), *names), project.root, secrets=[git_url])


def shown_experiments(project: Project) -> dict[str, dict]:
    """``dvc exp show --json`` for the base commit: each experiment's data, by name."""
    shown = json.loads(run(dvc("exp", "show", "--json", "--rev", project.base), project.root))
    return {
        experiment["name"]: experiment["revs"][0]["data"]
        for baseline in shown
        for experiment in baseline.get("experiments") or ()
    }


def lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def table(points: dict[str, Point], shown: dict[str, dict]) -> str:
    """The swept params and headline metrics of each experiment, as aligned columns."""
    overrides = next(iter(points.values())).overrides
    header = ["experiment", *(o.label for o in overrides), *HEADLINE_METRICS]
    rows = [header]
    for name, point in points.items():
        data = shown.get(name)
        if data is None:
            continue
        params = [
            lookup((data.get("params") or {}).get(o.file, {}).get("data", {}), o.key)
            for o in point.overrides
        ]
        metrics = (data.get("metrics") or {}).get(METRICS_FILE, {}).get("data", {})
        rows.append([name, *map(cell, params), *(cell(metrics.get(m)) for m in HEADLINE_METRICS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


@dataclass(frozen=True)
class Options:
    """The command line, parsed and checked as far as it can be without the project."""

    workers: int
    scheduler: Scheduler | None
    name: str | None
    git_url: Secret | None
    worker_dir: str | None
    env: dict[str, Secret] = field(default_factory=dict)


def sweep(options: Options, points: list[Point], cwd: Path) -> int:
    """Run the sweep; print its table and failures. The exit code: 1 if a point failed.

    Everything that can be checked is checked before a cluster starts: the project, every
    point against its params, the names, and the git URL's commit."""
    project = Project.discover(cwd)
    check_points(points, project.file_at_base)
    sweep_id = uuid.uuid4().hex
    names = experiment_names(options.name or f"sweep-{sweep_id[:6]}", len(points), project.root)
    git_url = options.git_url or Secret.url(str(project.root))
    project.check_git_url(git_url)
    if options.scheduler:
        probe(options.scheduler)
    workers = min(options.workers, len(points))
    if options.scheduler:
        # Workers elsewhere: their own host's cache, unless told a folder.
        work_dir, cache_dir = options.worker_dir, None
        if not project.dvc_remote and not options.worker_dir:
            log.warning(
                "warning: the project has no DVC remote: the outputs stay on the workers"
                " (`dvc remote add -d`, see the README)"
            )
    else:
        # Workers here: the project's own cache, clones beside DVC's own temporary ones.
        work_dir, cache_dir = str(project.root / ".dvc" / "tmp" / "sweep"), str(project.cache_dir)
    env = points_env(local=not options.scheduler, cwd=cwd)
    secrets = secret_env(options.env, cwd)
    jobs = [
        PointJob(
            sweep_id=sweep_id,
            name=name,
            flags=point.flags,
            git_url=git_url,
            base=project.base,
            work_dir=work_dir,
            cache_dir=cache_dir,
            identity=project.identity,
            env=env,
            secret_env=secrets,
        )
        for name, point in zip(names, points, strict=True)
    ]
    log.info(
        "sweep of %d point%s at commit %s, %s: %s",
        len(points),
        "s" if len(points) > 1 else "",
        project.base[:7],
        f"on {workers} local worker{'s' if workers > 1 else ''}"
        if not options.scheduler
        else f"on the cluster of {options.scheduler.address}",
        names[0] if len(names) == 1 else f"{names[0]} to {names[-1]}",
    )
    with connect(workers, options.scheduler) as client:
        if link := dashboard(client):
            log.info("Dask dashboard: %s", link)
        results = run_points(client, jobs)

    by_name = dict(zip(names, points, strict=True))
    shared = {name: point for name, point in by_name.items() if results[name].state != "failed"}
    failed = {name: point for name, point in by_name.items() if results[name].state == "failed"}
    # Local workers pushed their refs here and share this cache: nothing to pull then.
    if shared and (options.scheduler or git_url.reveal() != str(project.root)):
        pull(project, git_url, list(shared))
    if shared:
        print(table(shared, shown_experiments(project)))
    for name, point in failed.items():
        log.error("error: %s (%s): %s", name, point, results[name].error)
    log.info(
        "%d of %d points in `dvc exp show`%s",
        len(shared),
        len(points),
        f"; {len(failed)} failed" if failed else "",
    )
    return 1 if failed else 0
