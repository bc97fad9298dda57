"""The client of a sweep, where the user's repository is: the grid, the project, the
points' environment, one Dask task per point, then the results as DVC shows them.

The grid: ``-S`` flags in ``dvc exp run -S`` syntax, expanded into points by DVC's own
parser, as ``dvc exp run --queue -S`` does (Hydra's override grammar), so that a flag
means here exactly what it means to DVC: a comma list sweeps, several flags give their
cross product (the first flag varies slowest), and values are normalised as DVC writes
them (``1e-5`` becomes ``1e-05``, ``'a,b'`` stays one string). ``[FILE:]KEY=VALUE``
names a params file other than params.yaml. ``check_points`` then applies each point's
overrides to the sweep commit's params files, as ``dvc exp run -S`` will, and checks
params.yaml with the stages' own validation: a grid with a point that would fail is
refused before anything starts. ``${...}`` interpolation is refused: DVC would resolve
it (``${oc.env:NAME}`` reads a variable of the worker), and a value that failed
validation would be printed.

The project (``Project``): the user's repository, where it is, the commit the sweep runs
at and its DVC settings, the experiments' names, and the commands run in it.

The points' environment: a point runs as ``dvc exp run`` would in this shell, so the
variables that Dask's nanny changes for its workers get this shell's values back, and a
relative path in the stages' variables is made absolute first (a point runs in a clone
elsewhere). ``--env`` values travel as ``Secret``s.

The sweep (``sweep``): it checks every point of the grid against the sweep commit's
params, then starts a ``LocalCluster`` (at most one worker a point) or connects to a
scheduler (``sweep.cluster``), maps the task ``sweep.worker.point_task`` over the points
(each task idempotent, retried by Dask), shows progress, then ``dvc exp pull``s the
experiments and prints their swept params and headline metrics from ``dvc exp show``.

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
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline import dvc_api, paths
from pipeline.dvc_api import PARAMS_FILE as DEFAULT_PARAMS_FILE
from pipeline.dvc_api import cache_and_remote, experiments
from pipeline.errors import EXIT_FAILED, EXIT_OK, StageStopped, UserError, one_line
from pipeline.formats import HEADLINE_METRICS
from pipeline.secrets import Secret, hide
from sweep.cluster import STOP_TIMEOUT_SECONDS, Scheduler, connect, dashboard, probe
from sweep.shared import PointJob, PointResult

log = logging.getLogger(__name__)

# Retries of a task that raised (a point whose process crashed, a push that failed); a
# task whose worker died is rescheduled by Dask without counting as one.
RETRIES = 2

# An experiment's name, as DVC takes it: no "/", which git would read as a folder.
EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# The variables of the stages that hold a path: a relative one would be relative to the
# point's clone, not to where the sweep runs (MNIST_MIRROR=../shared/mnist).
PATH_VARIABLES = ("MNIST_MIRROR", "MNIST_CACHE", "XDG_CACHE_HOME")

METRICS_FILE = paths.PROJECT.metrics.relative_to(paths.ROOT).as_posix()


# The grid


@dataclass(frozen=True)
class Override:
    """One ``KEY=VALUE`` of one params file."""

    file: str
    key: str
    text: str  # KEY=VALUE as DVC normalised it

    @property
    def flag(self) -> str:
        """The value of ``dvc exp run -S`` that sets it."""
        return self.text if self.file == DEFAULT_PARAMS_FILE else f"{self.file}:{self.text}"

    @property
    def label(self) -> str:
        """The key, prefixed with its file when that is not params.yaml."""
        return self.key if self.file == DEFAULT_PARAMS_FILE else f"{self.file}:{self.key}"


@dataclass(frozen=True)
class Point:
    """One point of the grid: the overrides of one experiment."""

    overrides: tuple[Override, ...]

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(override.flag for override in self.overrides)

    def __str__(self) -> str:
        return " ".join(self.flags)


def expand(flags: list[str]) -> list[Point]:
    """The points of the cross product of ``flags`` (each a ``dvc exp run -S`` value)."""
    if not flags:
        raise UserError(
            "no -S given: name at least one parameter to sweep, e.g. -S 'train.alpha=1e-5,1e-4'"
        )
    for flag in flags:
        if "${" in flag:
            raise UserError(
                f"-S {flag!r}: ${{...}} interpolation is not allowed in a sweep; give the value"
            )
        try:
            [files] = dvc_api.grid([flag])[:1]
            keys = [key for texts in files.values() for key in dvc_api.override_keys(texts)]
        except dvc_api.FlagError as exc:
            raise UserError(
                f"-S {flag!r}: {exc}; expected [FILE:]KEY=VALUE[,VALUE...] as for `dvc exp run -S`"
            ) from None
        if not all(keys):
            raise UserError(f"-S {flag!r}: no KEY before '='; expected [FILE:]KEY=VALUE")
        for file in files:
            path = PurePosixPath(file)
            if not file or path.is_absolute() or ".." in path.parts:
                raise UserError(
                    f"-S {flag!r}: {file or 'FILE'} must be a file of the project, as a path"
                    " relative to its root"
                )
    points = []
    for files in dvc_api.grid(flags):
        overrides = tuple(
            Override(file, key, text)
            for file, texts in files.items()
            for text, key in zip(texts, dvc_api.override_keys(texts), strict=True)
        )
        points.append(Point(overrides))
    return points


def check_points(points: list[Point], file_at_base: Callable[[str], bytes | None]) -> None:
    """Refuse the grid if a point would fail: its file missing, an override that DVC
    cannot apply, or params.yaml invalid once the overrides are applied.

    ``file_at_base(path)`` gives a params file's bytes at the sweep's commit, or ``None``.
    A UserError lists each distinct problem once, with the first point that has it.
    """
    from pipeline.config import load_params  # the stages' own validation

    base_files: dict[str, bytes] = {}
    for file in {o.file for point in points for o in point.overrides}:
        content = file_at_base(file)
        if content is None:
            flag = next(o.flag for p in points for o in p.overrides if o.file == file)
            raise UserError(f"-S {flag!r}: {file} is not in the commit the sweep runs at")
        base_files[file] = content
    base_files.setdefault(DEFAULT_PARAMS_FILE, file_at_base(DEFAULT_PARAMS_FILE) or b"")

    problems: dict[str, list[Point]] = {}
    with tempfile.TemporaryDirectory(prefix="sweep-check-") as tmp:
        for point in points:
            for file, content in base_files.items():
                (Path(tmp) / file).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / file).write_bytes(content)
            problem = None
            for file in dict.fromkeys(o.file for o in point.overrides):
                texts = [o.text for o in point.overrides if o.file == file]
                if file == DEFAULT_PARAMS_FILE:
                    # Hydra's "add or change": an unknown key then reaches the stages'
                    # validation, which names the nearest known one.
                    texts = [t if t.startswith(("~", "+")) else f"++{t}" for t in texts]
                try:
                    dvc_api.apply_overrides(Path(tmp) / file, texts)
                except dvc_api.FlagError as exc:
                    problem = f"{file}: {exc}"
                    break
            if problem is None:
                try:
                    load_params(Path(tmp) / DEFAULT_PARAMS_FILE)
                except UserError as exc:
                    problem = " ".join(str(exc).split())
            if problem is not None:
                problems.setdefault(problem, []).append(point)
    if not problems:
        return
    lines = [
        f"{point}: {problem}" + (f" ({len(found)} points)" if len(found) > 1 else "")
        for problem, found in problems.items()
        for point in found[:1]
    ]
    if len(lines) == 1:
        raise UserError(f"{lines[0]}; nothing ran")
    raise UserError(
        f"{sum(map(len, problems.values()))} of {len(points)} points would fail; nothing ran:\n  "
        + "\n  ".join(lines)
    )


# The project


def command_output(
    args: list[str], cwd: Path, check: bool = True, secrets: Iterable[Secret] = ()
) -> str:
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


def exp_show(root: Path, rev: str) -> list[dict]:
    """``dvc exp show --json`` for the commit ``rev``."""
    try:
        return json.loads(command_output(dvc("exp", "show", "--json", "--rev", rev), root))
    except json.JSONDecodeError as exc:
        raise UserError(f"dvc exp show --json printed no JSON ({exc})") from None


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
        base = command_output(["git", "rev-parse", "HEAD"], root)
        if command_output(["git", "status", "--porcelain", "--untracked-files=no"], root):
            log.warning(
                "warning: uncommitted changes are not part of the sweep: it runs at commit %s",
                base[:7],
            )
        name = command_output(["git", "config", "user.name"], root, check=False)
        email = command_output(["git", "config", "user.email"], root, check=False)
        # DVC's API here: two `dvc` commands would take a second
        cache_dir, dvc_remote = cache_and_remote(root)
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
        heads = command_output(
            ["git", "ls-remote", url.reveal()], self.root, secrets=[url]
        ).split()[::2]
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


def pull(project: Project, git_url: Secret, names: list[str]) -> None:
    """Bring the experiments' refs and, from the DVC remote, their outputs into the project."""
    no_cache = [] if project.dvc_remote else ["--no-cache"]
    command_output(
        dvc("exp", "pull", *no_cache, git_url.reveal(), *names), project.root, secrets=[git_url]
    )


