"""The client of a sweep: one Dask task per point, then the results as DVC shows them.

It runs where the user's repository is (``sweep.project``). It checks every point of the
grid against the sweep commit's params, then starts a ``LocalCluster`` (at most one
worker a point) or connects to a scheduler (``sweep.cluster``), maps the task
``sweep.worker.point_task`` over the points (each task idempotent, retried by Dask),
shows progress, then ``dvc exp pull``s the experiments and prints their swept params
and headline metrics from ``dvc exp show`` (``sweep.table``).

A Ctrl-C (or SIGTERM) cancels the tasks, stops the points still running on every
worker (each deletes its clone, and shares nothing unless it had finished), and closes
the cluster it started, waiting for all the processes that cluster started to end.
"""

import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import StageStopped
from sweep.cluster import STOP_TIMEOUT_SECONDS, Scheduler, connect, dashboard, one_line, probe
from sweep.environment import points_env, secret_env
from sweep.grid import Point, check_points
from sweep.project import Project, experiment_names, pull, shown_experiments
from sweep.shared import DONE, POINT_FAILED, PointJob, PointResult, Secret
from sweep.table import sweep_table

log = logging.getLogger(__name__)

# Retries of a task that raised (a point whose process crashed, a push that failed); a
# task whose worker died is rescheduled by Dask without counting as one.
RETRIES = 2


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
    by_key = {key: job.name for key, job in zip(keys, jobs, strict=True)}
    futures = client.map(point_task, jobs, key=keys, retries=RETRIES, pure=False)
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
                " (`dvc remote add -d`, see docs/experiments.md)"
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
    return POINT_FAILED if failed else DONE