def shown_experiments(project: Project) -> dict[str, dict]:
    """``dvc exp show --json`` for the base commit: each experiment's data, by name."""
    return experiments(exp_show(project.root, project.base))


# The points' environment


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
    (The stages pin OpenBLAS's threads themselves, ``pipeline/cpu.py``, so the bits do not
    depend on it.)
    """
    import dask
    import distributed  # noqa: F401  (its defaults join dask.config when it is imported)

    return (
        set(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
        | set(dask.config.get("distributed.nanny.environ", {}))
        | {"PYTHONHASHSEED"}
    )


def points_env(environ: Mapping[str, str], *, local: bool, cwd: Path) -> dict[str, str | None]:
    """The environment changes for the points' commands (``None`` unsets a variable).

    This shell's (``environ``) values of the variables that Dask's nanny sets
    (``nanny_variables``), and, for ``local`` workers (which inherit this shell's
    environment), its relative paths made absolute (``absolute_paths``).
    """
    env = {name: environ.get(name) for name in nanny_variables()}
    return env | (absolute_paths(dict(environ), cwd) if local else {})


def secret_env(env: dict[str, Secret], cwd: Path) -> dict[str, Secret]:
    """``--env``, with its relative paths made absolute (``absolute_paths``)."""
    changed = absolute_paths({name: value.reveal() for name, value in env.items()}, cwd)
    return env | {name: Secret(value) for name, value in changed.items()}


# The table


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


def aligned(rows: list[list[str]]) -> str:
    """``rows`` (the first one the header) as left-aligned columns, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def headline(data: dict) -> list[str]:
    """The headline metrics of one experiment's data (from ``dvc exp show --json``)."""
    metrics = (data.get("metrics") or {}).get(METRICS_FILE, {}).get("data") or {}
    return [cell(metrics.get(name)) for name in HEADLINE_METRICS]


def sweep_table(points: dict[str, Point], shown: dict[str, dict]) -> str:
    """The swept params and headline metrics of each experiment of ``points`` that
    ``shown`` (experiments' data by name) holds."""
    overrides = next(iter(points.values())).overrides
    rows = [["experiment", *(o.label for o in overrides), *HEADLINE_METRICS]]
    for name, point in points.items():
        data = shown.get(name)
        if data is None:
            continue
        params = [
            lookup((data.get("params") or {}).get(o.file, {}).get("data", {}), o.key)
            for o in point.overrides
        ]
        rows.append([name, *map(cell, params), *headline(data)])
    return aligned(rows)


# The sweep


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


def map_points(client, jobs: list[PointJob]) -> dict[str, PointResult]:
    """Map the points over the cluster and gather how each ended, by name."""
    from distributed import as_completed

    from sweep.worker import point_task

    keys = [f"{job.name}-{job.sweep_id[:8]}" for job in jobs]
    by_key = dict(zip(keys, jobs, strict=True))
    futures = client.map(point_task, jobs, key=keys, retries=RETRIES, pure=False)
    results = {}
    try:
        with progress(len(jobs)) as advance:
            for future in as_completed(futures):
                job = by_key[future.key]
                try:
                    result = future.result()
                except Exception as exc:  # the task failed after its retries: report, go on
                    # Hidden before the cut: a secret across the cut would leave its start.
                    said = hide(str(exc) or type(exc).__name__, job.secrets())
                    result = PointResult(job.name, "failed", error=one_line(said))
                results[job.name] = result
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


@dataclass(frozen=True)
class Options:
    """The command line, parsed and checked as far as it can be without the project."""

    workers: int
    scheduler: Scheduler | None
    name: str | None
    git_url: Secret | None
    worker_dir: str | None
    env: dict[str, Secret] = field(default_factory=dict)


def sweep(options: Options, points: list[Point], cwd: Path, environ: Mapping[str, str]) -> int:
    """Run the sweep from ``cwd``, in this shell's environment ``environ``; print its table
    and failures. The exit code: ``EXIT_FAILED`` if a point failed.

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
                " (`dvc remote add -d`, see docs/experiments.md)"
            )
    else:
        # Workers here: the project's own cache, clones beside DVC's own temporary ones.
        work_dir, cache_dir = str(project.root / ".dvc" / "tmp" / "sweep"), str(project.cache_dir)
    env = points_env(environ, local=not options.scheduler, cwd=cwd)
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
        results = map_points(client, jobs)

    by_name = dict(zip(names, points, strict=True))
    shared = {name: point for name, point in by_name.items() if results[name].state != "failed"}
    failed = {name: point for name, point in by_name.items() if results[name].state == "failed"}
    # Local workers pushed their refs here and share this cache: nothing to pull then.
    if shared and (options.scheduler or git_url.reveal() != str(project.root)):
        pull(project, git_url, list(shared))
    if shared:
        print(sweep_table(shared, shown_experiments(project)))
    for name, point in failed.items():
        log.error("error: %s (%s): %s", name, point, results[name].error)
    log.info(
        "%d of %d points in `dvc exp show`%s",
        len(shared),
        len(points),
        f"; {len(failed)} failed" if failed else "",
    )
    return EXIT_FAILED if failed else EXIT_OK
